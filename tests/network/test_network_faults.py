"""Faults for real: an EN killed before its update, an SN killed (its ENs re-register through
the entry), and the entry M-SN killed mid-training (the restart resumes from the chain tip)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.network.harness import LocalNet, Proc

FL = ["--dataset", "mnist-sample", "--clients", "3", "--max-samples", "900", "--local-epochs", "1",
      "--quorum", "0.5"]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    n = LocalNet(tmp_path_factory.mktemp("faults-net"), FEDCHAIN_HEARTBEAT_TIMEOUT="5")
    try:
        n.wait_healthy(n.start_entry(*FL))
        n.start_sn("sn-1")
        n.start_sn("sn-2")
        n.wait_for(lambda: n.get("/status")["sns"] == 3, "2 SNs to join")
        for i in range(3):
            n.start_en(f"en-{i}")
        n.wait_edges(3)
        yield n
    finally:
        n.close()


def _node_id(net: LocalNet, proc: Proc) -> str:
    return str(net.get("/health", proc)["node_id"])


def _parents(net: LocalNet) -> dict[str, str]:
    """EN node id -> SN node id, from the latest node_joined block of each EN."""
    out: dict[str, str] = {}
    for b in net.get("/blocks", params={"from": 0, "limit": 500}):
        if b["kind"] == "node_joined" and b["payload"]["role"] == "EN":
            out[b["payload"]["node_id"]] = b["payload"]["parent_sn"]
    return out


def test_dead_edge_node_is_left_out_once_quorum_is_met(net: LocalNet) -> None:
    victim = next(p for p in net.procs if p.name == "en-0")
    victim_id = _node_id(net, victim)
    net.kill(victim)  # dies right before the round opens: its SN still thinks it is alive
    rounds = net.train(1)
    last = rounds[-1]
    assert last["round"] == 1
    assert len(last["participants"]) == 2 and victim_id not in last["participants"]
    assert victim_id in {r["node_id"] for r in last["rejected"]}
    assert net.get("/verify")["ok"]


def test_edge_nodes_of_a_dead_super_node_reregister(net: LocalNet) -> None:
    live = {_node_id(net, p): p for p in net.procs if p.name.startswith("en-") and p.popen.poll() is None}
    parents = _parents(net)
    sn_procs = {_node_id(net, p): p for p in net.procs if p.name.startswith("sn-")}
    # kill the SN that serves the most live ENs
    load = {sn: sum(1 for en in live if parents.get(en) == sn) for sn in sn_procs}
    dead_sn = max(load, key=lambda k: load[k])
    assert load[dead_sn] >= 1
    net.kill(sn_procs[dead_sn])
    survivor = next(s for s in sn_procs if s != dead_sn)
    net.wait_for(
        lambda: all(_parents(net).get(en) == survivor for en in live), "the ENs to re-register with the other SN", 60
    )
    # the entry declares the silent SN dead: a node_left block, and it is no longer listed
    left = net.wait_for(
        lambda: [b for b in net.get("/blocks", params={"from": 0, "limit": 500})
                 if b["kind"] == "node_left" and b["payload"]["node_id"] == dead_sn],
        "the dead SN's node_left block", 60,
    )
    assert left[-1]["payload"]["reason"] == "heartbeat timeout"
    assert dead_sn not in {s["node_id"] for s in net.get("/sn")}
    assert net.get("/status")["sns"] == 2
    net.wait_edges(2)
    rounds = net.train(1)
    assert rounds[-1]["round"] == 2
    assert sorted(rounds[-1]["participants"]) == sorted(live)


def test_restarted_entry_resumes_from_the_chain_tip(net: LocalNet) -> None:
    assert net.entry is not None
    r = net.post("/train", {"rounds": 3})
    assert r.status_code == 202 and r.json()["target_round"] == 5
    net.wait_for(lambda: net.get("/status")["round"] >= 3, "round 3")
    net.kill(net.entry)  # SIGKILL in the middle of training
    net.restart(net.entry)
    net.wait_healthy(net.entry)
    net.wait_for(
        lambda: (s := net.get("/status"))["round"] >= 5 and s["state"] == "idle", "the resumed training to finish", 240
    )
    rounds = [r["round"] for r in net.get("/rounds")]
    assert rounds == [1, 2, 3, 4, 5]  # nothing repeated, nothing skipped
    versions = [r["model_version"] for r in net.get("/rounds")]
    assert versions == rounds
    assert net.get("/verify")["ok"]


def test_restarted_edge_node_keeps_identity_partition_and_head(net: LocalNet) -> None:
    en = next(p for p in net.procs if p.name.startswith("en-") and p.popen.poll() is None)
    before = net.get("/status", en)
    head = en.state_dir / "personal-fedper.safetensors"
    assert head.is_file()
    net.kill(en, signal.SIGTERM)
    assert en.popen.returncode == 0  # a clean stop
    net.restart(en)
    net.wait_for(lambda: net.get("/status", en)["state"] == "idle", "the EN to re-join and load its data")
    after = net.get("/status", en)
    assert after["node_id"] == before["node_id"]
    assert after["partition_index"] == before["partition_index"]
    net.wait_edges(2)
    rounds = net.train(1)
    assert before["node_id"] in rounds[-1]["participants"]
    assert "personal layers restored" in en.log.read_text()
