"""The ledger over gRPC (LedgerClient) and HTTP, served by one in-process LedgerService."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from ledger_kit import Federation, model_blob, update_digest

from fedchain.services.ledger.client import LedgerClient
from fedchain.services.ledger.server import LedgerService
from fedchain.shared.chain.blocks import build_block
from fedchain.shared.config import Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.errors import (
    HeightConflict,
    InvalidBlob,
    InvalidBlock,
    LedgerUnavailable,
    MissingBlob,
    NotFound,
    OutOfSequence,
    ProducerRejected,
    TooLarge,
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


def test_client_builds_and_reads_a_chain(client: LedgerClient) -> None:
    assert client.tip() is None and client.height() == -1
    fed = Federation(client)  # type: ignore[arg-type]  (same methods as Ledger)
    blocks = fed.standard_chain()
    assert client.tip() == blocks[-1]
    assert client.get(3) == blocks[3] and client.get(99) is None
    assert client.range(2, 5) == blocks[2:7]
    report = client.verify()
    assert (report.ok, report.checked, report.height) == (True, 10, 9)
    proof = client.inclusion_proof(4, update_digest(101))
    assert proof.index == 1 and proof.verify()
    with pytest.raises(NotFound, match="not in round block 4"):
        client.inclusion_proof(4, update_digest(7))


def test_blobs_stream_in_chunks_both_ways(client: LedgerClient, service: LedgerService) -> None:
    data = model_blob(3, size=150_000)  # ~600 KB in 16 KB chunks
    digest = client.put_blob(data)
    assert client.has_blob(digest) and not client.has_blob("e" * 64)
    assert client.get_blob(digest) == data
    with pytest.raises(NotFound, match="no blob"):
        client.get_blob("e" * 64)
    with pytest.raises(TooLarge, match="exceeds the limit"):
        client.put_blob(model_blob(4, size=300_000))  # 1.2 MB > max_message_mb=1
    with pytest.raises(InvalidBlob, match="safetensors"):
        client.put_blob(b"not a tensor file at all")
    files = sorted(p.name for p in service.ledger.blobs.root.glob("??/*"))
    assert files == [digest]


def test_refusals_travel_as_their_error_class_and_change_nothing(client: LedgerClient) -> None:
    fed = Federation(client)  # type: ignore[arg-type]
    fed.standard_chain()
    tip = client.tip()
    assert tip is not None
    digest = fed.blocks[0].payload.model_digest  # type: ignore[union-attr]
    ck = {"model_version": 1, "model_digest": digest, "note": ""}
    stranger = NodeKey.generate()
    good = build_block("checkpoint", ck, tip, fed.entry)
    cases = [
        (build_block("checkpoint", ck, fed.blocks[5], fed.entry), HeightConflict),
        (
            build_block("checkpoint", ck, dataclasses.replace(tip, hash=b"\x05" * 32), fed.entry),
            OutOfSequence,
        ),
        (build_block("checkpoint", ck, tip, stranger), ProducerRejected),
        (build_block("checkpoint", ck, tip, fed.ens[1]), ProducerRejected),
        (dataclasses.replace(good, signature=stranger.sign(good.hash)), InvalidBlock),
        (build_block("checkpoint", {**ck, "model_digest": "cd" * 32}, tip, fed.entry), MissingBlob),
    ]
    for block, error in cases:
        with pytest.raises(error) as info:
            client.append(block)
        assert str(info.value) and "\n" not in str(info.value)
        assert client.tip() == tip
    assert client.append(fed.blocks[4]) == fed.blocks[4]  # retry of a stored block
    assert client.append(good).height == tip.height + 1


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
        fed = Federation(client)  # type: ignore[arg-type]
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
        assert http.get("/blocks/4").json()["payload"]["participants"] == [
            k.node_id for k in fed.ens
        ]
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
