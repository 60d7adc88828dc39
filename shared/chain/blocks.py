"""Blocks: header fields, typed payload, SHA-256 hash and Ed25519 signature.

``header_bytes`` is the canonical encoding (domain tag, fixed field order, length
prefixes) of everything but the hash and signature; ``hash = SHA-256(header)`` and
the producer signs the hash. ``build_block`` makes the next block after ``prev``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedchain.shared.chain.encoding import CanonicalWriter
from fedchain.shared.chain.errors import BlockInvalid
from fedchain.shared.chain.payloads import (
    PAYLOAD_TYPES,
    BlockKind,
    CheckpointPayload,
    GenesisPayload,
    NodeJoinedPayload,
    NodeLeftPayload,
    Payload,
    RoundPayload,
    merkle_root_hex,
    parse_kind,
    payload_from_json,
)
from fedchain.shared.crypto import SIGNATURE_BYTES, NodeKey
from fedchain.shared.digests import hex_bytes

__all__ = [
    "ZERO_HASH",
    "Block",
    "BlockKind",
    "CheckpointPayload",
    "GenesisPayload",
    "NodeJoinedPayload",
    "NodeLeftPayload",
    "Payload",
    "RoundPayload",
    "build_block",
    "header_bytes",
    "merkle_root_hex",
    "payload_from_json",
    "payload_text",
]

DOMAIN_TAG = b"fedchain/block/v1"
HASH_BYTES = 32
ZERO_HASH = bytes(HASH_BYTES)
MAX_PRODUCER = 128


def header_bytes(
    height: int,
    kind: BlockKind,
    prev_hash: bytes,
    timestamp_ms: int,
    producer: str,
    payload: Payload,
) -> bytes:
    """Canonical header: domain tag, height, kind, prev hash, timestamp, producer, payload."""
    body = CanonicalWriter()
    payload.encode(body)
    w = CanonicalWriter()
    w.raw(DOMAIN_TAG)
    w.u64(height)
    w.text(str(kind))
    w.raw(prev_hash)
    w.u64(timestamp_ms)
    w.text(producer)
    w.raw(body.getvalue())
    return w.getvalue()


def payload_text(payload: Payload) -> str:
    """The payload's stored JSON text (sorted keys, no spaces). Storage only, never hashed."""
    return json.dumps(payload.to_json(), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _hex_bytes(value: Any, what: str, size: int) -> bytes:
    return hex_bytes(value, what, size, BlockInvalid)


@dataclass(frozen=True)
class Block:
    """One block of the chain. Construct with ``build_block`` or ``Block.from_json``."""

    height: int
    kind: BlockKind
    prev_hash: bytes
    timestamp_ms: int
    producer: str
    payload: Payload
    hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if (
            isinstance(self.height, bool)
            or not isinstance(self.height, int)
            or not 0 <= self.height < 2**63
        ):
            raise BlockInvalid(f"block height must be an integer >= 0, got {self.height!r}")
        object.__setattr__(self, "kind", parse_kind(self.kind))
        if not isinstance(self.payload, PAYLOAD_TYPES[self.kind]):
            raise BlockInvalid(
                f"a {self.kind} block needs a {PAYLOAD_TYPES[self.kind].__name__}, "
                f"got {type(self.payload).__name__}"
            )
        if not isinstance(self.prev_hash, bytes) or len(self.prev_hash) != HASH_BYTES:
            raise BlockInvalid(f"prev_hash must be {HASH_BYTES} bytes")
        if not isinstance(self.hash, bytes) or len(self.hash) != HASH_BYTES:
            raise BlockInvalid(f"hash must be {HASH_BYTES} bytes")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_BYTES:
            raise BlockInvalid(f"signature must be {SIGNATURE_BYTES} bytes")
        ts = self.timestamp_ms
        if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts < 2**63:
            raise BlockInvalid(f"timestamp_ms must be an integer >= 0, got {ts!r}")
        if not isinstance(self.producer, str) or not 0 < len(self.producer) <= MAX_PRODUCER:
            raise BlockInvalid(f"producer must be a node id of 1..{MAX_PRODUCER} characters")

    def header(self) -> bytes:
        """The canonical header bytes this block's hash is computed over."""
        return header_bytes(
            self.height, self.kind, self.prev_hash, self.timestamp_ms, self.producer, self.payload
        )

    def computed_hash(self) -> bytes:
        """SHA-256 of the canonical header (equals ``hash`` for an untampered block)."""
        return hashlib.sha256(self.header()).digest()

    def to_json(self) -> dict[str, Any]:
        """The block as JSON (bytes as hex), the shape of the HTTP ``/blocks`` answers."""
        return {
            "height": self.height,
            "kind": str(self.kind),
            "hash": self.hash.hex(),
            "prev_hash": self.prev_hash.hex(),
            "producer": self.producer,
            "timestamp_ms": self.timestamp_ms,
            "payload": self.payload.to_json(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Block:
        """Parse ``to_json`` output; BlockInvalid with a one-line reason on any problem."""
        if not isinstance(data, Mapping):
            raise BlockInvalid("a block must be a JSON object")
        needed = (
            "height",
            "kind",
            "hash",
            "prev_hash",
            "producer",
            "timestamp_ms",
            "payload",
            "signature",
        )
        missing = [k for k in needed if k not in data]
        if missing:
            raise BlockInvalid(f"block is missing {', '.join(missing)}")
        kind = parse_kind(data["kind"])
        return cls(
            height=data["height"],
            kind=kind,
            prev_hash=_hex_bytes(data["prev_hash"], "prev_hash", HASH_BYTES),
            timestamp_ms=data["timestamp_ms"],
            producer=data["producer"],
            payload=payload_from_json(kind, data["payload"]),
            hash=_hex_bytes(data["hash"], "hash", HASH_BYTES),
            signature=_hex_bytes(data["signature"], "signature", SIGNATURE_BYTES),
        )


def build_block(
    kind: BlockKind | str,
    payload: Payload | Mapping[str, Any],
    prev: Block | None,
    key: NodeKey,
    timestamp_ms: int | None = None,
) -> Block:
    """Make and sign the block after ``prev`` (genesis when ``prev`` is None).

    ``payload`` is the kind's payload dataclass or a dict of its fields. The producer
    is ``key``'s node id. Raises BlockInvalid when the payload does not fit the kind.
    """
    kind = parse_kind(kind)
    if not isinstance(payload, PAYLOAD_TYPES[kind]):
        if isinstance(payload, Mapping):
            payload = payload_from_json(kind, payload)
        else:
            raise BlockInvalid(f"a {kind} block needs a {PAYLOAD_TYPES[kind].__name__}")
    height = 0 if prev is None else prev.height + 1
    prev_hash = ZERO_HASH if prev is None else prev.hash
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    producer = key.node_id
    header = header_bytes(height, kind, prev_hash, ts, producer, payload)
    digest = hashlib.sha256(header).digest()
    return Block(height, kind, prev_hash, ts, producer, payload, digest, key.sign(digest))
