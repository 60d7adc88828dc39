"""Ledger benchmark: appends/s (1 and 4 concurrent writers) and blocks verified/s,
on SQLite and on MySQL, in one run.

    python bench/ledger.py [--quick] [--mysql-url mysql+pymysql://u:p@127.0.0.1:33306]

MySQL runs when --mysql-url or FEDCHAIN_TEST_MYSQL_URL names a server (a scratch database
is created and dropped). Writes bench/results/ledger.json and bench/results/ledger.md.
Each appended block is the next round block (rounds count 1, 2, 3, ... on the chain; 10
update digests, Merkle root, metrics) signed by the entry key; the 4 writers are separate
processes racing for the tip.
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
    name: str, db_url: str, blob_dir: Path, n_single: int, n_each: int
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
    print(f"  {name}: 1 writer   {single:8.1f} appends/s", flush=True)

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
    expected = 1 + n_single + 4 * n_each  # genesis and every append
    if not report.ok or report.checked != expected:
        raise SystemExit(f"{name}: expected {expected} verified blocks: {report.summary()}")
    verify_rate = report.checked / elapsed
    print(f"  {name}: verify     {verify_rate:8.1f} blocks/s ({report.checked} blocks)", flush=True)
    ledger.close()
    return {
        "backend": name,
        "appends_per_s_1_writer": round(single, 1),
        "appends_per_s_4_writers": round(four, 1),
        "lost_races_retried_4_writers": retries,
        "verify_blocks_per_s": round(verify_rate, 1),
        "blocks": report.checked,
        "appends_1_writer": n_single,
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
        "| backend | appends/s, 1 writer | appends/s, 4 writer processes | lost races retried "
        "| blocks verified/s | blocks |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in data["results"]:
        lines.append(
            f"| {r['backend']} | {r['appends_per_s_1_writer']:.1f} | {r['appends_per_s_4_writers']:.1f} | "
            f"{r['lost_races_retried_4_writers']} | {r['verify_blocks_per_s']:.1f} | {r['blocks']} |"
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
    n_single, n_each = (150, 40) if args.quick else (1500, 400)
    notes: list[str] = []
    results = []
    with tempfile.TemporaryDirectory(prefix="fedchain-bench-") as tmp:
        print("sqlite:", flush=True)
        results.append(
            bench_backend(
                "sqlite", f"sqlite:///{tmp}/ledger.db", Path(tmp) / "blobs-sqlite", n_single, n_each
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
                        "mysql", f"{server}/{name}", Path(tmp) / "blobs-mysql", n_single, n_each
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
