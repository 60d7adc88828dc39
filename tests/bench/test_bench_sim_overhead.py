"""bench/sim_overhead.py: run_simulation vs train_local alone on real MNIST."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_sim_overhead_quick_small(tmp_path: Path, datasets_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "sim_overhead.py"), "--quick", "--clients", "2", "--rounds", "2",
         "--max-samples", "600", "--datasets", str(datasets_dir), "--results", str(tmp_path), "--plots", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "sim_overhead.json").read_text())
    assert data["settings"]["clients"] == 2
    sim, alone = data["simulation_round_seconds"], data["training_alone_round_seconds"]
    assert len(sim) == len(alone) == len(data["run_simulation_reported_round_seconds"]) == 2
    assert data["train_samples_per_round"] == 2 * 225  # 600 samples, 2 clients, 75% for training
    ratios = sorted(a / b for a, b in zip(sim, alone, strict=True))
    assert abs(data["ratio_simulation_vs_training"] - sum(ratios) / 2) < 1e-9  # median of two
    assert "simulation / training alone" in proc.stdout


def test_sim_overhead_rejects_zero_clients() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "sim_overhead.py"), "--clients", "0"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "--clients must be between 1 and 1000" in proc.stderr
