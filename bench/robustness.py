"""Poisoning benchmark: robust aggregators against attacking clients, and their cost.

Every run is fedchain's in-process simulation (``run_simulation``) in PFLlib's setting
(20 clients, batch 10, lr 0.005, 1 local epoch) on Fashion-MNIST or MNIST, split
pathologically (2 classes per client) or by Dirichlet α=0.1, with a share of the clients
attacking (``fedchain.shared.fl.attacks``: sign-flip, scale:λ, gaussian:σ, label-flip,
nan) and one aggregator (``fedchain.shared.fl.robust``). Per run it records the final
pooled accuracy, the first round that reached ``--target``, and the share of attacker
updates the aggregator rejected or clipped (over all rounds). Clean runs (0% attackers)
are the reference every attacked run is compared with.

A second, small table: the seconds one aggregation of 20 MNIST-CNN updates takes with
each aggregator (median of repeats).

It is a benchmark, not a test::

    python bench/robustness.py --quick                 # a few minutes: 1 dataset, 3 rounds
    python bench/robustness.py --budget 1200           # stops starting runs after 20 min
    python bench/robustness.py --merge a/robustness.json b/robustness.json   # parts run side by side

Results: ``bench/results/robustness.json`` (every run, every round's decisions counts),
``robustness.md`` (the tables), ``bench/plots/robustness-*.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import BenchError, charts, paths, results

PFLLIB: dict[str, Any] = dict(clients=20, batch_size=10, lr=0.005, local_epochs=1, momentum=0.0)
SPLITS: dict[str, dict[str, Any]] = {
    "pathological": {"partition": "pathological", "classes_per_client": 2},
    "dirichlet": {"partition": "dirichlet", "alpha": 0.1},
}
DATA_DIRS = {"fmnist": Path("/usr/share/datasets/fashion-mnist"), "mnist": paths.DATASETS}
AGGREGATORS = "mean,median,trimmed:0.3,krum:8,multikrum:8,bulyan:4,clip:2,clip:2+multikrum:8"
ATTACKS = "sign-flip,scale:10,gaussian:1,label-flip,nan"


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _aggregators(text: str) -> list[str]:
    """Comma-separated aggregators; ``multikrum:f,m`` keeps its comma (an all-digit item)."""
    out: list[str] = []
    for item in _list(text):
        if item.isdigit() and out:
            out[-1] += "," + item
        else:
            out.append(item)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see --help)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few minutes: fmnist, dirichlet, fedavg, 3 rounds")
    p.add_argument("--datasets", default="fmnist,mnist", help="fmnist, mnist")
    p.add_argument("--splits", default="pathological,dirichlet")
    p.add_argument("--algorithms", default="fedavg,fedper")
    p.add_argument("--shares", default="0,0.1,0.3,0.45", help="shares of attacking clients")
    p.add_argument("--attacks", default=ATTACKS)
    p.add_argument("--aggregators", default=AGGREGATORS)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--samples", type=int, default=10_000, help="seeded subset of the pooled dataset (0: all)")
    p.add_argument("--target", type=float, default=0.7, help="accuracy whose first round is reported")
    p.add_argument("--budget", type=float, default=0.0, help="seconds after which no new run starts (0: none)")
    p.add_argument("--cost-repeats", type=int, default=5, help="timings per aggregator in the cost table")
    p.add_argument("--lr", type=float, default=PFLLIB["lr"], help="SGD learning rate (PFLlib: 0.005)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--results", type=Path, default=paths.RESULTS_DIR)
    p.add_argument("--plots", type=Path, default=paths.PLOTS_DIR)
    p.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                   help="run nothing: one table, JSON and plots from earlier robustness.json files "
                        "(parts of a grid run side by side); their runs in the order given")
    p.add_argument("--fmnist-dir", type=Path, default=DATA_DIRS["fmnist"])
    p.add_argument("--mnist-dir", type=Path, default=DATA_DIRS["mnist"])
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.splits, args.algorithms = "fmnist", "dirichlet", "fedavg"
        args.shares, args.attacks = "0,0.3", "scale:10"
        args.aggregators = "mean,multikrum:8,clip:2"
        args.rounds, args.samples, args.cost_repeats, args.target = 3, 1_200, 2, 0.3
    for name in ("datasets", "splits", "algorithms", "attacks"):
        setattr(args, name, _list(getattr(args, name)))
    args.aggregators = _aggregators(args.aggregators)
    args.shares = [float(s) for s in _list(args.shares)]
    bad = sorted(set(args.datasets) - set(DATA_DIRS)) + sorted(set(args.splits) - set(SPLITS))
    if bad or not 1 <= args.rounds <= 10_000:
        p.error(f"unknown dataset or split {bad}" if bad else "--rounds must be between 1 and 10000")
    return args


def scenarios(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every run, clean ones first within each (dataset, split, algorithm)."""
    out: list[dict[str, Any]] = []
    for dataset in args.datasets:
        for split in args.splits:
            for algorithm in args.algorithms:
                base = {"dataset": dataset, "split": split, "algorithm": algorithm}
                attacked = [
                    (attack, share) for share in args.shares if share > 0 for attack in args.attacks
                ]
                pairs = [("none", 0.0)] * (0 in args.shares) + attacked
                for attack, share in pairs:
                    for aggregator in args.aggregators:
                        out.append({**base, "attack": attack, "share": share, "aggregator": aggregator})
    return out


