"""Typed payloads, one dataclass per block kind, with their canonical and JSON forms.

Each payload declares its fields once in ``FIELDS`` (name, layout) in a fixed order;
that order is the canonical encoding order. Constructors check types and values
(hex digests, roles, finite metrics) and raise ``BlockInvalid`` with a one-line reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from fedchain.shared.chain import merkle
from fedchain.shared.chain.encoding import I64_MAX, I64_MIN, CanonicalWriter, Scalar
from fedchain.shared.chain.errors import BlockInvalid
from fedchain.shared.digests import DIGEST_FORMAT, is_hex64, is_hex128

HANDOVER_DOMAIN = "fedchain/authority-handover/v1"
ROLES = ("SN", "EN")
MAX_TEXT = 4096
MAX_RECORDS = 100_000
"""Most records one list of a payload may hold (participants of a round, decisions)."""


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


def _scalar_map(value: Any, what: str) -> dict[str, Scalar]:
    """A mapping of strings to settings' values as themselves: null, bool, int, float, string."""
    if not isinstance(value, Mapping):
        raise BlockInvalid(f"{what} must be a mapping of strings to values")
    if len(value) > MAX_RECORDS:
        raise BlockInvalid(f"{what} holds {len(value)} entries, more than {MAX_RECORDS}")
    out: dict[str, Scalar] = {}
    for k, v in value.items():
        key = _text(k, f"{what} key")
        item = f"{what}[{key!r}]"
        if v is None or isinstance(v, bool):
            out[key] = v
        elif isinstance(v, int):
            if not I64_MIN <= v <= I64_MAX:
                raise BlockInvalid(f"{item} does not fit a signed 64-bit integer")
            out[key] = v
        elif isinstance(v, float):
            out[key] = _float(v, item)
        elif isinstance(v, str):
            out[key] = _text(v, item)
        else:
            raise BlockInvalid(f"{item} must be null, a bool, a number or a string, got {type(v).__name__}")
    return out


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BlockInvalid(f"{what} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise BlockInvalid(f"{what} must be finite, got {value}")
    return float(value)


_CHECKERS: dict[str, Callable[[Any, str], Any]] = {
    "text": _text,
    "int": _int,
    "float": _float,
    "text_list": _text_list,
    "pair_list": _pair_list,
    "float_map": _float_map,
    "scalar_map": _scalar_map,
}

def _records(value: Any, what: str, cls: type[Record]) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise BlockInvalid(f"{what} must be a list of {cls.__name__} records")
    if len(value) > MAX_RECORDS:
        raise BlockInvalid(f"{what} holds {len(value)} records, more than {MAX_RECORDS}")
    out: list[Any] = []
    for i, item in enumerate(value):
        if isinstance(item, cls):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(cls.from_json(item, f"{what}[{i}]"))
        else:
            raise BlockInvalid(f"{what}[{i}] must be a {cls.__name__} object")
    return out


class _Fields:
    """Shared behaviour of payloads and records: typed fields in ``FIELDS`` order.

    ``FIELDS`` lists (name, layout); a layout is a name in ``_CHECKERS`` or a ``Record``
    subclass (the field is a list of such records). Values are checked and normalised in
    ``__post_init__``, then ``check`` applies the value rules of the type.
    """

    FIELDS: ClassVar[tuple[tuple[str, Any], ...]]

    def _what(self) -> str:
        return type(self).__name__

    def __post_init__(self) -> None:
        for name, layout in self.FIELDS:
            what = f"{self._what()} field {name}"
            raw = getattr(self, name)
            if isinstance(layout, type):
                value = _records(raw, what, layout)
            else:
                value = _CHECKERS[layout](raw, what)
            object.__setattr__(self, name, value)
        self.check()

    def check(self) -> None:
        """Type-specific value checks (overridden)."""

    def encode_fields(self, w: CanonicalWriter) -> None:
        """Each field's name and value, in ``FIELDS`` order."""
        for name, layout in self.FIELDS:
            w.text(name)
            value = getattr(self, name)
            if isinstance(layout, type):
                w.u32(len(value))
                for record in value:
                    record.encode_fields(w)
            elif layout == "text":
                w.text(value)
            elif layout == "int":
                w.i64(value)
            elif layout == "float":
                w.f64(value)
            elif layout == "text_list":
                w.text_list(value)
            elif layout == "pair_list":
                w.pair_list(value)
            elif layout == "scalar_map":
                w.scalar_map(value)
            else:
                w.float_map(value)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (pairs as ``{"node_id", "reason"}``, records as objects)."""
        out: dict[str, Any] = {}
        for name, layout in self.FIELDS:
            value = getattr(self, name)
            if isinstance(layout, type):
                out[name] = [record.to_json() for record in value]
            elif layout == "pair_list":
                out[name] = [{"node_id": a, "reason": b} for a, b in value]
            elif layout == "text_list":
                out[name] = list(value)
            elif layout in ("float_map", "scalar_map"):
                out[name] = dict(value)
            else:
                out[name] = value
        return out


class Record(_Fields):
    """One entry of a list inside a payload (a participant, an SN manifest, a decision)."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str) -> Any:
        """The record from its JSON object; BlockInvalid on missing or unknown keys."""
        names = [name for name, _ in cls.FIELDS]
        missing = [n for n in names if n not in data]
        extra = sorted(set(map(str, data)) - set(names))
        if missing:
            raise BlockInvalid(f"{what} is missing {', '.join(missing)}")
        if extra:
            raise BlockInvalid(f"{what} has unknown field(s) {', '.join(extra[:5])}")
        return cls(**{n: data[n] for n in names})


class _Payload(_Fields):
    """Shared behaviour of the payload dataclasses (field checks, encodings)."""

    KIND: ClassVar[BlockKind]

    def _what(self) -> str:
        return f"{self.KIND} payload"

    def encode(self, w: CanonicalWriter) -> None:
        """Write the payload canonically: kind, field count, then each field's name and value."""
        w.text(str(self.KIND))
        w.u32(len(self.FIELDS))
        self.encode_fields(w)


@dataclass(frozen=True)
class GenesisPayload(_Payload):
    """First block: the federation's config, the initial model and the entry node's key.

    ``config`` holds the federation-wide settings as themselves (``"lr": 0.01``,
    ``"algorithm": "fedper"``, ``"max_samples": null``)."""

    config: dict[str, Scalar]
    model_digest: str
    entry_node_id: str
    entry_public_key: str

    KIND: ClassVar[BlockKind] = BlockKind.GENESIS
    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = (
        ("config", "scalar_map"),
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
    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = (
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
    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = (("node_id", "text"), ("reason", "text"))

    def check(self) -> None:
        if not self.node_id:
            raise BlockInvalid("node_left node_id is empty")


LEAF_DOMAIN = "fedchain/round-leaf/v1"
ACTIONS = ("rejected", "clipped", "downweighted")
"""What an aggregation decision did to an update (``Decision.action``)."""


def round_leaf(node_id: str, update_digest: str, samples: int) -> bytes:
    """The canonical Merkle leaf of one participant: domain tag, node id, digest, samples."""
    w = CanonicalWriter()
    w.text(LEAF_DOMAIN)
    w.text(node_id)
    w.raw(bytes.fromhex(update_digest))
    w.i64(samples)
    return w.getvalue()


def _check_signature_hex(value: str, what: str) -> None:
    if not is_hex128(value):
        raise BlockInvalid(f"{what} must be a 64-byte Ed25519 signature in hex")


@dataclass(frozen=True)
class Participant(Record):
    """One EN whose update counted: what it signed in its update header, and its signature.

    The EN's signature is over ``shared.net.signing.update_fields(round, model_version - 1,
    update_digest, samples, train_loss, train_seconds)`` in the chain's statement format
    (domain ``fedchain/update/v2``, chain id = genesis hash, sender = ``node_id``), so anyone
    holding the EN's key from its node_joined block can re-check it.
    """

    node_id: str
    parent_sn: str
    update_digest: str
    samples: int
    train_loss: float
    train_seconds: float
    signature: str

    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = (
        ("node_id", "text"),
        ("parent_sn", "text"),
        ("update_digest", "text"),
        ("samples", "int"),
        ("train_loss", "float"),
        ("train_seconds", "float"),
        ("signature", "text"),
    )

    def check(self) -> None:
        if not self.node_id or not self.parent_sn:
            raise BlockInvalid("round participant node_id and parent_sn must not be empty")
        check_hex64(self.update_digest, f"round participant {self.node_id} update_digest")
        if self.samples <= 0:
            raise BlockInvalid(f"round participant {self.node_id} samples must be positive")
        _check_signature_hex(self.signature, f"round participant {self.node_id} signature")

    def leaf(self) -> bytes:
        """This participant's canonical Merkle leaf."""
        return round_leaf(self.node_id, self.update_digest, self.samples)


@dataclass(frozen=True)
class SnManifest(Record):
    """One SN's signed manifest, as the fields it signed (enough to re-check it offline).

    ``used`` lists the ENs in the order the SN signed them (each is a participant of this
    SN); ``rejected`` is what the SN listed, exactly as signed. ``manifest_digest`` is the
    SHA-256 of the statement the SN signed (domain ``fedchain/sn-manifest/v1``, chain id,
    SN id, ``shared.net.signing.manifest_fields``), rebuilt from these fields and the
    participants' rows; ``signature`` is the SN's Ed25519 signature over that statement.
    ``aggregator`` and ``used_bytes`` (per used EN: the size of its forwarded update; empty
    under ``mean``, where every size is 0) are signed too. Under a robust rule the entry may reject an update the
    SN forwarded: that EN stays in ``used`` but is no participant; its signed update header
    is kept in ``set_aside`` (so the manifest can still be rebuilt) and the block's
    ``decisions`` list it as ``rejected``.
    """

    sn_node_id: str
    aggregate_digest: str
    weight: int
    total_bytes: int
    used: list[str]
    rejected: list[tuple[str, str]]
    manifest_digest: str
    signature: str
    aggregator: str = "mean"
    used_bytes: list[str] = field(default_factory=list)
    set_aside: list[Participant] = field(default_factory=list)

    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = (
        ("sn_node_id", "text"),
        ("aggregate_digest", "text"),
        ("weight", "int"),
        ("total_bytes", "int"),
        ("used", "text_list"),
        ("rejected", "pair_list"),
        ("manifest_digest", "text"),
        ("signature", "text"),
        ("aggregator", "text"),
        ("used_bytes", "text_list"),
        ("set_aside", Participant),
    )

    def check(self) -> None:
        who = f"round manifest of {self.sn_node_id}"
        if not self.sn_node_id:
            raise BlockInvalid("round manifest sn_node_id must not be empty")
        if self.total_bytes == 0:
            if self.used or self.weight or self.aggregate_digest:
                raise BlockInvalid(f"{who}: an empty aggregate lists no updates and no weight")
        else:
            check_hex64(self.aggregate_digest, f"{who} aggregate_digest")
        if len(set(self.used)) != len(self.used):
            raise BlockInvalid(f"{who} lists an edge node twice")
        if self.used_bytes and len(self.used_bytes) != len(self.used) or not all(
            b.isdigit() for b in self.used_bytes
        ):
            raise BlockInvalid(f"{who}: used_bytes must give one size per used edge node")
        if not {p.node_id for p in self.set_aside} <= set(self.used):
            raise BlockInvalid(f"{who}: set_aside lists an update the SN did not use")
        check_hex64(self.manifest_digest, f"{who} manifest_digest")
        _check_signature_hex(self.signature, f"{who} signature")


@dataclass(frozen=True)
class Decision(Record):
    """What aggregation did to one node's update: rejected, clipped or down-weighted, and why.

    ``by`` is the node that decided (the SN whose manifest says so, or the entry).
    """

    node_id: str
    action: str
    reason: str
    by: str

    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = (
        ("node_id", "text"),
        ("action", "text"),
        ("reason", "text"),
        ("by", "text"),
    )

    def check(self) -> None:
        if self.action not in ACTIONS:
            raise BlockInvalid(
                f"round decision action must be one of {', '.join(ACTIONS)}, got {self.action!r}"
            )
        if not self.node_id:
            raise BlockInvalid("round decision node_id must not be empty")


@dataclass(frozen=True)
class RoundPayload(_Payload):
    """One aggregated round: the new global model and the evidence of what went into it.

    ``participants`` (sorted by node id, each once) carry each EN's signed update header;
    ``manifests`` (sorted by SN id) each SN's signed manifest; ``merkle_root`` is the RFC
    6962 root over the participants' canonical leaves (``round_leaf``) in that order;
    ``decisions`` what aggregation rejected, clipped or down-weighted, and why.

    ``aggregation_order`` is empty under the plain mean (SNs send partial sums, finished in
    SN id order). Under a robust rule it lists every EN update the entry's rule saw, in the
    order it saw them (the participants and the manifests' ``set_aside``, each once), so
    ``fedchain verify --deep`` can rerun the rule on the same list and compare its decisions.
    """

    round: int
    algorithm: str
    model_version: int
    model_digest: str
    merkle_root: str
    participants: list[Participant]
    manifests: list[SnManifest]
    decisions: list[Decision]
    metrics: dict[str, float]
    aggregation_order: list[str] = field(default_factory=list)

    KIND: ClassVar[BlockKind] = BlockKind.ROUND
    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = (
        ("round", "int"),
        ("algorithm", "text"),
        ("model_version", "int"),
        ("model_digest", "text"),
        ("merkle_root", "text"),
        ("participants", Participant),
        ("manifests", SnManifest),
        ("decisions", Decision),
        ("metrics", "float_map"),
        ("aggregation_order", "text_list"),
    )

    @classmethod
    def create(
        cls,
        round: int,
        algorithm: str,
        model_version: int,
        model_digest: str,
        participants: Sequence[Participant],
        manifests: Sequence[SnManifest] = (),
        decisions: Sequence[Decision] = (),
        metrics: Mapping[str, float] | None = None,
        aggregation_order: Sequence[str] = (),
    ) -> RoundPayload:
        """A round payload with participants and manifests sorted and ``merkle_root`` computed
        (``aggregation_order`` is kept as given: it is the robust rule's input order)."""
        ordered = sorted(participants, key=lambda p: p.node_id)
        return cls(
            round,
            algorithm,
            model_version,
            model_digest,
            participants_root_hex(ordered),
            ordered,
            sorted(manifests, key=lambda m: m.sn_node_id),
            list(decisions),
            dict(metrics or {}),
            list(aggregation_order),
        )

    @property
    def participant_ids(self) -> list[str]:
        """The participants' node ids, in the block's order."""
        return [p.node_id for p in self.participants]

    @property
    def update_digests(self) -> list[str]:
        """The participants' update digests, in the block's order."""
        return [p.update_digest for p in self.participants]

    @property
    def set_aside(self) -> list[Participant]:
        """The signed update headers the entry's robust rule rejected (every manifest's
        ``set_aside``, in SN id order): updates of the round that are no participants."""
        return [p for m in self.manifests for p in m.set_aside]

    @property
    def evidence_digests(self) -> list[str]:
        """Every EN update the round's aggregation saw: the participants' then the set-aside
        ones (what the ledger retains for ``verify --deep``)."""
        return self.update_digests + [p.update_digest for p in self.set_aside]

    @property
    def robust(self) -> bool:
        """True when an SN manifest names a rule other than the plain mean."""
        return any(m.aggregator != "mean" for m in self.manifests)

    @property
    def rejected(self) -> list[tuple[str, str]]:
        """``(node_id, reason)`` of every rejected decision."""
        return [(d.node_id, d.reason) for d in self.decisions if d.action == "rejected"]

    def manifest_of(self, sn_node_id: str) -> SnManifest | None:
        """The manifest of ``sn_node_id``, if it is in the block."""
        return next((m for m in self.manifests if m.sn_node_id == sn_node_id), None)

    def check(self) -> None:
        check_hex64(self.model_digest, "round model_digest")
        check_hex64(self.merkle_root, "round merkle_root")
        ids = self.participant_ids
        for i in range(1, len(ids)):
            if ids[i - 1] >= ids[i]:
                what = "twice" if ids[i - 1] == ids[i] else "out of order (sorted by node id)"
                raise BlockInvalid(f"round participant {ids[i]} is listed {what}")
        sns = [m.sn_node_id for m in self.manifests]
        for i in range(1, len(sns)):
            if sns[i - 1] >= sns[i]:
                what = "twice" if sns[i - 1] == sns[i] else "out of order (sorted by SN id)"
                raise BlockInvalid(f"round manifest of {sns[i]} is listed {what}")
        by_sn: dict[str, set[str]] = {}
        for p in self.participants:
            by_sn.setdefault(p.parent_sn, set()).add(p.node_id)
        refused = {d.node_id for d in self.decisions if d.action == "rejected"}
        for m in self.manifests:
            mine = by_sn.pop(m.sn_node_id, set())
            aside = {p.node_id for p in m.set_aside}
            # every used EN is a participant, or set aside with a rejected decision
            stray = sorted((set(m.used) - mine - aside) | (aside - refused))
            if stray:
                raise BlockInvalid(
                    f"round manifest of {m.sn_node_id} uses {stray[0]}, which is neither a "
                    "participant nor rejected"
                )
            if not mine <= set(m.used) or aside & mine:
                raise BlockInvalid(
                    f"round manifest of {m.sn_node_id} uses {len(m.used)} updates, but "
                    f"{len(mine)} participants name it as their SN (every used edge node is "
                    "a participant or set aside as rejected)"
                )
            weight = sum(p.samples for p in self.participants if p.node_id in mine)
            weight += sum(p.samples for p in m.set_aside)
            if m.weight != weight:
                raise BlockInvalid(
                    f"round manifest of {m.sn_node_id} has weight {m.weight}, but its "
                    f"used updates' samples add up to {weight}"
                )
        if by_sn:
            sn = sorted(by_sn)[0]
            raise BlockInvalid(f"round participants name SN {sn}, which has no manifest in the block")
        self._check_aggregation_order()
        expected = participants_root_hex(self.participants)
        if self.merkle_root != expected:
            raise BlockInvalid(
                f"round merkle_root {self.merkle_root[:16]}… is not the RFC 6962 root of its "
                f"participants' leaves ({expected[:16]}…)"
            )


    def _check_aggregation_order(self) -> None:
        """Empty under the plain mean; under a robust rule every participant and every
        set-aside update, each once (the order itself is the entry's, signed with the block)."""
        order = self.aggregation_order
        if not self.robust:
            if order:
                raise BlockInvalid(
                    "round aggregation_order must be empty under the plain mean "
                    f"(it lists {len(order)} updates)"
                )
            return
        seen = set(order)
        if len(seen) != len(order):
            twice = next(n for i, n in enumerate(order) if n in order[:i])
            raise BlockInvalid(f"round aggregation_order lists {twice} twice")
        expected = set(self.participant_ids) | {p.node_id for p in self.set_aside}
        if seen != expected:
            odd = sorted(seen ^ expected)[0]
            what = "is no participant or set-aside update" if odd in seen else "is missing"
            raise BlockInvalid(f"round aggregation_order: {odd} {what}")


@dataclass(frozen=True)
class CheckpointPayload(_Payload):
    """A saved model version."""

    model_version: int
    model_digest: str
    note: str

    KIND: ClassVar[BlockKind] = BlockKind.CHECKPOINT
    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = (
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
    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = (
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
    """RFC 6962 root (hex) over the raw bytes of hex digests, in the given order."""
    return merkle.root([bytes.fromhex(d) for d in update_digests]).hex()


def participants_root_hex(participants: Sequence[Participant]) -> str:
    """RFC 6962 root (hex) over the participants' canonical leaves, in the given order."""
    return merkle.root([p.leaf() for p in participants]).hex()


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
