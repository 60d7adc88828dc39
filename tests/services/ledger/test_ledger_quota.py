"""The upload quota is tallied, not scanned per upload, and still refuses only on the store's truth."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from ledger_kit import model_blob

from fedchain.services.ledger.quota import UploadQuota
from fedchain.services.ledger.store import Ledger
from fedchain.shared.ledger.errors import InvalidBlob, QuotaExceeded


class FakeStore:
    """What the quota sees of a ledger: referenced digests and the stored blobs (scans counted)."""

    def __init__(self) -> None:
        self.referenced: set[str] = set()
        self.files: dict[str, int] = {}
        self.scans = 0

    def stored(self) -> list[tuple[str, int]]:
        self.scans += 1
        return list(self.files.items())

    def quota(self, limit: int) -> UploadQuota:
        return UploadQuota(limit, lambda: self.referenced, self.stored)

    def put(self, quota: UploadQuota, digest: str, size: int) -> None:
        quota.reserve(digest, size)
        self.files[digest] = size
        quota.stored(digest)


def test_uploads_are_counted_without_a_scan_each() -> None:
    store = FakeStore()
    quota = store.quota(1000)
    for i in range(50):
        store.put(quota, f"d{i}", 10)
    assert quota.pending_bytes() == 500
    assert store.scans == 1  # the first upload only


def test_the_quota_refuses_what_does_not_fit_and_counts_nothing_for_it() -> None:
    store = FakeStore()
    quota = store.quota(100)
    store.put(quota, "a", 60)
    with pytest.raises(QuotaExceeded, match="60 bytes of blobs no block references already fill"):
        quota.reserve("b", 50)
    assert quota.pending_bytes() == 60
    store.put(quota, "c", 40)  # exactly the limit
    with pytest.raises(QuotaExceeded):
        quota.check(1)


def test_a_referenced_blob_stops_counting() -> None:
    store = FakeStore()
    quota = store.quota(100)
    store.put(quota, "model-1", 80)
    store.referenced.add("model-1")  # a block names it
    store.put(quota, "model-2", 80)
    assert quota.pending_bytes() == 80


def test_a_blob_removed_behind_the_ledgers_back_does_not_cause_a_refusal() -> None:
    store = FakeStore()
    quota = store.quota(100)
    store.put(quota, "old", 90)
    del store.files["old"]  # `fedchain ledger gc` from another process
    store.put(quota, "new", 90)  # the tally said full: the store's truth says not
    assert quota.pending_bytes() == 90


def test_a_repeated_upload_of_the_same_blob_counts_once() -> None:
    store = FakeStore()
    quota = store.quota(100)
    store.put(quota, "same", 70)
    store.put(quota, "same", 70)
    assert quota.pending_bytes() == 70


def test_concurrent_uploads_cannot_both_take_the_last_free_bytes() -> None:
    store = FakeStore()
    quota = store.quota(100)
    store.put(quota, "first", 40)
    results: list[str] = []
    gate = threading.Barrier(8)

    def upload(i: int) -> None:
        gate.wait()
        try:
            quota.reserve(f"racer-{i}", 50)  # not stored yet: a rescan cannot see it
            results.append("ok")
        except QuotaExceeded:
            results.append("refused")

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["ok"] + ["refused"] * 7
    assert quota.pending_bytes() == 90


def test_a_failed_upload_gives_its_bytes_back(tmp_path: Path) -> None:
    blob = len(model_blob(1))
    store = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path / "blobs", blob_quota_bytes=blob)
    try:
        with pytest.raises(InvalidBlob):
            store.put_blob(b"not a safetensors file" + b"\0" * (blob - 22))
        assert store.quota.pending_bytes() == 0
        digest = store.put_blob(model_blob(1))  # the whole quota is still free
        with pytest.raises(QuotaExceeded):
            store.put_blob(model_blob(2))
        assert [b.digest for b in store.blobs.stored()] == [digest]
        assert store.remove_blobs([digest]) == [digest]
        store.put_blob(model_blob(2))  # removed: its bytes are free again
    finally:
        store.close()
