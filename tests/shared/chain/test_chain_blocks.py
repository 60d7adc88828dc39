"""Blocks: canonical header bytes, hashing, signing, JSON round trips and the chain rules."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.shared.chain.blocks import (
    ZERO_HASH,
    Block,
    BlockKind,
    NodeLeftPayload,
    RoundPayload,
    build_block,
    header_bytes,
)
from fedchain.shared.chain.errors import (
    BlobMissing,
    BlockInvalid,
    NotNextBlock,
    ProducerNotAdmitted,
)
from fedchain.shared.chain.payloads import Decision, Participant, SnManifest
from fedchain.shared.chain.rules import ChainState, check_block
from fedchain.shared.crypto import NodeKey

DIGEST = hashlib.sha256(b"model").hexdigest()


def fixed_key(seed: int) -> NodeKey:
    return NodeKey(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def genesis(key: NodeKey, ts: int = 1000) -> Block:
    payload = {
        "config": {"algorithm": "fedper", "lr": 0.01, "clients": 3, "eval": True, "max_samples": None},
        "model_digest": DIGEST,
        "entry_node_id": key.node_id,
        "entry_public_key": key.public_hex,
    }
    return build_block(BlockKind.GENESIS, payload, None, key, ts)


def joined(key: NodeKey, node: NodeKey, prev: Block, role: str = "SN", parent: str = "") -> Block:
    payload = {
        "node_id": node.node_id,
        "role": role,
        "public_key": node.public_hex,
        "parent_sn": parent,
        "address": "127.0.0.1:9",
    }
    return build_block(BlockKind.NODE_JOINED, payload, prev, key, prev.timestamp_ms + 1)


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def test_header_layout_is_the_documented_canonical_encoding() -> None:
    payload = NodeLeftPayload(node_id="n-1", reason="bye")
    got = header_bytes(7, BlockKind.NODE_LEFT, b"\x11" * 32, 1234, "n-0", payload)
    body = (
        _lp(b"node_left")
        + struct.pack(">I", 2)
        + _lp(b"node_id")
        + _lp(b"n-1")
        + _lp(b"reason")
        + _lp(b"bye")
    )
    expected = (
        _lp(b"fedchain/block/v1")
        + struct.pack(">Q", 7)
        + _lp(b"node_left")
        + _lp(b"\x11" * 32)
        + struct.pack(">Q", 1234)
        + _lp(b"n-0")
        + _lp(body)
    )
    assert got == expected


def test_hash_is_sha256_of_header_and_signature_verifies() -> None:
    key = fixed_key(1)
    g = genesis(key)
    assert g.hash == hashlib.sha256(g.header()).digest()
    assert g.prev_hash == ZERO_HASH and g.height == 0 and g.producer == key.node_id
    state = ChainState()
    check_block(g, state)  # signature by the entry key in the payload
    # deterministic: same inputs, same block (Ed25519 signatures are deterministic)
    assert genesis(key) == g


def test_length_prefixes_keep_different_fields_apart() -> None:
    a = header_bytes(1, BlockKind.NODE_LEFT, ZERO_HASH, 0, "p", NodeLeftPayload("ab", "c"))
    b = header_bytes(1, BlockKind.NODE_LEFT, ZERO_HASH, 0, "p", NodeLeftPayload("a", "bc"))
    assert a != b


def test_mapping_order_does_not_change_the_hash_and_floats_are_big_endian_ieee754() -> None:
    key = fixed_key(2)
    g = genesis(key)
    p1 = RoundPayload.create(
        1, "fedper", 1, DIGEST, [], [], [], {"acc": 0.5, "loss": 1.25}
    )
    p2 = RoundPayload.create(
        1, "fedper", 1, DIGEST, [], [], [], {"loss": 1.25, "acc": 0.5}
    )
    b1 = build_block("round", p1, g, key, 5)
    b2 = build_block("round", p2, g, key, 5)
    assert b1.hash == b2.hash
    assert struct.pack(">d", 0.5) in b1.header() and struct.pack(">d", 1.25) in b1.header()


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        (
            "round",
            {
                "round": 1,
                "algorithm": "fedper",
                "model_version": 1,
                "model_digest": DIGEST,
                "merkle_root": "00" * 32,
                "participants": [],
                "manifests": [],
                "decisions": [],
                "metrics": {},
                "aggregation_order": [],
            },
            "merkle_root",
        ),
        (
            "round",
            {
                "round": 1,
                "algorithm": "fedper",
                "model_version": 1,
                "model_digest": DIGEST,
                "merkle_root": RoundPayload.create(1, "x", 1, DIGEST, []).merkle_root,
                "participants": [],
                "manifests": [],
                "decisions": [],
                "metrics": {"acc": float("nan")},
                "aggregation_order": [],
            },
            "finite",
        ),
        ("checkpoint", {"model_version": 1, "model_digest": "XYZ", "note": ""}, "64 lowercase hex"),
        ("checkpoint", {"model_version": -1, "model_digest": DIGEST, "note": ""}, "between 0"),
        ("checkpoint", {"model_version": 1, "model_digest": DIGEST}, "missing note"),
        (
            "checkpoint",
            {"model_version": 1, "model_digest": DIGEST, "note": "", "x": 1},
            "unknown field",
        ),
        (
            "node_joined",
            {
                "node_id": "n",
                "role": "BOSS",
                "public_key": "00" * 32,
                "parent_sn": "",
                "address": "",
            },
            "role",
        ),
        ("mystery", {}, "unknown block kind"),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(kind: str, payload: dict, message: str) -> None:
    prev = genesis(fixed_key(3))
    with pytest.raises(BlockInvalid, match=message):
        build_block(kind, payload, prev, fixed_key(3))


def _participant(node_id: str, digest: str, samples: int) -> Participant:
    return Participant(node_id, "n-sn", digest, samples, 0.25, 1.5, "ab" * 64)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.tuples(st.binary(min_size=32, max_size=32).map(bytes.hex), st.integers(1, 10**6)),
        max_size=5,
    ),
    rejected=st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=20)), max_size=3),
    metrics=st.dictionaries(
        st.text(max_size=8), st.floats(allow_nan=False, allow_infinity=False), max_size=4
    ),
    round_no=st.integers(0, 2**40),
)
def test_json_round_trip_keeps_the_hash(rows, rejected, metrics, round_no) -> None:  # type: ignore[no-untyped-def]
    key = fixed_key(4)
    participants = [_participant(n, d, s) for n, (d, s) in rows.items()]
    manifests = [
        SnManifest(
            "n-sn", DIGEST if rows else "", sum(s for _, s in rows.values()), 10 if rows else 0,
            list(rows), rejected, DIGEST, "cd" * 64,
        )
    ]
    decisions = [Decision(n, "rejected", why, "n-sn") for n, why in rejected]
    payload = RoundPayload.create(
        round_no, "fedavg", round_no + 1, DIGEST, participants, manifests, decisions, metrics
    )
    block = build_block("round", payload, genesis(key), key, 77)
    again = Block.from_json(block.to_json())
    assert again == block
    assert again.computed_hash() == block.hash


def test_chain_rules_admit_revoke_and_refuse() -> None:
    entry, sn, en, stranger = fixed_key(5), fixed_key(6), fixed_key(7), fixed_key(8)
    state = ChainState()
    g = genesis(entry)
    check_block(g, state)
    state.apply(g)
    j_sn = joined(entry, sn, g)
    check_block(j_sn, state)
    state.apply(j_sn)
    j_en = joined(entry, en, j_sn, role="EN", parent=sn.node_id)
    check_block(j_en, state)
    state.apply(j_en)
    assert set(state.members) == {entry.node_id, sn.node_id, en.node_id}

    # only the entry writes blocks: an admitted SN may not
    by_sn = build_block(
        "checkpoint", {"model_version": 1, "model_digest": DIGEST, "note": ""}, j_en, sn, 9
    )
    with pytest.raises(ProducerNotAdmitted, match="may be written only by the entry"):
        check_block(by_sn, state)
    ck = build_block(
        "checkpoint", {"model_version": 1, "model_digest": DIGEST, "note": ""}, j_en, entry, 9
    )
    check_block(ck, state)

    # unknown producer
    bad = build_block(
        "checkpoint", {"model_version": 1, "model_digest": DIGEST, "note": ""}, j_en, stranger, 9
    )
    with pytest.raises(ProducerNotAdmitted, match="not an admitted node"):
        check_block(bad, state)
    # EN parent must be an admitted SN
    with pytest.raises(BlockInvalid, match="parent_sn"):
        check_block(joined(entry, stranger, j_en, role="EN", parent=en.node_id), state)
    # wrong link / height
    with pytest.raises(NotNextBlock, match="height"):
        check_block(joined(entry, stranger, j_sn), state)
    forged_prev = dataclasses.replace(joined(entry, stranger, j_en), prev_hash=b"\x01" * 32)
    with pytest.raises(NotNextBlock, match="prev_hash"):
        check_block(forged_prev, state)
    # signature by another key over the right hash
    sig_forged = dataclasses.replace(ck, signature=stranger.sign(ck.hash))
    with pytest.raises(BlockInvalid, match="signature"):
        check_block(sig_forged, state)
    # hash that does not match the contents
    with pytest.raises(BlockInvalid, match="hash does not match"):
        check_block(dataclasses.replace(ck, timestamp_ms=10), state)
    # blobs must be present
    with pytest.raises(BlobMissing, match="missing"):
        check_block(ck, state, lambda d: "missing")

    # revoke the SN: its later blocks are refused
    left = build_block("node_left", {"node_id": sn.node_id, "reason": "timeout"}, j_en, entry, 10)
    check_block(left, state)
    state.apply(left)
    late = build_block(
        "checkpoint", {"model_version": 1, "model_digest": DIGEST, "note": ""}, left, sn, 11
    )
    with pytest.raises(ProducerNotAdmitted, match="revoked at height 3"):
        check_block(late, state)
    with pytest.raises(BlockInvalid, match="left already at height 3"):
        check_block(
            build_block("node_left", {"node_id": sn.node_id, "reason": "again"}, left, entry, 12),
            state,
        )


def test_genesis_rules() -> None:
    entry, other = fixed_key(9), fixed_key(10)
    g = genesis(entry)
    # produced by someone else than the entry named in it
    stolen = build_block("genesis", g.payload, None, other, 1000)
    with pytest.raises(ProducerNotAdmitted, match="entry node"):
        check_block(stolen, ChainState())
    # entry_node_id that is not the id of the key
    wrong_id = dict(g.payload.to_json(), entry_node_id=other.node_id)
    with pytest.raises(BlockInvalid, match="not the id"):
        check_block(build_block("genesis", wrong_id, None, other, 1), ChainState())
    # a second genesis later on
    state = ChainState.replay([g])
    second = build_block("genesis", g.payload, g, entry, 1001)
    with pytest.raises(BlockInvalid, match="genesis"):
        check_block(second, state)


def _genesis_with(config: dict) -> Block:
    key = fixed_key(4)
    payload = {
        "config": config,
        "model_digest": DIGEST,
        "entry_node_id": key.node_id,
        "entry_public_key": key.public_hex,
    }
    return build_block(BlockKind.GENESIS, payload, None, key, 1000)


def test_genesis_records_a_real_federation_config_as_the_values_themselves() -> None:
    from fedchain.shared.chain.blocks import payload_text
    from fedchain.shared.chain.payloads import payload_from_json
    from fedchain.shared.config import Settings
    from fedchain.shared.net.federation import apply_fl_config, fl_config

    settings = Settings(algorithm="fedavg", lr=0.05, clients=4, max_samples=None, local_eval=False)
    block = _genesis_with(fl_config(settings))
    config = block.payload.to_json()["config"]
    # as themselves, not JSON inside a string ('"fedavg"', '0.05')
    assert config["algorithm"] == "fedavg"
    assert config["lr"] == 0.05 and isinstance(config["lr"], float)
    assert config["clients"] == 4 and isinstance(config["clients"], int)
    assert config["local_eval"] is False and config["max_samples"] is None
    assert '"algorithm":"fedavg"' in payload_text(block.payload)
    # the stored text parses back to the same hash, and a node adopts the same settings
    again = payload_from_json("genesis", json.loads(payload_text(block.payload)))
    assert again == block.payload
    assert apply_fl_config(Settings(), dict(again.config)) == apply_fl_config(Settings(), fl_config(settings))


@pytest.mark.parametrize("a, b", [(1, 1.0), (1, True), (1, "1"), (0, None), (0, False), ("", None)])
def test_config_values_of_different_types_hash_apart(a: object, b: object) -> None:
    assert _genesis_with({"x": a}).hash != _genesis_with({"x": b}).hash


@pytest.mark.parametrize(
    "value, message",
    [
        ([1, 2], "must be null, a bool, a number or a string"),
        ({"a": 1}, "must be null, a bool, a number or a string"),
        (float("inf"), "finite"),
        (2**63, "signed 64-bit"),
        ("x" * 5000, "longer than"),
    ],
)
def test_genesis_config_values_that_are_not_settings_are_refused(value: object, message: str) -> None:
    with pytest.raises(BlockInvalid, match=message):
        _genesis_with({"x": value})
