"""Round blocks attest the evidence: test vectors for each way an entry could lie about it.

Every corrupted block below is re-hashed and re-signed by the entry itself (an entry that
lies), so only the evidence rules can catch it: the chain refuses it with a reason naming
what is wrong, and a stored chain holding it fails ``verify`` at its height.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from safetensors.numpy import save

from fedchain.services.ledger.store import Ledger, default_db_url
from fedchain.shared.chain.blocks import Block, BlockKind, build_block, header_bytes
from fedchain.shared.chain.errors import ChainError
from fedchain.shared.chain.payloads import (
    Decision,
    Participant,
    RoundPayload,
    SnManifest,
    participants_root_hex,
)
from fedchain.shared.chain.rules import ChainState, check_block
from fedchain.shared.crypto import NodeKey
from tests.shared.chain.evidence_kit import signed_round

MODEL = save({"base.weight": np.arange(8, dtype=np.float32)})
DIGEST = hashlib.sha256(MODEL).hexdigest()


def key(seed: int) -> NodeKey:
    return NodeKey(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


ENTRY, SN, EN1, EN2, EN3, STRANGER = (key(i) for i in range(20, 26))


def joined(node: NodeKey, role: str, parent: str = "") -> dict[str, str]:
    return {"node_id": node.node_id, "role": role, "public_key": node.public_hex,
            "parent_sn": parent, "address": "127.0.0.1:1"}


def prefix() -> list[Block]:
    """genesis, an SN, three ENs under it."""
    blocks = [build_block("genesis", {"config": {}, "model_digest": DIGEST,
                                      "entry_node_id": ENTRY.node_id,
                                      "entry_public_key": ENTRY.public_hex}, None, ENTRY, 1)]
    for node, role, parent in ((SN, "SN", ""), (EN1, "EN", SN.node_id), (EN2, "EN", SN.node_id),
                               (EN3, "EN", SN.node_id)):
        blocks.append(build_block("node_joined", joined(node, role, parent), blocks[-1], ENTRY,
                                  len(blocks) + 1))
    return blocks


def honest_round(blocks: list[Block]) -> RoundPayload:
    return signed_round(blocks[0].hash, 1, DIGEST, {SN: [EN1, EN2, EN3]},
                        rejected=[], metrics={"accuracy": 0.5})


def state_of(blocks: list[Block]) -> ChainState:
    return ChainState.replay(blocks)


def _root(data: dict[str, Any]) -> str:
    return participants_root_hex([Participant(**row) for row in data["participants"]])


def flip_signature(data: dict[str, Any]) -> None:
    sig = data["participants"][1]["signature"]
    data["participants"][1]["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]


def wrong_samples(data: dict[str, Any]) -> None:
    data["participants"][0]["samples"] += 5  # the entry inflates one EN's weight…
    data["manifests"][0]["weight"] += 5  # …and keeps the SN's total consistent
    data["merkle_root"] = _root(data)


def reorder_leaves(data: dict[str, Any]) -> None:
    rows = data["participants"]
    rows[0], rows[1] = rows[1], rows[0]
    data["merkle_root"] = _root(data)


def stranger_participant(data: dict[str, Any]) -> None:
    row = dict(data["participants"][0])
    row["node_id"] = STRANGER.node_id
    data["participants"].append(row)
    data["participants"].sort(key=lambda r: r["node_id"])
    data["manifests"][0]["used"].append(STRANGER.node_id)
    data["manifests"][0]["weight"] += row["samples"]
    data["merkle_root"] = _root(data)


def root_mismatch(data: dict[str, Any]) -> None:
    data["merkle_root"] = hashlib.sha256(b"another tree").hexdigest()


def drop_but_keep_listed(data: dict[str, Any]) -> None:
    data["participants"].pop(2)  # the entry leaves out an EN the SN used and still lists
    data["merkle_root"] = _root(data)


def set_aside_unrejected(data: dict[str, Any]) -> None:
    gone = data["participants"].pop(2)  # set aside as a robust rule would, yet not rejected
    data["manifests"][0]["set_aside"].append(gone)
    data["merkle_root"] = _root(data)


def set_aside_rejected(data: dict[str, Any]) -> None:
    gone = data["participants"].pop(2)  # the entry's robust rule rejected a forwarded update
    data["manifests"][0]["set_aside"].append(gone)
    data["decisions"].append({"node_id": gone["node_id"], "action": "rejected",
                              "reason": "krum: score rank 3 of 3", "by": ENTRY.node_id})
    data["merkle_root"] = _root(data)


def drop_from_manifest(data: dict[str, Any]) -> None:
    gone = data["participants"].pop(2)  # the entry leaves out an EN the SN used
    data["manifests"][0]["used"].remove(gone["node_id"])
    data["manifests"][0]["weight"] -= gone["samples"]
    data["merkle_root"] = _root(data)


Corruption = Callable[[dict[str, Any]], None]
CASES: list[tuple[str, Corruption, str]] = [
    ("flipped signature", flip_signature, "signature is not its own"),
    ("wrong samples", wrong_samples, "signature is not its own"),
    ("leaf reordered", reorder_leaves, "out of order"),
    ("participant not admitted", stranger_participant, "not an admitted edge node"),
    ("root mismatch", root_mismatch, "not the RFC 6962 root"),
    ("participant dropped from a signed manifest", drop_from_manifest, "manifest_digest"),
    ("used EN neither counted nor rejected", drop_but_keep_listed, "neither a participant nor rejected"),
    ("set aside without a rejection", set_aside_unrejected, "neither a participant nor rejected"),
]


def lying_block(blocks: list[Block], corrupt: Corruption) -> dict[str, Any]:
    """The honest round block's JSON, corrupted, then hashed and signed by the entry (even
    when the payload's own checks would refuse it: the entry is the one lying)."""
    data = copy.deepcopy(honest_round(blocks).to_json())
    corrupt(data)
    payload = object.__new__(RoundPayload)  # the entry's bytes, unchecked
    records = {"participants": Participant, "manifests": SnManifest, "decisions": Decision}
    for name, _ in RoundPayload.FIELDS:
        value = data[name]
        if name == "manifests":
            value = [SnManifest(**{**row, "set_aside": [Participant(**p) for p in row["set_aside"]]})
                     for row in value]
        elif name in records:
            value = [records[name](**row) for row in value]
        elif name == "metrics":
            value = dict(value)
        object.__setattr__(payload, name, value)
    tip = blocks[-1]
    header = header_bytes(tip.height + 1, BlockKind.ROUND, tip.hash, 99, ENTRY.node_id, payload)
    digest = hashlib.sha256(header).digest()
    return {"height": tip.height + 1, "kind": "round", "prev_hash": tip.hash.hex(),
            "producer": ENTRY.node_id, "timestamp_ms": 99, "payload": data,
            "hash": digest.hex(), "signature": ENTRY.sign(digest).hex()}


