"""A poisoning experiment on a real network (entry + 1 SN + 5 ENs, separate processes): one
EN runs ``--attack scale:10``, the federation aggregates with ``multikrum:1``.

The SNs forward their ENs' updates, the entry runs the rule over all five (the simulation's
computation): the attacker's update is listed as rejected with Multi-Krum's reason in the
round block and left out of the participants, the accuracy is the clean mean's (not
wrecked), ``/metrics`` counts the decision, ``/verify`` holds, and ``fedchain verify --deep``
reruns the rule over the retained updates (the attacker's too) to the same decisions and model. Krum-family rules need
``n >= 2f + 3`` updates: ``f = 1`` needs 5 ENs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REPO
from tests.network.harness import LocalNet, Proc

FL = ["--dataset", "mnist-sample", "--clients", "5", "--max-samples", "1000", "--local-epochs", "1",
      "--lr", "0.05", "--seed", "7"]
ROUNDS = 2
AGGREGATOR = "multikrum:1"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNet, Proc]]:
    n = LocalNet(tmp_path_factory.mktemp("robust-net"), FEDCHAIN_KEEP_UPDATES="all")
    try:
        entry = n.start_entry(*FL, "--aggregator", AGGREGATOR)
        n.wait_healthy(entry)
        n.start_sn("sn-1")
        n.wait_for(lambda: n.get("/status")["sns"] == 2, "the SN to join")
        attacker = n.start_en("en-0", "--attack", "scale:10")
        for i in range(1, 5):
            n.start_en(f"en-{i}")
        n.wait_edges(5)
        yield n, attacker
    finally:
        n.close()


def _simulated_accuracy(aggregator: str, attacker: int | None) -> float:
    """The last round's accuracy of the simulation of this config (optionally attacked)."""
    import torch

    from fedchain.shared.config import load_settings
    from fedchain.shared.fl.attacks import AttackPlan, parse_attack
    from fedchain.shared.fl.simulation import run_simulation

    torch.set_num_threads(1)
    settings = load_settings(
        None, dataset="mnist-sample", clients=5, max_samples=1000, local_epochs=1, lr=0.05,
        seed=7, rounds=ROUNDS, aggregator=aggregator,
    )
    plan = (
        None if attacker is None
        else AttackPlan(parse_attack("scale:10"), frozenset({attacker}), 0.2, settings.seed)
    )
    accuracy = run_simulation(settings, attack=plan).rounds[-1].accuracy
    assert accuracy is not None
    return accuracy


def test_the_attackers_update_is_rejected_on_the_chain(net: tuple[LocalNet, Proc]) -> None:
    n, attacker = net
    status = n.get("/status", attacker)
    assert status["attack"] == "scale:10"  # announced in the node's status
    assert "ATTACK (experiment)" in attacker.log.read_text(errors="replace")
    bad = status["node_id"]
    rounds = n.train(ROUNDS)
    assert [r["round"] for r in rounds] == [1, 2], n.logs()
    for r in rounds:
        reasons = {x["node_id"]: x["reason"] for x in r["rejected"]}
        assert reasons.get(bad, "").startswith("multikrum: score rank 5 of 5"), r
        assert bad not in r["participants"] and len(r["participants"]) == 4, r
    honest = rounds[-1]["accuracy"]
    clean_mean = _simulated_accuracy("mean", None)
    assert honest >= clean_mean - 0.05, (honest, clean_mean)
    # the network ran the simulation's computation: the same attack there gives the same model
    assert abs(honest - _simulated_accuracy(AGGREGATOR, status["partition_index"])) < 0.02
    metrics = httpx.get(n.entry.http + "/metrics", timeout=30).text  # type: ignore[union-attr]
    line = f'fedchain_aggregator_decisions_total{{action="rejected",node="{bad}"}} 2.0'
    assert line in metrics, [m for m in metrics.splitlines() if "decisions" in m]
    assert n.get("/verify")["ok"]
    # verify --deep reruns Multi-Krum over the five retained updates in the block's order:
    # the same decisions (the attacker's rejection) and the same model, bit for bit
    assert n.entry is not None
    deep = subprocess.run(
        [sys.executable, "-m", "fedchain.services.cli.main", "verify", "--deep", "--require-all",
         "--state-dir", str(n.entry.state_dir)],
        capture_output=True, text=True, timeout=300, check=False, env=_cli_env(),
    )
    assert deep.returncode == 0, deep.stdout + deep.stderr
    assert f"{ROUNDS} rounds recomputed bit for bit, 0 not retained, 0 do not match" in deep.stdout


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_")}
    return {**env, "PYTHONPATH": str(REPO)}
