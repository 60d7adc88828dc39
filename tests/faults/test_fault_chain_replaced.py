"""A chain re-signed from a new genesis under a real network. ``fedchain verify --genesis``
reports it replaced, the entry refuses to start on it, and when it is made to start anyway
no EN is live on it (every EN message is signed over the chain id it joined): none trains
its rounds, and each shows the refusal in its /status.

The network is the entry (embedded SQLite ledger, its own SN part) and two ENs.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from tests.faults.chain_heads_kit import entry_refuses_to_start, head_file, re_sign_from_a_new_genesis, trained_network
from tests.faults.cluster import verify_cli
from tests.network.harness import LocalNet, Proc

pytestmark = pytest.mark.slow  # it starts a real multi-process network


def _reports_another_chain(net: LocalNet, en: Proc) -> bool:
    return "another chain" in (net.get("/status", en)["chain_error"] or "")


def test_chain_re_signed_from_a_new_genesis(tmp_path: Path) -> None:
    with trained_network(tmp_path, 1) as (net, edges):
        assert net.entry is not None
        net.kill(net.entry, 15)
        genesis, rounds = re_sign_from_a_new_genesis(net.entry.state_dir)
        done = verify_cli("--state-dir", str(net.entry.state_dir), "--genesis", genesis.hex())
        assert done.returncode == 1 and "the chain was replaced" in done.stdout, done.stdout
        entry_refuses_to_start(net, "genesis changed")
        head_file(net).rename(head_file(net).with_suffix(".moved"))
        net.restart(net.entry)
        net.wait_healthy(net.entry)
        # Every EN message is signed over the chain id: its heartbeats do not hold on the
        # replaced chain, so no EN is live there and none trains a round of it.
        r = net.post("/train", {"rounds": 1})  # or the plan, now short of its round, resumes
        assert r.status_code == 202 or "already running" in r.text, r.text
        status = net.wait_for(
            lambda: (s := net.get("/status"))["state"] != "training" and s, "the refused round", 120
        )
        assert status["round"] == rounds and "no live edge node" in (status["error"] or ""), status
        assert status["ens"] == 0 and all(net.get("/status", en)["round"] == 1 for en in edges)
        for en in edges:  # each EN says why it is not training: its re-join met another chain
            net.wait_for(partial(_reports_another_chain, net, en), f"{en.name} to report it", 90)
