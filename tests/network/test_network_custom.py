"""A real network (entry + 2 ENs) running your own model, dataset and strategy by spec; an EN
that cannot import the federation's model refuses to join with a one-line reason."""

from __future__ import annotations

from pathlib import Path

from tests.network.harness import LocalNet
from tests.shared.fl.custom_kit import KIT

FL = ["--model", f"{KIT}:TinyNet", "--dataset", f"{KIT}:blobs", "--algorithm", f"{KIT}:CountingFedPer",
      "--clients", "2", "--local-epochs", "1", "--lr", "0.05", "--seed", "7"]
ROUNDS = 2


def test_custom_model_dataset_and_strategy_over_the_network(tmp_path: Path) -> None:
    import torch

    from fedchain.shared.config import load_settings
    from fedchain.shared.fl.simulation import run_simulation

    net = LocalNet(tmp_path / "net")
    try:
        entry = net.start_entry(*FL)
        net.wait_healthy(entry)
        for i in range(2):
            net.start_en(f"en-{i}")
        net.wait_edges(2)
        rounds = net.train(ROUNDS)
        status = net.get("/status")
        # a request may not name other code for the nodes to import than genesis names
        other = net.post("/train", {"rounds": 1, "algorithm": "os:system"})
        still = net.get("/status")
    finally:
        net.close()
    assert [r["round"] for r in rounds][-ROUNDS:] == [1, 2], rounds
    assert status["algorithm"] == f"{KIT}:CountingFedPer"
    assert other.status_code == 422 and "not this federation's" in other.json()["detail"], other.text
    assert still["round"] == status["round"] and still["state"] != "training"
    torch.set_num_threads(1)
    sim = run_simulation(load_settings(
        None, model=f"{KIT}:TinyNet", dataset=f"{KIT}:blobs", algorithm=f"{KIT}:CountingFedPer",
        clients=2, local_epochs=1, lr=0.05, seed=7, rounds=ROUNDS,
    ))
    assert sim.final_accuracy is not None and sim.final_accuracy > 0.5  # chance: 1/3
    last = rounds[-1]
    assert abs(last["accuracy"] - sim.final_accuracy) < 0.02, (last, sim.final_accuracy)  # as test_network_rounds


def test_an_edge_node_that_cannot_import_the_model_refuses_to_join(tmp_path: Path) -> None:
    only_entry = tmp_path / "entry-code"
    only_entry.mkdir()
    (only_entry / "entry_only_nets.py").write_text(
        "from tests.shared.fl.custom_kit import TinyNet as Net\n", encoding="utf-8"
    )
    net = LocalNet(tmp_path / "net")
    try:
        net.env["PYTHONPATH"] = str(only_entry)
        entry = net.start_entry("--model", "entry_only_nets:Net", "--dataset", f"{KIT}:blobs", "--clients", "1")
        net.wait_healthy(entry)
        del net.env["PYTHONPATH"]
        en = net.start_en("en-0")
        code = en.popen.wait(timeout=120)
        log = en.log.read_text(errors="replace")
    finally:
        net.close()
    assert code == 2, log[-2000:]
    assert (
        "the entry sent a federation config this node cannot use: model 'entry_only_nets:Net': "
        "cannot import module 'entry_only_nets' (No module named 'entry_only_nets')"
    ) in log, log[-2000:]
