"""Simulation speed: the serial loop against worker processes and lockstep vmap, one run.

PFLlib's Fashion-MNIST setting (20 clients, pathological 2 classes per client, batch 10,
lr 0.005, 1 local epoch, FedPer by default, the FedAvg CNN), the same client shares for
every mode, evaluation every round as PFLlib does. Modes:

* ``serial``      -- ``run_simulation``'s loop, one process, torch's threads = usable cores;
* ``workers-N``   -- ``--workers N`` (one torch thread each);
* ``vectorize-K`` -- ``--vectorize K`` (K clients in lockstep under vmap, one process).

For each mode: seconds per round after the first (steady state; the first round, which
includes the workers' start-up, is reported apart), the ratio to the serial loop's, the
accuracy per round and whether the final global model equals the serial loop's. The load
average is recorded before and after each mode: the machine may be shared.

Target (issue 14): a mode at <= 0.6x the serial loop's seconds per round with the same
accuracy curve, on this 2-core machine (the limit with two cores is 0.5x).

Usage: python bench/sim_speed.py [--quick] [--rounds R] [--dataset fmnist|mnist-sample]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import BenchError, paths, results

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see --help)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="4 clients, 2,000 samples, 2 timed rounds")
    p.add_argument("--dataset", default="fmnist", choices=("fmnist", "mnist-sample"))
    p.add_argument("--data-dir", type=Path, default=FASHION_MNIST)
    p.add_argument("--algorithm", default="fedper", choices=("fedper", "fedavg"))
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (after the first)")
    p.add_argument("--clients", type=int, default=None)
    p.add_argument("--max-samples", type=int, default=None, help="0 = the whole dataset")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--vectorize", type=int, default=None, help="default: all clients")
    p.add_argument("--results", type=Path, default=paths.RESULTS_DIR)
    args = p.parse_args(argv)
    args.clients = args.clients or (4 if args.quick else 20)
    args.rounds = args.rounds or (2 if args.quick else 3)
    if args.max_samples is None:
        args.max_samples = 2_000 if args.quick else 0
    args.vectorize = args.vectorize or args.clients
    if not 1 <= args.clients <= 1000 or args.rounds < 1 or args.workers < 2:
        p.error("need 1..1000 clients, at least 1 round and at least 2 workers")
    return args


def settings_for(args: argparse.Namespace) -> Any:
    """PFLlib's setting (see the module doc) with the sizes of the flags."""
    from fedchain.shared.config import Settings

    return Settings(
        algorithm=args.algorithm, dataset=args.dataset, data_dir=args.data_dir,
        model="mnist-cnn", clients=args.clients, rounds=args.rounds + 1, local_epochs=1,
        batch_size=10, lr=0.005, momentum=0.0, partition="pathological",
        classes_per_client=2, max_samples=args.max_samples or None, seed=0, device="cpu",
    )


def run_mode(settings: Any, clients: list[Any], engine: Any, threads: int) -> dict[str, Any]:
    """Rounds of one mode: per-round seconds and accuracies, the final global state."""
    import torch

    from fedchain.shared.fl.simulation import Simulation

    torch.set_num_threads(threads)
    load_before = os.getloadavg()
    start = time.perf_counter()
    with Simulation(settings, engine=engine) as sim:
        for data in clients:
            sim.add_client(data)
        rounds = [sim.run_round(evaluate=True) for _ in range(settings.rounds)]
        state = dict(sim.global_state)
    return {
        "first_round_seconds": rounds[0].seconds,
        "round_seconds": [r.seconds for r in rounds[1:]],
        "accuracy": [r.accuracy for r in rounds],
        "wall_seconds": time.perf_counter() - start,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "_state": state,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every mode, print the table, write ``sim_speed[-quick].json``."""
    args = parse_args(argv)
    import torch

    from fedchain.shared.config import ConfigError
    from fedchain.shared.fl.data import load_federated
    from fedchain.shared.fl.engine import EngineOptions, usable_cores

    settings = settings_for(args)
    try:
        clients = load_federated(settings)
    except ConfigError as exc:
        raise BenchError(str(exc)) from exc
    cores = usable_cores()
    modes = {
        "serial": (EngineOptions(), cores),
        f"workers-{args.workers}": (EngineOptions(workers=args.workers), 1),
        f"vectorize-{args.vectorize}": (EngineOptions(vectorize=args.vectorize), cores),
    }
    runs: dict[str, dict[str, Any]] = {}
    for name, (engine, threads) in modes.items():
        print(f"{name}: running {settings.rounds} rounds ...", flush=True)
        runs[name] = run_mode(settings, clients, engine, threads)
    base = runs["serial"]
    base_spr = statistics.median(base["round_seconds"])
    rows = []
    for name, run in runs.items():
        spr = statistics.median(run["round_seconds"])
        run["seconds_per_round"] = spr
        run["ratio_to_serial"] = spr / base_spr
        run["same_model_as_serial"] = all(
            torch.equal(run["_state"][k], base["_state"][k]) for k in base["_state"]
        )
        run["max_param_difference"] = max(
            float((run["_state"][k].double() - base["_state"][k].double()).abs().max())
            for k in base["_state"]
        )
        run["max_accuracy_difference"] = max(
            abs(a - b) for a, b in zip(run["accuracy"], base["accuracy"], strict=True)
        )
        rows.append([
            name, f"{spr:.2f}", f"{run['ratio_to_serial']:.2f}", f"{run['first_round_seconds']:.1f}",
            f"{100 * run['accuracy'][-1]:.2f}%", f"{run['max_accuracy_difference']:.4f}",
            "yes" if run["same_model_as_serial"] else f"no (max {run['max_param_difference']:.1e})",
            " ".join(str(x) for x in run["loadavg_before"][:1] + run["loadavg_after"][:1]),
        ])
    results.print_table(
        f"simulation speed: {settings.clients} clients, {settings.dataset}, pathological 2, "
        f"batch 10, lr 0.005, {cores} usable cores",
        ["mode", "s/round", "x serial", "1st round s", "final acc", "max acc diff",
         "same model", "load before/after"],
        rows,
    )
    name = "sim_speed-quick" if args.quick else "sim_speed"
    payload = {
        "settings": {
            "clients": settings.clients, "dataset": settings.dataset, "rounds": settings.rounds,
            "max_samples": settings.max_samples, "algorithm": settings.algorithm,
            "train_samples": sum(len(c.train) for c in clients), "usable_cores": cores,
        },
        "modes": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in runs.items()},
    }
    path = results.write_json(name, payload, args.results)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"sim_speed: {exc}", file=sys.stderr)
        sys.exit(1)
