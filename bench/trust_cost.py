"""What the trust work costs: round seconds of this checkout vs a base commit, in one run.

Two issues promise a bound on the round time: "Authority" (signed control messages, tree
heads, bounds on every input: at most 10% slower) and "Verifiable rounds" (signed
evidence, kept updates, the entry's recomputation: at most 15%, at 4 and at 16 ENs). This
benchmark measures both the only way that means something on a shared machine: the same
small network (``fedchain up --sns 0 --ens N``, MNIST sample, FedPer, ``up``'s own
defaults: every update kept) trained from a base commit (default: the end of the first
wave, before any of that work) and from this checkout, alternated base/current/base/current
in one run, for each network size; the ratio of the median round seconds is reported
beside the load average. Round seconds are the entry's own clock (round opened to block
appended, from ``GET /rounds`` of a ``--keep`` network); round 1 (model download,
warm-up) is left out.

For this checkout it also measures what "Verifiable rounds" asks to be known: the bytes
of EN updates the ledger keeps per round (the blob files the round blocks name), and the
seconds per round that ``fedchain verify --deep`` (recompute every round from its kept
updates) takes beyond a plain ``fedchain verify`` of the same chain.

The base commit is checked out into a temporary git worktree and run with the same Python
and packages as this checkout (``python -m services.cli.main`` there, since the package was
renamed later; ``python -m fedchain`` here).

Usage: python bench/trust_cost.py [--quick] [--base REV] [--ens N[,N...]] [--rounds R] [--pairs K]
Writes bench/results/trust_cost.json and prints a table.
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
"""The end of the first wave: before signed control messages, tree heads and round evidence."""
TARGETS = {"authority": 1.10, "verifiable_rounds": 1.15}
"""The issues' bounds on current / base round seconds."""


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=paths.REPO, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def _env(checkout: Path, **settings: str) -> dict[str, str]:
    """A fresh shell's environment for one checkout: no FEDCHAIN_* settings of the caller,
    only ``settings`` (e.g. FEDCHAIN_KEEP_UPDATES="none")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_") or k.startswith("FEDCHAIN_TEST_")}
    env.update(PYTHONPATH=str(checkout), OMP_NUM_THREADS="1", FEDCHAIN_TORCH_THREADS="1", **settings)
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


def _timed(argv: list[str], checkout: Path, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    done = subprocess.run(argv, cwd=checkout, env=_env(checkout), capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        raise BenchError(f"{what} exited {done.returncode}: {(done.stdout + done.stderr)[-600:]}")
    return seconds


def _kept_bytes_per_round(blocks: list[dict[str, Any]], blobs: Path) -> float:
    """Mean bytes of the EN update blobs the ledger holds for each round block."""
    per_round: list[int] = []
    for b in blocks:
        if b["kind"] != "round":
            continue
        total = 0
        for p in b["payload"].get("participants", []):
            d = p["update_digest"]
            path = blobs / d[:2] / d
            total += path.stat().st_size if path.is_file() else 0
        per_round.append(total)
    return statistics.mean(per_round) if per_round else 0.0


def run_once(
    checkout: Path, ens: int, rounds: int, timeout: float, *, extras: bool, settings: dict[str, str] | None = None
) -> dict[str, Any]:
    """One `fedchain up --keep` from ``checkout``: its round seconds (the entry's clock, from
    GET /rounds) and, with ``extras``, the kept bytes per round and verify / verify --deep seconds."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="fc-trust-cost-") as tmp:
        state, port = Path(tmp) / "state", free_port()
        argv = [*_argv(checkout), "up", "--state-dir", str(state), "--port", str(port), "--keep",
                "--sns", "0", "--ens", str(ens), "--rounds", str(rounds), "--max-samples", str(300 * ens)]
        out: dict[str, Any] = {}
        try:
            done = subprocess.run(argv, cwd=checkout, env=_env(checkout, **(settings or {})), capture_output=True,
                                  text=True, timeout=timeout)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout)[-800:]
                raise BenchError(f"`up` from {checkout} exited {done.returncode}: {tail}")
            if "chain verified" not in done.stdout:
                raise BenchError(f"`up` from {checkout} did not verify its chain")
            api = f"http://127.0.0.1:{port + 1000}"
            auth = {"Authorization": f"Bearer {_api_token(state)}"}
            answer = httpx.get(f"{api}/rounds", timeout=30, headers=auth)
            answer.raise_for_status()
            seconds = {int(r["round"]): float(r["seconds"]) for r in answer.json()}
            if extras:
                blocks = httpx.get(f"{api}/blocks", params={"from": 0, "limit": 1000}, timeout=30, headers=auth)
                blocks.raise_for_status()
                out["kept_bytes_per_round"] = _kept_bytes_per_round(blocks.json(), state / "ledger" / "blobs")
        except httpx.HTTPError as exc:
            raise BenchError(f"GET /rounds of the network from {checkout}: {exc}") from None
        finally:
            subprocess.run([*_argv(checkout), "down", "--state-dir", str(state)], cwd=checkout,
                           env=_env(checkout), capture_output=True, timeout=120)
        if extras:  # the network is down: the ledger's files are read directly
            verify = [*_argv(checkout), "verify", "--state-dir", str(state)]
            out["verify_seconds"] = _timed(verify, checkout, timeout, "fedchain verify")
            out["verify_deep_seconds"] = _timed([*verify, "--deep", "--require-all"], checkout, timeout,
                                                "fedchain verify --deep")
    if sorted(seconds) != list(range(1, rounds + 1)):
        raise BenchError(f"the network from {checkout} recorded rounds {sorted(seconds)}, expected 1..{rounds}")
    out["round_seconds"] = [seconds[r] for r in range(1, rounds + 1)]
    return out


