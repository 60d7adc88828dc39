"""A chain shortened at rest: the last blocks deleted and the tip row rewritten. ``fedchain
verify`` given the entry's last head names the missing heights, the entry refuses to start,
and the ENs refuse the next round of an entry started anyway.

The network is the entry (embedded SQLite ledger, its own SN part) and two ENs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from fedchain.shared.chain.treehead import TreeHead
from tests.faults.chain_heads_kit import (
    db,
    ens_refuse_the_next_round,
    entry_refuses_to_start,
    head_file,
    trained_network,
    verify_fails_on_the_head,
)
from tests.services.ledger.ledger_kit import truncate

pytestmark = pytest.mark.slow  # it starts a real multi-process network


def test_last_blocks_deleted_and_the_tip_row_rewritten(tmp_path: Path) -> None:
    with trained_network(tmp_path, 2) as (net, edges):
        assert net.entry is not None
        net.kill(net.entry, 15)
        head = TreeHead.load(head_file(net))
        assert head is not None
        engine = sa.create_engine(f"sqlite:///{db(net)}")
        truncate(engine, keep=head.size - 2)  # the two round blocks gone, the tip row rewritten
        engine.dispose()
        verify_fails_on_the_head(net, f"blocks {head.size - 2}..{head.size - 1} are missing")
        entry_refuses_to_start(net, "went backwards")
        ens_refuse_the_next_round(net, edges, "went backwards")
