"""Live counts and graceful shutdown on a real network: /status's "ens"/"sns" are the federation's
live nodes (on the entry and on any SN), and an EN stopped with SIGTERM in the middle of its local
training exits 0 within seconds (not 134 from torch being torn down under a running thread)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.network.harness import LocalNet

pytestmark = pytest.mark.slow  # starts a real multi-process network

# Many local epochs on a small share, so an EN spends seconds inside torch every round.
FL = ["--dataset", "mnist-sample", "--clients", "2", "--max-samples", "1000", "--local-epochs", "40",
      "--quorum", "0.5", "--seed", "3"]
EXIT_WITHIN_S = 10.0


def _status(url: str) -> dict[str, Any]:
    r = httpx.get(url + "/status", timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_status_counts_live_nodes_and_a_sigterm_mid_round_exits_0(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net", FEDCHAIN_HEARTBEAT_TIMEOUT="3")
    try:
        entry = net.start_entry(*FL)
        net.wait_healthy(entry)
        sn = net.start_sn("sn-1")
        net.wait_for(lambda: net.get("/status")["sns"] == 2, "the SN to join")
        ens = [net.start_en(f"en-{i}") for i in range(2)]
        net.wait_edges(2)
        listed = sum(row["ens"] for row in net.get("/sn"))
        assert listed == 2
        for proc in (entry, sn):  # the same federation-wide counts whichever SN is asked
            s = _status(proc.http)
            assert (s["ens"], s["sns"]) == (2, 2), f"{proc.name}: {s}"

        r = net.post("/train", {"rounds": 3})
        assert r.status_code == 202, r.text
        victim = ens[0]
        net.wait_for(lambda: _status(victim.http)["state"] == "training", "en-0 to be training", timeout=120)
        victim.popen.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        try:
            code = victim.popen.wait(timeout=EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"en-0 still running {EXIT_WITHIN_S} s after SIGTERM\n{net.logs()}") from None
        assert code == 0, f"en-0 exited with {code} after SIGTERM mid-round\n{net.logs()}"
        assert time.monotonic() - t0 < EXIT_WITHIN_S
        log = victim.log.read_text(errors="replace")
        assert "Traceback" not in log, net.logs()
        assert "training stopped because the edge node is shutting down" in log, "SIGTERM missed the round"

        # the stopped EN drops out of the live count everywhere once its heartbeats stop
        net.wait_for(lambda: _status(entry.http)["ens"] == 1, "the entry to count 1 live EN", timeout=30)
        net.wait_for(lambda: _status(sn.http)["ens"] == 1, "the SN to report 1 live EN", timeout=30)
    finally:
        net.close()
