"""Several processes appending at once never fork or duplicate; kill -9 loses no committed block."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from ledger_kit import Federation, model_blob

from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import build_block
from fedchain.shared.crypto import NodeKey

WORKERS = Path(__file__).with_name("ledger_workers.py")
REPO = Path(__file__).resolve().parents[3]


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(WORKERS), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def start_chain(db_url: str, tmp_path: Path) -> tuple[Ledger, NodeKey, Path]:
    key_file = tmp_path / "entry.pem"
    key = NodeKey.load_or_create(key_file)
    ledger = Ledger(db_url, tmp_path / "blobs")
    fed = Federation(ledger)
    fed.entry = key
    fed.genesis()
    return ledger, key, key_file


def test_four_racing_writers_never_fork_or_duplicate(db_url: str, tmp_path: Path) -> None:
    ledger, _, key_file = start_chain(db_url, tmp_path)
    go = tmp_path / "go"
    count = 15
    procs = [
        spawn("race", db_url, str(tmp_path / "blobs"), str(key_file), f"w{i}", str(count), str(go))
        for i in range(4)
    ]
    time.sleep(1.0)  # let them import and connect, then release them together
    go.touch()
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    try:
        assert ledger.height() == 4 * count
        notes = Counter(b.payload.note for b in ledger.range(1, 1000))  # type: ignore[union-attr]
        assert notes == Counter({f"w{w}-{i}": 1 for w in range(4) for i in range(count)})
        report = ledger.verify()
        assert report.ok and report.checked == 4 * count + 1
        conflicts = sum(json.loads(out)["conflicts"] for out, _ in outputs)
        print(f"lost races retried: {conflicts}")
    finally:
        ledger.close()


def test_same_blocks_from_four_processes_are_stored_once(db_url: str, tmp_path: Path) -> None:
    ledger, key, _ = start_chain(db_url, tmp_path)
    digest = ledger.get(0).payload.model_digest  # type: ignore[union-attr]
    blocks = []
    prev = ledger.tip()
    for i in range(10):
        prev = build_block(
            "checkpoint", {"model_version": i, "model_digest": digest, "note": "retry"}, prev, key
        )
        blocks.append(prev)
    blocks_file = tmp_path / "blocks.json"
    blocks_file.write_text(json.dumps([b.to_json() for b in blocks]))
    go = tmp_path / "go"
    procs = [
        spawn("replay", db_url, str(tmp_path / "blobs"), str(blocks_file), str(go))
        for _ in range(4)
    ]
    time.sleep(1.0)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    try:
        assert ledger.range(1, 100) == blocks
        assert ledger.verify().ok
    finally:
        ledger.close()


def test_kill_9_mid_append_loses_no_committed_block_and_leaves_no_half_block(
    db_url: str, tmp_path: Path
) -> None:
    ledger, key, key_file = start_chain(db_url, tmp_path)
    ledger.close()
    proc = spawn("loop", db_url, str(tmp_path / "blobs"), str(key_file), "60")
    committed = -1
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while committed < 25 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed = int(line)
    assert committed >= 25, proc.stderr.read() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    restarted = Ledger(db_url, tmp_path / "blobs")
    try:
        report = restarted.verify()
        assert report.ok, report.summary()
        assert restarted.height() >= committed
        for path in (tmp_path / "blobs").glob("??/*"):  # no half blob under a digest name
            assert restarted.blobs.problem(path.name) is None
        # and the chain goes on
        digest = restarted.put_blob(model_blob(99))
        nxt = build_block(
            "checkpoint",
            {"model_version": 1, "model_digest": digest, "note": "after"},
            restarted.tip(),
            key,
        )
        assert restarted.append(nxt).height == restarted.height()
        assert restarted.verify().ok
    finally:
        restarted.close()
