"""Ledger benchmark: appends/s (1 and 4 concurrent writers) and blocks verified/s,
on SQLite and on MySQL, in one run, beside the machine's bounds measured in the same run.

    python bench/ledger.py [--quick] [--mysql-url mysql+pymysql://u:p@127.0.0.1:33306]

MySQL runs when --mysql-url or FEDCHAIN_TEST_MYSQL_URL names a server (a scratch database
is created and dropped). Writes bench/results/ledger.json and bench/results/ledger.md.
Each appended block is the next round block (rounds count 1, 2, 3, ... on the chain; no
participants: their cost is bench/round_cost.py's; metrics) signed by the entry key. Writers:

* 1 writer, one by one: read the tip, build the next block, ``append`` (durable on return);
  bounded by the disk's fsync rate (printed: one durable commit per block);
* 1 writer, pipelined: the writer builds each block on the one it built before and
  ``Ledger.submit``s it (at most ``WINDOW`` in flight); blocks waiting while a transaction
  commits share the next one (group commit), every block still durable before its future
  resolves and checked against every chain rule;
* 4 writers: separate processes racing for the tip (lost races are retried).

Bounds measured in the same run: fsyncs/s of a 4 KiB write in the database's folder, and
bare Ed25519 verifications/s (``cryptography``, one thread) beside the blocks verified/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from safetensors.numpy import save

from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import Block, RoundPayload, build_block
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.errors import HeightConflict, OutOfSequence

WINDOW = 64
"""Blocks the pipelined writer keeps in flight."""


def fsync_rate(folder: Path, count: int = 100) -> float:
    """Durable 4 KiB writes per second in ``folder`` (the bound of one-by-one durable appends)."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, bytes(4096))
            os.fsync(fd)
        return count / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


def ed25519_rate(count: int = 3000) -> float:
    """Bare Ed25519 signature verifications per second (one thread)."""
    private = Ed25519PrivateKey.generate()
    public, message = private.public_key(), bytes(32)
    signature = private.sign(message)
    start = time.perf_counter()
    for _ in range(count):
        public.verify(signature, message)
    return count / (time.perf_counter() - start)


def append_pipelined(ledger: Ledger, key: NodeKey, digest: str, count: int) -> None:
    """``count`` blocks, each built on the one before, submitted with ``WINDOW`` in flight."""
    prev = ledger.tip()
    in_flight: list[Any] = []
    for _ in range(count):
        prev = build_block("round", round_payload(next_round(prev), digest), prev, key)
        in_flight.append(ledger.submit(prev))
        if len(in_flight) >= WINDOW:
            in_flight.pop(0).result(timeout=300)
    for future in in_flight:
        future.result(timeout=300)


def round_payload(i: int, model_digest: str, writer: int = 0) -> RoundPayload:
    """Round ``i``'s payload; each writer's differs, so two racing writers never build one block.

    No participants: a participant must be an admitted EN whose signature holds (the round
    evidence's cost is measured by ``bench/round_cost.py``)."""
    metrics = {"accuracy": 0.9, "loss": 0.3, "writer": float(writer)}
    return RoundPayload.create(i, "fedper", i, model_digest, [], metrics=metrics)


def next_round(tip: Block | None) -> int:
    """The round number the chain's rules want next: the tip's round + 1 (1 after genesis)."""
    if tip is not None and isinstance(tip.payload, RoundPayload):
        return tip.payload.round + 1
    return 1


def append_one(ledger: Ledger, key: NodeKey, digest: str, writer: int = 0) -> int:
    """Append the next round block after the current tip, retrying lost races; returns retries."""
    retries = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        tip = ledger.tip()
        block = build_block("round", round_payload(next_round(tip), digest, writer), tip, key)
        try:
            ledger.append(block)
            return retries
        except (HeightConflict, OutOfSequence):
            retries += 1
    raise RuntimeError("append kept losing races for 300 s")


def writer(
    db_url: str,
    blob_dir: str,
    raw_key: bytes,
    count: int,
    writer_id: int,
    digest: str,
    go: Any,
    results: Any,
) -> None:
    """One of the concurrent writer processes."""
    key = NodeKey(Ed25519PrivateKey.from_private_bytes(raw_key))
    ledger = Ledger(db_url, Path(blob_dir))
    go.wait(120)
    retries = sum(append_one(ledger, key, digest, writer_id) for _ in range(count))
    ledger.close()
    results.put(retries)


