"""Accuracy benchmark: PFLlib's published setting for FedAvg and FedPer.

PFLlib (Zhang et al., https://github.com/TsingZ0/PFLlib) reports on Fashion-MNIST with
20 clients, batch 10, lr 0.005, 1 local epoch, FedAvg CNN, the best pooled test
accuracy over 2,000 rounds:

    pathological (2 classes/client): FedAvg 80.41, FedPer 99.47
    Dirichlet alpha=0.1:             FedAvg 85.85, FedPer 97.44

This script runs the same two splits for both algorithms with fedchain's shared core
(``fedchain.shared.fl.simulation.run_simulation``), first on Fashion-MNIST, then on CIFAR-10, and
writes every round to a JSON file and a markdown table beside the published figures.
It is a benchmark, not a test: the full run takes long; run it in the background::

    nohup python bench/accuracy.py > bench/results/accuracy.log 2>&1 &
    python bench/accuracy.py --quick          # about a minute, a smoke run

The number of rounds and the sample budget (a seeded subset of the pooled dataset, to
fit the run in about an hour on one CPU core) are flags and are recorded in the output.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from fedchain.shared.config import ConfigError, load_settings  # noqa: E402
from fedchain.shared.fl.simulation import RoundResult, run_simulation  # noqa: E402

PUBLISHED: dict[tuple[str, str, str], float] = {
    ("fmnist", "pathological", "fedavg"): 80.41,
    ("fmnist", "pathological", "fedper"): 99.47,
    ("fmnist", "dirichlet", "fedavg"): 85.85,
    ("fmnist", "dirichlet", "fedper"): 97.44,
}
SPLITS = (("pathological", {"classes_per_client": 2}), ("dirichlet", {"alpha": 0.1}))
ALGORITHMS = ("fedavg", "fedper")
PFLLIB = dict(clients=20, batch_size=10, lr=0.005, local_epochs=1, momentum=0.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see --help)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny subsets, 2 rounds (~1 min)")
    p.add_argument("--datasets", default="fmnist,cifar10", help="comma-separated: fmnist, cifar10")
    p.add_argument("--fmnist-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    p.add_argument("--cifar-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    p.add_argument("--fmnist-rounds", type=int, default=20)
    p.add_argument("--cifar-rounds", type=int, default=15)
    p.add_argument("--fmnist-samples", type=int, default=10_000, help="0 = all 70,000")
    p.add_argument("--cifar-samples", type=int, default=10_000, help="0 = all 60,000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "accuracy.json")
    p.add_argument("--md", type=Path, default=None, help="markdown table (default: --out with .md)")
    p.add_argument(
        "--resume", action="store_true",
        help="keep the runs already in --out that match this invocation; run only the rest",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.fmnist_rounds = args.cifar_rounds = 2
        args.fmnist_samples = args.cifar_samples = 1_000
        if args.out == p.get_default("out"):
            args.out = REPO / "bench" / "results" / "accuracy-quick.json"
    args.md = args.md or args.out.with_suffix(".md")
    return args


def run_one(
    args: argparse.Namespace, dataset: str, split: str, split_kw: dict[str, Any], algorithm: str
) -> dict[str, Any]:
    """One simulation; prints a line per round; returns its JSON record."""
    data_dir = args.fmnist_dir if dataset == "fmnist" else args.cifar_dir
    rounds = args.fmnist_rounds if dataset == "fmnist" else args.cifar_rounds
    samples = args.fmnist_samples if dataset == "fmnist" else args.cifar_samples
    settings = load_settings(
        algorithm=algorithm,
        dataset=dataset,
        data_dir=data_dir,
        partition=split,
        rounds=rounds,
        seed=args.seed,
        max_samples=samples or None,
        eval=True,
        local_eval=False,
        **split_kw,
        **PFLLIB,
    )
    label = f"{dataset}/{split}/{algorithm}"
    start = time.perf_counter()

    def progress(r: RoundResult) -> None:
        acc = 100 * (r.accuracy or 0.0)
        print(f"{label} round {r.round}/{rounds}: accuracy {acc:.2f}% ({r.seconds:.1f} s)", flush=True)

    result = run_simulation(settings, progress=progress).to_json()
    accs = [r["accuracy"] for r in result["rounds"] if r["accuracy"] is not None]
    result.update(
        dataset=dataset,
        split=split,
        final=100 * accs[-1],
        best=100 * max(accs),
        published=PUBLISHED.get((dataset, split, algorithm)),
        seconds=time.perf_counter() - start,
    )
    return result


def load_previous(path: Path) -> list[dict[str, Any]]:
    """The runs recorded in an earlier results file (none if it is missing or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    runs = data.get("runs") if isinstance(data, dict) else None
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def matching_run(
    previous: list[dict[str, Any]], args: argparse.Namespace, dataset: str, split: str, algorithm: str
) -> dict[str, Any] | None:
    """An earlier run with the same dataset, split, algorithm, rounds, sample budget and seed."""
    rounds = args.fmnist_rounds if dataset == "fmnist" else args.cifar_rounds
    samples = (args.fmnist_samples if dataset == "fmnist" else args.cifar_samples) or None
    for run in previous:
        cfg = run.get("config", {})
        if (
            (run.get("dataset"), run.get("split"), run.get("algorithm")) == (dataset, split, algorithm)
            and cfg.get("rounds") == rounds
            and cfg.get("max_samples") == samples
            and cfg.get("seed") == args.seed
            and len(run.get("rounds", [])) == rounds
        ):
            return run
    return None


def markdown(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The results table beside PFLlib's published figures."""
    lines = [
        "| dataset | split | algorithm | rounds | samples | final acc. % | best acc. % | PFLlib (2,000 rounds) % |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        split = "pathological, 2 classes" if r["split"] == "pathological" else "Dirichlet α=0.1"
        total = sum(sum(c.values()) for c in r["label_counts"])
        pub = "—" if r["published"] is None else f"{r['published']:.2f}"
        lines.append(
            f"| {r['dataset']} | {split} | {r['algorithm']} | {len(r['rounds'])} | {total:,} | "
            f"{r['final']:.2f} | {r['best']:.2f} | {pub} |"
        )
    lines += [
        "",
        f"Setting: {PFLLIB['clients']} clients, batch {PFLLIB['batch_size']}, lr {PFLLIB['lr']}, "
        f"{PFLLIB['local_epochs']} local epoch, seed {args.seed}, {args.threads} CPU thread(s); "
        "accuracy is pooled correct/total over the clients' 25% test splits (FedPer: personal models; "
        'FedAvg: the global model). "samples" is the seeded subset of the pooled train+test set used.',
        "Models: FedAvg CNN (fmnist), fedchain's small CIFAR CNN (cifar10). PFLlib's figures are the best "
        "accuracy over 2,000 rounds on all 70,000 images; fewer rounds and samples give lower FedAvg figures.",
        f"Produced by `python bench/accuracy.py{' --quick' if args.quick else ''}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({platform.processor() or platform.machine()}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every (dataset, split, algorithm) and write the JSON and markdown files."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(datasets) - {"fmnist", "cifar10"})
    if unknown:
        print(f"accuracy: error: unknown dataset(s) {', '.join(unknown)} (use fmnist, cifar10)", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = load_previous(args.out) if args.resume else []
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for dataset in datasets:
        for split, split_kw in SPLITS:
            for algorithm in ALGORITHMS:
                kept = matching_run(previous, args, dataset, split, algorithm)
                if kept is not None:
                    print(f"{dataset}/{split}/{algorithm}: kept from {args.out}", flush=True)
                    runs.append(kept)
                    continue
                try:
                    runs.append(run_one(args, dataset, split, split_kw, algorithm))
                except ConfigError as exc:
                    print(f"accuracy: error: {exc}", file=sys.stderr)
                    return 2
                report = {
                    "benchmark": "accuracy",
                    "quick": args.quick,
                    "setting": PFLLIB,
                    "threads": args.threads,
                    "seconds": time.perf_counter() - started,
                    "runs": runs,
                }
                args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
                args.md.write_text(markdown(runs, args), encoding="utf-8")
    print(markdown(runs, args))
    print(f"wrote {args.out} and {args.md} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