def test_the_honest_round_is_accepted_and_every_signature_is_checked() -> None:
    blocks = prefix()
    block = build_block("round", honest_round(blocks), blocks[-1], ENTRY, 99)
    state = state_of(blocks)
    check_block(block, state)
    state.apply(block)
    assert state.last_round == 1


def test_a_forwarded_update_the_entry_rejected_is_set_aside_and_the_manifest_still_holds() -> None:
    blocks = prefix()
    block = Block.from_json(lying_block(blocks, set_aside_rejected))
    check_block(block, state_of(blocks))  # the SN's signature re-checks over the set-aside row
    payload = block.payload
    assert isinstance(payload, RoundPayload)
    (aside,) = payload.manifests[0].set_aside
    assert aside.node_id not in payload.participant_ids and len(payload.participant_ids) == 2


@pytest.mark.parametrize(("name", "corrupt", "reason"), CASES, ids=[c[0] for c in CASES])
def test_a_lying_round_block_is_refused_with_the_reason(
    name: str, corrupt: Corruption, reason: str
) -> None:
    blocks = prefix()
    with pytest.raises(ChainError, match=reason):
        block = Block.from_json(lying_block(blocks, corrupt))
        check_block(block, state_of(blocks))


def test_a_participant_under_another_sn_than_the_chain_admitted_is_refused() -> None:
    blocks = prefix()
    other_sn = key(30)
    blocks.append(build_block("node_joined", joined(other_sn, "SN"), blocks[-1], ENTRY, 50))
    payload = signed_round(blocks[0].hash, 1, DIGEST, {SN: [EN1], other_sn: [EN2]})
    block = build_block("round", payload, blocks[-1], ENTRY, 99)
    with pytest.raises(ChainError, match=f"admitted it under {SN.node_id}"):
        check_block(block, state_of(blocks))


def test_a_signature_from_another_chain_is_refused() -> None:
    blocks = prefix()
    payload = signed_round(hashlib.sha256(b"another genesis").digest(), 1, DIGEST, {SN: [EN1]})
    block = build_block("round", payload, blocks[-1], ENTRY, 99)
    with pytest.raises(ChainError, match="signature is not its own"):
        check_block(block, state_of(blocks))


@pytest.mark.parametrize(("name", "corrupt", "reason"), CASES, ids=[c[0] for c in CASES])
def test_verify_names_the_height_of_a_lying_round_block(
    tmp_path: Path, name: str, corrupt: Corruption, reason: str
) -> None:
    """Stored past the ledger's own check (rows written directly), verify still finds it."""
    blocks = prefix()
    ledger = Ledger(default_db_url(tmp_path), tmp_path / "blobs", create=True)
    try:
        assert ledger.put_blob(MODEL) == DIGEST
        for block in blocks:
            ledger.append(block)
        honest = build_block("round", honest_round(blocks), blocks[-1], ENTRY, 99)
        ledger.append(honest)
        _overwrite_payload(ledger, honest.height, lying_block(blocks, corrupt))
        report = ledger.verify()
    finally:
        ledger.close()
    assert not report.ok and report.height == honest.height, report.summary()
    assert report.reason is not None and reason in report.reason


def _overwrite_payload(ledger: Ledger, height: int, data: dict[str, Any]) -> None:
    import json

    import sqlalchemy as sa

    from fedchain.services.ledger import schema

    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(schema.blocks).where(schema.blocks.c.height == height).values(
                hash=bytes.fromhex(data["hash"]), signature=bytes.fromhex(data["signature"]),
                payload=json.dumps(data["payload"], sort_keys=True, separators=(",", ":")),
            )
        )
