"""Parallel simulation (worker processes), lockstep vmap, Ray: the serial loop's global model.

Worker tests start two Python processes each (run them under the heavy lock).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from fedchain.shared.config import ConfigError, Settings, load_settings
from fedchain.shared.fl import engine
from fedchain.shared.fl.data import load_federated
from fedchain.shared.fl.engine import EngineOptions, auto_workers
from fedchain.shared.fl.simulation import SimulationResult, run_simulation

REPO = Path(__file__).resolve().parents[3]


def _settings(**extra: object) -> Settings:
    base: dict[str, object] = dict(
        dataset="mnist-sample", clients=4, max_samples=500, rounds=3, local_epochs=1,
        batch_size=10, lr=0.05, partition="dirichlet", alpha=0.3, device="cpu",
    )
    base.update(extra)
    return load_settings(**base)


def _assert_same_model(a: SimulationResult, b: SimulationResult) -> None:
    assert a.global_state.keys() == b.global_state.keys()
    for key in a.global_state:
        assert torch.equal(a.global_state[key], b.global_state[key]), key
    assert [r.accuracy for r in a.rounds] == [r.accuracy for r in b.rounds]
    assert [r.participants for r in a.rounds] == [r.participants for r in b.rounds]


@pytest.mark.parametrize(
    "algorithm,fraction", [("fedper", 1.0), ("fedavg", 0.5)], ids=["fedper-all", "fedavg-half"]
)
def test_two_workers_give_the_serial_model_bitwise(algorithm: str, fraction: float) -> None:
    s = _settings(algorithm=algorithm, client_fraction=fraction)
    data = load_federated(s)
    serial = run_simulation(s, clients=data)
    parallel = run_simulation(s, clients=data, engine=EngineOptions(workers=2))
    _assert_same_model(serial, parallel)
    assert parallel.label_counts == serial.label_counts


def test_a_dead_worker_is_a_one_line_error() -> None:
    from fedchain.shared.fl.simulation import Simulation
    from fedchain.shared.fl.workers import ProcessRunner, WorkerFailed

    s = _settings(rounds=2)
    with Simulation(s, engine=EngineOptions(workers=2)) as sim:
        for d in load_federated(s):
            sim.add_client(d)
        sim.run_round(evaluate=False)
        assert isinstance(sim.runner, ProcessRunner)
        victim = sim.runner._procs[1]
        victim.kill()
        victim.wait(timeout=10)
        with pytest.raises(WorkerFailed, match="simulation worker 1 stopped"):
            sim.run_round(evaluate=False)
    assert sim.runner._procs == []  # close() reaped the other worker


def test_lockstep_vmap_matches_the_serial_loop_within_float32_rounding() -> None:
    # ragged clients (Dirichlet 0.3; one share smaller than a batch), momentum on
    s = _settings(algorithm="fedper", momentum=0.5, batch_size=16, rounds=2, clients=5)
    data = load_federated(s)
    assert min(len(d.train) for d in data) != max(len(d.train) for d in data)
    serial = run_simulation(s, clients=data)
    lockstep = run_simulation(s, clients=data, engine=EngineOptions(vectorize=3))
    for key, want in serial.global_state.items():
        torch.testing.assert_close(lockstep.global_state[key], want, rtol=1e-4, atol=1e-5)
    for a, b in zip(serial.rounds, lockstep.rounds, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-4)


def test_lockstep_refuses_a_model_with_batch_norm() -> None:
    s = _settings(dataset="cifar10", model="cifar-cnn")
    from fedchain.shared.fl.models import build_model
    from fedchain.shared.fl.vectorized import check_vectorizable

    with pytest.raises(ConfigError, match="batch norm"):
        check_vectorizable(build_model(s.model, s.dataset))


def test_auto_uses_workers_only_where_they_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(engine, "usable_cores", lambda: 2)
    small = _settings(rounds=2)
    assert auto_workers(small, 400, cpu) == 0  # start-up would not be repaid
    big = _settings(clients=20, rounds=100)
    assert auto_workers(big, 50_000, cpu) == 2
    assert auto_workers(big, 50_000, torch.device("meta")) == 0  # not the CPU: serial
    monkeypatch.setattr(engine, "usable_cores", lambda: 1)
    assert auto_workers(big, 50_000, cpu) == 0


def test_ctrl_c_stops_the_workers_within_bounds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedchain.services.cli.main", "simulate", "--dataset", "mnist-sample",
         "--clients", "4", "--rounds", "50", "--local-epochs", "5", "--batch-size", "10",
         "--workers", "2", "--device", "cpu"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        parent = psutil.Process(proc.pid)
        while time.monotonic() < deadline and len(parent.children()) < 2:
            time.sleep(0.5)
        workers = parent.children()
        assert len(workers) == 2, "the two workers did not start"
        time.sleep(3)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        start = time.monotonic()
        proc.wait(timeout=30)
        assert time.monotonic() - start < 15
        gone, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_cli_device_cuda_without_cuda_is_a_one_line_error(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from typer.testing import CliRunner

    from fedchain.services.cli.main import app

    result = CliRunner().invoke(app, ["simulate", "--dataset", "mnist-sample", "--device", "cuda"])
    assert result.exit_code == 2
    assert "torch sees no CUDA device" in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_simulation_matches_cpu_and_writes_cpu_checkpoints(tmp_path: Path) -> None:
    from fedchain.shared import tensors

    cpu = _settings(rounds=2)
    gpu = _settings(rounds=2, device="cuda")
    data = load_federated(cpu)
    a = run_simulation(cpu, clients=data)
    b = run_simulation(gpu, clients=data, save_dir=tmp_path)
    for key, want in a.global_state.items():
        assert b.global_state[key].device.type == "cpu"
        torch.testing.assert_close(b.global_state[key], want, rtol=1e-3, atol=1e-4)
    saved = tensors.decode((tmp_path / "round-0002.safetensors").read_bytes())
    assert all(t.device.type == "cpu" for t in saved.values())


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_actors_give_the_serial_model() -> None:
    import ray

    s = _settings(rounds=2)
    data = load_federated(s)
    serial = run_simulation(s, clients=data)
    ray.init(address="local", include_dashboard=False, num_cpus=2,
             _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        on_ray = run_simulation(s, clients=data, engine=EngineOptions(workers=2, backend="ray"))
    finally:
        ray.shutdown()
    _assert_same_model(serial, on_ray)


def test_many_clients_share_one_global_state_and_keep_only_heads() -> None:
    from fedchain.shared.fl.simulation import Simulation

    s = _settings(clients=200, partition="iid", max_samples=None, client_fraction=0.05, rounds=1)
    with Simulation(s) as sim:
        for d in load_federated(s):
            sim.add_client(d)
        sim.run_round(evaluate=False)
        base = sim.global_state["conv1.0.weight"].data_ptr()
        for client in sim.clients:
            assert set(client.personal_state()) == {"fc.weight", "fc.bias"}  # the head only
            assert client._shared["conv1.0.weight"].data_ptr() == base  # no per-client base
