"""`fedchain simulate`: flags, the --out JSON, --save-dir, and exit code 2 on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedchain.services.cli.main import app
from fedchain.shared import tensors
from fedchain.shared.config import LEARNING_FIELDS
from tests.conftest import isolate_from_fedchain_env
from tests.services.cli.simulate_kit import interrupt_simulate

runner = CliRunner()
QUICK = ["--dataset", "mnist-sample", "--max-samples", "400", "--clients", "3", "--rounds", "2",
         "--local-epochs", "1", "--batch-size", "32", "--lr", "0.05", "--threads", "1"]


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_fedchain_env(monkeypatch, tmp_path)


def test_out_json_and_save_dir(tmp_path: Path) -> None:
    out, models = tmp_path / "res" / "results.json", tmp_path / "models"
    result = runner.invoke(
        app, ["simulate", *QUICK, "--algorithm", "fedper", "--partition", "pathological",
              "--out", str(out), "--save-dir", str(models)],
    )
    assert result.exit_code == 0, result.output
    assert "label counts: 3 clients" in result.output and "final accuracy" in result.output
    data = json.loads(out.read_text())
    assert data["algorithm"] == "fedper"
    assert data["config"]["clients"] == 3 and data["config"]["partition"] == "pathological"
    assert set(data["config"]) == set(LEARNING_FIELDS)  # every learning setting of the run is recorded
    assert [r["round"] for r in data["rounds"]] == [1, 2]
    for r in data["rounds"]:
        assert {"round", "accuracy", "loss", "seconds"} <= set(r)
        assert 0 <= r["accuracy"] <= 1 and r["seconds"] > 0
    assert data["final_accuracy"] == data["rounds"][-1]["accuracy"]
    assert len(data["label_counts"]) == 3 and all(len(c) == 2 for c in data["label_counts"])
    saved = sorted(p.name for p in models.iterdir())
    assert saved == ["round-0001.safetensors", "round-0002.safetensors"]
    base = tensors.decode((models / saved[-1]).read_bytes())
    assert "fc.weight" not in base and "conv1.0.weight" in base  # FedPer's global model is the base


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("algorithm: fedper\nclient.amount: 5\ngobal_epoch: 9\n")
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["simulate", "--config", str(cfg), *QUICK, "--algorithm", "fedavg", "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = json.loads(out.read_text())["config"]
    assert (config["algorithm"], config["clients"], config["rounds"]) == ("fedavg", 3, 2)


@pytest.mark.parametrize(
    "args,match",
    [
        (["--algorithm", "fedprox"], "invalid value for '--algorithm'"),
        (["--clients", "0"], "invalid value for '--clients'"),
        (["--dataset", "mnist", "--data-dir", "{tmp}/none"], "mnist not found: put"),
        (["--config", "{tmp}/bad.json"], "unknown key 'colour'"),
        (["--personal-layers", "4"], "leaves no shared base"),
        (["--out", "{tmp}"], "is a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], match: str) -> None:
    (tmp_path / "bad.json").write_text('{"colour": "red"}')
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(app, ["simulate", *QUICK, *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fedchain simulate: ") and match in lines[0]
    assert "Traceback" not in result.output
    assert list(tmp_path.glob("*.json")) == ([tmp_path / "bad.json"])


def test_the_command_exits_2_without_traceback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "fedchain.services.cli.main", "simulate"]
    proc = subprocess.run(
        [*cmd, "--dataset", "cifar10", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("fedchain simulate: cifar10 not found")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run([*cmd, "--rounds", "many"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_quiet_prints_only_the_final_accuracy_and_verbose_the_label_table(tmp_path: Path) -> None:
    quiet = runner.invoke(app, ["simulate", *QUICK, "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output.strip().splitlines() == [quiet.output.strip()]  # one line
    assert quiet.output.startswith("final accuracy: ")
    plain = runner.invoke(app, ["simulate", *QUICK])
    assert "label counts: 3 clients" in plain.output and "label counts per client" not in plain.output
    verbose = runner.invoke(app, ["simulate", *QUICK, "--verbose"])
    assert "label counts per client" in verbose.output
    both = runner.invoke(app, ["simulate", *QUICK, "--quiet", "--verbose"])
    assert both.exit_code == 2


def test_out_as_csv_has_a_row_per_round(tmp_path: Path) -> None:
    out = tmp_path / "rounds.csv"
    result = runner.invoke(app, ["simulate", *QUICK, "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("seed,round,accuracy,loss,train_loss,seconds,participants")
    assert [line.split(",")[1] for line in lines[1:]] == ["1", "2"]
    assert all(0 <= float(line.split(",")[2]) <= 1 for line in lines[1:])


def test_ctrl_c_writes_the_finished_rounds_and_says_so(tmp_path: Path) -> None:
    """SIGINT once round 1 is saved: exit 130, one line saying how far it got, and --out
    holds the finished rounds marked interrupted."""
    out, models = tmp_path / "partial.json", tmp_path / "models"
    code, err = interrupt_simulate(
        [*QUICK[:-6], "--rounds", "200", "--local-epochs", "1", "--threads", "1", "--workers", "0",
         "--out", str(out), "--save-dir", str(models)],
        tmp_path, models / "round-0001.safetensors",
    )
    assert code == 130, err
    assert "interrupted after round" in err and str(out) in err and "Traceback" not in err
    data = json.loads(out.read_text())
    done = data["interrupted"]["after_round"]
    assert done >= 1 and data["interrupted"]["of"] == 200
    assert [r["round"] for r in data["rounds"]] == list(range(1, done + 1))


def test_eval_every_evaluates_every_nth_round_and_the_last(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = [a if a != "2" else "5" for a in QUICK]  # 5 rounds
    result = runner.invoke(app, ["simulate", *args, "--eval-every", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    evaluated = [r["round"] for r in json.loads(out.read_text())["rounds"] if r["accuracy"] is not None]
    assert evaluated == [2, 4, 5]
    every = tmp_path / "every.json"
    assert runner.invoke(app, ["simulate", *args, "--out", str(every)]).exit_code == 0
    # evaluation draws no randomness: the last round's accuracy is the same either way
    assert json.loads(every.read_text())["final_accuracy"] == json.loads(out.read_text())["final_accuracy"]


def test_repeat_reports_mean_and_std_over_seeds(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["simulate", *QUICK, "--seed", "4", "--repeat", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "final accuracy over 3 runs:" in result.output and "±" in result.output
    data = json.loads(out.read_text())
    assert [r["config"]["seed"] for r in data["repeats"]] == [4, 5, 6]
    values = data["final_accuracy"]["values"]
    assert values == [r["final_accuracy"] for r in data["repeats"]] and len(values) == 3
    assert abs(data["final_accuracy"]["mean"] - sum(values) / 3) < 1e-12 and data["final_accuracy"]["std"] >= 0
    refused = runner.invoke(app, ["simulate", *QUICK, "--repeat", "2", "--save-dir", str(tmp_path / "m")])
    assert refused.exit_code == 2
