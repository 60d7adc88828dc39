"""A real network (entry + 2 SNs + 2 ENs, separate processes): rounds match the simulation,
the chain records them, and the control API answers per docs/control-api.md."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from fedchain.shared.chain.round_proof import RoundProof, check_proof
from tests.network.harness import API_TOKEN, LocalNet

if TYPE_CHECKING:
    from fedchain.shared.fl.simulation import SimulationResult

FL = ["--dataset", "mnist-sample", "--clients", "2", "--max-samples", "1200", "--local-epochs", "1",
      "--lr", "0.05", "--seed", "7"]
ROUNDS = 2


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    n = LocalNet(tmp_path_factory.mktemp("rounds-net"))
    try:
        entry = n.start_entry(*FL)
        n.wait_healthy(entry)
        n.start_sn("sn-1")
        n.start_sn("sn-2")
        n.wait_for(lambda: n.get("/status")["sns"] == 3, "2 SNs to join")
        for i in range(2):
            n.start_en(f"en-{i}")
        n.wait_edges(2)
        yield n
    finally:
        n.close()


@pytest.fixture(scope="module")
def trained(net: LocalNet) -> list[dict]:
    """The network after its first ROUNDS rounds (run once per module): those rounds' records."""
    return net.train(ROUNDS)


@pytest.fixture(scope="module")
def sim() -> SimulationResult:
    """The simulation of the network's config and seed, on one torch thread like the nodes."""
    import torch

    from fedchain.shared.config import load_settings
    from fedchain.shared.fl.simulation import run_simulation

    torch.set_num_threads(1)
    settings = load_settings(
        None, dataset="mnist-sample", clients=2, max_samples=1200, local_epochs=1, lr=0.05,
        seed=7, rounds=ROUNDS,
    )
    return run_simulation(settings)


def test_accuracy_matches_simulation(trained: list[dict], sim: SimulationResult) -> None:
    rounds = trained
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(len(r["participants"]) == 2 and not r["rejected"] for r in rounds)
    for net_round, sim_round in zip(rounds, sim.rounds, strict=True):
        assert sim_round.accuracy is not None
        assert abs(net_round["accuracy"] - sim_round.accuracy) < 0.02, (net_round, sim_round)
    assert rounds[-1]["accuracy"] > rounds[0]["accuracy"] - 0.05


def test_global_model_matches_simulation(
    net: LocalNet, trained: list[dict], sim: SimulationResult
) -> None:
    from fedchain.shared.tensors import decode

    url = net.entry.http + "/model"  # type: ignore[union-attr]
    r = httpx.get(url, params={"version": ROUNDS}, timeout=30)
    assert r.status_code == 200, r.text
    network = decode(r.content)
    assert set(network) == set(sim.global_state)
    assert all(network[k].dtype == sim.global_state[k].dtype for k in network)
    worst = {
        k: (network[k].double() - sim.global_state[k].double()).abs().max().item() for k in network
    }
    assert max(worst.values()) <= 1e-6, sorted(worst.items(), key=lambda kv: -kv[1])[:3]


def test_chain_records_joins_and_rounds(net: LocalNet, trained: list[dict]) -> None:
    blocks = net.get("/blocks", params={"from": 0, "limit": 100})
    kinds = [b["kind"] for b in blocks]
    assert kinds[0] == "genesis"
    assert kinds.count("node_joined") == 4  # 2 SNs + 2 ENs
    joined = [b["payload"] for b in blocks if b["kind"] == "node_joined"]
    partitions = {p["node_id"] for p in joined if p["role"] == "EN"}
    assert len(partitions) == 2
    sns = {p["node_id"] for p in joined if p["role"] == "SN"}
    assert {p["parent_sn"] for p in joined if p["role"] == "EN"} == sns  # one EN per non-entry SN
    rounds = [b for b in blocks if b["kind"] == "round"]
    for b in rounds:
        p = b["payload"]
        assert p["model_version"] == p["round"]
        assert len(p["participants"]) == 2
        # each EN's signed row names its SN, and that SN's signed manifest lists it
        assert {row["parent_sn"] for row in p["participants"]} == sns
        assert sorted(m["sn_node_id"] for m in p["manifests"]) == sorted(sns)
        assert 0 < p["metrics"]["accuracy"] <= 1
    report = net.get("/verify")
    assert report["ok"] and report["height"] == blocks[-1]["height"], report
    en = rounds[0]["payload"]["participants"][0]["node_id"]
    proof = net.get(f"/rounds/{rounds[0]['payload']['round']}/proof/{en}")
    assert check_proof(RoundProof.from_json(proof)).node_id == en


