"""Attacks for experiments: parsing, the seeded choice of attackers, what they send."""

from __future__ import annotations

import pytest
import torch

from fedchain.shared.config import ConfigError, load_settings
from fedchain.shared.fl.attacks import AttackPlan, choose_attackers, flagged_share, parse_attack
from fedchain.shared.fl.data import SPECS, ClientData, ImageTensors
from fedchain.shared.fl.robust import Decision
from fedchain.shared.fl.simulation import run_simulation

GLOBAL = {"w": torch.tensor([1.0, 1.0]), "n": torch.tensor(5)}
HONEST = {"w": torch.tensor([2.0, 0.0]), "n": torch.tensor(7)}


@pytest.mark.parametrize(
    "text,match",
    [("flip", "unknown attack 'flip'"), ("scale", "scale takes one number"), ("gaussian:-1", "σ > 0"),
     ("nan:3", "nan takes no parameter"), ("scale:0", "scale takes one number")],
)
def test_parse_attack_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_attack(text)


def test_attackers_are_a_seeded_share() -> None:
    ids = list(range(20))
    chosen = choose_attackers(ids, 0.3, seed=4)
    assert len(chosen) == 6 and chosen == sorted(chosen) and chosen == choose_attackers(ids, 0.3, seed=4)
    assert chosen != choose_attackers(ids, 0.3, seed=5)
    assert len(choose_attackers(ids, 0.45, 0)) == 9 and choose_attackers(ids, 0.0, 0) == []
    with pytest.raises(ConfigError, match="share in \\[0, 1\\)"):
        choose_attackers(ids, 1.0, 0)


def plan(attack: str) -> AttackPlan:
    return AttackPlan(parse_attack(attack), frozenset({1}), 0.5, seed=0)


def test_model_attacks_change_the_delta_and_keep_integer_buffers() -> None:
    assert torch.equal(plan("sign-flip").poison(1, 1, HONEST, GLOBAL)["w"], torch.tensor([0.0, 2.0]))
    assert torch.equal(plan("scale:10").poison(1, 1, HONEST, GLOBAL)["w"], torch.tensor([11.0, -9.0]))
    assert torch.isnan(plan("nan").poison(1, 1, HONEST, GLOBAL)["w"]).all()
    noisy = plan("gaussian:0.5").poison(1, 1, HONEST, GLOBAL)["w"]
    assert torch.equal(noisy, plan("gaussian:0.5").poison(1, 1, HONEST, GLOBAL)["w"])  # seeded
    assert not torch.equal(noisy, plan("gaussian:0.5").poison(2, 1, HONEST, GLOBAL)["w"])  # per round
    for attack in ("sign-flip", "scale:10", "nan", "gaussian:1"):
        out = plan(attack).poison(1, 1, HONEST, GLOBAL)
        assert int(out["n"]) == 7 and out["w"].dtype == torch.float32
        assert plan(attack).poison(1, 0, HONEST, GLOBAL) == HONEST  # honest clients untouched


def test_label_flip_poisons_the_data_not_the_update() -> None:
    images = torch.zeros((3, 1, 28, 28), dtype=torch.uint8)
    data = ClientData(1, ImageTensors(images, torch.tensor([0, 3, 9]), SPECS["mnist"]),
                      ImageTensors(images, torch.tensor([0, 3, 9]), SPECS["mnist"]), {0: 2, 3: 2, 9: 2})
    flipped = plan("label-flip").prepare(data)
    assert flipped.train.labels.tolist() == [9, 6, 0]  # type: ignore[attr-defined]
    assert flipped.test.labels.tolist() == [0, 3, 9]  # type: ignore[attr-defined]  # evaluated honestly
    assert plan("label-flip").poison(1, 1, HONEST, GLOBAL) == HONEST
    assert plan("scale:2").prepare(data) is data


def test_flagged_share_counts_rejected_or_clipped_attackers() -> None:
    decisions = [Decision(0, "rejected", "x"), Decision(2, "clipped", "y"), Decision(3, "downweighted", "z")]
    assert flagged_share(decisions, [10, 11, 12, 13], frozenset({10, 13})) == 0.5
    assert flagged_share(decisions, [10, 11], frozenset({99})) is None


def test_simulation_records_attack_and_decisions() -> None:
    settings = load_settings(dataset="mnist-sample", max_samples=300, clients=5, rounds=2, local_epochs=1,
                             batch_size=32, algorithm="fedavg", aggregator="clip:1.5+krum:1", local_eval=False)
    attack = AttackPlan.build("scale:50", 0.2, list(range(5)), settings.seed)
    (attacker,) = attack.attackers
    result = run_simulation(settings, attack=attack)
    data = result.to_json()
    assert data["attack"] == {"attack": "scale:50", "share": 0.2, "attackers": [attacker]}
    assert data["config"]["aggregator"] == "clip:1.5+krum:1"
    for r in result.rounds:
        mine = [d for d in r.decisions if d["node"] == str(attacker)]
        assert {d["action"] for d in mine} == {"clipped", "rejected"}
        assert r.attackers_flagged == 1.0
        assert len({d["node"] for d in r.decisions if d["action"] == "rejected"}) == 4  # krum keeps one
    clean = run_simulation(settings)
    assert clean.to_json()["attack"] is None and clean.rounds[0].attackers_flagged is None
