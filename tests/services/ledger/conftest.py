"""Ledger fixtures: every store test runs on SQLite and on MySQL (``mysql_url``).

The contract every backend keeps is tested once, in ``ledger_contract_suite.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedchain.services.ledger.store import Ledger


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: a SQLite file, or a new database on the MySQL test server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("mysql_url"))


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    store = Ledger(db_url, tmp_path / "blobs", max_block_bytes=64 * 1024, max_blob_bytes=256 * 1024)
    yield store
    store.close()
