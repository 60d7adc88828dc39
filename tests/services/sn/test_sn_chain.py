"""The entry's chain writer when an append's reply is lost: a block that landed counts as appended
(no second block for the same round); one that did not land is still an error; a refusal is
raised as it is, without reading the chain back."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save

from fedchain.services.ledger.store import Ledger
from fedchain.services.sn.chain import EntryChain
from fedchain.services.sn.entry.model import GlobalModel
from fedchain.shared.chain.blocks import RoundPayload
from fedchain.shared.chain.treehead import ChainWentBackwards, TreeHead, head_for
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.errors import HeightConflict, LedgerUnavailable


class LossyLedger:
    """A real ledger whose next append(s) misbehave: commit-then-fail, or fail without committing."""

    def __init__(self, ledger: Ledger) -> None:
        self.inner = ledger
        self.mode = "ok"  # "ok" | "lose_reply" | "down" | "refuse"
        self.get_down = False
        self.gets = 0

    def append(self, block: Any) -> Any:
        if self.mode == "lose_reply":
            self.inner.append(block)
            raise LedgerUnavailable("connection reset after commit")
        if self.mode == "down":
            raise LedgerUnavailable("ledger is down")
        if self.mode == "refuse":
            raise HeightConflict("height taken by another block")
        return self.inner.append(block)

    def get(self, height: int) -> Any:
        self.gets += 1
        if self.get_down:
            raise LedgerUnavailable("ledger is down")
        return self.inner.get(height)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[EntryChain, LossyLedger, NodeKey]]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path / "blobs")
    lossy = LossyLedger(ledger)
    entry, en = NodeKey.generate(), NodeKey.generate()
    writer = EntryChain(lossy, entry)  # type: ignore[arg-type]
    writer.append("genesis", {"config": {"algorithm": "fedper"}, "model_digest": ledger.put_blob(_blob(0)),
                              "entry_node_id": entry.node_id, "entry_public_key": entry.public_hex})
    writer.append("node_joined", {"node_id": en.node_id, "role": "EN", "public_key": en.public_hex,
                                  "parent_sn": "", "address": "127.0.0.1:7000"})
    yield writer, lossy, en
    ledger.close()


def _blob(seed: int) -> bytes:
    return save({"base.weight": np.random.default_rng(seed).standard_normal(8).astype(np.float32)})


def _round(ledger: LossyLedger, number: int, en: NodeKey) -> RoundPayload:
    return RoundPayload.create(number, "fedper", number, ledger.inner.put_blob(_blob(number)), [],
                               metrics={"accuracy": 0.5})


def test_a_block_stored_before_its_reply_was_lost_counts_as_appended(chain: Any) -> None:
    writer, lossy, en = chain
    lossy.mode = "lose_reply"
    block = writer.append("round", _round(lossy, 1, en))
    assert block.height == 2 and block.payload.round == 1
    assert lossy.inner.tip().hash == block.hash
    assert writer.cached_height == 2
    lossy.mode = "ok"
    writer.append("round", _round(lossy, 2, en))  # the next round follows; round 1 is stored once
    rounds = [b.payload.round for b in lossy.inner.range(0, 10) if str(b.kind) == "round"]
    assert rounds == [1, 2]
    assert lossy.inner.verify().ok


def test_an_append_that_did_not_land_is_still_an_error(chain: Any) -> None:
    writer, lossy, en = chain
    lossy.mode = "down"
    with pytest.raises(LedgerUnavailable):
        writer.append("round", _round(lossy, 1, en))
    lossy.get_down = True  # and when the tip cannot be re-read either
    with pytest.raises(LedgerUnavailable):
        writer.append("round", _round(lossy, 1, en))
    assert lossy.inner.tip().height == 1


def test_a_refused_append_is_raised_as_it_is(chain: Any) -> None:
    writer, lossy, en = chain
    lossy.mode = "refuse"
    with pytest.raises(HeightConflict):
        writer.append("round", _round(lossy, 1, en))
    assert lossy.gets == 0  # a refusal changed nothing: there is nothing to read back
    assert lossy.inner.tip().height == 1 and writer.cached_height == 1


# ---- signed tree heads: the entry keeps its last head outside the database ----

def _entry_on(db: Path, blobs: Path, key: NodeKey, state: Path) -> tuple[Ledger, EntryChain]:
    ledger = Ledger(f"sqlite:///{db}", blobs)
    writer = EntryChain(ledger, key, state)
    return ledger, writer


def _grow(writer: EntryChain, ledger: Ledger, key: NodeKey, en: NodeKey, rounds: range) -> None:
    if ledger.height() < 0:
        writer.append("genesis", {"config": {"algorithm": "fedper"}, "model_digest": ledger.put_blob(_blob(0)),
                                  "entry_node_id": key.node_id, "entry_public_key": key.public_hex})
        writer.append("node_joined", {"node_id": en.node_id, "role": "EN", "public_key": en.public_hex,
                                      "parent_sn": "", "address": "127.0.0.1:7000"})
    for r in rounds:
        writer.append("round", RoundPayload.create(r, "fedper", r, ledger.put_blob(_blob(r)), [],
                                                   metrics={"accuracy": 0.5}))


@pytest.fixture
def entry_state(tmp_path: Path) -> tuple[Path, Path, NodeKey, NodeKey, Path]:
    """A chain of 5 blocks written by an entry that kept its heads in ``state``."""
    db, blobs, state = tmp_path / "ledger.db", tmp_path / "blobs", tmp_path / "entry"
    key, en = NodeKey.generate(), NodeKey.generate()
    ledger, writer = _entry_on(db, blobs, key, state)
    writer.check_head()  # an empty chain and no head yet: nothing to hold it to
    _grow(writer, ledger, key, en, range(1, 4))
    ledger.close()
    return db, blobs, key, en, state


def _start(entry_state: tuple[Path, Path, NodeKey, NodeKey, Path]) -> tuple[Ledger, EntryChain]:
    db, blobs, key, _en, state = entry_state
    ledger, writer = _entry_on(db, blobs, key, state)
    return ledger, writer


def _refused_at_start_up(entry_state: tuple[Path, Path, NodeKey, NodeKey, Path]) -> str:
    """What the entry says when it starts on the ledger (ConfigError: one line, exit 2)."""
    ledger, writer = _start(entry_state)
    try:
        with pytest.raises(ConfigError) as info:
            GlobalModel(writer, 1 << 20).bootstrap(Settings(state_dir=entry_state[4]), entry_state[2])
    finally:
        ledger.close()
    message = str(info.value)
    assert "\n" not in message and str(entry_state[4] / "tree_head.json") in message
    return message


def test_every_block_is_followed_by_a_signed_head_kept_outside_the_database(entry_state: Any) -> None:
    ledger, writer = _start(entry_state)
    saved = TreeHead.load(entry_state[4] / "tree_head.json")
    assert saved is not None and saved.size == 5 and ledger.tree_head() == saved
    saved.check_signature(entry_state[2].public_bytes)
    hashes = [b.hash for b in ledger.range(0, 10)]
    assert saved.root == head_for(hashes[0], hashes, 0).root and saved.chain_id == hashes[0]
    writer.check_head()  # a restart on the same chain
    latest = writer.latest_head()
    assert latest is not None and latest.size == 5 and ledger.tree_head() == saved
    _grow(writer, ledger, entry_state[2], entry_state[3], range(4, 5))
    assert writer.latest_head().size == 6 and ledger.tree_head() == writer.latest_head()  # type: ignore[union-attr]
    ledger.close()


def test_the_entry_refuses_a_chain_cut_back_behind_its_head(entry_state: Any) -> None:
    with sqlite3.connect(entry_state[0]) as conn:
        kept = conn.execute("SELECT height, hash FROM blocks WHERE height = 2").fetchone()
        conn.execute("DELETE FROM blocks WHERE height > 2")
        conn.execute("DELETE FROM tree_heads")
        conn.execute("UPDATE ledger_meta SET value = ? WHERE name = 'tip'", (f"2 {kept[1].hex()}",))
    ledger, writer = _start(entry_state)
    with pytest.raises(ChainWentBackwards, match="3 blocks now, 5 seen before"):
        writer.check_head()
    ledger.close()
    assert "went backwards" in _refused_at_start_up(entry_state)


def test_the_entry_refuses_a_chain_re_signed_from_a_new_genesis(entry_state: Any) -> None:
    with sqlite3.connect(entry_state[0]) as conn:
        for table in ("blocks", "tree_heads"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("UPDATE ledger_meta SET value = '-1 ' WHERE name = 'tip'")
    db, blobs, _key, en, state = entry_state
    forger = NodeKey.generate()
    ledger, writer = _entry_on(db, blobs, forger, state.parent / "forger")
    _grow(writer, ledger, forger, en, range(1, 5))  # 6 blocks: longer than the real chain
    ledger.close()
    message = _refused_at_start_up(entry_state)
    assert "genesis changed" in message


def test_the_entry_refuses_a_database_rolled_back_to_an_older_copy(entry_state: Any) -> None:
    db, blobs, key, en, state = entry_state
    backup = db.with_name("backup.db")
    shutil.copy(db, backup)  # a copy taken at 5 blocks (the store was closed: no WAL pending)
    ledger, writer = _start(entry_state)
    writer.check_head()
    _grow(writer, ledger, key, en, range(4, 6))  # 7 blocks, head 7 signed
    ledger.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, db)
    assert "went backwards: 5 blocks now, 7 seen before" in _refused_at_start_up(entry_state)
    # rolled back, then grown to as many blocks by an entry that had lost its head: a fork
    ledger, writer = _entry_on(db, blobs, key, state.parent / "elsewhere")
    for r in (4, 5):
        writer.append("round", RoundPayload.create(r, "fedper", r, ledger.put_blob(_blob(r + 50)),
                                                   []))
    ledger.close()
    assert "does not extend" in _refused_at_start_up(entry_state)
