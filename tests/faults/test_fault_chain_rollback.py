"""A chain shortened under a real network: the database rolled back to an older copy while
the network runs. The entry fails its next round ("refusing to append"), ``fedchain verify``
given its last head names what is missing, the entry refuses to start on it, and the ENs
(the entry started anyway, its kept head moved away) refuse the next round and say so.

The network is the entry (embedded SQLite ledger, its own SN part) and two ENs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fedchain.shared.chain.treehead import TreeHead
from tests.faults.chain_heads_kit import (
    db,
    ens_refuse_the_next_round,
    entry_refuses_to_start,
    head_file,
    trained_network,
    verify_fails_on_the_head,
)
from tests.faults.cluster import start_training, wait_done

pytestmark = pytest.mark.slow  # it starts a real multi-process network


def test_database_rolled_back_while_the_network_runs(tmp_path: Path) -> None:
    with trained_network(tmp_path, 1) as (net, edges):
        backup = tmp_path / "backup.db"
        with sqlite3.connect(db(net)) as live, sqlite3.connect(backup) as copy:
            live.backup(copy)  # an online copy at round 1
        start_training(net, 2)
        wait_done(net, 3)
        with sqlite3.connect(backup) as copy, sqlite3.connect(db(net)) as live:
            copy.backup(live)  # the running entry's database, rolled back under it
        start_training(net, 1)
        status = net.wait_for(
            lambda: (s := net.get("/status"))["state"] != "training" and s, "the next round", 240
        )
        assert "refusing to append: the chain went backwards" in (status["error"] or ""), status
        verify_fails_on_the_head(net, "missing")
        assert net.entry is not None
        net.kill(net.entry, 15)
        entry_refuses_to_start(net, "went backwards")
        last = TreeHead.load(head_file(net))  # the entry's last head: what the ENs hold too
        assert last is not None
        ens_refuse_the_next_round(net, edges, "went backwards")
        assert [net.get("/status", en)["head_size"] for en in edges] == [last.size] * 2
