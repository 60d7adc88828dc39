"""The ledger contract, written once: every backend runs these tests through ``LedgerContract``.

A backend is a subclass of ``LedgerContractSuite`` that implements ``open_backend`` (as
Flower's ``linkstate`` tests do with a state factory): ``test_ledger_contract.py`` runs the
suite on the SQLite store, the MySQL store and the gRPC client of a live ledger service.
Each backend bounds blocks to ``MAX_BLOCK`` and blobs to ``MAX_BLOB`` bytes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from ledger_kit import Federation, model_blob, update_digest

from fedchain.services.ledger.blobs import BlobStore
from fedchain.shared.chain.blocks import Block, RoundPayload, build_block
from fedchain.shared.chain.treehead import check_extends, head_for
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.contract import LedgerContract
from fedchain.shared.ledger.errors import (
    HeightConflict,
    InvalidBlob,
    InvalidBlock,
    InvalidTreeHead,
    LedgerCorrupt,
    LedgerError,
    LedgerUnavailable,
    MissingBlob,
    NotFound,
    OutOfSequence,
    ProducerRejected,
    TooLarge,
)
from tests.shared.chain.evidence_kit import unsigned_round

MAX_BLOCK = 8 * 1024
MAX_BLOB = 256 * 1024


@dataclass
class Backend:
    """One ledger under test and the handles a test needs around it."""

    ledger: LedgerContract
    blobs: BlobStore
    """The blob folder behind the ledger (a test damages a blob there, as a disk fault would)."""
    stop: Callable[[], None]
    """Take the backend away (close the store, stop the service); the ledger stays in hand."""
    close: Callable[[], None]
    """Release everything (called once after the test, also after ``stop``)."""


Snapshot = tuple[int, Block | None, list[Block]]


def snapshot(ledger: LedgerContract) -> Snapshot:
    """What a refusal must leave unchanged: height, tip and every block."""
    return ledger.height(), ledger.tip(), ledger.range(0, 1000)


def _refusal(fed: Federation, case: str) -> tuple[object, type[LedgerError], str]:
    """(bad block or value, error class, message fragment) for one kind of bad append."""
    tip = fed.tip
    assert tip is not None
    digest = fed.blocks[0].payload.model_digest  # type: ignore[union-attr]
    ck = {"model_version": 9, "model_digest": digest, "note": ""}
    good = build_block("checkpoint", ck, tip, fed.entry)
    stranger = NodeKey.generate()

    def round_block(number: int, updates: int = 1) -> Block:
        return build_block("round", unsigned_round(number, digest, updates), tip, fed.entry)

    cases: dict[str, tuple[object, type[LedgerError], str]] = {
        "wrong prev hash": (
            build_block("checkpoint", ck, dataclasses.replace(tip, hash=b"\x07" * 32), fed.entry),
            OutOfSequence,
            "prev_hash",
        ),
        "height gap": (
            build_block(
                "checkpoint", ck, dataclasses.replace(tip, height=tip.height + 5), fed.entry
            ),
            OutOfSequence,
            "does not follow",
        ),
        "height conflict": (
            build_block("checkpoint", ck, fed.blocks[4], fed.entry),
            HeightConflict,
            "height 5 already holds",
        ),
        "repeated round": (round_block(3), InvalidBlock, "records round 3.*next round is 4"),
        "skipped round": (round_block(5), InvalidBlock, "records round 5.*next round is 4"),
        "bad signature": (
            dataclasses.replace(good, signature=stranger.sign(good.hash)),
            InvalidBlock,
            "signature",
        ),
        "hash not over contents": (
            dataclasses.replace(good, timestamp_ms=good.timestamp_ms + 1),
            InvalidBlock,
            "hash does not match",
        ),
        "unknown producer": (
            build_block("checkpoint", ck, tip, stranger),
            ProducerRejected,
            "not an admitted",
        ),
        "revoked producer": (
            build_block("checkpoint", ck, tip, fed.ens[1]),
            ProducerRejected,
            "revoked",
        ),
        "missing blob": (
            build_block("checkpoint", {**ck, "model_digest": "ab" * 32}, tip, fed.entry),
            MissingBlob,
            "put the blob",
        ),
        "too large": (
            round_block(4, updates=MAX_BLOCK // 256),  # participant rows alone fill MAX_BLOCK
            TooLarge,
            f"exceeds the limit of {MAX_BLOCK}",
        ),
        "not a block": ({"height": tip.height + 1}, InvalidBlock, "needs a Block"),
    }
    return cases[case]


REFUSALS = [
    "wrong prev hash",
    "height gap",
    "height conflict",
    "repeated round",
    "skipped round",
    "bad signature",
    "hash not over contents",
    "unknown producer",
    "revoked producer",
    "missing blob",
    "too large",
    "not a block",
]


class LedgerContractSuite(ABC):
    """The contract every ledger backend keeps. Subclasses implement ``open_backend``."""

    @abstractmethod
    def open_backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
        """A fresh, empty ledger of this backend (limits ``MAX_BLOCK`` and ``MAX_BLOB``)."""

    @pytest.fixture
    def backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
        opened = self.open_backend(request, tmp_path)
        try:
            yield opened
        finally:
            opened.close()

    @pytest.fixture
    def fed(self, backend: Backend) -> Federation:
        """The standard ten-block chain (genesis, joins, rounds 1-3, checkpoints, a leave)."""
        federation = Federation(backend.ledger)
        federation.standard_chain()
        return federation

    # ------------------------------------------------------------------ blocks
    def test_an_empty_chain(self, backend: Backend) -> None:
        ledger = backend.ledger
        assert ledger.tip() is None and ledger.height() == -1
        assert ledger.get(0) is None and ledger.range(0, 10) == []
        report = ledger.verify()
        assert (report.ok, report.checked, report.height) == (True, 0, None)
        assert report.summary() == "ok: the chain is empty"

    def test_appended_blocks_read_back_by_tip_get_and_range(self, fed: Federation) -> None:
        ledger, blocks = fed.ledger, fed.blocks
        assert ledger.height() == 9 and ledger.tip() == blocks[-1]
        assert ledger.get(4) == blocks[4] and ledger.get(0) == blocks[0]
        assert ledger.get(10) is None and ledger.get(-1) is None and ledger.get(2**64) is None
        assert ledger.range(3, 4) == blocks[3:7]
        assert ledger.range(8, 100) == blocks[8:]
        assert ledger.range(-5, 2) == blocks[:2]
        assert ledger.range(3, 0) == [] and ledger.range(10, 5) == [] and ledger.range(2**64, 1) == []
        report = ledger.verify()
        assert (report.ok, report.checked, report.height, report.reason) == (True, 10, 9, None)

    def test_appending_a_stored_block_again_returns_it_and_adds_nothing(
        self, fed: Federation
    ) -> None:
        ledger = fed.ledger
        before = snapshot(ledger)
        assert ledger.append(fed.blocks[9]) == fed.blocks[9]
        assert ledger.append(fed.blocks[4]) == fed.blocks[4]
        assert snapshot(ledger) == before

    @pytest.mark.parametrize("case", REFUSALS)
    def test_a_refused_append_raises_its_class_and_changes_nothing(
        self, fed: Federation, case: str
    ) -> None:
        ledger = fed.ledger
        bad, error, fragment = _refusal(fed, case)
        before = snapshot(ledger)
        with pytest.raises(error, match=fragment) as info:
            ledger.append(bad)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)
        assert snapshot(ledger) == before
        assert ledger.verify().ok
        fed.checkpoint(3)  # the chain still takes the right next block
        assert ledger.height() == 10

    def test_four_concurrent_writers_lose_and_duplicate_nothing(self, fed: Federation) -> None:
        ledger = fed.ledger
        digest = fed.blocks[0].payload.model_digest  # type: ignore[union-attr]
        start, each = ledger.height(), 6
        go = threading.Barrier(4)

        def write(name: str) -> None:
            go.wait(30)
            for i in range(each):
                deadline = time.monotonic() + 60
                while True:  # build on the tip read, retry when another writer took it
                    payload = {"model_version": i, "model_digest": digest, "note": f"{name}-{i}"}
                    block = build_block("checkpoint", payload, ledger.tip(), fed.entry)
                    try:
                        ledger.append(block)
                        break
                    except (HeightConflict, OutOfSequence):
                        assert time.monotonic() < deadline, f"{name} never got its block in"

        with ThreadPoolExecutor(4) as pool:
            for done in [pool.submit(write, f"w{n}") for n in range(4)]:
                done.result(timeout=120)  # a writer's failure fails the test
        assert ledger.height() == start + 4 * each
        notes = Counter(b.payload.note for b in ledger.range(start + 1, 1000))  # type: ignore[union-attr]
        assert notes == Counter(f"w{n}-{i}" for n in range(4) for i in range(each))
        report = ledger.verify()
        assert report.ok and report.checked == start + 1 + 4 * each

    # ------------------------------------------------------------------ blobs
    def test_blobs_round_trip(self, backend: Backend) -> None:
        ledger = backend.ledger
        data = model_blob(3, size=50_000)  # ~200 KB: many chunks on a streaming backend
        digest = ledger.put_blob(data)
        assert ledger.put_blob(data) == digest  # idempotent
        assert ledger.put_blob(data, expected_digest=digest) == digest
        assert ledger.has_blob(digest) and not ledger.has_blob("e" * 64)
        assert ledger.get_blob(digest) == data
        assert ledger.get_blob(digest, max_bytes=len(data)) == data

    def test_bad_blobs_are_refused_and_nothing_is_stored(self, backend: Backend) -> None:
        ledger = backend.ledger
        stored = ledger.put_blob(model_blob(5))
        other = model_blob(6)
        big = model_blob(7, size=MAX_BLOB // 4 + 100)
        with pytest.raises(InvalidBlob, match="not a safetensors file"):
            ledger.put_blob(b"\x80\x04 pickled tensors are never accepted")
        with pytest.raises(InvalidBlob, match="announced"):
            ledger.put_blob(other, expected_digest=stored)
        with pytest.raises(TooLarge, match="exceeds the limit"):
            ledger.put_blob(big)
        for bad_digest in ("../../etc/passwd", "AB" * 32):
            with pytest.raises(InvalidBlob, match="64 lowercase hex"):
                ledger.get_blob(bad_digest)
            with pytest.raises(InvalidBlob, match="64 lowercase hex"):
                ledger.has_blob(bad_digest)
        with pytest.raises(NotFound, match="no blob"):
            ledger.get_blob("1" * 64)
        with pytest.raises(TooLarge, match="larger than 100 bytes"):
            ledger.get_blob(stored, max_bytes=100)
        assert sorted(p.name for p in backend.blobs.root.glob("??/*")) == [stored]

    def test_a_damaged_blob_is_corrupt_and_verify_names_the_block(
        self, backend: Backend, fed: Federation
    ) -> None:
        ledger = fed.ledger
        digest = fed.blocks[4].payload.model_digest  # type: ignore[union-attr]  # round 1 only
        path = backend.blobs.path(digest)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
        with pytest.raises(LedgerCorrupt, match=digest[:16]):
            ledger.get_blob(digest)
        report = ledger.verify()
        assert (report.ok, report.checked, report.height) == (False, 4, 4), report.summary()
        assert report.reason is not None and "altered" in report.reason

    # ------------------------------------------------------------------ proofs
    def test_inclusion_proofs(self, fed: Federation) -> None:
        ledger = fed.ledger
        payload = fed.blocks[5].payload
        assert isinstance(payload, RoundPayload)
        digests = payload.update_digests
        for i in range(2):
            proof = ledger.inclusion_proof(5, digests[i])
            assert (proof.height, proof.index, proof.tree_size) == (5, i, 2) and proof.verify()
            assert proof.root.hex() == payload.merkle_root
            assert (proof.node_id, proof.samples) == (
                payload.participants[i].node_id, payload.participants[i].samples
            )
        good = ledger.inclusion_proof(5, digests[0])
        assert not dataclasses.replace(good, update_digest=update_digest(999)).verify()
        assert not dataclasses.replace(good, samples=good.samples + 1).verify()
        assert not dataclasses.replace(good, node_id=payload.participants[1].node_id).verify()
        with pytest.raises(NotFound, match="not in round block 5"):
            ledger.inclusion_proof(5, update_digest(999))
        with pytest.raises(InvalidBlock, match="not a round block"):
            ledger.inclusion_proof(1, digests[0])
        for height in (50, -1):
            with pytest.raises(NotFound, match=f"no block at height {height}"):
                ledger.inclusion_proof(height, update_digest(200))

    # ------------------------------------------------------------------ tree heads
    def test_signed_tree_heads_and_consistency_proofs(self, fed: Federation) -> None:
        ledger = fed.ledger
        hashes = [b.hash for b in fed.blocks]
        assert ledger.tree_head() is None
        with pytest.raises(InvalidTreeHead, match="not by the entry"):
            ledger.put_tree_head(head_for(hashes[0], hashes, 1).signed(fed.ens[0]))
        with pytest.raises(InvalidTreeHead, match="holds 10"):
            ledger.put_tree_head(head_for(hashes[0], hashes * 2, 1).signed(fed.entry))
        with pytest.raises(InvalidTreeHead, match="root"):
            ledger.put_tree_head(head_for(hashes[0], hashes[::-1], 1).signed(fed.entry))
        assert ledger.tree_head() is None
        old = fed.sign_head()
        assert ledger.tree_head() == old and ledger.put_tree_head(old) == old  # idempotent
        fed.checkpoint(4)
        new = fed.sign_head()
        assert ledger.tree_head() == new
        check_extends(old, new, ledger.consistency(old.size, new.size))
        assert ledger.consistency(0, 11) == [] and ledger.consistency(11, 11) == []
        with pytest.raises(InvalidTreeHead, match="older than the stored head"):
            ledger.put_tree_head(old)
        with pytest.raises(NotFound, match="holds 11 blocks"):
            ledger.consistency(3, 12)
        with pytest.raises(InvalidTreeHead, match="smaller to a larger"):
            ledger.consistency(4, 3)

    # ------------------------------------------------------------------ unavailable
    def _assert_every_method_is_unavailable(self, ledger: LedgerContract, fed: Federation) -> None:
        digest = fed.blocks[0].payload.model_digest  # type: ignore[union-attr]
        block = build_block(
            "checkpoint", {"model_version": 3, "model_digest": digest, "note": ""}, fed.tip, fed.entry
        )
        hashes = [b.hash for b in fed.blocks]
        head = head_for(hashes[0], hashes, 1).signed(fed.entry)
        calls: dict[str, Callable[[], object]] = {
            "tip": ledger.tip,
            "height": ledger.height,
            "get": lambda: ledger.get(1),
            "range": lambda: ledger.range(0, 5),
            "append": lambda: ledger.append(block),
            "put_blob": lambda: ledger.put_blob(model_blob(42)),
            "get_blob": lambda: ledger.get_blob(digest),
            "has_blob": lambda: ledger.has_blob(digest),
            "verify": ledger.verify,
            "inclusion_proof": lambda: ledger.inclusion_proof(5, update_digest(200)),
            "tree_head": ledger.tree_head,
            "consistency": lambda: ledger.consistency(1, 5),
            "put_tree_head": lambda: ledger.put_tree_head(head),
        }
        start = time.monotonic()
        for name, call in calls.items():
            with pytest.raises(LedgerUnavailable) as info:
                call()
            assert str(info.value) and "\n" not in str(info.value), name
        assert time.monotonic() - start < 30

    def test_a_stopped_backend_is_unavailable(self, backend: Backend, fed: Federation) -> None:
        backend.stop()
        self._assert_every_method_is_unavailable(backend.ledger, fed)

    def test_a_closed_ledger_is_unavailable(self, backend: Backend, fed: Federation) -> None:
        backend.ledger.close()
        self._assert_every_method_is_unavailable(backend.ledger, fed)
