"""The ledger contract suite on each backend: SQLite store, MySQL store, gRPC client."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_contract_suite import MAX_BLOB, MAX_BLOCK, Backend, LedgerContractSuite

from fedchain.services.ledger.server import LedgerService
from fedchain.services.ledger.store import Ledger
from fedchain.shared.config import Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.client import LedgerClient
from fedchain.shared.ledger.contract import LedgerContract
from tests.conftest import free_port


def _store(db_url: str, tmp_path: Path) -> Ledger:
    return Ledger(db_url, tmp_path / "blobs", max_block_bytes=MAX_BLOCK, max_blob_bytes=MAX_BLOB)


def _store_backend(store: Ledger) -> Backend:
    ledger: LedgerContract = store  # the store implements the contract (checked by mypy)
    return Backend(ledger, store.blobs, stop=store.close, close=store.close)


class TestSqliteLedger(LedgerContractSuite):
    def open_backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
        return _store_backend(_store(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path))


@pytest.mark.mysql
class TestMysqlLedger(LedgerContractSuite):
    def open_backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
        return _store_backend(_store(str(request.getfixturevalue("mysql_url")), tmp_path))


class TestGrpcLedger(LedgerContractSuite):
    """The client against a live ledger service on 127.0.0.1 (SQLite behind it, 16 KB chunks)."""

    def open_backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
        settings = Settings(
            state_dir=tmp_path / "state",
            port=free_port(),
            http_port=free_port(),
            max_message_mb=1,
            chunk_kb=16,
        )
        store = _store(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
        service = LedgerService(settings, ledger=store)
        service.start()
        # before genesis any signed upload is taken; Federation's genesis pins its entry key
        client = LedgerClient(
            service.grpc_address, timeout=20, chunk_kb=16, signer=NodeKey.generate()
        )
        ledger: LedgerContract = client  # the client implements the contract (checked by mypy)

        def close() -> None:
            client.close()
            service.stop()

        return Backend(ledger, store.blobs, stop=service.stop, close=close)
