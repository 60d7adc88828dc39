"""bench/sim_speed.py --quick: every mode runs and is compared with the serial loop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_sim_speed_quick(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "sim_speed.py"), "--quick", "--dataset", "mnist-sample",
         "--rounds", "1", "--max-samples", "600", "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "sim_speed-quick.json").read_text())
    modes = data["modes"]
    assert set(modes) == {"serial", "workers-2", "vectorize-4"}
    assert modes["serial"]["ratio_to_serial"] == 1.0
    for run in modes.values():
        assert len(run["round_seconds"]) == 1 and len(run["accuracy"]) == 2
        assert len(run["loadavg_before"]) == 3
    assert modes["vectorize-4"]["max_param_difference"] < 1e-4  # float32 rounding, not a bug
    assert "x serial" in proc.stdout and "load before/after" in proc.stdout


def test_sim_speed_rejects_one_worker() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "sim_speed.py"), "--workers", "1"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2 and "at least 2 workers" in proc.stderr
