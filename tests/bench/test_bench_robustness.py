"""bench/robustness.py --quick: the poisoning benchmark's smoke run and its outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").is_file(), reason="no Fashion-MNIST")
def test_robustness_quick(tmp_path: Path, datasets_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "robustness.py"), "--quick", "--mnist-dir", str(datasets_dir),
         "--results", str(tmp_path), "--plots", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "robustness.json").read_text())
    runs = data["runs"]
    assert [(r["attack"], r["share"], r["aggregator"]) for r in runs] == [
        ("none", 0.0, "mean"), ("none", 0.0, "multikrum:8"), ("none", 0.0, "clip:2"),
        ("scale:10", 0.3, "mean"), ("scale:10", 0.3, "multikrum:8"), ("scale:10", 0.3, "clip:2"),
    ]
    for r in runs:
        assert len(r["accuracy"]) == 3 and 0 <= r["final"] <= 100
        assert (r["attackers_flagged"] is None) == (r["share"] == 0)
    by = {(r["share"], r["aggregator"]): r for r in runs}
    assert len(by[(0.3, "mean")]["attackers"]) == 6 and by[(0.3, "mean")]["attackers_flagged"] == 0
    # a 10x update is far from the others: multi-krum rejects every one of them
    assert by[(0.3, "multikrum:8")]["attackers_flagged"] == 1.0
    assert [c["aggregator"] for c in data["cost"]] == ["mean", "multikrum:8", "clip:2"]
    assert all(c["median_s"] > 0 for c in data["cost"])
    md = (tmp_path / "robustness.md").read_text()
    assert "attacker updates rejected/clipped" in md and "20 MNIST-CNN updates" in md
    assert (tmp_path / "robustness-accuracy.png").stat().st_size > 0
    assert (tmp_path / "robustness-rounds.png").stat().st_size > 0


def test_robustness_rejects_an_unknown_dataset() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "robustness.py"), "--datasets", "svhn"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2 and "unknown dataset or split ['svhn']" in proc.stderr


def test_robustness_merge_joins_parts_and_refuses_unlike_settings(tmp_path: Path) -> None:
    """--merge: parts of a grid run side by side become one table; parts run with other
    settings are refused (the table would compare unlike runs)."""
    def part(name: str, rounds: int, aggregator: str) -> Path:
        run = {"dataset": "fmnist", "split": "dirichlet", "algorithm": "fedavg", "attack": "none", "share": 0.0,
               "aggregator": aggregator, "final": 50.0, "rounds_to_target": None, "accuracy": [50.0],
               "attackers": [], "attacker_updates": 0, "attackers_flagged": None}
        path = tmp_path / name / "robustness.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"args": {"rounds": rounds, "samples": 100, "lr": 0.005, "seed": 0,
                                             "threads": 1, "target": 0.7},
                                    "runs": [run], "cost": [], "seconds": 10.0}), encoding="utf-8")
        return path

    a, b, c = part("a", 3, "mean"), part("b", 3, "median"), part("c", 5, "mean")
    script = [sys.executable, str(REPO / "bench" / "robustness.py"), "--results", str(tmp_path), "--plots",
              str(tmp_path), "--merge"]
    ok = subprocess.run([*script, str(a), str(b)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert ok.returncode == 0, ok.stderr[-2000:]
    merged = json.loads((tmp_path / "robustness.json").read_text())
    assert [r["aggregator"] for r in merged["runs"]] == ["mean", "median"]
    assert "3 rounds" in (tmp_path / "robustness.md").read_text()
    bad = subprocess.run([*script, str(a), str(c)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert bad.returncode == 2 and "was run with other settings" in bad.stderr
