"""Round payloads with real evidence: each EN signs its row, each SN its manifest."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from fedchain.shared.chain.evidence import signed_manifest, signed_participant
from fedchain.shared.chain.payloads import Decision, Participant, RoundPayload, SnManifest
from fedchain.shared.crypto import NodeKey


def update_digest(number: int, node_id: str) -> str:
    return hashlib.sha256(f"update-{number}-{node_id}".encode()).hexdigest()


def signed_round(
    chain_id: bytes,
    number: int,
    model_digest: str,
    groups: Mapping[NodeKey, Sequence[NodeKey]],
    *,
    model_version: int | None = None,
    rejected: Sequence[tuple[str, str]] = (),
    metrics: Mapping[str, float] | None = None,
    samples: int = 10,
) -> RoundPayload:
    """Round ``number``: every EN of ``groups`` (SN key -> its EN keys) signed its update."""
    version = number if model_version is None else model_version
    participants, manifests = [], []
    for sn, ens in groups.items():
        rows = [
            signed_participant(
                en, chain_id, number, version - 1, sn.node_id,
                update_digest(number, en.node_id), samples + i, 0.5, 1.0,
            )
            for i, en in enumerate(ens)
        ]
        participants.extend(rows)
        agg = hashlib.sha256(f"aggregate-{number}-{sn.node_id}".encode()).hexdigest()
        manifests.append(
            signed_manifest(sn, chain_id, number, version - 1, rows, agg if rows else "",
                            1000 if rows else 0, list(rejected))
        )
    decisions = [Decision(n, "rejected", why, "") for n, why in rejected]
    return RoundPayload.create(
        number, "fedper", version, model_digest, participants, manifests, decisions,
        dict(metrics or {}),
    )


def unsigned_round(number: int, model_digest: str, updates: int) -> RoundPayload:
    """A well-formed round of ``updates`` participants of one SN whose signatures are filler
    (a valid payload the chain's rules refuse once they check the signatures)."""
    sn = "n-" + "5" * 16
    rows = [
        Participant(f"n-{i:016x}", sn, update_digest(number, str(i)), 1, 0.0, 0.0, "ab" * 64)
        for i in range(updates)
    ]
    manifest = SnManifest(
        sn, model_digest if rows else "", len(rows), 1 if rows else 0,
        [r.node_id for r in rows], [], model_digest, "cd" * 64,
    )
    return RoundPayload.create(number, "fedper", number, model_digest, rows, [manifest])
