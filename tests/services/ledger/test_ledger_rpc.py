"""What only the gRPC and HTTP front ends do: malformed messages, an unreachable address, the HTTP API.

The contract the client keeps like every backend: ``test_ledger_contract.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from ledger_kit import Federation, model_blob

from fedchain.services.ledger.server import LedgerService
from fedchain.shared.config import Settings
from fedchain.shared.ledger.client import LedgerClient
from fedchain.shared.ledger.errors import (
    LedgerUnavailable,
)
from fedchain.shared.rpc import ledger_pb2, ledger_pb2_grpc
from tests.conftest import free_port


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[LedgerService]:
    settings = Settings(
        state_dir=tmp_path / "state",
        db_url=db_url,
        port=free_port(),
        http_port=free_port(),
        max_message_mb=1,
        chunk_kb=16,
    )
    svc = LedgerService(settings)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def client(service: LedgerService) -> Iterator[LedgerClient]:
    with LedgerClient(service.grpc_address, timeout=20, chunk_kb=16) as c:
        yield c





def test_malformed_requests_get_invalid_argument(service: LedgerService) -> None:
    with grpc.insecure_channel(service.grpc_address) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        bad_messages = [
            ledger_pb2.Block(
                height=0,
                kind="genesis",
                payload_json="{not json",
                prev_hash=b"",
                hash=b"",
                signature=b"",
            ),
            ledger_pb2.Block(height=0, kind="coinbase", payload_json="{}"),
            ledger_pb2.Block(
                height=0,
                kind="node_left",
                payload_json='{"node_id": "x"}',
                prev_hash=bytes(32),
                hash=bytes(32),
                signature=bytes(64),
                producer="p",
            ),
        ]
        for msg in bad_messages:
            with pytest.raises(grpc.RpcError) as info:
                stub.Append(msg, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            list(stub.GetBlob(ledger_pb2.BlobRequest(digest="../x"), timeout=10))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert stub.Tip(ledger_pb2.TipRequest(), timeout=10).empty


def test_unreachable_ledger_raises_unavailable_quickly() -> None:
    address = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    with LedgerClient(address, timeout=3) as c, pytest.raises(LedgerUnavailable, match=address):
        c.tip()
    assert time.monotonic() - start < 10


def test_http_api(service: LedgerService, client: LedgerClient) -> None:
    with httpx.Client(base_url=service.http_url, timeout=20) as http:
        assert http.get("/tip").status_code == 404
        fed = Federation(client)
        blocks = fed.standard_chain()
        for _ in range(3):
            fed.checkpoint(3)
        assert http.get("/health").json() == {"status": "ok", "height": 12}
        assert http.get("/tip").json() == fed.blocks[-1].to_json()
        last = http.get("/blocks").json()
        assert [b["height"] for b in last] == list(range(3, 13))
        assert http.get("/blocks", params={"from": 2, "limit": 3}).json() == [
            b.to_json() for b in blocks[2:5]
        ]
        assert [row["node_id"] for row in http.get("/blocks/4").json()["payload"]["participants"]] == sorted(
            k.node_id for k in fed.ens
        )
        missing = http.get("/blocks/400")
        assert missing.status_code == 404 and missing.json() == {"detail": "no block at height 400"}
        bad = http.get("/blocks", params={"limit": 0})
        assert bad.status_code == 400 and "limit" in bad.json()["detail"]
        assert http.get("/blocks/abc").status_code == 400
        digest = blocks[4].payload.model_digest  # type: ignore[union-attr]
        blob = http.get(f"/blobs/{digest}")
        assert blob.status_code == 200 and blob.content == model_blob(1)
        assert blob.headers["content-type"] == "application/octet-stream"
        assert http.get("/blobs/" + "f" * 64).status_code == 404
        assert http.get("/blobs/nothex").status_code == 400
        assert http.get("/verify").json() == {
            "ok": True,
            "checked": 13,
            "height": 12,
            "reason": None,
        }
        metrics = http.get("/metrics").text
        assert (
            "fedchain_ledger_height 12.0" in metrics
            and "fedchain_ledger_appends_total 13.0" in metrics
        )
        assert http.get("/docs").status_code == 200
        assert "/blocks/{height}" in http.get("/openapi.json").json()["paths"]
        # a blob altered on disk: /verify names the height, /blobs refuses to serve it
        path = service.ledger.blobs.path(digest)
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 1
        path.write_bytes(bytes(raw))
        report = http.get("/verify").json()
        assert report["ok"] is False and report["height"] == 4 and "altered" in report["reason"]
        assert http.get(f"/blobs/{digest}").status_code == 500
