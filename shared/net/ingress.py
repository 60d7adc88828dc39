"""What a node accepts from the network before it acts on a message: formats and bounds.

One module for every receiver (the entry, SNs, ENs), so a node id, an address or a reason is
held to the same rules wherever it arrives. Each ``check_*`` raises ``IngressRefused`` with a
one-line reason naming the field; ``reason_text`` instead cleans a reason a node writes
about someone else (it is recorded, never refused). The limits match what a block may hold
(``shared/chain/payloads.py``), so nothing accepted here can make a round payload invalid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

NODE_ID_RE = re.compile(r"n-[0-9a-f]{16}")
"""``shared.crypto.node_id_for``: ``n-`` and 16 lower-case hex characters."""
DIGEST_RE = re.compile(r"[0-9a-f]{64}")
"""A hex SHA-256 digest."""
ADDRESS_RE = re.compile(r"[A-Za-z0-9._\-\[\]:]{1,253}:[0-9]{1,5}")
"""HOST:PORT (a name, an IPv4 address or a bracketed IPv6 address)."""

MAX_ADDRESS = 260
MAX_REASON = 300
MAX_STATE = 32
MAX_ALGORITHM = 200
"""An algorithm is a name (``fedper``) or a strategy spec ``package.module:Class``."""
MAX_REJECTED = 1024
"""Most rejections one SN manifest may list."""
MAX_PARTICIPANTS = 10_000
MAX_LOSS = 1e6
"""A train or evaluation loss above this is not a loss a model reports."""
MAX_SECONDS = 7 * 24 * 3600.0
MAX_SAMPLES = 1 << 40
"""Upper bound of any sample count before the partition bound is known."""


class IngressRefused(ValueError):
    """A field of a message from the network that is malformed or out of range."""


def check_node_id(value: str, what: str = "node id") -> str:
    if len(value) > 64 or not NODE_ID_RE.fullmatch(value):
        raise IngressRefused(f"{what} is not a node id (n- and 16 hex characters): {value[:40]!r}")
    return value


def is_node_id(value: str) -> bool:
    return len(value) <= 64 and NODE_ID_RE.fullmatch(value) is not None


def check_node_ids(values: Sequence[str], what: str, limit: int = MAX_PARTICIPANTS) -> list[str]:
    if len(values) > limit:
        raise IngressRefused(f"{what} lists {len(values)} nodes, more than {limit}")
    return [check_node_id(v, what) for v in values]


def check_address(value: str, what: str = "address", *, optional: bool = False) -> str:
    if optional and value == "":
        return value
    if len(value) > MAX_ADDRESS or not ADDRESS_RE.fullmatch(value):
        raise IngressRefused(f"{what} is not HOST:PORT: {value[:40]!r}")
    return value


def check_digest(value: str, what: str = "digest", *, optional: bool = False) -> str:
    if optional and value == "":
        return value
    if not DIGEST_RE.fullmatch(value):
        raise IngressRefused(f"{what} is not a hex SHA-256 digest: {value[:40]!r}")
    return value


def check_short_text(value: str, what: str, limit: int) -> str:
    if len(value) > limit or not value.isprintable():
        raise IngressRefused(f"{what} is longer than {limit} characters or not printable")
    return value


def check_finite(value: float, what: str, low: float, high: float) -> float:
    if not math.isfinite(value) or not low <= value <= high:
        raise IngressRefused(f"{what} must be a finite number in [{low:g}, {high:g}], got {value!r}")
    return value


def check_count(value: int, what: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise IngressRefused(f"{what} must be in [{low}, {high}], got {value}")
    return value


def check_samples(value: int, partition_size: int) -> int:
    """An update's sample count: positive and at most the partition the entry assigned."""
    bound = partition_size if partition_size > 0 else MAX_SAMPLES
    if value <= 0:
        raise IngressRefused("an update must report a positive sample count")
    if value > bound:
        raise IngressRefused(f"sample count {value} exceeds the assigned partition's {bound} samples")
    return value


def check_evaluation(correct: int, total: int, loss: float, partition_size: int = 0) -> None:
    """An evaluation answer: 0 <= correct <= total (<= the partition), a finite loss."""
    if not 0 <= correct <= total:
        raise IngressRefused(f"evaluation says {correct} correct of {total}")
    bound = partition_size if partition_size > 0 else MAX_SAMPLES
    if total > bound:
        raise IngressRefused(f"evaluation total {total} exceeds the partition's {bound} samples")
    check_finite(loss, "evaluation loss", 0.0, MAX_LOSS)


def reason_text(value: str) -> str:
    """A reason as it may be recorded: printable, at most ``MAX_REASON`` characters."""
    clean = "".join(c if c.isprintable() else "?" for c in value)
    return clean if len(clean) <= MAX_REASON else clean[: MAX_REASON - 1] + "…"
