"""Memory per fedchain node process, and the largest network this machine holds.

1. Per process: ``fedchain up --keep`` starts a network (ledger, entry M-SN, ``--sns``
   SNs, ``--ens`` ENs, each its own process) that trains two rounds of the tiny
   MNIST-CNN workload; then each process's RSS, PSS and USS (private pages) are read
   (psutil's ``memory_full_info``), and ``fedchain down`` stops it.
   RSS counts shared library pages (torch) in every process; PSS splits them fairly and
   is what the processes cost together; USS is what one more process of that kind adds
   at least.
2. Largest network: ENs are added step by step (and one extra SN per ``--ens-per-sn``
   ENs) to a running network of ``fedchain node`` processes (entry with embedded
   ledger); after each step one round must finish with every EN taking part. The loop
   stops at ``--max-ens``, at the time limit, when a step fails, or when the memory still
   free (MemAvailable) would fall under ``--reserve-mib`` at the next step, at the
   measured private memory (USS) per EN. The answer is the last step that completed,
   plus the count that free memory alone would allow (the projection: the ENs running +
   MemAvailable less the reserve, divided by the USS of one EN).

Writes bench/results/memory.json and bench/plots/memory.png; prints tables.

Usage: python bench/memory.py [--quick] [--ens N] [--sns S] [--max-ens M] [--time-limit S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import BenchError, charts, control, memory, networks, paths, results

SAMPLES_PER_CLIENT = 100


def fl_settings(clients: int, datasets: Path) -> Any:
    """Tiny FedAvg workload on MNIST (one batch of 64 per EN per round), no evaluation."""
    from fedchain.shared.config import Settings

    return Settings(algorithm="fedavg", dataset="mnist", data_dir=datasets, model="mnist-cnn", clients=clients,
                    rounds=1, local_epochs=1, batch_size=64, lr=0.01, max_samples=SAMPLES_PER_CLIENT * clients,
                    seed=0, eval=False, local_eval=False)


ROLE_PREFIXES = {"ledger": "ledger", "entry": "entry", "SN": "sn-", "EN": "en-"}


def memory_by_role(pids: dict[str, list[int]]) -> dict[str, Any]:
    """Per role: every process's RSS/PSS/USS in MiB and their means."""
    out: dict[str, Any] = {}
    for role, role_pids in pids.items():
        procs = [memory.memory_kib(p) for p in role_pids]
        procs = [m for m in procs if m["rss"]]
        if not procs:
            continue
        mib = [{k: v / 1024 for k, v in m.items()} for m in procs]
        out[role] = {
            "count": len(mib),
            "processes": mib,
            "mean_rss_mib": sum(m["rss"] for m in mib) / len(mib),
            "mean_pss_mib": sum(m["pss"] for m in mib) / len(mib),
            "mean_uss_mib": sum(m["uss"] for m in mib) / len(mib),
        }
    return out


def per_process(ens: int, sns: int, datasets: Path, work: Path, timeout: float) -> dict[str, Any]:
    """``fedchain up --keep`` a network that trains two rounds, then read each process's memory."""
    settings = fl_settings(ens, datasets)
    before = memory.mem_available_kib()
    with networks.UpNetwork(work / "up", env=networks.no_eval_env()) as up:
        up.start(ens, sns, 2, networks.up_fl_flags(settings), timeout)
        mem = memory_by_role({role: up.pids(prefix) for role, prefix in ROLE_PREFIXES.items()})
        after = memory.mem_available_kib()
    if mem.get("EN", {}).get("count") != ens:
        found = mem.get("EN", {}).get("count", 0)
        raise BenchError(f"expected {ens} live EN processes after fedchain up, found {found}")
    return {"ens": ens, "sns": 1 + sns, "launcher": "fedchain up --keep", "roles": mem,
            "mem_available_drop_mib": (before - after) / 1024}


