"""gRPC keepalive is consistent on clients and servers (issue 15 point 7): clients ping every
20 s even between calls, and servers accept that, so no node's log shows ``too_many_pings``
(a server that refuses the pings counts them as strikes and closes the connection with
GOAWAY ENHANCE_YOUR_CALM after the third, about 80 s into an idle federation).

A small federation (entry, an SN, two ENs) at the default heartbeat interval sits idle for
longer than that, then trains one round; every node's log is searched."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.network.harness import LocalNet

pytestmark = pytest.mark.slow  # real processes, ~2 minutes

IDLE_S = 100.0
"""Past the fourth keepalive ping (20 s apart): where a server's ping strikes end the channel."""
BAD = ("too_many_pings", "ENHANCE_YOUR_CALM", "GOAWAY")


def test_no_node_log_shows_too_many_pings(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net", FEDCHAIN_HEARTBEAT_INTERVAL="5", FEDCHAIN_HEARTBEAT_TIMEOUT="60")
    try:
        entry = net.start_entry("--dataset", "mnist-sample", "--clients", "2", "--max-samples", "400",
                                "--local-epochs", "1")
        net.wait_healthy(entry)
        net.start_sn("sn-1")
        net.wait_for(lambda: net.get("/status")["sns"] == 2, "the SN to join")
        for i in range(2):
            net.start_en(f"en-{i}")
        net.wait_edges(2)
        time.sleep(IDLE_S)
        rounds = net.train(1)
        assert rounds[-1]["round"] == 1 and len(rounds[-1]["participants"]) == 2, net.logs()
        seen = {
            p.name: [line for line in p.log.read_text(errors="replace").splitlines() if any(b in line for b in BAD)]
            for p in net.procs
        }
    finally:
        net.close()
    assert not any(seen.values()), seen
