"""The in-process simulation's overhead: ``run_simulation`` seconds per round vs the time
the same local training takes alone.

Both sides use fedchain's FL core on the same settings and the same client shares:
  * simulation: ``Simulation.run_round`` -- the body of ``run_simulation``'s loop:
    selection, state copies, training, aggregation (evaluation off);
  * local training alone: ``fedchain.shared.fl.training.train_local`` on every client's training
    split with the same epochs, batch size, lr and per-round seeds, one model, nothing else.
The two are measured back to back for every round (order alternating), so load from
other processes hits both alike; the overhead is the median of the per-round ratios
(1.00x = none). ``run_simulation``'s own per-round seconds are recorded beside them.

Usage: python bench/sim_overhead.py [--quick] [--clients N] [--rounds R] [--max-samples M]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import BenchError, charts, control, paths, results, stats


def settings_for(args: argparse.Namespace, datasets: Path) -> Any:
    """FedAvg over MNIST, IID, eval off; sizes from the flags or the quick/full defaults."""
    from fedchain.shared.config import Settings

    return Settings(
        algorithm=args.algorithm,
        dataset="mnist",
        data_dir=datasets,
        model="mnist-cnn",
        clients=args.clients or (5 if args.quick else 10),
        rounds=(args.rounds or (4 if args.quick else 8)) + 1,  # +1: the always-evaluated last round is dropped
        local_epochs=1,
        batch_size=64,
        lr=0.01,
        max_samples=args.max_samples or (4_000 if args.quick else 10_000),
        partition="iid",
        seed=0,
        eval=False,
        local_eval=False,
    )


def paired_rounds(settings: Any, clients: list[Any], rounds: int) -> tuple[list[float], list[float], int]:
    """Per round: seconds of ``Simulation.run_round`` (the body of run_simulation's loop) and
    seconds of train_local alone on every client, measured back to back (order alternating)."""
    from fedchain.shared.fl.models import initial_model
    from fedchain.shared.fl.seeding import round_seed
    from fedchain.shared.fl.simulation import Simulation
    from fedchain.shared.fl.training import train_local

    sim = Simulation(settings)
    for data in clients:
        sim.add_client(data)
    model = initial_model(settings)
    start_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def simulation_round() -> float:
        t0 = time.perf_counter()
        sim.run_round(evaluate=False)
        return time.perf_counter() - t0

    def training_alone(rnd: int) -> tuple[float, int]:
        total, samples = 0.0, 0
        for client in clients:
            model.load_state_dict(start_state)
            t0 = time.perf_counter()
            result = train_local(model, client.train, epochs=settings.local_epochs, batch_size=settings.batch_size,
                                 lr=settings.lr, momentum=settings.momentum,
                                 seed=round_seed(settings.seed, rnd, client.index))
            total += time.perf_counter() - t0
            samples += result.samples
        return total, samples

    sim_s: list[float] = []
    alone_s: list[float] = []
    samples = 0
    for rnd in range(1, rounds + 1):
        if rnd % 2:
            sim_s.append(simulation_round())
            secs, n = training_alone(rnd)
        else:
            secs, n = training_alone(rnd)
            sim_s.append(simulation_round())
        alone_s.append(secs)
        samples += n
    return sim_s, alone_s, samples


def time_run_simulation(settings: Any, clients: list[Any]) -> list[float]:
    """Per-round seconds reported by run_simulation itself (its last, evaluated round left out)."""
    from fedchain.shared.fl.simulation import run_simulation

    seconds: list[float] = []
    run_simulation(settings, clients=clients, progress=lambda r: seconds.append(float(r.seconds)))
    if len(seconds) != settings.rounds:
        raise BenchError(f"run_simulation reported {len(seconds)} of {settings.rounds} rounds")
    return seconds[:-1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure both sides round by round, and run_simulation itself; write JSON + PNG."""
    import torch

    from fedchain.shared.fl.data import load_federated

    torch.set_num_threads(args.threads)
    datasets = paths.DATASETS if args.datasets is None else args.datasets
    paths.require_mnist(datasets)
    settings = settings_for(args, datasets)
    rounds = settings.rounds - 1
    clients = load_federated(settings)
    # warm-up: first-call costs (kernel selection, allocator) are not the framework's
    paired_rounds(settings, clients[:1], 1)
    sim, alone, samples = paired_rounds(settings, clients, rounds)
    ratios = [a / b for a, b in zip(sim, alone, strict=True)]
    reported = time_run_simulation(settings, clients)
    s_sim, s_alone, s_ratio = stats.summarize(sim), stats.summarize(alone), stats.summarize(ratios)
    result: dict[str, Any] = {
        "quick": args.quick,
        "settings": {"algorithm": settings.algorithm, "dataset": "mnist", "model": "mnist-cnn",
                     "clients": settings.clients, "rounds_timed": rounds, "max_samples": settings.max_samples,
                     "local_epochs": settings.local_epochs, "batch_size": settings.batch_size,
                     "torch_threads": args.threads},
        "train_samples_per_round": samples // rounds,
        "simulation_round_seconds": sim,
        "training_alone_round_seconds": alone,
        "paired_ratios": ratios,
        "run_simulation_reported_round_seconds": reported,
        "simulation": s_sim.as_dict(),
        "training_alone": s_alone.as_dict(),
        "run_simulation_reported": stats.summarize(reported).as_dict(),
        "ratio_simulation_vs_training": s_ratio.median,
        "ratio_simulation_vs_training_min": s_ratio.minimum,
        "ratio_simulation_vs_training_max": s_ratio.maximum,
        "overhead_seconds_per_round": s_sim.median - s_alone.median,
    }
    path = results.write_json("sim_overhead", result, args.results)
    results.print_table(
        f"run_simulation vs local training alone ({settings.clients} clients, "
        f"{result['train_samples_per_round']} training samples per round, {settings.algorithm})",
        ["side", "rounds", "median s/round", "mean s/round", "min", "max"],
        [["Simulation.run_round", s_sim.n, s_sim.median, s_sim.mean, s_sim.minimum, s_sim.maximum],
         ["train_local alone", s_alone.n, s_alone.median, s_alone.mean, s_alone.minimum, s_alone.maximum]],
    )
    print(f"simulation / training alone: {result['ratio_simulation_vs_training']:.3f}x (median of the per-round "
          f"ratios; range {s_ratio.minimum:.3f}-{s_ratio.maximum:.3f}; "
          f"{result['overhead_seconds_per_round'] * 1000:+.0f} ms per round)")
    charts.bar_chart(args.plots / "sim_overhead.png", ["simulation round", "train_local alone"],
                     [s_sim.median, s_alone.median], errors=[s_sim.stdev, s_alone.stdev],
                     ylabel="seconds per round (median)",
                     title=f"Simulation overhead: {settings.clients} clients, MNIST CNN, {settings.algorithm}")
    print(f"wrote {path} and {args.plots / 'sim_overhead.png'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 clients, 4000 samples, 4 rounds (well under a minute)")
    parser.add_argument("--clients", type=int, help="clients (default 5 quick, 10 full)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 4 quick, 8 full)")
    parser.add_argument("--max-samples", type=int, help="samples in all (default 4000 quick, 10000 full)")
    parser.add_argument("--algorithm", choices=["fedavg", "fedper"], default="fedavg")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--datasets", type=Path, help="folder holding MNIST/raw (default: shared/datasets)")
    parser.add_argument("--results", type=Path, default=paths.RESULTS_DIR)
    parser.add_argument("--plots", type=Path, default=paths.PLOTS_DIR)
    args = parser.parse_args(argv)
    control.exit_on_sigterm()
    for name, low, high in (("clients", 1, 1000), ("rounds", 1, 1000), ("max_samples", 10, 70_000), ("threads", 1, 64)):
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            parser.error(f"--{name.replace('_', '-')} must be between {low} and {high}")
    try:
        run(args)
    except BenchError as exc:
        print(f"sim_overhead: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
