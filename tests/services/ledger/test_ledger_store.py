"""What only the store does (SQLite and MySQL): shared state between instances, the schema check,
the writers' lock, database and disk failures. The contract itself: ``test_ledger_contract.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from ledger_kit import Federation, model_blob

from fedchain.services.ledger.store import Ledger
from fedchain.shared.ledger.errors import (
    SchemaMismatch,
)


def snapshot(ledger: Ledger) -> tuple[int, bytes | None, int, list[str]]:
    """Everything a refusal must leave unchanged: tip, row count, stored blob files."""
    tip = ledger.tip()
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM blocks")).scalar_one()
    files = sorted(p.name for p in ledger.blobs.root.rglob("*") if p.is_file())
    return ledger.height(), tip.hash if tip else None, int(rows), files


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


def test_a_failing_database_or_disk_raises_unavailable_not_a_library_error(
    db_url: str, tmp_path: Path
) -> None:
    from fedchain.shared.ledger.errors import LedgerUnavailable

    ledger = Ledger(db_url, tmp_path / "blobs")
    try:
        fed = Federation(ledger)
        fed.genesis()
        tmp = ledger.blobs.root / "tmp"  # where blobs are written before being renamed into place
        tmp.rmdir()
        tmp.write_bytes(b"")  # the disk now refuses the write (NotADirectoryError)
        with pytest.raises(LedgerUnavailable, match="blob store"):
            ledger.put_blob(model_blob(9))
        with ledger.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE ledger_meta"))
        with pytest.raises(LedgerUnavailable, match="ledger database"):
            ledger.tip()
        with pytest.raises(LedgerUnavailable, match="ledger database"):
            fed.join(fed.sn, "SN")
    finally:
        ledger.close()
