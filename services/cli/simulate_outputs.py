"""`fedchain simulate`'s extra outputs: ``--plot`` (a PNG of the accuracy curve),
``--tensorboard`` (per-round scalars as TensorBoard event files) and ``--mlflow`` (the same
scalars and the run's settings as MLflow runs).

Each is imported only when its flag is given: matplotlib (Agg backend, no display),
tensorboard and mlflow (the optional extras ``fedchain[tensorboard]``, ``fedchain[mlflow]``)
cost seconds to import. The run logs share one shape, ``RunLog``: ``start`` a run (one per
seed under ``--repeat``), ``log`` each finished round, ``close``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fedchain.shared.config import ConfigError

if TYPE_CHECKING:
    from fedchain.shared.fl.simulation import RoundResult, SimulationResult

PLOT_SIZE = (8.0, 5.0)
PLOT_DPI = 100
"""``--plot`` draws 8 x 5 inches at 100 dpi: an 800 x 500 pixel PNG."""

TENSORBOARD_MISSING = "--tensorboard needs the tensorboard package: pip install 'fedchain[tensorboard]'"
MLFLOW_MISSING = "--mlflow needs the mlflow package: pip install 'fedchain[mlflow]'"
MLFLOW_EXPERIMENT = "fedchain"
"""The MLflow experiment the runs are filed under."""
MLFLOW_DB = "mlflow.db"
"""``--mlflow DIR``: the tracking database inside DIR (``sqlite:///DIR/mlflow.db``)."""


class RunLog(Protocol):
    """Where a simulation's rounds are logged as they finish (``--tensorboard``, ``--mlflow``)."""

    def start(self, seed: int, params: dict[str, Any]) -> None:
        """Begin the run with ``seed`` and these settings (ending the previous run)."""

    def log(self, r: RoundResult) -> None:
        """Round ``r``'s scalars."""

    def close(self, interrupted: bool = False) -> None:
        """End the open run (idempotent); ``interrupted``: it was stopped by Ctrl-C."""

    def where(self) -> str:
        """One line saying where the logs are."""


def check_plot_path(plot: Path) -> None:
    """Refuse a ``--plot`` path that is not a writable ``.png`` file name."""
    if plot.suffix.lower() != ".png":
        raise ConfigError(f"--plot {plot}: give a .png file name such as accuracy.png")
    if plot.is_dir():
        raise ConfigError(f"--plot {plot} is a directory; give a file name such as accuracy.png")
    parent = plot.parent if str(plot.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise ConfigError(f"--plot {plot}: directory {parent} is not writable")


def _curve(result: SimulationResult) -> dict[int, float]:
    return {r.round: 100 * r.accuracy for r in result.rounds if r.accuracy is not None}


def write_plot(plot: Path, results: list[SimulationResult]) -> None:
    """``--plot``: accuracy (%) per evaluated round; with several runs (``--repeat``) their
    mean over the rounds all of them evaluated, with a mean ± std band. Written atomically."""
    import statistics

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = [_curve(r) for r in results]
    fig, ax = plt.subplots(figsize=PLOT_SIZE, dpi=PLOT_DPI)
    try:
        first = results[0]
        title = f"{first.algorithm} on {first.config.get('dataset')} ({first.config.get('partition')})"
        if len(curves) == 1:
            xs = sorted(curves[0])
            ax.plot(xs, [curves[0][x] for x in xs], marker="o", markersize=3, label="accuracy")
        else:
            xs = sorted(set.intersection(*(set(c) for c in curves)))
            mean = [statistics.fmean(c[x] for c in curves) for x in xs]
            std = [statistics.stdev(c[x] for c in curves) for x in xs]
            ax.plot(xs, mean, marker="o", markersize=3, label=f"mean of {len(curves)} runs")
            ax.fill_between(xs, [m - s for m, s in zip(mean, std, strict=True)],
                            [m + s for m, s in zip(mean, std, strict=True)], alpha=0.25, label="± std")
            title += f", {len(curves)} seeds"
        ax.set_title(title)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        plot.parent.mkdir(parents=True, exist_ok=True)
        tmp = plot.with_name(plot.name + ".tmp")
        fig.savefig(tmp, format="png", dpi=PLOT_DPI)
        tmp.replace(plot)
    finally:
        plt.close(fig)


def check_tensorboard() -> None:
    """Refuse ``--tensorboard`` (one line) when the tensorboard package is not installed."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(TENSORBOARD_MISSING)


class TensorBoardLog:
    """``--tensorboard DIR``: one event file per run (``--repeat``: ``DIR/seed-N``), with the
    scalars ``accuracy``, ``test_loss``, ``train_loss`` and ``round_seconds`` at step = round.

    Written as the rounds finish (flushed each round), so TensorBoard follows a live run; a
    resumed run adds a new event file to the same directory, from its next round.
    """

    def __init__(self, directory: Path, *, per_seed: bool) -> None:
        self.directory = directory
        self.per_seed = per_seed
        self._writer: Any = None

    def start(self, seed: int, params: dict[str, Any]) -> None:
        """Open the event file of the run with ``seed`` (closing the previous run's)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch's writer imports tensorboard
            raise ConfigError(TENSORBOARD_MISSING) from exc
        self.close()
        where = self.directory / f"seed-{seed}" if self.per_seed else self.directory
        self._writer = SummaryWriter(log_dir=str(where))

    def log(self, r: RoundResult) -> None:
        """The scalars of round ``r`` (accuracy and test loss only when it was evaluated)."""
        if self._writer is None:
            return
        for tag, value in _round_scalars(r).items():
            self._writer.add_scalar(tag, value, r.round)
        self._writer.flush()

    def close(self, interrupted: bool = False) -> None:
        """Flush and close the open event file (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def where(self) -> str:
        return f"TensorBoard event files written to {self.directory}"


def _round_scalars(r: RoundResult) -> dict[str, float]:
    """The scalars of round ``r`` (accuracy and test loss only when it was evaluated)."""
    scalars = {"train_loss": r.train_loss, "round_seconds": r.seconds}
    if r.accuracy is not None:
        scalars["accuracy"] = r.accuracy
    if r.loss is not None:
        scalars["test_loss"] = r.loss
    return scalars


def mlflow_tracking_uri(destination: str) -> str:
    """``--mlflow DEST``: a tracking URI as given (``http://host:5000``, ``sqlite:///x.db``,
    anything with ``://``), or a directory that gets its own SQLite tracking database."""
    if "://" in destination:
        return destination
    directory = Path(destination)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--mlflow {destination} exists and is not a directory (give a directory or a tracking URI)")
    return f"sqlite:///{(directory / MLFLOW_DB).resolve()}"


def check_mlflow() -> None:
    """Refuse ``--mlflow`` (one line) when the mlflow package is not installed."""
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(MLFLOW_MISSING)


class MlflowLog:
    """``--mlflow DEST``: one MLflow run per seed in the experiment ``fedchain``, with the
    run's settings as parameters and ``accuracy``, ``test_loss``, ``train_loss`` and
    ``round_seconds`` as metrics at step = round. A resumed run is a new MLflow run that
    logs from its next round on.
    """

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.uri = mlflow_tracking_uri(destination)
        self._client: Any = None
        self._run_id: str | None = None

    def start(self, seed: int, params: dict[str, Any]) -> None:
        """Create the run of ``seed`` (ending the previous one) and record ``params``."""
        self.close()
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise ConfigError(MLFLOW_MISSING) from exc
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._client = MlflowClient(tracking_uri=self.uri)
            found = self._client.get_experiment_by_name(MLFLOW_EXPERIMENT)
            experiment = found.experiment_id if found else self._client.create_experiment(MLFLOW_EXPERIMENT)
            run = self._client.create_run(experiment, run_name=f"seed-{seed}", tags={"seed": str(seed)})
        except Exception as exc:  # an unreachable server, a bad URI: one line, nothing trained
            raise ConfigError(f"--mlflow {self.destination}: {type(exc).__name__}: {str(exc)[:200]}") from exc
        self._run_id = run.info.run_id
        for key, value in sorted(params.items()):
            self._client.log_param(self._run_id, key, str(value)[:500])

    def log(self, r: RoundResult) -> None:
        """The metrics of round ``r``, in one batch."""
        if self._client is None or self._run_id is None:
            return
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(k, float(v), stamp, r.round) for k, v in _round_scalars(r).items()]
        self._client.log_batch(self._run_id, metrics=metrics)

    def close(self, interrupted: bool = False) -> None:
        """End the open run: ``FINISHED``, or ``KILLED`` when Ctrl-C stopped it."""
        if self._client is not None and self._run_id is not None:
            self._client.set_terminated(self._run_id, status="KILLED" if interrupted else "FINISHED")
        self._run_id = None

    def where(self) -> str:
        return f"MLflow runs written to {self.uri} (experiment {MLFLOW_EXPERIMENT!r})"