def test_model_download_matches_chain_digest(net: LocalNet, trained: list[dict]) -> None:
    from fedchain.shared.tensors import decode

    r = httpx.get(net.entry.http + "/model", timeout=30)  # type: ignore[union-attr]
    assert r.status_code == 200
    assert r.headers["X-Model-Version"] == str(ROUNDS)
    assert hashlib.sha256(r.content).hexdigest() == r.headers["X-Model-Digest"]
    state = decode(r.content)
    assert any(k.endswith("weight") for k in state)
    old = httpx.get(net.entry.http + "/model", params={"version": 0}, timeout=30)  # type: ignore[union-attr]
    assert old.headers["X-Model-Digest"] != r.headers["X-Model-Digest"]
    missing = httpx.get(net.entry.http + "/model", params={"version": 99}, timeout=30)  # type: ignore[union-attr]
    assert missing.status_code == 404 and "unknown model version 99" in missing.json()["detail"]


def test_status_sn_and_eval(net: LocalNet, trained: list[dict]) -> None:
    status = net.get("/status")
    assert status["entry"] is True and status["round"] == ROUNDS and status["state"] == "idle"
    assert status["ens"] == 2 and status["sns"] == 3 and status["model_version"] == ROUNDS
    sns = net.get("/sn")
    assert len(sns) == 3 and sum(s["ens"] for s in sns) == 2
    assert all(s["status"] == "alive" for s in sns)
    ev = net.post("/eval")
    assert ev.status_code == 200, ev.text
    body = ev.json()
    assert len(body["clients"]) == 2
    assert body["pooled"]["total"] == sum(c["total"] for c in body["clients"])
    last = net.get("/rounds")[-1]
    assert abs(body["pooled"]["accuracy"] - last["accuracy"]) < 1e-9  # same model, same heads


def test_non_entry_sn_forwards_and_en_refuses(net: LocalNet) -> None:
    sn = next(p for p in net.procs if p.name == "sn-1")
    health = net.get("/health", sn)
    assert health == {"status": "ok", "role": "SN", "node_id": health["node_id"], "entry": False}
    assert net.get("/rounds", sn) == net.get("/rounds")
    assert net.get("/status", sn)["entry"] is False
    en = next(p for p in net.procs if p.name == "en-0")
    assert net.get("/health", en)["role"] == "EN"
    r = httpx.post(en.http + "/train", json={"rounds": 1}, timeout=10)
    assert r.status_code == 404 and "edge node" in r.json()["detail"]


def test_mutating_endpoints_need_the_token_and_valid_bodies(net: LocalNet, trained: list[dict]) -> None:
    url = net.entry.http  # type: ignore[union-attr]
    r = httpx.post(url + "/train", json={"rounds": 1}, timeout=10)
    assert r.status_code == 401 and "bearer" in r.json()["detail"].lower()
    r = httpx.post(url + "/train", json={"rounds": 1}, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert r.status_code == 401
    bad = httpx.post(url + "/train", json={"rounds": 0}, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("invalid rounds")
    algo = httpx.post(
        url + "/train",
        json={"rounds": 1, "algorithm": "sgd"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=10,
    )
    assert algo.status_code == 422
    assert net.get("/status")["round"] == ROUNDS  # nothing started


def test_train_twice_conflicts_then_pause_and_save(net: LocalNet, trained: list[dict], tmp_path: Path) -> None:
    first = net.post("/train", {"rounds": 2})
    assert first.status_code == 202
    second = net.post("/train", {"rounds": 1})
    assert second.status_code == 409 and "already" in second.json()["detail"]
    paused = net.post("/pause").json()
    assert paused["status"] in {"pausing", "paused"}
    net.wait_for(lambda: net.get("/status")["state"] == "paused", "the pause to take effect")
    assert net.get("/status")["round"] == ROUNDS + 1  # the current round finished, then held
    saved = net.post("/save", {"name": "m"}).json()
    assert saved["version"] == ROUNDS + 1
    assert Path(saved["path"]).name == "m.safetensors" and Path(saved["path"]).parent.name == "models"
    assert hashlib.sha256(Path(saved["path"]).read_bytes()).hexdigest() == saved["digest"]
    assert net.get("/blocks", params={"limit": 1})[0]["kind"] == "checkpoint"
    rounds = net.train(1)
    assert [r["round"] for r in rounds] == list(range(1, ROUNDS + 3))


def test_metrics_are_prometheus_text(net: LocalNet) -> None:
    r = httpx.get(net.entry.http + "/metrics", timeout=10)  # type: ignore[union-attr]
    assert r.status_code == 200
    assert "fedchain_model_version" in r.text and "fedchain_chain_height" in r.text


def test_train_fl_runs_fedavg_over_the_same_network(net: LocalNet) -> None:
    before = net.get("/status")["round"]
    r = net.post("/train-fl", {"rounds": 1})
    assert r.status_code == 202 and r.json()["algorithm"] == "fedavg"
    net.wait_for(lambda: (s := net.get("/status"))["round"] > before and s["state"] == "idle", "the FedAvg round")
    last = net.get("/rounds")[-1]
    assert last["algorithm"] == "fedavg" and len(last["participants"]) == 2
    assert 0.1 < last["accuracy"] <= 1
    block = net.get("/blocks", params={"limit": 1})[0]
    assert block["kind"] == "round" and block["payload"]["algorithm"] == "fedavg"