def largest_network(args: argparse.Namespace, datasets: Path, work: Path) -> dict[str, Any]:
    """Grow a running network until a limit; return every step and the verdict."""
    env = networks.no_eval_env()
    deadline = time.monotonic() + args.time_limit
    steps: list[dict[str, Any]] = []
    stop_reason = f"reached --max-ens {args.max_ens}"
    reserve_kib = args.reserve_mib * 1024
    start_available = memory.mem_available_kib()
    ens = sns = 0
    per_en_kib = 0.0
    last_available = start_available
    with networks.FedchainNetwork(work / "grow", fl_settings(args.max_ens, datasets), env=env) as net:
        net.start_entry()
        while ens < args.max_ens:
            target = min(args.max_ens, max(2, ens * 2))
            want_sns = (target - 1) // args.ens_per_sn  # extra SNs beside the entry
            available = memory.mem_available_kib()
            if per_en_kib and available - (target - ens) * per_en_kib < reserve_kib:
                stop_reason = (f"next step to {target} ENs would leave less than {args.reserve_mib} MiB free "
                               f"({per_en_kib / 1024:.0f} MiB private memory per EN measured)")
                break
            if time.monotonic() > deadline:
                stop_reason = f"time limit of {args.time_limit:.0f} s reached"
                break
            t0 = time.perf_counter()
            try:
                while sns < want_sns:
                    net.add_sn()
                    sns += 1
                while len(net.pids("EN")) < target:
                    net.add_en()
                remaining = max(30.0, deadline - time.monotonic())
                net.wait_members(target, 1 + sns, min(remaining, 60 + 10 * target))
                join_s = time.perf_counter() - t0
                t1 = time.perf_counter()
                net.train(1, min(remaining, 120 + 10 * target))
                round_s = time.perf_counter() - t1
                last = net.api("GET", "/rounds")[-1]
            except BenchError as exc:
                stop_reason = f"step to {target} ENs failed: {str(exc).splitlines()[0]}"
                break
            if len(last["participants"]) != target:
                stop_reason = f"step to {target} ENs: only {len(last['participants'])} took part in the round"
                break
            now_available = memory.mem_available_kib()
            ens = target
            mem = memory_by_role({"entry": net.pids("entry"), "SN": net.pids("SN"), "EN": net.pids("EN")})
            # one more EN costs at least its private pages (torch's shared pages are already resident)
            per_en_kib = mem.get("EN", {}).get("mean_uss_mib", 0.0) * 1024
            last_available = now_available
            steps.append({"ens": ens, "sns": 1 + sns, "join_seconds": join_s, "round_seconds": round_s,
                          "entry_round_seconds": float(last["seconds"]),
                          "mem_available_mib": now_available / 1024,
                          "pss_total_mib": sum(sum(p["pss"] for p in r["processes"]) for r in mem.values()),
                          "mean_en_uss_mib": mem.get("EN", {}).get("mean_uss_mib", 0.0)})
            print(f"  {ens:3d} ENs, {1 + sns} SNs: joined in {join_s:5.1f} s, round {round_s:5.2f} s, "
                  f"{now_available / 1024:,.0f} MiB still available", flush=True)
        verify = net.api("GET", "/verify") if steps else {"ok": None}
    projection = None
    if per_en_kib > 0 and steps:
        projection = ens + max(0, int((last_available - reserve_kib) / per_en_kib))
    return {"steps": steps, "largest_ens": ens, "largest_sns": 1 + sns if steps else 0, "stop_reason": stop_reason,
            "chain_verified": verify.get("ok"), "mem_per_en_mib": per_en_kib / 1024,
            "mem_available_at_start_mib": start_available / 1024, "reserve_mib": args.reserve_mib,
            "ens_by_memory_projection": projection}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both measurements; JSON, PNG and tables."""
    datasets = paths.DATASETS if args.datasets is None else args.datasets
    paths.require_mnist(datasets)
    ens = args.ens or (2 if args.quick else 4)
    sns = args.sns if args.sns is not None else (0 if args.quick else 1)
    result: dict[str, Any] = {"quick": args.quick, "mem_total_mib": memory.mem_total_kib() / 1024}
    with tempfile.TemporaryDirectory(prefix="fcbench-memory-") as tmp:
        work = Path(tmp)
        result["per_process"] = per_process(ens, sns, datasets, work, 180)
        if not args.skip_largest:
            print(f"growing a network up to {args.max_ens} ENs (time limit {args.time_limit:.0f} s):", flush=True)
            result["largest"] = largest_network(args, datasets, work)
    path = results.write_json("memory", result, args.results)

    roles = result["per_process"]["roles"]
    results.print_table(f"Memory per node process after 2 rounds ({ens} ENs, {1 + sns} SNs), MiB",
                       ["role", "processes", "RSS", "PSS", "USS"],
                       [[r, v["count"], v["mean_rss_mib"], v["mean_pss_mib"], v["mean_uss_mib"]]
                        for r, v in roles.items()])
    if "largest" in result:
        big = result["largest"]
        results.print_table("Growing one network (one round per step, every EN must take part)",
                           ["ENs", "SNs", "join s", "round s", "PSS total MiB", "MiB available"],
                           [[s["ens"], s["sns"], s["join_seconds"], s["round_seconds"], s["pss_total_mib"],
                             s["mem_available_mib"]] for s in big["steps"]])
        print(f"largest network that trained: {big['largest_ens']} ENs, {big['largest_sns']} SNs "
              f"(stopped: {big['stop_reason']}); memory alone would allow about "
              f"{big['ens_by_memory_projection']} ENs at {big['mem_per_en_mib']:.0f} MiB private memory each")
    charts.grouped_bar_chart(args.plots / "memory.png", [f"{r} (x{roles[r]['count']})" for r in roles],
                             {k: [roles[r][f"mean_{k.lower()}_mib"] for r in roles] for k in ("RSS", "PSS", "USS")},
                             ylabel="MiB per process",
                             title=f"fedchain process memory ({ens} ENs, {1 + sns} SNs, after 2 rounds)")
    print(f"wrote {path} and {args.plots / 'memory.png'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 ENs; grow to 2 ENs within 60 s")
    parser.add_argument("--ens", type=int, help="ENs of the per-process measurement (default 2 quick, 4 full)")
    parser.add_argument("--sns", type=int, help="extra SNs beside the entry (default 0 quick, 1 full)")
    parser.add_argument("--max-ens", type=int, help="stop growing at this many ENs (default 2 quick, 64 full)")
    parser.add_argument("--ens-per-sn", type=int, default=8, help="one extra SN per this many ENs while growing")
    parser.add_argument("--time-limit", type=float, help="seconds for the growing loop (default 60 quick, 900 full)")
    parser.add_argument("--reserve-mib", type=int, default=2048, help="memory to leave free (default 2048 MiB)")
    parser.add_argument("--skip-largest", action="store_true", help="only the per-process measurement")
    parser.add_argument("--datasets", type=Path, help="folder holding MNIST/raw (default: shared/datasets)")
    parser.add_argument("--results", type=Path, default=paths.RESULTS_DIR)
    parser.add_argument("--plots", type=Path, default=paths.PLOTS_DIR)
    args = parser.parse_args(argv)
    control.exit_on_sigterm()
    args.max_ens = args.max_ens or (2 if args.quick else 64)
    args.time_limit = args.time_limit or (60.0 if args.quick else 900.0)
    for name, low, high in (("ens", 1, 256), ("sns", 0, 64), ("max_ens", 2, 1024), ("ens_per_sn", 1, 1024)):
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            parser.error(f"--{name.replace('_', '-')} must be between {low} and {high}")
    if not 1 <= args.time_limit <= 7200:
        parser.error("--time-limit must be between 1 and 7200 seconds")
    try:
        run(args)
    except BenchError as exc:
        print(f"memory: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
