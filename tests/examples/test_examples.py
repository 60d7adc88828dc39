"""The scripts in examples/ run as a user runs them and do what they say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, isolate_from_fedchain_env


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_fedchain_env(monkeypatch, tmp_path)


def test_custom_model_and_strategy_learns(tmp_path: Path) -> None:
    script = REPO / "examples" / "custom_model_and_strategy.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("round 1: accuracy") and lines[1].startswith("round 2: accuracy")
    summary = json.loads(lines[-1])
    assert summary["algorithm"] == "loud-fedper"  # its own strategy ran the rounds ...
    assert summary["rounds_aggregated"] == [1, 2] and summary["updates_aggregated"] == 8
    assert summary["model"] == "__main__:TinyNet" and summary["dataset"] == "__main__:blobs"
    assert summary["head_keys"] == ["head.bias", "head.weight"]  # ... over its own model's head
    assert summary["final_accuracy"] > 0.9  # chance is 1/3: it learns
