"""The in-process simulation's overhead: ``run_simulation`` seconds per round vs the time
the same local training takes alone.

Both sides use fedchain's FL core on the same settings and the same client shares:
  * simulation: ``shared.fl.simulation.run_simulation(settings)``, per-round seconds from
    its progress callback (selection, state copies, training, aggregation; no evaluation
    except the last round, which run_simulation always evaluates and which is left out);
  * local training alone: for each round, ``shared.fl.training.train_local`` on every
    client's training split with the same epochs, batch size, lr and per-round seeds,
    one model, nothing else.
The ratio simulation / training alone is the framework's overhead (1.00x = none).

Usage: python bench/sim_overhead.py [--quick] [--clients N] [--rounds R] [--max-samples M]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def settings_for(args: argparse.Namespace, datasets: Path) -> Any:
    """FedAvg over MNIST, IID, eval off; sizes from the flags or the quick/full defaults."""
    from shared.config import Settings

    return Settings(
        algorithm=args.algorithm,
        dataset="mnist",
        data_dir=datasets,
        model="mnist-cnn",
        clients=args.clients or (5 if args.quick else 10),
        rounds=(args.rounds or (3 if args.quick else 4)) + 1,  # +1: the always-evaluated last round is dropped
        local_epochs=1,
        batch_size=64,
        lr=0.01,
        max_samples=args.max_samples or (4_000 if args.quick else 20_000),
        partition="iid",
        seed=0,
        eval=False,
        local_eval=False,
    )


def time_simulation(settings: Any, clients: list[Any]) -> list[float]:
    """Seconds of every round of run_simulation except the last (evaluated) one."""
    from shared.fl.simulation import run_simulation

    seconds: list[float] = []
    run_simulation(settings, clients=clients, progress=lambda r: seconds.append(float(r.seconds)))
    if len(seconds) != settings.rounds:
        raise common.BenchError(f"run_simulation reported {len(seconds)} of {settings.rounds} rounds")
    return seconds[:-1]


def time_training_alone(settings: Any, clients: list[Any], rounds: int) -> tuple[list[float], int]:
    """Per round: the summed seconds of train_local over every client (one model, same seeds)."""
    from shared.fl.models import initial_model
    from shared.fl.seeding import round_seed
    from shared.fl.training import train_local

    model = initial_model(settings)
    start_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    per_round: list[float] = []
    samples = 0
    for rnd in range(1, rounds + 1):
        total = 0.0
        for client in clients:
            model.load_state_dict(start_state)
            t0 = time.perf_counter()
            result = train_local(model, client.train, epochs=settings.local_epochs, batch_size=settings.batch_size,
                                 lr=settings.lr, momentum=settings.momentum,
                                 seed=round_seed(settings.seed, rnd, client.index))
            total += time.perf_counter() - t0
            samples += result.samples
        per_round.append(total)
    return per_round, samples


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure both sides (alternated 2-3 times to even out machine load), write JSON + PNG."""
    import torch

    from shared.fl.data import load_federated

    torch.set_num_threads(args.threads)
    datasets = common.DATASETS if args.datasets is None else args.datasets
    common.require_mnist(datasets)
    settings = settings_for(args, datasets)
    rounds = settings.rounds - 1
    clients = load_federated(settings)
    # warm-up: first-call costs (kernel selection, allocator) are not the framework's
    time_training_alone(settings, clients[:1], 1)
    sim: list[float] = []
    alone: list[float] = []
    samples = 0
    repeats = 2 if args.quick else 3
    for _ in range(repeats):  # alternate the two sides so that load from other processes hits both
        sim += time_simulation(settings, clients)
        secs, n = time_training_alone(settings, clients, rounds)
        alone += secs
        samples += n
    s_sim, s_alone = common.summarize(sim), common.summarize(alone)
    result: dict[str, Any] = {
        "quick": args.quick,
        "settings": {"algorithm": settings.algorithm, "dataset": "mnist", "model": "mnist-cnn",
                     "clients": settings.clients, "rounds_timed": rounds, "repeats": repeats,
                     "max_samples": settings.max_samples, "local_epochs": settings.local_epochs,
                     "batch_size": settings.batch_size, "torch_threads": args.threads},
        "train_samples_per_round": samples // (repeats * rounds),
        "simulation_round_seconds": sim,
        "training_alone_round_seconds": alone,
        "simulation": s_sim.as_dict(),
        "training_alone": s_alone.as_dict(),
        "ratio_simulation_vs_training": s_sim.median / s_alone.median,
        "ratio_simulation_vs_training_min": s_sim.minimum / s_alone.minimum,
        "overhead_seconds_per_round": s_sim.median - s_alone.median,
    }
    path = common.write_json("sim_overhead", result, args.results)
    common.print_table(
        f"run_simulation vs local training alone ({settings.clients} clients, "
        f"{result['train_samples_per_round']} training samples per round, {settings.algorithm})",
        ["side", "rounds", "median s/round", "mean s/round", "min", "max"],
        [["run_simulation", s_sim.n, s_sim.median, s_sim.mean, s_sim.minimum, s_sim.maximum],
         ["train_local alone", s_alone.n, s_alone.median, s_alone.mean, s_alone.minimum, s_alone.maximum]],
    )
    print(f"simulation / training alone: {result['ratio_simulation_vs_training']:.3f}x by medians, "
          f"{result['ratio_simulation_vs_training_min']:.3f}x by fastest rounds "
          f"({result['overhead_seconds_per_round'] * 1000:+.0f} ms per round)")
    common.bar_chart(args.plots / "sim_overhead.png", ["run_simulation", "train_local alone"],
                     [s_sim.median, s_alone.median], errors=[s_sim.stdev, s_alone.stdev],
                     ylabel="seconds per round (median)",
                     title=f"Simulation overhead: {settings.clients} clients, MNIST CNN, {settings.algorithm}")
    print(f"wrote {path} and {args.plots / 'sim_overhead.png'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 clients, 4000 samples, 3 rounds (well under a minute)")
    parser.add_argument("--clients", type=int, help="clients (default 5 quick, 10 full)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 3 quick, 4 full)")
    parser.add_argument("--max-samples", type=int, help="samples in all (default 4000 quick, 20000 full)")
    parser.add_argument("--algorithm", choices=["fedavg", "fedper"], default="fedavg")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--datasets", type=Path, help="folder holding MNIST/raw (default: shared/datasets)")
    parser.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    parser.add_argument("--plots", type=Path, default=common.PLOTS_DIR)
    args = parser.parse_args(argv)
    for name, low, high in (("clients", 1, 1000), ("rounds", 1, 1000), ("max_samples", 10, 70_000), ("threads", 1, 64)):
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            parser.error(f"--{name.replace('_', '-')} must be between {low} and {high}")
    try:
        run(args)
    except common.BenchError as exc:
        print(f"sim_overhead: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
