"""bench/trust_cost.py --quick: base and current networks trained in one run, their ratio,
the kept update bytes and the verify --deep seconds per round."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_trust_cost_compares_two_checkouts_in_one_run(tmp_path: Path) -> None:
    # the base is this very commit: the benchmark's own path (a git worktree of the base,
    # both networks alternated, the extras of the current one) runs, in a minute or two
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "trust_cost.py"), "--quick", "--base", "HEAD", "--ens", "1",
         "--rounds", "2", "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=REPO, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-2500:]
    data = json.loads((tmp_path / "trust_cost.json").read_text())
    (size,) = data["sizes"]
    assert size["ens"] == 1
    medians = size["median_round_seconds"]
    assert medians["base"] > 0 and medians["current"] > 0
    assert size["ratio_current_to_base"] == pytest.approx(medians["current"] / medians["base"], rel=1e-2)
    assert size["kept_update_bytes_per_round"] > 10_000  # one MNIST CNN update is ~2 MB
    assert size["deep_verify_seconds_per_round"] >= 0
    assert [r["system"] for r in data["runs"]] == ["base", "current"]
    assert "current/base" in proc.stdout and len(data["loadavg_before"]) == 3
