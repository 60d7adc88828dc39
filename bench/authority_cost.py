"""What the trust work costs a round: `fedchain up` round seconds, this checkout vs a base commit, in one run.

The authority issue promises that signing and checking every control message, the entry's
signed tree heads and the bounds on every input make a round at most 10% slower. This
benchmark measures it the only way that means something on a shared machine: the same
small network (``fedchain up --sns 0 --ens N``, MNIST sample, FedPer) trained from a base
commit (default: the first wave, before any of that work) and from this checkout,
alternated base/current/base/current in one run, and the ratio of the median round
seconds reported beside the load average. Round seconds are the entry's own clock (round
opened to block appended, from ``GET /rounds`` of a ``--keep`` network); the first round of every run (model
download, warm-up) is left out.

The base commit is checked out into a temporary git worktree and run with the same Python
and packages as this checkout (``python -m services.cli.main`` there, since the package was
renamed later; ``python -m fedchain`` here).

Usage: python bench/authority_cost.py [--quick] [--base REV] [--ens N] [--rounds R] [--pairs K]
Writes bench/results/authority_cost.json and prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import BenchError, paths, results

from fedchain.shared.processes import free_port

DEFAULT_BASE = "92086e2"
"""The end of the first wave: before signed control messages, tree heads and ingress bounds."""


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=paths.REPO, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def _env(checkout: Path) -> dict[str, str]:
    """A fresh shell's environment for one checkout: no FEDCHAIN_* settings of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_") or k.startswith("FEDCHAIN_TEST_")}
    env.update(PYTHONPATH=str(checkout), OMP_NUM_THREADS="1", FEDCHAIN_TORCH_THREADS="1")
    return env


def _argv(checkout: Path) -> list[str]:
    if (checkout / "fedchain" / "__main__.py").is_file():
        return [sys.executable, "-m", "fedchain"]
    return [sys.executable, "-m", "services.cli.main"]


def _api_token(state: Path) -> str:
    """The API token `up` used: generated into tokens.env today, built in at the base commit."""
    tokens = state / "tokens.env"
    if tokens.is_file():
        for line in tokens.read_text().splitlines():
            if line.startswith("FEDCHAIN_API_TOKEN="):
                return line.split("=", 1)[1]
    return "fedchain-dev-api"


def run_once(checkout: Path, ens: int, rounds: int, timeout: float) -> list[float]:
    """Round seconds (the entry's clock, from GET /rounds) of one `fedchain up --keep` from ``checkout``."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="fc-authority-cost-") as tmp:
        state, port = Path(tmp) / "state", free_port()
        argv = [*_argv(checkout), "up", "--state-dir", str(state), "--port", str(port), "--keep",
                "--sns", "0", "--ens", str(ens), "--rounds", str(rounds), "--max-samples", str(300 * ens)]
        try:
            done = subprocess.run(argv, cwd=checkout, env=_env(checkout), capture_output=True, text=True,
                                  timeout=timeout)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout)[-800:]
                raise BenchError(f"`up` from {checkout} exited {done.returncode}: {tail}")
            if "chain verified" not in done.stdout:
                raise BenchError(f"`up` from {checkout} did not verify its chain")
            answer = httpx.get(f"http://127.0.0.1:{port + 1000}/rounds", timeout=30,
                               headers={"Authorization": f"Bearer {_api_token(state)}"})
            answer.raise_for_status()
            seconds = {int(r["round"]): float(r["seconds"]) for r in answer.json()}
        except httpx.HTTPError as exc:
            raise BenchError(f"GET /rounds of the network from {checkout}: {exc}") from None
        finally:
            subprocess.run([*_argv(checkout), "down", "--state-dir", str(state)], cwd=checkout,
                           env=_env(checkout), capture_output=True, timeout=120)
    if sorted(seconds) != list(range(1, rounds + 1)):
        raise BenchError(f"the network from {checkout} recorded rounds {sorted(seconds)}, expected 1..{rounds}")
    return [seconds[r] for r in range(1, rounds + 1)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    base_rev = _git("rev-parse", "--short", args.base)
    head_rev = _git("rev-parse", "--short", "HEAD")
    load_before = [round(x, 2) for x in os.getloadavg()]
    samples: dict[str, list[float]] = {"base": [], "current": []}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fc-base-") as tmp:
        base_dir = Path(tmp) / "base"
        _git("worktree", "add", "--detach", "-q", str(base_dir), base_rev)
        try:
            for pair in range(args.pairs):
                for name, checkout in (("base", base_dir), ("current", paths.REPO)):
                    t0 = time.monotonic()
                    secs = run_once(checkout, args.ens, args.rounds, args.timeout)
                    samples[name].extend(secs[1:])  # round 1 carries the warm-up
                    runs.append({"system": name, "pair": pair, "round_seconds": secs,
                                 "wall_seconds": round(time.monotonic() - t0, 2)})
                    print(f"  {name:8s} pair {pair + 1}/{args.pairs}: rounds "
                          + ", ".join(f"{s:.3f}" for s in secs) + " s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_dir)], cwd=paths.REPO,
                           capture_output=True, timeout=120)
    medians = {name: statistics.median(vals) for name, vals in samples.items()}
    ratio = medians["current"] / medians["base"] if medians["base"] > 0 else float("inf")
    return {
        "base": base_rev,
        "current": head_rev,
        "ens": args.ens,
        "rounds": args.rounds,
        "pairs": args.pairs,
        "median_round_seconds": {k: round(v, 4) for k, v in medians.items()},
        "ratio_current_to_base": round(ratio, 3),
        "target_ratio_at_most": 1.10,
        "loadavg_before": load_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 pair of runs of 3 rounds (a few minutes)")
    parser.add_argument("--base", default=DEFAULT_BASE, help=f"commit to compare with (default {DEFAULT_BASE})")
    parser.add_argument("--ens", type=int, default=2, help="ENs in the network (default 2)")
    parser.add_argument("--rounds", type=int, help="rounds per run (default 3 quick, 8 full)")
    parser.add_argument("--pairs", type=int, help="base/current pairs, alternated (default 1 quick, 3 full)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per run")
    parser.add_argument("--results", type=Path, default=paths.RESULTS_DIR)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 8)
    args.pairs = args.pairs or (1 if args.quick else 3)
    if args.rounds < 2 or args.pairs < 1 or args.ens < 1:
        parser.error("--rounds must be at least 2 (round 1 is left out), --pairs and --ens at least 1")
    try:
        data = run(args)
    except BenchError as exc:
        print(f"authority_cost: {exc}", file=sys.stderr)
        return 1
    out = results.write_json("authority_cost", data, args.results)
    m = data["median_round_seconds"]
    results.print_table(
        f"round seconds, median of rounds 2..{args.rounds} over {args.pairs} run(s) each "
        f"(load {data['loadavg_before']} -> {data['loadavg_after']})",
        ["checkout", "commit", "median s/round"],
        [["base", data["base"], f"{m['base']:.3f}"], ["current", data["current"], f"{m['current']:.3f}"]],
    )
    verdict = "within" if data["ratio_current_to_base"] <= 1.10 else "ABOVE"
    print(f"current / base = {data['ratio_current_to_base']:.3f} ({verdict} the 1.10 target); {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
