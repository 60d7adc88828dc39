"""The entry's chain writer when an append's reply is lost: a block that landed counts as appended
(no second block for the same round); one that did not land is still an error; a refusal is
raised as it is, without reading the chain back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save

from fedchain.services.ledger.store import Ledger
from fedchain.services.sn.chain import EntryChain
from fedchain.shared.chain.blocks import RoundPayload
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
    return RoundPayload.create(number, "fedper", number, ledger.inner.put_blob(_blob(number)), [en.node_id],
                               ["cd" * 32], [], {"accuracy": 0.5})


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
