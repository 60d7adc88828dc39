"""A lost append reply must not double a round.

When the ledger commits a round block but the reply never reaches the entry (ledger killed
or connection reset right after the commit, MySQL dropping the connection during COMMIT),
the entry sees an error and runs round r again, building a *new* block for round r on top
of the stored one (other timestamp, other model). Nothing in the chain's rules stops that
second block today, so "no round doubled" rests on timing alone. This test stores such a
retry the way the entry would and asks that the ledger refuse it or ``verify`` flag it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save

from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import RoundPayload, build_block
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.errors import LedgerRejected


def _blob(seed: int) -> bytes:
    return save({"base.weight": np.random.default_rng(seed).standard_normal(16).astype(np.float32)})


def test_a_second_block_for_the_same_round_is_refused_or_flagged(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path / "blobs")
    entry, en = NodeKey.generate(), NodeKey.generate()
    ts = [1_700_000_000_000]

    def add(kind: str, payload: object, prev: object) -> object:
        ts[0] += 1000
        return ledger.append(build_block(kind, payload, prev, entry, ts[0]))  # type: ignore[arg-type]

    try:
        tip = add("genesis", {"config": {"algorithm": "fedper"}, "model_digest": ledger.put_blob(_blob(0)),
                              "entry_node_id": entry.node_id, "entry_public_key": entry.public_hex}, None)
        tip = add("node_joined", {"node_id": en.node_id, "role": "EN", "public_key": en.public_hex,
                                  "parent_sn": "", "address": "127.0.0.1:7000"}, tip)

        def round_one(seed: int) -> RoundPayload:
            return RoundPayload.create(1, "fedper", 1, ledger.put_blob(_blob(seed)), [],
                                       metrics={"accuracy": 0.5})

        tip = add("round", round_one(1), tip)  # committed; the entry never heard back
        try:
            add("round", round_one(2), tip)  # the entry's retry of round 1
            refused = False
        except LedgerRejected:
            refused = True
        report = ledger.verify()
        assert refused or not report.ok, (
            "the ledger stored two blocks for round 1 and verify calls the chain fine: "
            f"{report.summary()}"
        )
    finally:
        ledger.close()
