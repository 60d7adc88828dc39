"""bench/round_overhead.py on the smallest network: each system trains and is timed per round."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, datasets_dir: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "round_overhead.py"), *flags, "--datasets", str(datasets_dir),
         "--results", str(tmp_path), "--plots", str(tmp_path), "--keep-logs", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-2500:]
    return proc, json.loads((tmp_path / "round_overhead.json").read_text())


@pytest.mark.slow
def test_fedchain_up_rounds_are_timed_and_the_chain_verifies(tmp_path: Path, datasets_dir: Path) -> None:
    proc, data = _run(tmp_path, datasets_dir, "--only", "fedchain", "--ens", "2", "--rounds", "2")
    res = data["systems"]["fedchain"]
    assert res["launcher"] == "up" and res["ens_processes"] == 2
    assert len(res["round_seconds"]) == 2 and all(s > 0 for s in res["round_seconds"])
    assert res["chain_height"] >= 3  # genesis + 2 round blocks at least
    assert res["evaluated_rounds"] == 0
    assert "fedchain" in proc.stdout and (tmp_path / "round_overhead.png").stat().st_size > 1000


@pytest.mark.slow
def test_flower_deployment_runs_the_same_workload(tmp_path: Path, datasets_dir: Path) -> None:
    proc, data = _run(tmp_path, datasets_dir, "--only", "flower", "--ens", "2", "--rounds", "1")
    res = data["systems"]["flower"]
    assert res["version"] == "1.42.0"
    assert len(res["round_seconds"]) == 1 and res["round_seconds"][0] > 0
    assert res["client_train_seconds"][0] > 0  # the ClientApps really trained
    log = (tmp_path / "logs" / "flower" / "superlink.log").read_text()
    assert log.count("Activated node_id") == 2


def test_round_overhead_rejects_a_network_too_large() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "round_overhead.py"), "--ens", "500"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "--ens must be between 1 and 64" in proc.stderr
