"""Node lifecycle for real: a killed EN gets a node_left block after the heartbeat timeout, a
replacement (joining through an SN, which relays the entry's signed reply) gets its freed
partition, and the old EN coming back with its key gets node_joined again; the chain verifies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.network.harness import LocalNet, Proc

FL = ["--dataset", "mnist-sample", "--clients", "2", "--max-samples", "600", "--local-epochs", "1"]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    n = LocalNet(tmp_path_factory.mktemp("lifecycle-net"), FEDCHAIN_HEARTBEAT_TIMEOUT="3")
    try:
        n.wait_healthy(n.start_entry(*FL))
        n.start_sn("sn-1")
        n.wait_for(lambda: n.get("/status")["sns"] == 2, "the SN to join")
        yield n
    finally:
        n.close()


def _blocks(net: LocalNet, kind: str) -> list[dict[str, Any]]:
    return [b for b in net.get("/blocks", params={"from": 0, "limit": 500}) if b["kind"] == kind]


def _events(net: LocalNet, node_id: str) -> list[str]:
    """The node's node_joined / node_left blocks, oldest first."""
    return [
        b["kind"] for b in net.get("/blocks", params={"from": 0, "limit": 500})
        if b["kind"] in ("node_joined", "node_left") and b["payload"]["node_id"] == node_id
    ]


def _joined(net: LocalNet, proc: Proc) -> dict[str, Any]:
    """The EN's /status once it has joined (a partition assigned)."""
    net.wait_healthy(proc)
    return net.wait_for(
        lambda: (s := net.get("/status", proc))["partition_index"] >= 0 and s["state"] == "idle" and s,
        f"{proc.name} to join",
    )


def _left(net: LocalNet, node_id: str, count: int = 1) -> list[dict[str, Any]]:
    return net.wait_for(
        lambda: len(found := [b for b in _blocks(net, "node_left")
                              if b["payload"]["node_id"] == node_id]) >= count and found,
        f"node_left of {node_id}", timeout=60,
    )


def test_a_dead_edge_node_leaves_its_partition_to_a_replacement_and_rejoins(net: LocalNet) -> None:
    old = net.start_en("en-a")
    other = net.start_en("en-b")
    old_status, _ = _joined(net, old), _joined(net, other)
    old_id, partition = old_status["node_id"], old_status["partition_index"]
    net.wait_edges(2)

    net.kill(old)
    left = _left(net, old_id)
    assert left[-1]["payload"]["reason"] == "heartbeat timeout"

    sn = next(p for p in net.procs if p.name == "sn-1")
    replacement = net.start("en-c", ["--nt", "EN", "--entry", sn.address])  # relayed join
    new_status = _joined(net, replacement)
    assert new_status["partition_index"] == partition  # before: "the federation is full"
    assert "node_joined" in _events(net, new_status["node_id"])
    net.wait_edges(2)  # the entry hears from it (before its first beat it has a grace period)

    net.kill(replacement)
    _left(net, new_status["node_id"])
    net.restart(old)
    again = _joined(net, old)
    assert again["node_id"] == old_id and again["partition_index"] == partition
    events = net.wait_for(
        lambda: (ev := _events(net, old_id))[-1] == "node_joined" and len(ev) >= 3 and ev,
        "the old EN's node_joined again", timeout=30,
    )
    assert events[:2] == ["node_joined", "node_left"]  # joined, left when killed, back
    verdict = net.get("/verify")
    assert verdict["ok"], verdict