def run_one(args: argparse.Namespace, sc: dict[str, Any]) -> dict[str, Any]:
    """One simulation; returns its record (accuracy per round, decisions, flagged share)."""
    from fedchain.shared.config import load_settings
    from fedchain.shared.fl.attacks import AttackPlan
    from fedchain.shared.fl.simulation import run_simulation

    data_dir = args.fmnist_dir if sc["dataset"] == "fmnist" else args.mnist_dir
    settings = load_settings(
        algorithm=sc["algorithm"], dataset=sc["dataset"], data_dir=data_dir, rounds=args.rounds,
        seed=args.seed, max_samples=args.samples or None, eval=True, local_eval=False,
        aggregator=sc["aggregator"], **SPLITS[sc["split"]], **{**PFLLIB, "lr": args.lr},
    )
    plan = None
    if sc["share"] > 0:
        plan = AttackPlan.build(sc["attack"], sc["share"], list(range(settings.clients)), settings.seed)
    start = time.perf_counter()
    result = run_simulation(settings, attack=plan)
    accs = [r.accuracy for r in result.rounds]
    reached = next((r.round for r in result.rounds if (r.accuracy or 0) >= args.target), None)
    attackers = plan.attackers if plan is not None else frozenset()
    flagged = total = 0
    for r in result.rounds:
        present = [i for i, c in enumerate(r.participants) if c in attackers]
        hit = {d["index"] for d in r.decisions if d["action"] in ("rejected", "clipped")}
        total += len(present)
        flagged += sum(1 for i in present if i in hit)
    return {
        **sc,
        "final": 100 * (result.final_accuracy or 0.0),
        "rounds_to_target": reached,
        "accuracy": [None if a is None else round(100 * a, 2) for a in accs],
        "attackers": sorted(attackers),
        "attacker_updates": total,
        "attackers_flagged": flagged / total if total else None,
        "decisions_per_round": [len(r.decisions) for r in result.rounds],
        "honest_rejected_per_round": [
            sum(1 for d in r.decisions if d["action"] == "rejected" and int(str(d["node"])) not in attackers)
            for r in result.rounds
        ],
        "seconds": time.perf_counter() - start,
    }


