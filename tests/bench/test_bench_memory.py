"""bench/memory.py: memory of every process of a `fedchain up --keep` network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_memory_per_process_of_a_small_network(tmp_path: Path, datasets_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "memory.py"), "--quick", "--skip-largest", "--ens", "2",
         "--datasets", str(datasets_dir), "--results", str(tmp_path), "--plots", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-2500:]
    data = json.loads((tmp_path / "memory.json").read_text())
    roles = data["per_process"]["roles"]
    assert set(roles) == {"ledger", "entry", "EN"}
    assert roles["EN"]["count"] == 2 and roles["entry"]["count"] == 1
    for role in roles.values():
        for p in role["processes"]:
            assert 0 < p["uss"] <= p["pss"] <= p["rss"]
    assert roles["EN"]["mean_rss_mib"] > 50  # an EN holds torch and its data
    assert "largest" not in data
    assert (tmp_path / "memory.png").stat().st_size > 1000


def test_memory_rejects_a_bad_time_limit() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "memory.py"), "--time-limit", "0.5"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "--time-limit must be between 1 and 7200 seconds" in proc.stderr
