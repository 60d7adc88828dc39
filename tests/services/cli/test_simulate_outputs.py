"""`fedchain simulate --plot FILE.png`, `--tensorboard DIR` and `--mlflow DIR|URI`."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedchain.services.cli.main import app
from fedchain.services.cli.simulate_outputs import PLOT_DPI, PLOT_SIZE
from tests.conftest import isolate_from_fedchain_env

runner = CliRunner()
QUICK = ["--dataset", "mnist-sample", "--max-samples", "400", "--clients", "3", "--rounds", "3",
         "--local-epochs", "1", "--batch-size", "32", "--lr", "0.05", "--threads", "1", "--workers", "0",
         "--quiet"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_fedchain_env(monkeypatch, tmp_path)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("repeat", ["1", "2"])
def test_plot_writes_a_png_of_the_accuracy_curve(tmp_path: Path, repeat: str) -> None:
    plot = tmp_path / "plots" / "accuracy.png"
    result = runner.invoke(app, ["simulate", *QUICK, "--repeat", repeat, "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert plot.stat().st_size > 1000
    assert _png_size(plot) == (round(PLOT_SIZE[0] * PLOT_DPI), round(PLOT_SIZE[1] * PLOT_DPI))
    assert not list(plot.parent.glob("*.tmp"))


def test_plot_refuses_a_name_that_is_not_png(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", *QUICK, "--plot", str(tmp_path / "curve.jpg")])
    assert result.exit_code == 2
    bad = tmp_path / "curve.jpg"
    assert result.stderr.strip() == f"fedchain simulate: --plot {bad}: give a .png file name such as accuracy.png"


def test_tensorboard_writes_the_scalars_of_every_round(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'fedchain[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = tmp_path / "tb"
    result = runner.invoke(app, ["simulate", *QUICK, "--eval-every", "2", "--tensorboard", str(logs)])
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(logs))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"accuracy", "test_loss", "train_loss", "round_seconds"} <= tags
    assert [e.step for e in events.Scalars("train_loss")] == [1, 2, 3]
    assert [e.step for e in events.Scalars("accuracy")] == [2, 3]  # evaluated rounds only
    assert all(0 <= e.value <= 1 for e in events.Scalars("accuracy"))
    assert all(e.value > 0 for e in events.Scalars("round_seconds"))


def test_tensorboard_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = runner.invoke(app, ["simulate", *QUICK, "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "fedchain simulate: --tensorboard needs the tensorboard package: pip install 'fedchain[tensorboard]'"
    )
    assert not (tmp_path / "tb").exists()


def _mlflow_runs(tracking: Path) -> list[object]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tracking / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fedchain")
    assert experiment is not None
    return sorted(client.search_runs([experiment.experiment_id]), key=lambda run: run.data.tags["seed"])


@pytest.mark.parametrize("repeat", [1, 2])
def test_mlflow_records_the_settings_and_every_round(tmp_path: Path, repeat: int) -> None:
    pytest.importorskip("mlflow", reason="mlflow not installed (pip install 'fedchain[mlflow]')")
    from mlflow.tracking import MlflowClient

    tracking = tmp_path / "mlruns"
    result = runner.invoke(app, ["simulate", *QUICK, "--eval-every", "2", "--repeat", str(repeat),
                                 "--mlflow", str(tracking)])
    assert result.exit_code == 0, result.output
    runs = _mlflow_runs(tracking)
    assert [run.data.tags["seed"] for run in runs] == [str(seed) for seed in range(repeat)]  # type: ignore[attr-defined]
    client = MlflowClient(tracking_uri=f"sqlite:///{tracking / 'mlflow.db'}")
    for run in runs:
        info, data = run.info, run.data  # type: ignore[attr-defined]
        assert info.status == "FINISHED"
        assert data.params["lr"] == "0.05" and data.params["rounds"] == "3" and data.params["dataset"] == "mnist-sample"
        assert [m.step for m in client.get_metric_history(info.run_id, "train_loss")] == [1, 2, 3]
        accuracy = client.get_metric_history(info.run_id, "accuracy")
        assert [m.step for m in accuracy] == [2, 3]  # evaluated rounds only
        assert all(0 <= m.value <= 1 for m in accuracy)
        assert {"test_loss", "round_seconds"} <= set(data.metrics)


def test_mlflow_refuses_a_file_before_training(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="mlflow not installed (pip install 'fedchain[mlflow]')")
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    result = runner.invoke(app, ["simulate", *QUICK, "--mlflow", str(taken)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"fedchain simulate: --mlflow {taken} exists and is not a directory (give a directory or a tracking URI)"
    )
    assert taken.read_text() == "mine"


def test_mlflow_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    result = runner.invoke(app, ["simulate", *QUICK, "--mlflow", str(tmp_path / "ml")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "fedchain simulate: --mlflow needs the mlflow package: pip install 'fedchain[mlflow]'"
    )
    assert not (tmp_path / "ml").exists()


def test_mlflow_run_stopped_by_ctrl_c_is_killed_with_its_finished_rounds(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="mlflow not installed (pip install 'fedchain[mlflow]')")
    from mlflow.tracking import MlflowClient

    from tests.services.cli.simulate_kit import interrupt_simulate

    tracking, models = tmp_path / "mlruns", tmp_path / "models"
    args = list(QUICK)
    args[args.index("--rounds") + 1] = "200"
    code, err = interrupt_simulate([*args, "--mlflow", str(tracking), "--save-dir", str(models)],
                                   tmp_path, models / "round-0001.safetensors")
    assert code == 130, err
    (run,) = _mlflow_runs(tracking)
    info = run.info  # type: ignore[attr-defined]
    assert info.status == "KILLED"
    steps = [m.step for m in MlflowClient(tracking_uri=f"sqlite:///{tracking / 'mlflow.db'}").get_metric_history(
        info.run_id, "train_loss")]
    assert steps[:1] == [1] and steps == list(range(1, len(steps) + 1)) and len(steps) < 200
