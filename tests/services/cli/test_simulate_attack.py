"""`fedchain simulate --aggregator/--attackers/--attack`: announced, recorded, refused when half given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedchain.services.cli.main import app
from tests.conftest import isolate_from_fedchain_env

runner = CliRunner()
QUICK = ["--dataset", "mnist-sample", "--max-samples", "400", "--clients", "5", "--rounds", "1",
         "--local-epochs", "1", "--batch-size", "32", "--threads", "1", "--algorithm", "fedavg"]


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_fedchain_env(monkeypatch, tmp_path)


def test_attack_is_announced_and_recorded(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["simulate", *QUICK, "--aggregator", "multikrum:1", "--attackers", "0.4",
                                 "--attack", "sign-flip", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "aggregator: multikrum:1" in result.output
    assert "ATTACK (experiment): 2 clients (40%) send sign-flip updates" in result.output
    data = json.loads(out.read_text())
    assert data["attack"]["attack"] == "sign-flip" and len(data["attack"]["attackers"]) == 2
    assert data["config"]["aggregator"] == "multikrum:1"
    assert data["rounds"][0]["attackers_flagged"] is not None
    assert [d["reason"] for d in data["rounds"][0]["decisions"]] == ["multikrum: score rank 5 of 5 (keeps 4)"]


@pytest.mark.parametrize(
    "flags,match",
    [(["--attack", "nan"], "--attackers and --attack go together"),
     (["--attackers", "0.3", "--attack", "boom"], "unknown attack 'boom'"),
     (["--aggregator", "krum"], "krum takes the number f"),
     (["--aggregator", "krum:2"], "round 1: aggregator krum:2 needs at least 2f+3 = 7 updates, got 5")],
)
def test_bad_attack_or_aggregator_exits_2(flags: list[str], match: str) -> None:
    result = runner.invoke(app, ["simulate", *QUICK, *flags])
    assert result.exit_code == 2
    assert match in result.output
