"""bench/round_cost.py --quick: real signed round blocks, sizes per participant, verify speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_round_cost_benchmark_reports_sizes_and_verify_speed(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "round_cost.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-2500:]
    data = json.loads((tmp_path / "round_cost.json").read_text())
    small, large = data["sizes"]
    assert (small["ens"], large["ens"]) == (4, 16)
    assert large["header_bytes"] > small["header_bytes"]  # every participant adds its row
    assert 200 < large["json_bytes_per_participant"] < 2000
    assert data["verify"]["rules_blocks_per_s"] > 0 and data["verify"]["sqlite_verify_blocks_per_s"] > 0
    assert len(data["load_average"]) == 3
    assert "| 16 |" in (tmp_path / "round_cost.md").read_text()
