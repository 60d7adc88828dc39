"""Digest formats, defined once: hex SHA-256 of bytes and the 64-/128-hex text forms.

``sha256_hex`` is the address of a blob and the digest the chain records. ``digest_of``
is the same for an immutable model buffer served again and again: it remembers the
digests of the last few buffers by identity, so a model is hashed once per version, not
once per fetch.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from typing import TypeGuard

HEX64 = re.compile(r"[0-9a-f]{64}")
"""A SHA-256 digest or an Ed25519 public key: 64 lowercase hex characters."""
HEX128 = re.compile(r"[0-9a-f]{128}")
"""An Ed25519 signature: 128 lowercase hex characters."""

DIGEST_FORMAT = "64 lowercase hex characters"
"""How refusals name the digest format."""


def hex_bytes(value: object, what: str, size: int, error: type[Exception] = ValueError) -> bytes:
    """The ``size`` bytes a hex string stands for; ``error`` with a one-line reason otherwise."""
    if not isinstance(value, str):
        raise error(f"{what} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise error(f"{what} is not hex") from None
    if len(raw) != size:
        raise error(f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def is_hex64(value: object) -> TypeGuard[str]:
    """True when ``value`` is a string of exactly 64 lowercase hex characters."""
    return isinstance(value, str) and HEX64.fullmatch(value) is not None


def is_hex128(value: object) -> TypeGuard[str]:
    """True when ``value`` is a string of exactly 128 lowercase hex characters."""
    return isinstance(value, str) and HEX128.fullmatch(value) is not None


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class DigestMemo:
    """Digests of the last ``size`` immutable buffers, found by identity (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._known: OrderedDict[int, tuple[bytes, str]] = OrderedDict()

    def remember(self, data: bytes, digest: str) -> None:
        """Record that ``data`` (a ``bytes`` object, never mutated) hashes to ``digest``."""
        with self._lock:
            self._known[id(data)] = (data, digest)  # holding ``data`` keeps its id unique
            self._known.move_to_end(id(data))
            while len(self._known) > self.size:
                self._known.popitem(last=False)

    def digest(self, data: bytes) -> str:
        """The hex SHA-256 of ``data``: remembered, or computed once and remembered."""
        with self._lock:
            known = self._known.get(id(data))
            if known is not None and known[0] is data:
                self._known.move_to_end(id(data))
                return known[1]
        found = sha256_hex(data)
        self.remember(data, found)
        return found


MODEL_DIGESTS = DigestMemo(6)
"""Digests of the model buffers a node serves (a few versions: current, staged, recent)."""


def digest_of(data: bytes) -> str:
    """Hex SHA-256 of a model buffer, computed once per buffer (``MODEL_DIGESTS``)."""
    if not isinstance(data, bytes):
        return sha256_hex(data)
    return MODEL_DIGESTS.digest(data)
