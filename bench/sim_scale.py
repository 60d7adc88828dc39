"""Simulation scale: peak RSS and seconds per round for 20 / 100 / 1,000 clients, one process.

Fashion-MNIST (all 70,000 samples), Dirichlet alpha 0.3, FedPer, client fraction 0.1,
batch 10, lr 0.005, 1 local epoch, the serial loop. Every client count runs in its own
process (so each peak RSS is its own): clients' data are index views into one pool and
each client keeps only its head tensors, so memory should grow by heads (and by index
arrays), not by models. Reported per count: peak RSS (``ru_maxrss``), RSS after the data
is loaded, the bytes of all heads, seconds per round (after the first), load average.

Usage: python bench/sim_scale.py [--quick] [--counts 20,100,1000] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import BenchError, paths, results

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def one(clients: int, rounds: int, data_dir: Path, max_samples: int | None) -> dict[str, Any]:
    """Run one client count in this process; its measurements."""
    import psutil
    import torch

    from fedchain.shared.config import Settings
    from fedchain.shared.fl.data import load_federated
    from fedchain.shared.fl.simulation import Simulation

    torch.set_num_threads(1)
    s = Settings(
        algorithm="fedper", dataset="fmnist", data_dir=data_dir, clients=clients,
        rounds=rounds + 1, local_epochs=1, batch_size=10, lr=0.005, partition="dirichlet",
        alpha=0.3, client_fraction=0.1, max_samples=max_samples, seed=0, device="cpu",
    )
    datas = load_federated(s)
    rss_data = psutil.Process().memory_info().rss
    seconds = []
    with Simulation(s) as sim:
        for d in datas:
            sim.add_client(d)
        for _ in range(s.rounds):
            seconds.append(sim.run_round(evaluate=True).seconds)
        heads = sum(t.numel() * t.element_size() for c in sim.clients for t in c._personal.values())
        accuracy = sim.history[-1].accuracy
    return {
        "clients": clients,
        "selected_per_round": len(sim.history[-1].participants),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_data_mb": rss_data / 2**20,
        "heads_mb": heads / 2**20,
        "first_round_seconds": seconds[0],
        "seconds_per_round": statistics.median(seconds[1:]),
        "final_accuracy": accuracy,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    """Run every count in a child process, print the table, write ``sim_scale[-quick].json``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="20 and 100 clients, 1 timed round")
    p.add_argument("--counts", default=None, help="comma-separated client counts")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (after the first)")
    p.add_argument("--data-dir", type=Path, default=FASHION_MNIST)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--results", type=Path, default=paths.RESULTS_DIR)
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 2)
    if args.one is not None:
        print(json.dumps(one(args.one, rounds, args.data_dir, args.max_samples)))
        return 0
    counts = [int(c) for c in (args.counts or ("20,100" if args.quick else "20,100,1000")).split(",")]
    rows, runs = [], []
    for count in counts:
        start = time.perf_counter()
        cmd = [sys.executable, __file__, "--one", str(count), "--rounds", str(rounds),
               "--data-dir", str(args.data_dir)]
        if args.max_samples:
            cmd += ["--max-samples", str(args.max_samples)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise BenchError(f"{count} clients failed: {proc.stderr[-1500:]}")
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        run["wall_seconds"] = time.perf_counter() - start
        runs.append(run)
        rows.append([count, run["selected_per_round"], f"{run['peak_rss_mb']:.0f}",
                     f"{run['rss_after_data_mb']:.0f}", f"{run['heads_mb']:.2f}",
                     f"{run['seconds_per_round']:.2f}", f"{100 * run['final_accuracy']:.1f}%",
                     run["loadavg"][0]])
        print(f"{count} clients done", flush=True)
    results.print_table(
        "simulation scale: Fashion-MNIST, Dirichlet 0.3, FedPer, fraction 0.1, one process",
        ["clients", "trained/round", "peak RSS MB", "RSS after data MB", "heads MB", "s/round",
         "accuracy", "load 1m"],
        rows,
    )
    path = results.write_json("sim_scale-quick" if args.quick else "sim_scale", {"runs": runs},
                              args.results)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"sim_scale: {exc}", file=sys.stderr)
        sys.exit(1)
