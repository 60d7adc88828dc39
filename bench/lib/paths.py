"""Where the benchmarks read and write: results, plots, datasets, the Flower app."""

from __future__ import annotations

import os
from pathlib import Path

from lib import BenchError

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
RESULTS_DIR = BENCH / "results"
PLOTS_DIR = BENCH / "plots"
DATASETS = Path(os.environ.get("FEDCHAIN_TEST_DATASETS", REPO.parent / "shared" / "datasets"))
FLOWER_APP = BENCH / "flower" / "app"


def require_mnist(datasets_dir: Path) -> Path:
    """The MNIST raw folder, or a BenchError saying where it was looked for."""
    raw = datasets_dir / "MNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte.gz").is_file():
        raise BenchError(f"MNIST not found in {raw} (set --datasets or FEDCHAIN_TEST_DATASETS)")
    return raw
