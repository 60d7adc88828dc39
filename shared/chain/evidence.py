"""The evidence a round block carries, as the statements its signers signed.

A round block lists each participant's signed update header and each SN's signed
manifest (``shared.chain.payloads`` ``Participant`` / ``SnManifest``). This module rebuilds
the exact bytes those nodes signed (``shared.net.signing``'s field lists, in the statement
format of ``shared.net.statements``), so the chain's rules and any auditor can re-check the
signatures with the keys the chain admitted, and it turns the messages the entry received
(``UsedUpdate``, ``AggregateHeader``) into the block's records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from fedchain.shared.chain.payloads import Participant, RoundPayload, SnManifest
from fedchain.shared.crypto import NodeKey, verify_signature
from fedchain.shared.net.signing import manifest_fields, update_fields
from fedchain.shared.net.statements import Domain, sign, statement
from fedchain.shared.rpc import node_pb2 as pb

__all__ = [
    "manifest_record",
    "manifest_statement",
    "participant_record",
    "signature_holds",
    "signed_manifest",
    "signed_participant",
    "update_statement",
]


def update_statement(chain_id: bytes, round_no: int, version: int, p: Participant) -> bytes:
    """The bytes EN ``p.node_id`` signed about its update for ``round_no`` (trained from
    ``version``, i.e. the round block's ``model_version - 1``)."""
    fields = update_fields(
        round_no, version, p.update_digest, p.samples, p.train_loss, p.train_seconds
    )
    return statement(Domain.UPDATE, chain_id, p.node_id, fields)


def _used_update(p: Participant, total_bytes: int = 0) -> pb.UsedUpdate:
    return pb.UsedUpdate(
        total_bytes=total_bytes,
        node_id=p.node_id,
        digest=p.update_digest,
        samples=p.samples,
        train_loss=p.train_loss,
        train_seconds=p.train_seconds,
        signature=bytes.fromhex(p.signature),
    )


def _header(
    sn_node_id: str,
    round_no: int,
    version: int,
    used: Sequence[Participant],
    rejected: Sequence[tuple[str, str]],
    total_bytes: int,
    aggregate_digest: str,
    aggregator: str = "mean",
    used_bytes: Sequence[str] = (),
) -> pb.AggregateHeader:
    sizes = [int(b) for b in used_bytes] or [0] * len(used)
    return pb.AggregateHeader(
        aggregator=aggregator,
        sn_node_id=sn_node_id,
        round=round_no,
        version=version,
        samples=sum(p.samples for p in used),
        used=[_used_update(p, n) for p, n in zip(used, sizes, strict=True)],
        rejected=[pb.Rejection(node_id=n, reason=r) for n, r in rejected],
        total_bytes=total_bytes,
        digest=aggregate_digest,
    )


def manifest_statement(chain_id: bytes, payload: RoundPayload, m: SnManifest) -> bytes:
    """The bytes SN ``m.sn_node_id`` signed: its manifest rebuilt from the block's rows."""
    by_id = {p.node_id: p for p in (*payload.participants, *m.set_aside)}
    h = _header(
        m.sn_node_id, payload.round, payload.model_version - 1, [by_id[n] for n in m.used],
        m.rejected, m.total_bytes, m.aggregate_digest, m.aggregator, m.used_bytes,
    )
    h.samples = m.weight
    return statement(Domain.MANIFEST, chain_id, m.sn_node_id, manifest_fields(h))


def signature_holds(public_key: bytes, signature_hex: str, message: bytes) -> bool:
    """True when ``signature_hex`` is ``public_key``'s Ed25519 signature over ``message``."""
    return verify_signature(public_key, bytes.fromhex(signature_hex), message)


def participant_record(u: pb.UsedUpdate, parent_sn: str) -> Participant:
    """The block row of an EN update header the entry accepted from ``parent_sn``'s manifest."""
    return Participant(
        node_id=u.node_id,
        parent_sn=parent_sn,
        update_digest=u.digest,
        samples=int(u.samples),
        train_loss=float(u.train_loss),
        train_seconds=float(u.train_seconds),
        signature=bytes(u.signature).hex(),
    )


def manifest_record(chain_id: bytes, h: pb.AggregateHeader) -> SnManifest:
    """The block row of an SN manifest the entry accepted (its digest over what it signed)."""
    signed = statement(Domain.MANIFEST, chain_id, h.sn_node_id, manifest_fields(h))
    return SnManifest(
        sn_node_id=h.sn_node_id,
        aggregate_digest=h.digest,
        weight=int(h.samples),
        total_bytes=int(h.total_bytes),
        used=[u.node_id for u in h.used],
        rejected=[(r.node_id, r.reason) for r in h.rejected],
        manifest_digest=hashlib.sha256(signed).hexdigest(),
        signature=bytes(h.signature).hex(),
        aggregator=h.aggregator,
        used_bytes=[str(int(u.total_bytes)) for u in h.used] if any(
            u.total_bytes for u in h.used
        ) else [],
    )


def signed_participant(
    key: NodeKey,
    chain_id: bytes,
    round_no: int,
    version: int,
    parent_sn: str,
    update_digest: str,
    samples: int,
    train_loss: float = 0.0,
    train_seconds: float = 0.0,
) -> Participant:
    """The block row of an update header that EN ``key`` signs (simulations, tests, benches)."""
    fields = update_fields(round_no, version, update_digest, samples, train_loss, train_seconds)
    return Participant(
        node_id=key.node_id,
        parent_sn=parent_sn,
        update_digest=update_digest,
        samples=samples,
        train_loss=train_loss,
        train_seconds=train_seconds,
        signature=sign(key, Domain.UPDATE, chain_id, fields).hex(),
    )


def signed_manifest(
    key: NodeKey,
    chain_id: bytes,
    round_no: int,
    version: int,
    used: Sequence[Participant],
    aggregate_digest: str,
    total_bytes: int,
    rejected: Sequence[tuple[str, str]] = (),
    aggregator: str = "mean",
    used_bytes: Sequence[str] = (),
) -> SnManifest:
    """The block row of the manifest SN ``key`` signs over ``used`` (simulations, tests);
    under a robust ``aggregator`` ``used_bytes`` gives each forwarded update's size."""
    h = _header(
        key.node_id, round_no, version, used, rejected, total_bytes, aggregate_digest,
        aggregator, used_bytes,
    )
    h.signature = sign(key, Domain.MANIFEST, chain_id, manifest_fields(h))
    return manifest_record(chain_id, h)
