"""`fedchain simulate`'s extra outputs: ``--plot`` (a PNG of the accuracy curve) and
``--tensorboard`` (per-round scalars as TensorBoard event files).

Both are imported only when their flag is given: matplotlib (Agg backend, no display)
and tensorboard (the optional extra ``fedchain[tensorboard]``) cost seconds to import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.shared.config import ConfigError

if TYPE_CHECKING:
    from fedchain.shared.fl.simulation import RoundResult, SimulationResult

PLOT_SIZE = (8.0, 5.0)
PLOT_DPI = 100
"""``--plot`` draws 8 x 5 inches at 100 dpi: an 800 x 500 pixel PNG."""

TENSORBOARD_MISSING = "--tensorboard needs the tensorboard package: pip install 'fedchain[tensorboard]'"


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

    def start(self, seed: int) -> None:
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
        if r.accuracy is not None:
            self._writer.add_scalar("accuracy", r.accuracy, r.round)
        if r.loss is not None:
            self._writer.add_scalar("test_loss", r.loss, r.round)
        self._writer.add_scalar("train_loss", r.train_loss, r.round)
        self._writer.add_scalar("round_seconds", r.seconds, r.round)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the open event file (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
