"""While the ledger process is down the entry keeps training "on hold": /status answers with
state "training" and an error saying it waits for the ledger, the chain pages answer 503 with a
one-line detail, and once the ledger is back the target round is reached, each round once."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.faults.cluster import (
    assert_rounds_exactly_once,
    start_ledger,
    start_network,
    start_training,
    wait_done,
    wait_ledger,
    wait_round,
)
from tests.network.harness import LocalNet

pytestmark = pytest.mark.slow  # starts a real multi-process network

ROUNDS = 30


def test_the_entry_waits_for_a_ledger_that_is_down_and_says_so(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net")
    try:
        ledger = start_ledger(net)
        wait_ledger(net, ledger)
        start_network(net, 1, "--ledger", f"127.0.0.1:{ledger.port}", sns=0)
        # enough rounds that the ledger is killed mid-training (one of these takes ~0.3 s)
        target = start_training(net, ROUNDS)
        wait_round(net, 1)
        net.kill(ledger)
        height = net.get("/status")["height"]
        status = net.wait_for(
            lambda: (s := net.get("/status"))["error"] and "waiting for the ledger" in s["error"] and s,
            "/status to say the entry waits for the ledger", timeout=120,
        )
        assert status["state"] == "training", status
        assert status["height"] == height, "the cached height should stay while the ledger is down"
        assert net.entry is not None
        r = httpx.get(net.entry.http + "/blocks", timeout=30)
        assert r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert "ledger" in detail and "\n" not in detail, detail
        time.sleep(1)
        assert net.get("/status")["state"] == "training", "the entry gave up while the ledger was down"
        net.restart(ledger)
        wait_ledger(net, ledger)
        done = wait_done(net, target)
        assert done["round"] == target == ROUNDS and done["error"] is None, done
        assert_rounds_exactly_once(net, ROUNDS)
    finally:
        net.close()