NO_KEPT = "current, nothing kept"
"""This checkout with FEDCHAIN_KEEP_UPDATES=none: the authority work alone (no update retention)."""


def _measure_size(base_dir: Path, ens: int, args: argparse.Namespace, runs: list[dict[str, Any]]) -> dict[str, Any]:
    systems: list[tuple[str, Path, dict[str, str]]] = [("base", base_dir, {}), ("current", paths.REPO, {})]
    if args.without_kept:
        systems.append((NO_KEPT, paths.REPO, {"FEDCHAIN_KEEP_UPDATES": "none"}))
    samples: dict[str, list[float]] = {name: [] for name, _, _ in systems}
    deep: list[float] = []
    kept: list[float] = []
    for pair in range(args.pairs):
        for name, checkout, settings in systems:
            t0 = time.monotonic()
            got = run_once(checkout, ens, args.rounds, args.timeout, extras=name == "current", settings=settings)
            secs = got["round_seconds"]
            samples[name].extend(secs[1:])  # round 1 carries the warm-up
            if name == "current":
                deep.append((got["verify_deep_seconds"] - got["verify_seconds"]) / args.rounds)
                kept.append(got["kept_bytes_per_round"])
            runs.append({"system": name, "ens": ens, "pair": pair, **got,
                         "wall_seconds": round(time.monotonic() - t0, 2)})
            print(f"  {ens:3d} ENs {name:8s} pair {pair + 1}/{args.pairs}: rounds "
                  + ", ".join(f"{s:.3f}" for s in secs) + " s", flush=True)
    medians = {name: statistics.median(vals) for name, vals in samples.items()}
    ratios = {name: round(m / medians["base"], 3) if medians["base"] > 0 else float("inf")
              for name, m in medians.items() if name != "base"}
    return {
        "ens": ens,
        "median_round_seconds": {k: round(v, 4) for k, v in medians.items()},
        "ratio_current_to_base": ratios["current"],
        "ratios_to_base": ratios,
        "deep_verify_seconds_per_round": round(statistics.median(deep), 4),
        "kept_update_bytes_per_round": round(statistics.median(kept)),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    base_rev = _git("rev-parse", "--short", args.base)
    head_rev = _git("rev-parse", "--short", "HEAD")
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs: list[dict[str, Any]] = []
    sizes: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fc-base-") as tmp:
        base_dir = Path(tmp) / "base"
        _git("worktree", "add", "--detach", "-q", str(base_dir), base_rev)
        try:
            for ens in args.ens:
                sizes.append(_measure_size(base_dir, ens, args, runs))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_dir)], cwd=paths.REPO,
                           capture_output=True, timeout=120)
    return {
        "base": base_rev,
        "current": head_rev,
        "rounds": args.rounds,
        "pairs": args.pairs,
        "sizes": sizes,
        "target_ratio_at_most": TARGETS,
        "loadavg_before": load_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
    }


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ens takes counts like 4 or 4,16, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--ens takes counts of at least 1")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 pair of runs of 3 rounds at 2 ENs (a few minutes)")
    parser.add_argument("--base", default=DEFAULT_BASE, help=f"commit to compare with (default {DEFAULT_BASE})")
    parser.add_argument("--ens", type=_sizes, help="network sizes, comma-separated (default 2 quick, 4,16 full)")
    parser.add_argument("--rounds", type=int, help="rounds per run (default 3 quick, 8 full)")
    parser.add_argument("--pairs", type=int, help="base/current pairs, alternated (default 1 quick, 3 full)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per run")
    parser.add_argument("--without-kept", action="store_true",
                        help="also run this checkout with FEDCHAIN_KEEP_UPDATES=none (the authority work alone)")
    parser.add_argument("--results", type=Path, default=paths.RESULTS_DIR)
    args = parser.parse_args(argv)
    args.ens = args.ens or ([2] if args.quick else [4, 16])
    args.rounds = args.rounds or (3 if args.quick else 8)
    args.pairs = args.pairs or (1 if args.quick else 3)
    if args.rounds < 2 or args.pairs < 1:
        parser.error("--rounds must be at least 2 (round 1 is left out), --pairs at least 1")
    try:
        data = run(args)
    except BenchError as exc:
        print(f"trust_cost: {exc}", file=sys.stderr)
        return 1
    out = results.write_json("trust_cost", data, args.results)
    rows = []
    for s in data["sizes"]:
        m = s["median_round_seconds"]
        nokeep = (f"{m[NO_KEPT]:.3f} ({s['ratios_to_base'][NO_KEPT]:.3f}x)" if NO_KEPT in m else "-")
        rows.append([str(s["ens"]), f"{m['base']:.3f}", f"{m['current']:.3f}", f"{s['ratio_current_to_base']:.3f}",
                     nokeep, f"{s['kept_update_bytes_per_round'] / 1e6:.2f}",
                     f"{s['deep_verify_seconds_per_round']:.3f}"])
    results.print_table(
        f"round seconds, median of rounds 2..{args.rounds} over {args.pairs} run(s) each, base {data['base']} "
        f"vs current {data['current']} (load {data['loadavg_before']} -> {data['loadavg_after']})",
        ["ENs", "base s/round", "current s/round", "current/base", "nothing kept s/round", "kept MB/round",
         "verify --deep s/round"],
        rows,
    )
    worst = max(s["ratio_current_to_base"] for s in data["sizes"])
    verdict = "within" if worst <= TARGETS["verifiable_rounds"] else "ABOVE"
    print(f"worst current / base = {worst:.3f} ({verdict} the verifiable-rounds bound "
          f"{TARGETS['verifiable_rounds']:.2f})")
    if args.without_kept:  # the authority work alone: this checkout keeping no updates
        alone = max(s["ratios_to_base"][NO_KEPT] for s in data["sizes"])
        verdict = "within" if alone <= TARGETS["authority"] else "ABOVE"
        print(f"worst current with nothing kept / base = {alone:.3f} ({verdict} the authority bound "
              f"{TARGETS['authority']:.2f})")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
