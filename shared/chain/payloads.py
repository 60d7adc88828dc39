"""Typed payloads, one dataclass per block kind, with their canonical and JSON forms.

Each payload declares its fields once in ``FIELDS`` (name, layout) in a fixed order;
that order is the canonical encoding order. Constructors check types and values
(hex digests, roles, finite metrics) and raise ``BlockInvalid`` with a one-line reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from fedchain.shared.chain import merkle
from fedchain.shared.chain.encoding import CanonicalWriter
from fedchain.shared.chain.errors import BlockInvalid
from fedchain.shared.digests import DIGEST_FORMAT, is_hex64, is_hex128

HANDOVER_DOMAIN = "fedchain/authority-handover/v1"
ROLES = ("SN", "EN")
MAX_TEXT = 4096


class BlockKind(StrEnum):
    """What a block records."""

    GENESIS = "genesis"
    NODE_JOINED = "node_joined"
    NODE_LEFT = "node_left"
    ROUND = "round"
    CHECKPOINT = "checkpoint"
    AUTHORITY_HANDOVER = "authority_handover"


def check_hex64(value: Any, what: str) -> str:
    """Return ``value`` if it is 64 lowercase hex characters (a SHA-256 digest / Ed25519 key)."""
    if not is_hex64(value):
        raise BlockInvalid(f"{what} must be {DIGEST_FORMAT}, got {str(value)[:80]!r}")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BlockInvalid(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise BlockInvalid(f"{what} is longer than {MAX_TEXT} characters")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BlockInvalid(f"{what} must be an integer, got {type(value).__name__}")
    if not 0 <= value < 2**63:
        raise BlockInvalid(f"{what} must be between 0 and 2^63-1, got {value}")
    return value


def _text_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise BlockInvalid(f"{what} must be a list of strings")
    return [_text(v, f"{what}[{i}]") for i, v in enumerate(value)]


def _pair_list(value: Any, what: str) -> list[tuple[str, str]]:
    if not isinstance(value, (list, tuple)):
        raise BlockInvalid(f"{what} must be a list of (node_id, reason) pairs")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(value):
        if isinstance(item, Mapping):
            if set(item) != {"node_id", "reason"}:
                raise BlockInvalid(f"{what}[{i}] must have exactly the keys node_id and reason")
            first, second = item["node_id"], item["reason"]
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            first, second = item
        else:
            raise BlockInvalid(f"{what}[{i}] must be a (node_id, reason) pair")
        out.append((_text(first, f"{what}[{i}].node_id"), _text(second, f"{what}[{i}].reason")))
    return out


def _text_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise BlockInvalid(f"{what} must be a mapping of strings to strings")
    return {_text(k, f"{what} key"): _text(v, f"{what}[{k!r}]") for k, v in value.items()}


def _float_map(value: Any, what: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise BlockInvalid(f"{what} must be a mapping of strings to numbers")
    out: dict[str, float] = {}
    for k, v in value.items():
        key = _text(k, f"{what} key")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BlockInvalid(f"{what}[{key!r}] must be a number, got {type(v).__name__}")
        if not math.isfinite(v):
            raise BlockInvalid(f"{what}[{key!r}] must be finite, got {v}")
        out[key] = float(v)
    return out


_CHECKERS = {
    "text": _text,
    "int": _int,
    "text_list": _text_list,
    "pair_list": _pair_list,
    "text_map": _text_map,
    "float_map": _float_map,
}


class _Payload:
    """Shared behaviour of the payload dataclasses (field checks, encodings)."""

    KIND: ClassVar[BlockKind]
    FIELDS: ClassVar[tuple[tuple[str, str], ...]]

    def __post_init__(self) -> None:
        for name, layout in self.FIELDS:
            value = _CHECKERS[layout](getattr(self, name), f"{self.KIND} payload field {name}")
            object.__setattr__(self, name, value)
        self.check()

    def check(self) -> None:
        """Kind-specific value checks (overridden)."""

    def encode(self, w: CanonicalWriter) -> None:
        """Write the payload canonically: kind, then each field's name and value in order."""
        w.text(str(self.KIND))
        w.u32(len(self.FIELDS))
        for name, layout in self.FIELDS:
            w.text(name)
            value = getattr(self, name)
            if layout == "text":
                w.text(value)
            elif layout == "int":
                w.i64(value)
            elif layout == "text_list":
                w.text_list(value)
            elif layout == "pair_list":
                w.pair_list(value)
            elif layout == "text_map":
                w.text_map(value)
            else:
                w.float_map(value)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (rejected pairs as ``{"node_id", "reason"}`` objects)."""
        out: dict[str, Any] = {}
        for name, layout in self.FIELDS:
            value = getattr(self, name)
            if layout == "pair_list":
                out[name] = [{"node_id": a, "reason": b} for a, b in value]
            elif layout in ("text_list",):
                out[name] = list(value)
            elif layout in ("text_map", "float_map"):
                out[name] = dict(value)
            else:
                out[name] = value
        return out


@dataclass(frozen=True)
class GenesisPayload(_Payload):
    """First block: the federation's config, the initial model and the entry node's key."""

    config: dict[str, str]
    model_digest: str
    entry_node_id: str
    entry_public_key: str

    KIND: ClassVar[BlockKind] = BlockKind.GENESIS
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("config", "text_map"),
        ("model_digest", "text"),
        ("entry_node_id", "text"),
        ("entry_public_key", "text"),
    )

    def check(self) -> None:
        check_hex64(self.model_digest, "genesis model_digest")
        check_hex64(self.entry_public_key, "genesis entry_public_key")


@dataclass(frozen=True)
class NodeJoinedPayload(_Payload):
    """A node admitted to the federation: its key becomes a producer key."""

    node_id: str
    role: str
    public_key: str
    parent_sn: str
    address: str

    KIND: ClassVar[BlockKind] = BlockKind.NODE_JOINED
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("node_id", "text"),
        ("role", "text"),
        ("public_key", "text"),
        ("parent_sn", "text"),
        ("address", "text"),
    )

    def check(self) -> None:
        if self.role not in ROLES:
            raise BlockInvalid(f"node_joined role must be SN or EN, got {self.role!r}")
        check_hex64(self.public_key, "node_joined public_key")
        if not self.node_id:
            raise BlockInvalid("node_joined node_id is empty")


@dataclass(frozen=True)
class NodeLeftPayload(_Payload):
    """A node removed from the federation: its key is revoked."""

    node_id: str
    reason: str

    KIND: ClassVar[BlockKind] = BlockKind.NODE_LEFT
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("node_id", "text"), ("reason", "text"))

    def check(self) -> None:
        if not self.node_id:
            raise BlockInvalid("node_left node_id is empty")


@dataclass(frozen=True)
class RoundPayload(_Payload):
    """One aggregated round: the new global model and what went into it."""

    round: int
    algorithm: str
    model_version: int
    model_digest: str
    merkle_root: str
    participants: list[str]
    update_digests: list[str]
    rejected: list[tuple[str, str]]
    metrics: dict[str, float]

    KIND: ClassVar[BlockKind] = BlockKind.ROUND
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("round", "int"),
        ("algorithm", "text"),
        ("model_version", "int"),
        ("model_digest", "text"),
        ("merkle_root", "text"),
        ("participants", "text_list"),
        ("update_digests", "text_list"),
        ("rejected", "pair_list"),
        ("metrics", "float_map"),
    )

    @classmethod
    def create(
        cls,
        round: int,
        algorithm: str,
        model_version: int,
        model_digest: str,
        participants: list[str],
        update_digests: list[str],
        rejected: list[tuple[str, str]] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> RoundPayload:
        """A round payload with ``merkle_root`` computed over ``update_digests``."""
        for i, d in enumerate(update_digests):
            check_hex64(d, f"round update_digests[{i}]")
        return cls(
            round,
            algorithm,
            model_version,
            model_digest,
            merkle_root_hex(list(update_digests)),
            list(participants),
            list(update_digests),
            list(rejected or []),
            dict(metrics or {}),
        )

    def check(self) -> None:
        check_hex64(self.model_digest, "round model_digest")
        check_hex64(self.merkle_root, "round merkle_root")
        for i, d in enumerate(self.update_digests):
            check_hex64(d, f"round update_digests[{i}]")
        expected = merkle_root_hex(self.update_digests)
        if self.merkle_root != expected:
            raise BlockInvalid(
                f"round merkle_root {self.merkle_root[:16]}… is not the RFC 6962 root of its "
                f"update_digests ({expected[:16]}…)"
            )


@dataclass(frozen=True)
class CheckpointPayload(_Payload):
    """A saved model version."""

    model_version: int
    model_digest: str
    note: str

    KIND: ClassVar[BlockKind] = BlockKind.CHECKPOINT
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("model_version", "int"),
        ("model_digest", "text"),
        ("note", "text"),
    )

    def check(self) -> None:
        check_hex64(self.model_digest, "checkpoint model_digest")


def handover_statement(prev_hash: bytes, new_public_key: str) -> bytes:
    """What the incoming key signs to accept the entry's authority: a domain tag, the hash
    of the block the handover follows (which pins chain and position), the new key."""
    w = CanonicalWriter()
    w.text(HANDOVER_DOMAIN)
    w.raw(prev_hash)
    w.text(new_public_key)
    return w.getvalue()


@dataclass(frozen=True)
class AuthorityHandoverPayload(_Payload):
    """The entry hands its authority (the right to write every block) to a new key.

    The block is signed by the outgoing entry key like every block; ``acceptance`` is the
    incoming key's Ed25519 signature over ``handover_statement(prev_hash, new_public_key)``,
    so a handover carries both keys' consent. From the next block on, only the new key
    may write.
    """

    new_node_id: str
    new_public_key: str
    acceptance: str
    reason: str

    KIND: ClassVar[BlockKind] = BlockKind.AUTHORITY_HANDOVER
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("new_node_id", "text"),
        ("new_public_key", "text"),
        ("acceptance", "text"),
        ("reason", "text"),
    )

    def check(self) -> None:
        check_hex64(self.new_public_key, "authority_handover new_public_key")
        if not is_hex128(self.acceptance):
            raise BlockInvalid(
                "authority_handover acceptance must be a 64-byte Ed25519 signature in hex"
            )
        if not self.new_node_id:
            raise BlockInvalid("authority_handover new_node_id is empty")


Payload = (
    GenesisPayload
    | NodeJoinedPayload
    | NodeLeftPayload
    | RoundPayload
    | CheckpointPayload
    | AuthorityHandoverPayload
)

PAYLOAD_TYPES: dict[BlockKind, type[_Payload]] = {
    BlockKind.GENESIS: GenesisPayload,
    BlockKind.NODE_JOINED: NodeJoinedPayload,
    BlockKind.NODE_LEFT: NodeLeftPayload,
    BlockKind.ROUND: RoundPayload,
    BlockKind.CHECKPOINT: CheckpointPayload,
    BlockKind.AUTHORITY_HANDOVER: AuthorityHandoverPayload,
}


def merkle_root_hex(update_digests: list[str]) -> str:
    """RFC 6962 root (hex) over the raw bytes of hex update digests, in the given order."""
    return merkle.root([bytes.fromhex(d) for d in update_digests]).hex()


def parse_kind(value: Any) -> BlockKind:
    """The BlockKind named by ``value``; BlockInvalid if it is not one."""
    try:
        return BlockKind(value)
    except ValueError:
        known = ", ".join(k.value for k in BlockKind)
        raise BlockInvalid(f"unknown block kind {str(value)[:40]!r} (known: {known})") from None


def payload_from_json(kind: BlockKind | str, data: Any) -> Payload:
    """Build the typed payload of ``kind`` from a JSON dict; BlockInvalid on any problem."""
    kind = parse_kind(kind)
    cls = PAYLOAD_TYPES[kind]
    if not isinstance(data, Mapping):
        raise BlockInvalid(f"{kind} payload must be a JSON object")
    names = [name for name, _ in cls.FIELDS]
    missing = [n for n in names if n not in data]
    extra = sorted(set(data) - set(names))
    if missing:
        raise BlockInvalid(f"{kind} payload is missing {', '.join(missing)}")
    if extra:
        raise BlockInvalid(f"{kind} payload has unknown field(s) {', '.join(map(str, extra[:5]))}")
    return cls(**{n: data[n] for n in names})  # type: ignore[return-value]
