"""bench/ledger.py --quick: every append lands as the next round (no lost or merged appends)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_ledger_benchmark_appends_and_verifies_every_block(tmp_path: Path) -> None:
    # SQLite only here (MySQL is measured when the benchmark is run with a server)
    env = {**os.environ, "FEDCHAIN_TEST_MYSQL_URL": ""}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "ledger.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-2500:]
    data = json.loads((tmp_path / "ledger.json").read_text())
    (sqlite,) = data["results"]
    assert sqlite["backend"] == "sqlite"
    assert sqlite["blocks"] == (
        1 + sqlite["appends_1_writer"] + sqlite["appends_1_writer_pipelined"] + sqlite["appends_4_writers"]
    )
    assert sqlite["appends_per_s_1_writer_pipelined"] > 0 and sqlite["ed25519_verify_per_s"] > 0
    assert sqlite["appends_per_s_1_writer"] > 0 and sqlite["appends_per_s_4_writers"] > 0
    assert "| sqlite |" in (tmp_path / "ledger.md").read_text()
