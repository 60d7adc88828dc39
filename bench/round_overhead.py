"""Seconds per FL round: fedchain's network vs a Flower 1.42 deployment, in one run.

Both systems train the same model (fedchain's MNIST CNN), with the same number of
clients, on the very same samples (fedchain's own partition of MNIST for these settings,
``max_samples = 100 x clients``: 75 training samples per client, i.e. one batch of 64 per
round), one local epoch, plain SGD, FedAvg over the whole model, no evaluation rounds,
one torch thread per process (OMP_NUM_THREADS=1).

* Flower: one ``flower-superlink`` and N ``flower-supernode`` processes (insecure HTTP on
  127.0.0.1, in-memory state, telemetry and update checks off), the ``fcbench`` app in
  bench/flower/app submitted with ``flwr run``. Its ServerApp times each round (send the
  global arrays, wait for every reply, aggregate with Flower's FedAvg).
* fedchain: ``fedchain up --ens N --sns 0 --keep`` (ledger, entry M-SN and N ENs as
  processes) trains the rounds; a round's seconds come from ``GET /rounds`` (the entry's
  own clock, round opened to block appended), the chain must verify (``GET /verify``),
  then ``fedchain down``. ``--launcher nodes`` starts the nodes one by one instead.

Flower lives in its own virtualenv (bench/flower/setup.sh, .ci/cache/flwr-venv). Writes
bench/results/round_overhead.json and bench/plots/round_overhead.png and prints a table.

Usage: python bench/round_overhead.py [--quick] [--ens N] [--rounds R] [--only flower|fedchain]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import BenchError, charts, control, networks, paths, results, stats

from fedchain.shared.processes import free_port

SAMPLES_PER_CLIENT = 100  # 75 train + 25 test with train_fraction 0.75 -> one batch of 64


def fl_settings(ens: int, rounds: int, datasets: Path) -> Any:
    """The learning settings both systems run with."""
    from fedchain.shared.config import Settings

    return Settings(
        algorithm="fedavg",
        dataset="mnist",
        data_dir=datasets,
        model="mnist-cnn",
        clients=ens,
        rounds=rounds,
        local_epochs=1,
        batch_size=64,
        lr=0.01,
        max_samples=SAMPLES_PER_CLIENT * ens,
        partition="iid",
        seed=0,
        eval=False,
        local_eval=False,
    )


def write_partitions(settings: Any, out_dir: Path) -> list[Path]:
    """Each client's training samples of fedchain's partition as .npz (full batches only)."""
    import numpy as np
    import torch

    from fedchain.shared.fl.data import load_client

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(settings.clients):
        train = load_client(settings, i).train
        n = len(train)
        keep = n - n % settings.batch_size if n > settings.batch_size else n  # fedchain drops a ragged batch
        x, y = train.batch(torch.arange(keep))
        path = out_dir / f"client-{i}.npz"
        np.savez(path, x=x.numpy().astype(np.float32), y=y.numpy().astype(np.int64))
        paths.append(path)
    return paths


# ---------------------------------------------------------------- Flower


def flower_python(explicit: str | None) -> Path:
    """The Flower venv's python: ``--flower-python``, else bench/flower/setup.sh (idempotent)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise BenchError(f"--flower-python {path} does not exist")
        return path
    setup = paths.BENCH / "flower" / "setup.sh"
    proc = subprocess.run(["bash", str(setup)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise BenchError(f"bench/flower/setup.sh failed (exit {proc.returncode}):\n{tail}")
    return Path(proc.stdout.strip().splitlines()[-1])


def run_flower(py: Path, settings: Any, parts: list[Path], work: Path, timeout: float) -> dict[str, Any]:
    """Start SuperLink + N SuperNodes, run the fcbench app, return its per-round times."""
    bindir = py.parent
    home = work / "flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "FLWR_HOME": str(home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    port = free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\naddress = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    out = work / "flower-rounds.json"
    t_start = time.perf_counter()
    with control.ProcessGroup(work / "flower-logs") as group:
        group.start("superlink", [str(bindir / "flower-superlink"), "--insecure",
                                  "--disable-runtime-dependency-installation", "--port", str(port)], env=env)
        control.wait_until(lambda: _listening(port) or _dead(group), 60, f"the Flower SuperLink on port {port}")
        group.check_alive()
        for i, part in enumerate(parts):
            group.start(f"supernode-{i}", [str(bindir / "flower-supernode"), "--insecure",
                                           "--superlink", f"127.0.0.1:{port}", "--port", str(free_port()),
                                           "--node-config", f"data-file={json.dumps(str(part))}"], env=env)
        log = group.log_dir / "superlink.log"

        def all_registered() -> bool:
            group.check_alive()
            return len(re.findall(r"Activated node_id", log.read_text(errors="replace"))) >= len(parts)

        control.wait_until(all_registered, 120, f"{len(parts)} Flower SuperNodes to register")
        ready_s = time.perf_counter() - t_start
        run_config = (f"num-rounds={settings.rounds} nodes={settings.clients} "
                      f"local-epochs={settings.local_epochs} batch-size={settings.batch_size} lr={settings.lr} "
                      f"seed={settings.seed} out={json.dumps(str(out))}")
        t_submit = time.perf_counter()
        proc = subprocess.run([str(bindir / "flwr"), "run", str(paths.FLOWER_APP), "bench",
                               "--run-config", run_config],
                              env=env, capture_output=True, text=True, timeout=120, cwd=work)
        if proc.returncode != 0 or "Successfully started run" not in proc.stdout:
            said = (proc.stdout + proc.stderr).strip()[-600:]
            raise BenchError(f"flwr run failed (exit {proc.returncode}): {said}")

        def finished() -> bool:
            group.check_alive()
            return out.exists()

        control.wait_until(finished, timeout, f"the Flower run to finish {settings.rounds} rounds", interval=0.5)
        total_s = time.perf_counter() - t_submit
    data = json.loads(out.read_text())
    if "error" in data:
        raise BenchError(f"the Flower ServerApp failed: {data['error']}")
    rounds = data["rounds"]
    if any(r["replies"] != settings.clients for r in rounds):
        raise BenchError(f"a Flower round got fewer than {settings.clients} replies: {rounds}")
    return {
        "system": "flower",
        "version": _flower_version(py),
        "startup_seconds": ready_s,
        "run_seconds": total_s,
        "round_seconds": [r["seconds"] for r in rounds],
        "client_train_seconds": [r["train_seconds_mean"] for r in rounds],
        "client_handler_seconds": [r["handler_seconds_mean"] for r in rounds],
        "train_loss": [r["train_loss"] for r in rounds],
        "processes": f"1 SuperLink + {settings.clients} SuperNodes (+ a SuperExec each, a ClientApp process per round)",
    }


def _flower_version(py: Path) -> str:
    proc = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('flwr'))"],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or "unknown"


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _dead(group: control.ProcessGroup) -> bool:
    return group.any_exited()


# ---------------------------------------------------------------- fedchain


def run_fedchain(settings: Any, work: Path, timeout: float, launcher: str) -> dict[str, Any]:
    """fedchain's network with N ENs trains ``rounds`` rounds; per-round seconds from /rounds.

    launcher "up": ``fedchain up --ens N --sns 0 --keep`` trains the rounds itself, then the
    kept network is asked for /rounds and /verify and stopped with ``fedchain down``.
    launcher "nodes": the entry and the ENs are started one by one with ``fedchain node``
    and training is started with ``POST /train`` (no ledger process: embedded SQLite).
    """
    env = networks.no_eval_env()
    if launcher == "up":
        with networks.UpNetwork(work / "fedchain-up", env=env) as up:
            up_s = up.start(settings.clients, 0, settings.rounds, networks.up_fl_flags(settings), timeout)
            rounds = up.get("/rounds")[-settings.rounds:]
            verify = up.get("/verify")
            ens_seen = len(up.pids("en-"))
        # everything `fedchain up` did besides the rounds: start, join, verify, save
        extra: dict[str, Any] = {"up_command_seconds": up_s, "ens_processes": ens_seen,
                                 "startup_seconds": up_s - sum(float(r["seconds"]) for r in rounds),
                                 "processes": f"ledger + entry SN + {settings.clients} ENs (fedchain up --sns 0)"}
    else:
        wall: list[float] = []
        t_start = time.perf_counter()
        with networks.FedchainNetwork(work / "fedchain", settings, env=env) as net:
            net.start_entry()
            for _ in range(settings.clients):
                net.add_en()
            net.wait_members(settings.clients, 1, 180)
            ready_s = time.perf_counter() - t_start
            last = [0.0]

            def on_round(_rnd: int, at: float) -> None:
                wall.append(at - last[0])
                last[0] = at

            net.train(settings.rounds, timeout, on_round)
            rounds = net.api("GET", "/rounds")[-settings.rounds:]
            verify = net.api("GET", "/verify")
        extra = {"startup_seconds": ready_s, "round_wall_seconds_polled": wall,
                 "processes": f"entry SN (embedded SQLite ledger) + {settings.clients} ENs (fedchain node)"}
    if not verify.get("ok"):
        raise BenchError(f"fedchain's chain did not verify after the run: {verify}")
    if len(rounds) != settings.rounds:
        raise BenchError(f"fedchain reported {len(rounds)} of {settings.rounds} rounds")
    short = [r["round"] for r in rounds if len(r["participants"]) != settings.clients]
    if short:
        raise BenchError(f"fedchain rounds {short} had fewer than {settings.clients} participants")
    return {
        "system": "fedchain",
        "launcher": launcher,
        "round_seconds": [float(r["seconds"]) for r in rounds],
        "chain_height": verify.get("height"),
        "evaluated_rounds": sum(1 for r in rounds if r.get("accuracy") is not None),
        **extra,
    }


# ---------------------------------------------------------------- report


def summarize_system(res: dict[str, Any]) -> dict[str, Any]:
    """Per-round statistics, with and without the first (warm-up) round."""
    secs = res["round_seconds"]
    out = {"all_rounds": stats.summarize(secs).as_dict()}
    if len(secs) > 1:
        out["after_first"] = stats.summarize(secs[1:]).as_dict()
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected systems, write JSON + PNG, print the table."""
    ens = args.ens or (2 if args.quick else 4)
    rounds = args.rounds or (3 if args.quick else 10)
    datasets = paths.DATASETS if args.datasets is None else args.datasets
    paths.require_mnist(datasets)
    settings = fl_settings(ens, rounds, datasets)
    timeout = args.timeout or (120 + 60 * rounds * max(1, ens // 2))
    result: dict[str, Any] = {
        "quick": args.quick,
        "ens": ens,
        "rounds": rounds,
        "workload": {"dataset": "mnist", "model": "mnist-cnn", "samples_per_client": SAMPLES_PER_CLIENT,
                     "train_samples_per_client": int(SAMPLES_PER_CLIENT * settings.train_fraction),
                     "batch_size": settings.batch_size, "local_epochs": 1, "algorithm": "fedavg",
                     "torch_threads_per_process": 1},
        "systems": {},
    }
    with tempfile.TemporaryDirectory(prefix="fcbench-rounds-") as tmp:
        work = Path(tmp)
        parts = write_partitions(settings, work / "parts")
        if args.only in (None, "flower"):
            py = flower_python(args.flower_python)
            res = run_flower(py, settings, parts, work, timeout)
            res["summary"] = summarize_system(res)
            result["systems"]["flower"] = res
        if args.only in (None, "fedchain"):
            res = run_fedchain(settings, work, timeout, args.launcher)
            res["summary"] = summarize_system(res)
            result["systems"]["fedchain"] = res
        if args.keep_logs:
            _copy_logs(work, args.keep_logs)
    systems = result["systems"]
    if "flower" in systems and "fedchain" in systems:
        f = systems["fedchain"]["summary"]["all_rounds"]["median"]
        w = systems["flower"]["summary"]["all_rounds"]["median"]
        result["ratio_fedchain_vs_flower"] = f / w
    path = results.write_json("round_overhead", result, args.results)

    rows = []
    for name, res in systems.items():
        s = res["summary"]["all_rounds"]
        after = res["summary"].get("after_first", s)
        rows.append([name, ens, len(res["round_seconds"]), res.get("startup_seconds", float("nan")), s["median"],
                     s["mean"], after["median"], s["min"], s["max"]])
    results.print_table(f"Seconds per round, {ens} clients, 1 batch of 64 per client per round (MNIST CNN, FedAvg)",
                       ["system", "clients", "rounds", "startup s", "median s", "mean s", "median s (r>=2)",
                        "min s", "max s"], rows)
    if "ratio_fedchain_vs_flower" in result:
        ratio = result["ratio_fedchain_vs_flower"]
        print(f"fedchain / Flower (median seconds per round): {ratio:.3g}x (Flower takes {1 / ratio:.3g}x as long)")
    if systems:
        plot(result, args.plots / "round_overhead.png")
    print(f"wrote {path}" + (f" and {args.plots / 'round_overhead.png'}" if systems else ""))
    return result


def plot(result: dict[str, Any], path: Path) -> Path:
    """Seconds of every round of every system, log scale, with the medians in the legend."""
    series = {}
    for name, res in result["systems"].items():
        secs = res["round_seconds"]
        label = f"{name} (median {res['summary']['all_rounds']['median']:.3g} s)"
        series[label] = (list(range(1, len(secs) + 1)), secs)
    return charts.line_chart(path, series, xlabel="round", ylabel="seconds (log scale)", log=True,
                             title=f"Seconds per round: {result['ens']} clients, 1 batch of 64 each, MNIST CNN, FedAvg")


def _copy_logs(work: Path, dest: Path) -> None:
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for logdir, name in ((work / "flower-logs", "flower"), (work / "fedchain" / "logs", "fedchain")):
        if logdir.is_dir():
            shutil.copytree(logdir, dest / name, dirs_exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 clients, 3 rounds (about a minute per system)")
    parser.add_argument("--ens", type=int, help="number of clients/ENs (default 2 quick, 4 full)")
    parser.add_argument("--rounds", type=int, help="rounds per system (default 3 quick, 10 full)")
    parser.add_argument("--only", choices=["flower", "fedchain"], help="run one system only")
    parser.add_argument("--launcher", choices=["up", "nodes"], default="up",
                        help="start fedchain with `fedchain up` (default) or node by node with `fedchain node`")
    parser.add_argument("--flower-python", help="python of a venv with flwr 1.42 (default: bench/flower/setup.sh)")
    parser.add_argument("--datasets", type=Path, help="folder holding MNIST/raw (default: shared/datasets)")
    parser.add_argument("--timeout", type=float, help="seconds allowed per system's rounds")
    parser.add_argument("--results", type=Path, default=paths.RESULTS_DIR)
    parser.add_argument("--plots", type=Path, default=paths.PLOTS_DIR)
    parser.add_argument("--replot", type=Path, help="only redraw the PNG from a round_overhead.json")
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs to this folder")
    args = parser.parse_args(argv)
    control.exit_on_sigterm()
    if args.replot:
        data = json.loads(args.replot.read_text())
        print(f"wrote {plot(data, args.plots / 'round_overhead.png')}")
        return 0
    for name in ("ens", "rounds"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= 64:
            parser.error(f"--{name} must be between 1 and 64")
    try:
        run(args)
    except BenchError as exc:
        print(f"round_overhead: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
