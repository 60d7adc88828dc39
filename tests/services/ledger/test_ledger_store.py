"""The ledger store on SQLite and MySQL: appends, idempotency, refusals, blobs, proofs, schema."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sqlalchemy as sa
from ledger_kit import Federation, model_blob, update_digest

from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import build_block
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.errors import (
    HeightConflict,
    InvalidBlob,
    InvalidBlock,
    LedgerCorrupt,
    MissingBlob,
    NotFound,
    OutOfSequence,
    ProducerRejected,
    SchemaMismatch,
    TooLarge,
)


def snapshot(ledger: Ledger) -> tuple[int, bytes | None, int, list[str]]:
    """Everything a refusal must leave unchanged: tip, row count, stored blob files."""
    tip = ledger.tip()
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM blocks")).scalar_one()
    files = sorted(p.name for p in ledger.blobs.root.rglob("*") if p.is_file())
    return ledger.height(), tip.hash if tip else None, int(rows), files


def test_chain_of_every_kind_is_stored_and_verifies(ledger: Ledger) -> None:
    fed = Federation(ledger)
    blocks = fed.standard_chain()
    assert ledger.height() == 9
    assert ledger.tip() == blocks[-1]
    assert ledger.get(4) == blocks[4]
    assert ledger.get(10) is None
    assert ledger.range(3, 4) == blocks[3:7]
    assert ledger.range(8, 100) == blocks[8:]
    report = ledger.verify()
    assert (report.ok, report.checked, report.height, report.reason) == (True, 10, 9, None)


def test_empty_chain(ledger: Ledger) -> None:
    assert ledger.tip() is None and ledger.height() == -1 and ledger.range(0, 10) == []
    report = ledger.verify()
    assert report.ok and report.checked == 0 and report.height is None


def test_retry_is_idempotent_and_a_different_block_at_a_taken_height_conflicts(
    ledger: Ledger,
) -> None:
    fed = Federation(ledger)
    fed.genesis()
    joined = fed.join(fed.sn, "SN")
    before = snapshot(ledger)
    assert ledger.append(joined) == joined  # same block again: returns the stored one
    assert ledger.append(fed.blocks[0]) == fed.blocks[0]
    assert snapshot(ledger) == before
    rival = build_block(
        "node_joined",
        {
            "node_id": fed.ens[0].node_id,
            "role": "SN",
            "public_key": fed.ens[0].public_hex,
            "parent_sn": "",
            "address": "",
        },
        fed.blocks[0],
        fed.entry,
    )
    with pytest.raises(HeightConflict, match="height 1 already holds"):
        ledger.append(rival)
    assert snapshot(ledger) == before


def test_state_is_shared_between_ledger_instances(db_url: str, tmp_path: Path) -> None:
    first = Ledger(db_url, tmp_path / "blobs")
    second = Ledger(db_url, tmp_path / "blobs")
    try:
        fed = Federation(first)
        fed.genesis()
        fed.join(fed.sn, "SN")
        fed.ledger = second  # the other instance continues the chain
        fed.join(fed.ens[0], "EN", fed.sn.node_id)
        fed.ledger = first  # and the first catches up with it
        fed.checkpoint(1)
        fed.add(
            "checkpoint",
            {
                "model_version": 1,
                "model_digest": fed.blocks[-1].payload.model_digest,
                "note": "again",
            },
        )
        assert first.height() == second.height() == 4
        assert second.verify().ok
    finally:
        first.close()
        second.close()


def _refusals(fed: Federation) -> list[tuple[str, object, type[Exception], str]]:
    """(name, block-or-value, expected error, message fragment) for each kind of bad input."""
    tip = fed.tip
    assert tip is not None
    digest = fed.blocks[0].payload.model_digest  # type: ignore[union-attr]
    ck = {"model_version": 9, "model_digest": digest, "note": ""}
    good = build_block("checkpoint", ck, tip, fed.entry)
    stranger = NodeKey.generate()
    return [
        (
            "wrong prev_hash",
            build_block("checkpoint", ck, dataclasses.replace(tip, hash=b"\x07" * 32), fed.entry),
            OutOfSequence,
            "prev_hash",
        ),
        (
            "height gap",
            build_block(
                "checkpoint", ck, dataclasses.replace(tip, height=tip.height + 5), fed.entry
            ),
            OutOfSequence,
            "does not follow",
        ),
        (
            "unknown producer",
            build_block("checkpoint", ck, tip, stranger),
            ProducerRejected,
            "not an admitted",
        ),
        (
            "revoked producer",
            build_block("checkpoint", ck, tip, fed.ens[1]),
            ProducerRejected,
            "revoked",
        ),
        (
            "bad signature",
            dataclasses.replace(good, signature=stranger.sign(good.hash)),
            InvalidBlock,
            "signature",
        ),
        (
            "hash not over contents",
            dataclasses.replace(good, timestamp_ms=good.timestamp_ms + 1),
            InvalidBlock,
            "hash does not match",
        ),
        (
            "missing blob",
            build_block("checkpoint", {**ck, "model_digest": "ab" * 32}, tip, fed.entry),
            MissingBlob,
            "put the blob",
        ),
        ("not a block", {"height": 1}, InvalidBlock, "needs a Block"),
    ]


def test_every_bad_append_is_refused_and_changes_nothing(ledger: Ledger) -> None:
    fed = Federation(ledger)
    fed.standard_chain()
    before = snapshot(ledger)
    for name, bad, error, fragment in _refusals(fed):
        with pytest.raises(error, match=fragment):
            ledger.append(bad)  # type: ignore[arg-type]
        assert snapshot(ledger) == before, name
    assert ledger.verify().ok


def test_oversized_block_and_blob_are_refused(db_url: str, tmp_path: Path) -> None:
    small = Ledger(db_url, tmp_path / "blobs", max_block_bytes=2048, max_blob_bytes=4096)
    try:
        fed = Federation(small)
        fed.genesis()
        before = snapshot(small)
        digest = fed.blocks[0].payload.model_digest  # type: ignore[union-attr]
        big = build_block(
            "checkpoint",
            {"model_version": 1, "model_digest": digest, "note": "n" * 3000},
            fed.tip,
            fed.entry,
        )
        with pytest.raises(TooLarge, match="exceeds the limit of 2048"):
            small.append(big)
        with pytest.raises(TooLarge, match="exceeds the limit of 4096"):
            small.put_blob(model_blob(1, size=2000))
        assert snapshot(small) == before
    finally:
        small.close()


def test_blobs_round_trip_and_bad_blobs_are_refused(ledger: Ledger) -> None:
    data = model_blob(5)
    digest = ledger.put_blob(data)
    assert ledger.put_blob(data) == digest  # idempotent
    assert ledger.get_blob(digest) == data and ledger.has_blob(digest)
    assert not ledger.has_blob("0" * 64)
    before = snapshot(ledger)
    with pytest.raises(InvalidBlob, match="not a safetensors file"):
        ledger.put_blob(b"\x80\x04 pickled tensors are never accepted")
    with pytest.raises(InvalidBlob, match="announced"):
        ledger.put_blob(model_blob(6), expected_digest=digest)
    with pytest.raises(InvalidBlob, match="64 lowercase hex"):
        ledger.get_blob("../../etc/passwd")
    with pytest.raises(NotFound):
        ledger.get_blob("1" * 64)
    assert snapshot(ledger) == before
    path = ledger.blobs.path(digest)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(LedgerCorrupt, match="corrupt on disk"):
        ledger.get_blob(digest)


def test_inclusion_proofs(ledger: Ledger) -> None:
    fed = Federation(ledger)
    fed.standard_chain()
    for i in range(2):
        proof = ledger.inclusion_proof(5, update_digest(200 + i))
        assert proof.index == i and proof.tree_size == 2 and proof.verify()
        assert proof.root.hex() == fed.blocks[5].payload.merkle_root  # type: ignore[union-attr]
    forged = dataclasses.replace(
        ledger.inclusion_proof(5, update_digest(200)), update_digest=update_digest(999)
    )
    assert not forged.verify()
    with pytest.raises(NotFound, match="not in round block 5"):
        ledger.inclusion_proof(5, update_digest(999))
    with pytest.raises(InvalidBlock, match="not a round block"):
        ledger.inclusion_proof(1, update_digest(200))
    with pytest.raises(NotFound, match="no block at height 50"):
        ledger.inclusion_proof(50, update_digest(200))


def test_schema_version_is_checked_at_start(db_url: str, tmp_path: Path) -> None:
    with pytest.raises(SchemaMismatch, match="holds no fedchain ledger"):
        Ledger(db_url, tmp_path / "blobs", create=False)
    store = Ledger(db_url, tmp_path / "blobs")
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE ledger_meta SET value = '0' WHERE name = 'schema_version'"))
    store.close()
    with pytest.raises(SchemaMismatch, match="schema version '0'; this fedchain needs version '1'"):
        Ledger(db_url, tmp_path / "blobs")


def test_a_writer_stuck_holding_the_database_makes_append_unavailable_not_hang(
    tmp_path: Path,
) -> None:
    import fcntl
    import time

    from fedchain.shared.ledger.errors import LedgerUnavailable

    db = tmp_path / "ledger.db"
    ledger = Ledger(f"sqlite:///{db}", tmp_path / "blobs", write_timeout=0.5)
    try:
        fed = Federation(ledger)
        fed.genesis()
        before = snapshot(ledger)
        with open(f"{db}.lock", "rb+") as other_writer:
            fcntl.flock(other_writer.fileno(), fcntl.LOCK_EX)
            start = time.monotonic()
            with pytest.raises(LedgerUnavailable, match="busy"):
                fed.join(fed.sn, "SN")
            assert time.monotonic() - start < 5
        assert snapshot(ledger) == before
        fed.join(fed.sn, "SN")  # the lock is free again
        assert ledger.height() == 1
    finally:
        ledger.close()
