"""What a node signs when it sends a message that changes state: canonical, domain-tagged bytes.

Every signed message has a statement: its own domain tag (so a signature made for one kind
of message is never valid for another), the chain id (the genesis hash, so a signature made
in one federation is never valid in another), the sender's node id, then every field the
receiver acts on, each written with its name in a fixed order by the canonical encoder of
``shared.chain.encoding`` (never JSON, never protobuf bytes, which are not canonical).

``statement(domain, chain_id, sender, fields)`` builds the bytes; ``sign`` and
``check`` sign and verify them. A message kind declares its field list once, in the
function that builds its statement, and both the sender and the receiver call it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

from fedchain.shared.chain.encoding import CanonicalWriter
from fedchain.shared.crypto import NodeKey, node_id_for, verify_signature

StatementValue = (
    str | int | float | bool | bytes | Sequence[str] | Sequence[tuple[str, str]] | Sequence[bytes]
)


class Domain(StrEnum):
    """One tag per kind of signed message."""

    JOIN = "fedchain/join/v2"
    HEARTBEAT = "fedchain/heartbeat/v1"
    OPEN_ROUND = "fedchain/open-round/v1"
    ASSIGN_EDGE = "fedchain/assign-edge/v1"
    EVALUATE = "fedchain/evaluate/v1"
    EVALUATION = "fedchain/evaluation/v1"
    UPDATE = "fedchain/update/v2"
    MANIFEST = "fedchain/sn-manifest/v1"
    JOIN_REPLY = "fedchain/join-reply/v1"
    TLS_CSR = "fedchain/tls-csr/v1"


class SignatureRefused(ValueError):
    """A signed message whose signature does not hold (say which message and why)."""


# Value tags: the type of each field is part of the bytes, so values of different types
# never encode alike.
_TEXT, _INT, _FLOAT, _BOOL, _BYTES, _TEXTS, _PAIRS, _BLOBS = range(1, 9)


def _write(w: CanonicalWriter, name: str, value: StatementValue) -> None:
    w.text(name)
    if isinstance(value, bool):
        w.u32(_BOOL)
        w.u32(int(value))
    elif isinstance(value, int):
        w.u32(_INT)
        w.i64(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"statement field {name} is not finite ({value})")
        w.u32(_FLOAT)
        w.f64(value)
    elif isinstance(value, str):
        w.u32(_TEXT)
        w.text(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        w.u32(_BYTES)
        w.raw(bytes(value))
    else:
        items = list(value)
        if all(isinstance(i, str) for i in items):
            w.u32(_TEXTS)
            w.text_list(items)  # type: ignore[arg-type]
        elif all(isinstance(i, (bytes, bytearray)) for i in items):
            w.u32(_BLOBS)
            w.u32(len(items))
            for item in items:
                w.raw(bytes(item))  # type: ignore[arg-type]
        elif all(isinstance(i, tuple) and len(i) == 2 for i in items):
            w.u32(_PAIRS)
            w.pair_list([(str(a), str(b)) for a, b in items])
        else:
            raise TypeError(f"statement field {name} mixes value types")


def statement(
    domain: Domain, chain_id: bytes, sender: str, fields: Sequence[tuple[str, StatementValue]]
) -> bytes:
    """The canonical bytes of a message of kind ``domain`` from ``sender``."""
    w = CanonicalWriter()
    w.text(str(domain))
    w.raw(chain_id)
    w.text(sender)
    w.u32(len(fields))
    for name, value in fields:
        _write(w, name, value)
    return w.getvalue()


def sign(
    key: NodeKey, domain: Domain, chain_id: bytes, fields: Sequence[tuple[str, StatementValue]]
) -> bytes:
    """``key``'s signature over the statement (the sender is ``key``'s node id)."""
    return key.sign(statement(domain, chain_id, key.node_id, fields))


def check(
    public_key: bytes,
    signature: bytes,
    domain: Domain,
    chain_id: bytes,
    sender: str,
    fields: Sequence[tuple[str, StatementValue]],
) -> None:
    """Raise SignatureRefused unless ``signature`` is ``public_key``'s over the statement.

    ``sender`` must be the node id of ``public_key``: a message that names one node and is
    signed by another is refused, whatever the signature.
    """
    if sender != node_id_for(public_key):
        raise SignatureRefused(
            f"{domain.name.lower()} names {sender[:40]!r}, but the key is {node_id_for(public_key)}'s"
        )
    if not verify_signature(public_key, signature, statement(domain, chain_id, sender, fields)):
        raise SignatureRefused(f"bad signature on {domain.name.lower()} from {sender}")
