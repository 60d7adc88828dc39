"""Learning is right: on real MNIST (a few thousand images), CI-sized."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fedchain.shared import tensors
from fedchain.shared.config import load_settings
from fedchain.shared.fl.robust import Aggregation
from fedchain.shared.fl.simulation import RoundResult, Simulation, run_simulation
from fedchain.shared.fl.strategy import Strategy


def _settings(datasets_dir: Path, **kw: object):
    base: dict[str, object] = dict(
        dataset="mnist", data_dir=datasets_dir, local_epochs=1, batch_size=20, lr=0.05, seed=0
    )
    base.update(kw)
    return load_settings(**base)


def test_fedavg_passes_95_percent_on_iid_mnist(datasets_dir: Path) -> None:
    s = _settings(
        datasets_dir, algorithm="fedavg", partition="iid", clients=5, rounds=5, max_samples=5000,
        lr=0.015, momentum=0.9,
    )
    seen: list[RoundResult] = []
    result = run_simulation(s, progress=seen.append)
    assert [r.round for r in seen] == [1, 2, 3, 4, 5]
    assert result.final_accuracy is not None and result.final_accuracy > 0.95
    last = result.rounds[-1]
    assert last.total is not None and 1200 < last.total < 1300  # the clients' 25% test splits
    assert last.accuracy == last.correct / last.total


def test_fedper_beats_fedavg_on_pathological_two_classes(datasets_dir: Path) -> None:
    common = dict(partition="pathological", classes_per_client=2, clients=10, rounds=2, max_samples=3000)
    per = run_simulation(_settings(datasets_dir, algorithm="fedper", **common))
    avg = run_simulation(_settings(datasets_dir, algorithm="fedavg", **common))
    assert per.final_accuracy is not None and avg.final_accuracy is not None
    assert per.final_accuracy > avg.final_accuracy + 0.15
    assert per.final_accuracy > 0.75
    assert all(len(c) == 2 for c in per.label_counts)


def test_same_seed_same_numbers_other_seed_other_numbers(datasets_dir: Path) -> None:
    common = dict(
        algorithm="fedper", partition="dirichlet", alpha=0.5, clients=4, rounds=2, max_samples=1200,
        client_fraction=0.5,
    )
    a = run_simulation(_settings(datasets_dir, **common)).to_json()
    b = run_simulation(_settings(datasets_dir, **common)).to_json()
    c = run_simulation(_settings(datasets_dir, seed=1, **common)).to_json()

    def numbers(r: dict) -> list:
        return [(x["accuracy"], x["loss"], x["train_loss"], x["participants"]) for x in r["rounds"]]

    assert numbers(a) == numbers(b) and a["label_counts"] == b["label_counts"]
    assert numbers(a) != numbers(c)
    assert all(len(r["participants"]) == 2 for r in a["rounds"])
    json.dumps(a)  # JSON-ready


def test_the_head_never_reaches_the_server(datasets_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(datasets_dir, algorithm="fedper", partition="pathological", clients=3, rounds=2, max_samples=600)
    received: list[set[str]] = []
    original = Strategy.aggregate_with_decisions

    def spy(self: Strategy, server_round: int, updates: list, global_shared: dict) -> Aggregation:
        received.extend(set(state) for state, _ in updates)
        return original(self, server_round, updates, global_shared)

    monkeypatch.setattr(Strategy, "aggregate_with_decisions", spy)
    sim = Simulation(s)
    from fedchain.shared.fl.data import load_federated

    for d in load_federated(s):
        sim.add_client(d)
    initial_head = {k: sim.global_state[k].clone() for k in ("fc.weight", "fc.bias")}
    sim.run_round()
    sim.run_round()
    assert len(received) == 6
    for names in received:
        assert "fc.weight" not in names and "fc.bias" not in names
        assert "conv1.0.weight" in names
    # the server's copy of the head is still the initial one; each client's head moved apart
    assert all(torch.equal(sim.global_state[k], v) for k, v in initial_head.items())
    heads = [c.personal_state()["fc.weight"] for c in sim.clients]
    assert not torch.equal(heads[0], heads[1]) and not torch.equal(heads[0], initial_head["fc.weight"])


def test_save_dir_writes_the_global_model_of_each_round(datasets_dir: Path, tmp_path: Path) -> None:
    s = _settings(datasets_dir, algorithm="fedavg", clients=2, rounds=2, max_samples=300, eval=False)
    result = run_simulation(s, save_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round-0001.safetensors", "round-0002.safetensors"]
    state = tensors.decode((tmp_path / "round-0002.safetensors").read_bytes())
    assert "fc.weight" in state and state["conv1.0.weight"].shape == (32, 1, 5, 5)
    assert set(result.global_state) == set(state)  # the result carries the final global model
    assert all(torch.equal(result.global_state[k], v) for k, v in state.items())
    assert "global_state" not in result.to_json()
    assert result.rounds[0].accuracy is None  # eval off: only the last round is evaluated
    assert result.rounds[1].accuracy is not None
