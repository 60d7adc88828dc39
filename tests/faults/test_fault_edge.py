"""Faults at the edge while a real network trains: one EN cut off the network and brought back,
and one EN killed in the middle of its local training. After each, training finishes, the chain
verifies and holds rounds 1..N exactly once.

How the cut works: the victim EN binds 127.0.0.2 and advertises 127.0.0.1 on the same port,
where a ``CuttableProxy`` forwards to it (everything its SN sends it); its own outgoing gRPC calls
(heartbeats, model fetches, updates, re-joins) go through a second ``CuttableProxy`` acting as an
HTTP CONNECT proxy (``grpc_proxy`` in its environment). Cutting both isolates the EN both ways.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.faults.cluster import (
    assert_rounds_exactly_once,
    assert_verifies,
    start_network,
    start_training,
    wait_done,
)
from tests.faults.proxy import CuttableProxy
from tests.network.harness import LocalNet, Proc

pytestmark = pytest.mark.slow  # each starts a real multi-process network


MAX_ROUNDS_TO_RETURN = 6


def _node_id(url: str) -> str:
    return str(httpx.get(url + "/health", timeout=10).json()["node_id"])


def _verify_entry_chain(net: LocalNet) -> None:
    assert net.entry is not None
    assert_verifies("--state-dir", str(net.entry.state_dir))  # the embedded ledger, read from its files


def test_edge_node_cut_off_and_brought_back(tmp_path: Path) -> None:
    # the entry must see the cut-off victim gone: the heartbeat timeout of the product default
    net = LocalNet(tmp_path / "net", FEDCHAIN_ROUND_TIMEOUT="30", FEDCHAIN_HEARTBEAT_TIMEOUT="10")
    inbound = outbound = None
    try:
        start_network(net, 2)
        port = free_port()
        inbound = CuttableProxy(("127.0.0.1", port), ("127.0.0.2", port))
        outbound = CuttableProxy(("127.0.0.1", free_port()), None)
        inbound.start()
        outbound.start()
        assert net.entry is not None
        net.env["grpc_proxy"] = f"http://127.0.0.1:{outbound.listen[1]}"
        net.env["no_grpc_proxy"] = ""
        try:
            victim = net.start(
                "en-cut", ["--nt", "EN", "--entry", net.entry.address, "--host", "127.0.0.2",
                           "--advertise-host", "127.0.0.1"], port=port,
            )
        finally:
            del net.env["grpc_proxy"], net.env["no_grpc_proxy"]
        net.wait_edges(3)
        victim_id = _node_id(f"http://127.0.0.2:{victim.http_port}")

        rounds = net.train(1)
        assert victim_id in rounds[-1]["participants"], rounds[-1]
        assert inbound.accepted >= 1 and outbound.accepted >= 1, "the victim's traffic did not use the proxies"

        inbound.cut()
        outbound.cut()
        rounds = net.train(1)  # round 2 without the victim
        assert victim_id not in rounds[-1]["participants"] and len(rounds[-1]["participants"]) == 2, rounds[-1]
        assert victim_id in {r["node_id"] for r in rounds[-1]["rejected"]}, rounds[-1]
        net.wait_for(lambda: net.get("/status")["ens"] == 2, "the entry to see the victim gone", 60)

        inbound.restore()
        outbound.restore()
        net.wait_edges(3, timeout=90)
        # Back on the network: it must take part again within a few rounds (its SN's gRPC
        # channel to it may still be in reconnect backoff for the first one or two).
        back_in = None
        for _ in range(MAX_ROUNDS_TO_RETURN):
            last = net.train(1)[-1]
            if victim_id in last["participants"]:
                back_in = last["round"]
                break
        assert back_in is not None, (
            f"the victim took no part in {MAX_ROUNDS_TO_RETURN} rounds after the cut\n{net.logs()}"
        )
        total = back_in

        status = net.get("/status")
        assert status["round"] == total and status["state"] == "idle", status
        assert_rounds_exactly_once(net, total)
        assert net.get("/verify")["ok"]
        _verify_entry_chain(net)
    finally:
        net.close()
        for proxy in (inbound, outbound):
            if proxy is not None:
                proxy.cut()


def _kill_when_training(net: LocalNet, victim: Proc, timeout: float) -> int:
    """Poll the victim's /status; SIGKILL it while it trains. Returns the round it was in (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            s = httpx.get(victim.http + "/status", timeout=2).json()
        except httpx.HTTPError:
            s = {}
        if s.get("state") == "training":
            net.kill(victim, signal.SIGKILL)
            return int(s.get("round", 0)) + 1  # "round" is the last round it finished
        time.sleep(0.02)
    raise AssertionError(f"the victim was never seen training within {timeout} s\n{net.logs()}")


def test_edge_node_killed_mid_round(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net", FEDCHAIN_ROUND_TIMEOUT="30", FEDCHAIN_HEARTBEAT_TIMEOUT="10")
    try:
        edges = start_network(net, 3, "--quorum", "0.5")
        victim = edges[0]
        victim_id = _node_id(victim.http)
        target = start_training(net, 3)
        killed_in = _kill_when_training(net, victim, timeout=120)
        assert killed_in <= target
        status = wait_done(net, target, timeout=300)
        assert status["round"] == target and status["state"] == "idle", status
        blocks = assert_rounds_exactly_once(net, target)
        for b in blocks:
            p = b["payload"]
            ids = [row["node_id"] for row in p["participants"]]
            if p["round"] > killed_in:
                assert victim_id not in ids, p
            if p["round"] == killed_in and victim_id not in ids:
                left_out = {d["node_id"] for d in p["decisions"] if d["action"] == "rejected"}
                assert victim_id in left_out, f"the block does not say the victim was left out: {p}"
        last = blocks[-1]["payload"]
        last_ids = [row["node_id"] for row in last["participants"]]
        assert sorted(last_ids) == sorted(_node_id(e.http) for e in edges[1:]), last
        assert net.get("/verify")["ok"]
        _verify_entry_chain(net)
    finally:
        net.close()