def bench_backend(
    name: str, db_url: str, blob_dir: Path, n_single: int, n_pipelined: int, n_each: int
) -> dict[str, Any]:
    """Time 1-writer appends, 4-writer appends and a full verify on one database."""
    key = NodeKey.generate()
    ledger = Ledger(db_url, blob_dir)
    model = save({"base.weight": np.zeros(1000, dtype=np.float32)})
    digest = ledger.put_blob(model)
    ledger.append(
        build_block(
            "genesis",
            {
                "config": {"bench": "ledger"},
                "model_digest": digest,
                "entry_node_id": key.node_id,
                "entry_public_key": key.public_hex,
            },
            None,
            key,
        )
    )
    start = time.perf_counter()
    for _ in range(n_single):
        append_one(ledger, key, digest)
    single = n_single / (time.perf_counter() - start)
    print(f"  {name}: 1 writer   {single:8.1f} appends/s (one by one)", flush=True)
    start = time.perf_counter()
    append_pipelined(ledger, key, digest, n_pipelined)
    pipelined = n_pipelined / (time.perf_counter() - start)
    print(f"  {name}: 1 writer   {pipelined:8.1f} appends/s (pipelined, {WINDOW} in flight)", flush=True)

    ctx = mp.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    raw = key.private.private_bytes_raw()
    procs = [
        ctx.Process(
            target=writer,
            args=(db_url, str(blob_dir), raw, n_each, w + 1, digest, go, results),
        )
        for w in range(4)
    ]
    for p in procs:
        p.start()
    time.sleep(3.0)  # let the writers import and connect before the clock starts
    start = time.perf_counter()
    go.set()
    retries = sum(results.get(timeout=600) for _ in procs)
    four = 4 * n_each / (time.perf_counter() - start)
    for p in procs:
        p.join(timeout=60)
    print(f"  {name}: 4 writers  {four:8.1f} appends/s ({retries} lost races retried)", flush=True)

    start = time.perf_counter()
    report = ledger.verify()
    elapsed = time.perf_counter() - start
    expected = 1 + n_single + n_pipelined + 4 * n_each  # genesis and every append
    if not report.ok or report.checked != expected:
        raise SystemExit(f"{name}: expected {expected} verified blocks: {report.summary()}")
    verify_rate = report.checked / elapsed
    bare = ed25519_rate()
    print(
        f"  {name}: verify     {verify_rate:8.1f} blocks/s ({report.checked} blocks; bare Ed25519 "
        f"{bare:.0f}/s, ratio {verify_rate / bare:.2f})",
        flush=True,
    )
    ledger.close()
    return {
        "backend": name,
        "appends_per_s_1_writer": round(single, 1),
        "appends_per_s_1_writer_pipelined": round(pipelined, 1),
        "appends_per_s_4_writers": round(four, 1),
        "lost_races_retried_4_writers": retries,
        "verify_blocks_per_s": round(verify_rate, 1),
        "ed25519_verify_per_s": round(bare, 1),
        "verify_vs_ed25519": round(verify_rate / bare, 3),
        "load_average": round(os.getloadavg()[0], 2),
        "blocks": report.checked,
        "appends_1_writer": n_single,
        "appends_1_writer_pipelined": n_pipelined,
        "appends_4_writers": 4 * n_each,
    }


def mysql_version(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        version = str(conn.execute(sa.text("SELECT VERSION()")).scalar())
    engine.dispose()
    return version


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    lines = [
        "# Ledger benchmark",
        "",
        (
            f"`python bench/ledger.py{' --quick' if data['quick'] else ''}` on {data['machine']['cpus']} CPUs "
            f"({data['machine']['platform']}), {data['date']}. Round blocks without participants, "
            "Ed25519-signed; durable commits (SQLite WAL + synchronous=FULL; InnoDB flush at commit)."
        ),
        "",
        "| backend | appends/s, 1 writer one by one | appends/s, 1 writer pipelined "
        "| appends/s, 4 writer processes | lost races retried | blocks verified/s "
        "| bare Ed25519 verifies/s | blocks | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["results"]:
        lines.append(
            f"| {r['backend']} | {r['appends_per_s_1_writer']:.1f} "
            f"| {r['appends_per_s_1_writer_pipelined']:.1f} | {r['appends_per_s_4_writers']:.1f} | "
            f"{r['lost_races_retried_4_writers']} | {r['verify_blocks_per_s']:.1f} "
            f"| {r['ed25519_verify_per_s']:.0f} | {r['blocks']} | {r['load_average']:.1f} |"
        )
    for note in data["notes"]:
        lines += ["", note]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (~1 min)")
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get("FEDCHAIN_TEST_MYSQL_URL", ""),
        help="MySQL/MariaDB server URL without a database (default: $FEDCHAIN_TEST_MYSQL_URL)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    n_single, n_pipelined, n_each = (150, 1000, 40) if args.quick else (1500, 10000, 400)
    notes: list[str] = []
    results = []
    with tempfile.TemporaryDirectory(prefix="fedchain-bench-") as tmp:
        fsyncs = fsync_rate(Path(tmp))
        print(f"fsync: {fsyncs:.0f} durable 4 KiB writes/s in {tmp}", flush=True)
        notes.append(
            f"The disk took {fsyncs:.0f} fsyncs/s in the same run: the bound of one-by-one durable "
            "appends (one commit each); pipelined appends share commits."
        )
        print("sqlite:", flush=True)
        results.append(
            bench_backend(
                "sqlite",
                f"sqlite:///{tmp}/ledger.db",
                Path(tmp) / "blobs-sqlite",
                n_single,
                n_pipelined,
                n_each,
            )
        )
        if args.mysql_url:
            server = args.mysql_url.rstrip("/")
            name = "fc_bench_" + uuid.uuid4().hex[:10]
            engine = sa.create_engine(server + "/")
            with engine.begin() as conn:
                conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
            try:
                print("mysql:", flush=True)
                results.append(
                    bench_backend(
                        "mysql",
                        f"{server}/{name}",
                        Path(tmp) / "blobs-mysql",
                        n_single,
                        n_pipelined,
                        n_each,
                    )
                )
                notes.append(f"MySQL server: {mysql_version(server + '/')}.")
            finally:
                with engine.begin() as conn:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
                engine.dispose()
        else:
            notes.append("MySQL was not measured (no --mysql-url / FEDCHAIN_TEST_MYSQL_URL).")
    notes.append(
        f"SQLite {sqlite3.sqlite_version}, Python {platform.python_version()}, "
        f"SQLAlchemy {sa.__version__}. Load average at the end: {os.getloadavg()[0]:.1f}."
    )
    data = {
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "fsyncs_per_s": round(fsyncs, 1),
        "results": results,
        "notes": notes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ledger.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    write_markdown(args.out / "ledger.md", data)
    print(f"wrote {args.out / 'ledger.json'} and {args.out / 'ledger.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