def aggregation_cost(aggregators: list[str], repeats: int) -> list[dict[str, Any]]:
    """Seconds of one aggregation of 20 MNIST-CNN updates per aggregator (median, min)."""
    import torch

    from fedchain.shared.fl.models import build_model
    from fedchain.shared.fl.robust import Aggregator

    model = build_model("mnist-cnn", "mnist")
    base = {k: v.detach().clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    updates = [
        ({k: v + 0.01 * torch.randn(v.shape, generator=gen) if v.dtype.is_floating_point else v.clone()
          for k, v in base.items()}, 100 + i)
        for i in range(20)
    ]
    rows = []
    for spec in aggregators:
        agg = Aggregator(spec)
        times = []
        for _ in range(repeats + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            agg(updates, base)
            times.append(time.perf_counter() - t0)
        rows.append({"aggregator": spec, "median_s": statistics.median(times[1:]), "min_s": min(times[1:])})
    return rows


def _clean_final(runs: list[dict[str, Any]], run: dict[str, Any]) -> float | None:
    for r in runs:
        if r["share"] == 0 and all(r[k] == run[k] for k in ("dataset", "split", "algorithm", "aggregator")):
            return float(r["final"])
    return None


def markdown(runs: list[dict[str, Any]], cost: list[dict[str, Any]], args: argparse.Namespace,
             skipped: int, seconds: float) -> str:
    """The accuracy table, the cost table and how they were produced."""
    lines = [
        f"| dataset | split | algorithm | attack | attackers | aggregator | final acc. % | "
        f"vs clean (same agg.) | rounds to {100 * args.target:g}% | attacker updates rejected/clipped |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        clean = _clean_final(runs, r)
        delta = "—" if clean is None or r["share"] == 0 else f"{r['final'] - clean:+.2f}"
        flagged = "—" if r["attackers_flagged"] is None else f"{100 * r['attackers_flagged']:.0f}%"
        reached = "—" if r["rounds_to_target"] is None else str(r["rounds_to_target"])
        lines.append(
            f"| {r['dataset']} | {r['split']} | {r['algorithm']} | {r['attack']} | "
            f"{100 * r['share']:g}% | `{r['aggregator']}` | {r['final']:.2f} | {delta} | {reached} | {flagged} |"
        )
    lines += ["", "| aggregator (20 MNIST-CNN updates) | median ms | min ms |", "|---|---:|---:|"]
    lines += [f"| `{c['aggregator']}` | {1000 * c['median_s']:.1f} | {1000 * c['min_s']:.1f} |" for c in cost]
    lines += [
        "",
        f"Setting: {PFLLIB['clients']} clients, batch {PFLLIB['batch_size']}, lr {args.lr:g}, "
        f"{PFLLIB['local_epochs']} local epoch, {args.rounds} rounds, "
        f"{args.samples or 'all'} samples (seeded subset), seed {args.seed}, {args.threads} thread(s); "
        f"{len(runs)} runs in {seconds:.0f} s" + (f", {skipped} skipped by the time budget" if skipped else "") + ".",
    ]
    return "\n".join(lines) + "\n"


def plots(runs: list[dict[str, Any]], out: Path) -> list[Path]:
    """Final accuracy and rounds to target, grouped by scenario, one bar per aggregator."""
    groups = sorted({(r["dataset"], r["split"], r["algorithm"], r["attack"], r["share"]) for r in runs},
                    key=lambda g: (g[0], g[1], g[2], g[4], g[3]))
    names = list(dict.fromkeys(r["aggregator"] for r in runs))
    labels = [f"{g[0]}/{g[1][:4]}/{g[2]}\n{g[3]} {100 * g[4]:g}%" for g in groups]
    by = {(r["dataset"], r["split"], r["algorithm"], r["attack"], r["share"], r["aggregator"]): r for r in runs}

    def series(field: str, missing: float) -> dict[str, list[float]]:
        return {
            name: [
                float(by[(*g, name)][field]) if (*g, name) in by and by[(*g, name)][field] is not None
                else missing
                for g in groups
            ]
            for name in names
        }

    acc = charts.grouped_bar_chart(out / "robustness-accuracy.png", labels, series("final", 0.0),
                                   ylabel="final accuracy %", title="final accuracy by aggregator")
    rounds = charts.grouped_bar_chart(out / "robustness-rounds.png", labels, series("rounds_to_target", 0.0),
                                      ylabel="rounds to target (0: not reached)", title="rounds to target accuracy")
    return [acc, rounds]


def merge(args: argparse.Namespace) -> int:
    """``--merge``: the runs of several result files as one (the first file's cost table;
    the settings must agree, or the table would compare unlike runs)."""
    parts = []
    for path in args.merge:
        try:
            parts.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            print(f"robustness: error: cannot read {path}: {exc}", file=sys.stderr)
            return 2
    keys = ("rounds", "samples", "lr", "seed", "threads")
    first = parts[0].get("args", {})
    for path, part in zip(args.merge, parts, strict=True):
        other = part.get("args", {})
        if any(other.get(k) != first.get(k) for k in keys):
            print(f"robustness: error: {path} was run with other settings ({', '.join(keys)}) "
                  f"than {args.merge[0]}", file=sys.stderr)
            return 2
    for k in keys:
        setattr(args, k, first.get(k, getattr(args, k)))
    args.target = first.get("target", args.target)
    runs = [r for part in parts for r in part.get("runs", [])]
    skipped = sum(int(part.get("skipped", 0)) for part in parts)
    seconds = sum(float(part.get("seconds", 0.0)) for part in parts)
    payload = {"quick": False, "setting": PFLLIB, "args": first, "runs": runs, "cost": parts[0].get("cost", []),
               "skipped": skipped, "seconds": seconds, "merged_from": [str(p) for p in args.merge],
               "loads": [part.get("machine", {}).get("loadavg_1_5_15") for part in parts]}
    results.write_json("robustness", payload, args.results)
    md = markdown(runs, payload["cost"], args, skipped, seconds)
    (args.results / "robustness.md").write_text(md, encoding="utf-8")
    made = plots(runs, args.plots)
    print(md)
    print(f"wrote {args.results / 'robustness.json'}, robustness.md and {', '.join(str(p) for p in made)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios (within the budget), the cost table; write JSON, markdown, PNG."""
    args = parse_args(argv)
    if args.merge:
        return merge(args)
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        if "mnist" in args.datasets:
            paths.require_mnist(args.mnist_dir)
        todo = scenarios(args)
        print(f"robustness: {len(todo)} runs of {args.rounds} rounds", flush=True)
        cost = aggregation_cost(args.aggregators, args.cost_repeats)
        results.print_table("aggregation of 20 MNIST-CNN updates", ["aggregator", "median s", "min s"],
                            [[c["aggregator"], c["median_s"], c["min_s"]] for c in cost])
        runs: list[dict[str, Any]] = []
        skipped = 0
        payload: dict[str, Any] = {"quick": args.quick, "runs": runs, "cost": cost}
        for i, sc in enumerate(todo, start=1):
            if args.budget and time.perf_counter() - started > args.budget:
                skipped = len(todo) - i + 1
                print(f"robustness: time budget reached, {skipped} runs not started", flush=True)
                break
            run = run_one(args, sc)
            runs.append(run)
            flagged = "-" if run["attackers_flagged"] is None else f"{100 * run['attackers_flagged']:.0f}%"
            print(f"[{i}/{len(todo)}] {sc['dataset']}/{sc['split']}/{sc['algorithm']} {sc['attack']} "
                  f"{100 * sc['share']:g}% {sc['aggregator']}: final {run['final']:.2f}%, "
                  f"flagged {flagged} ({run['seconds']:.0f} s)", flush=True)
            payload = {"quick": args.quick, "setting": PFLLIB, "args": {
                k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "runs": runs, "cost": cost, "skipped": skipped}
            results.write_json("robustness", payload, args.results)
    except (BenchError, ValueError) as exc:
        print(f"robustness: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    payload["skipped"] = skipped
    payload["seconds"] = seconds
    results.write_json("robustness", payload, args.results)
    md = markdown(runs, cost, args, skipped, seconds)
    (args.results / "robustness.md").write_text(md, encoding="utf-8")
    made = plots(runs, args.plots)
    print(md)
    print(f"wrote {args.results / 'robustness.json'}, robustness.md and {', '.join(str(p) for p in made)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
