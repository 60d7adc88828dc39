"""Only the entry writes to a ledger service: signed blob uploads (header checked before any
body), the upload quota, ``fedchain ledger gc``; and the signed tree head over gRPC and HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledger_kit import Federation, model_blob
from test_ledger_cli import fedchain

from fedchain.services.ledger.grpc_service import LedgerServicer
from fedchain.services.ledger.metrics import LedgerMetrics
from fedchain.services.ledger.server import LedgerService
from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import build_block
from fedchain.shared.chain.treehead import check_extends, head_for
from fedchain.shared.config import Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.client import LedgerClient
from fedchain.shared.ledger.errors import (
    LedgerError,
    ProducerRejected,
    QuotaExceeded,
    TooLarge,
    UploadRefused,
)
from fedchain.shared.ledger.uploads import UploadHeader
from fedchain.shared.rpc import ledger_pb2
from tests.conftest import free_port


def _service(store: Ledger, tmp_path: Path) -> LedgerService:
    settings = Settings(
        state_dir=tmp_path / "state", port=free_port(), http_port=free_port(), chunk_kb=16
    )
    svc = LedgerService(settings, ledger=store)
    svc.start()
    return svc


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[LedgerService]:
    svc = _service(Ledger(db_url, tmp_path / "blobs"), tmp_path)
    yield svc
    svc.stop()


def _stored(svc: LedgerService) -> list[str]:
    return sorted(b.digest for b in svc.ledger.blobs.stored())


def test_only_the_entry_uploads_blobs(service: LedgerService) -> None:
    with LedgerClient(service.grpc_address, timeout=20, chunk_kb=16) as anonymous:
        with pytest.raises(UploadRefused, match="not signed"):
            anonymous.put_blob(model_blob(1))
        assert _stored(service) == []
        fed = Federation(anonymous)  # signs as its entry: genesis pins that key
        fed.standard_chain()
        before = _stored(service)
    for outsider in (fed.ens[0], fed.sn, NodeKey.generate()):
        with (
            LedgerClient(service.grpc_address, timeout=20, signer=outsider) as client,
            pytest.raises(UploadRefused, match="not by the entry"),
        ):
            client.put_blob(model_blob(99))
    assert _stored(service) == before
    with LedgerClient(service.grpc_address, timeout=20, signer=fed.entry) as entry:
        digest = entry.put_blob(model_blob(99))
    assert digest in _stored(service)


def test_a_ledger_started_with_the_entry_key_takes_nothing_from_anyone_else(
    tmp_path: Path,
) -> None:
    entry, intruder = NodeKey.generate(), NodeKey.generate()
    store = Ledger(f"sqlite:///{tmp_path / 'l.db'}", tmp_path / "blobs", entry_key=entry.public_bytes)
    svc = _service(store, tmp_path)
    try:
        with (
            LedgerClient(svc.grpc_address, timeout=20, signer=intruder) as client,
            pytest.raises(UploadRefused, match="not by the entry"),
        ):
            client.put_blob(model_blob(1))
        with LedgerClient(svc.grpc_address, timeout=20, signer=entry) as client:
            digest = client.put_blob(model_blob(1))
            genesis = {
                "config": {"algorithm": "fedper"},
                "model_digest": digest,
                "entry_node_id": intruder.node_id,
                "entry_public_key": intruder.public_hex,
            }
            with pytest.raises(ProducerRejected, match="--entry-key"):
                client.append(build_block("genesis", genesis, None, intruder))
            assert client.height() == -1
    finally:
        svc.stop()


class _Aborted(Exception):
    pass


class _Context:
    def set_trailing_metadata(self, _md: Any) -> None:
        pass

    def abort(self, code: Any, details: str) -> None:
        raise _Aborted(f"{code.name}: {details}")


def _first(header: UploadHeader) -> ledger_pb2.BlobChunk:
    return ledger_pb2.BlobChunk(
        data=b"",
        digest=header.digest,
        size=header.size,
        public_key=header.public_key,
        signature=header.signature,
    )


def _upload(
    servicer: LedgerServicer, header: UploadHeader, body: bytes, pulled: list[int] | None = None
) -> list[int]:
    """Send ``body`` after ``header``; returns (and records in ``pulled``) the offsets of
    the body chunks the servicer pulled."""
    pulled = [] if pulled is None else pulled

    def chunks() -> Iterator[ledger_pb2.BlobChunk]:
        yield _first(header)
        for i in range(0, len(body), 1000):
            pulled.append(i)
            yield ledger_pb2.BlobChunk(data=body[i : i + 1000])

    servicer.PutBlob(chunks(), _Context())  # type: ignore[arg-type]
    return pulled


def test_the_upload_header_is_checked_before_any_body_is_taken(tmp_path: Path) -> None:
    entry, other = NodeKey.generate(), NodeKey.generate()
    store = Ledger(
        f"sqlite:///{tmp_path / 'l.db'}",
        tmp_path / "blobs",
        entry_key=entry.public_bytes,
        max_blob_bytes=64 * 1024,
    )
    servicer = LedgerServicer(store, LedgerMetrics(), 16 * 1024)
    data = model_blob(1)
    digest = hashlib.sha256(data).hexdigest()
    good = UploadHeader.signed(entry, digest, len(data))
    refused = [
        ("PERMISSION_DENIED", UploadHeader.signed(other, digest, len(data))),  # not the entry
        ("PERMISSION_DENIED", UploadHeader(digest, len(data) + 1, good.public_key, good.signature)),
        ("PERMISSION_DENIED", UploadHeader(digest, len(data), b"", b"")),  # unsigned
        ("RESOURCE_EXHAUSTED", UploadHeader.signed(entry, digest, 10**9)),  # over the bound
    ]
    for code, header in refused:
        pulled: list[int] = []
        with pytest.raises(_Aborted, match=code):
            _upload(servicer, header, data, pulled)
        assert pulled == [], header  # not one body chunk was asked for
        assert list(store.blobs.stored()) == []
    forged = good
    # a body longer than its header said is cut off at the announced size
    short = UploadHeader.signed(entry, digest, 100)
    with pytest.raises(_Aborted, match="announced 100 bytes"):
        _upload(servicer, short, data)
    assert _upload(servicer, forged, data) == list(range(0, len(data), 1000))
    assert [b.digest for b in store.blobs.stored()] == [digest]
    store.close()


def test_unreferenced_blobs_have_a_quota_and_gc_removes_them(tmp_path: Path) -> None:
    state = tmp_path / "state"
    blob = len(model_blob(0))
    store = Ledger(
        f"sqlite:///{state / 'ledger.db'}", state / "blobs", blob_quota_bytes=int(blob * 2.5)
    )
    fed = Federation(store)
    fed.standard_chain()  # every blob it stores is referenced by a block
    extra = [store.put_blob(model_blob(100)), store.put_blob(model_blob(101))]
    with pytest.raises(QuotaExceeded, match="fedchain ledger gc"):
        store.put_blob(model_blob(102))
    assert isinstance(QuotaExceeded("x"), TooLarge)
    assert store.put_blob(model_blob(100)) == extra[0]  # storing a stored blob again is free
    referenced = sorted(b.digest for b in store.blobs.stored() if b.digest not in extra)
    store.close()

    dry = fedchain("ledger", "gc", "--state-dir", str(state), "--older-than", "0")
    assert dry.returncode == 0, dry.stderr
    assert "would remove 2 blobs" in dry.stdout and "--yes" in dry.stdout
    assert all(d in dry.stdout for d in extra) and not any(d in dry.stdout for d in referenced)
    assert len(list((state / "blobs").glob("??/*"))) == len(referenced) + 2
    young = fedchain("ledger", "gc", "--state-dir", str(state), "--yes")
    assert "removing 0 blobs" in young.stdout  # just uploaded: maybe their block is on its way
    done = fedchain("ledger", "gc", "--state-dir", str(state), "--older-than", "0", "--yes")
    assert done.returncode == 0 and "removed 2 blobs" in done.stdout, done.stdout + done.stderr
    assert sorted(p.name for p in (state / "blobs").glob("??/*")) == referenced
    assert fedchain("verify", "--state-dir", str(state)).returncode == 0
    store = Ledger(f"sqlite:///{state / 'ledger.db'}", state / "blobs", blob_quota_bytes=blob * 2)
    store.put_blob(model_blob(102))  # room again
    store.close()


def test_signed_heads_and_consistency_over_grpc_and_http(service: LedgerService) -> None:
    with LedgerClient(service.grpc_address, timeout=20, chunk_kb=16) as client:
        fed = Federation(client)
        fed.standard_chain()
        with httpx.Client(base_url=service.http_url, timeout=20) as http:
            assert client.tree_head() is None
            assert http.get("/head").status_code == 404
            old = fed.sign_head()
            fed.checkpoint(3)
            fed.checkpoint(4)
            new = fed.sign_head()
            assert client.tree_head() == new
            assert http.get("/head").json() == new.to_json()
            proof = client.consistency(old.size, new.size)
            check_extends(old, new, proof)
            served = http.get("/consistency", params={"from": old.size}).json()
            assert served == {"from": 10, "to": 12, "proof": [p.hex() for p in proof]}
            assert http.get("/consistency", params={"from": 5, "to": 99}).status_code == 404
            assert http.get("/consistency", params={"from": 5, "to": 2}).status_code == 400
            hashes = [b.hash for b in fed.blocks]
            with pytest.raises(LedgerError, match="not by the entry"):
                client.put_tree_head(head_for(hashes[0], hashes, 1).signed(fed.ens[0]))
