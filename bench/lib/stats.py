"""Summary statistics of repeated measurements, and repeated timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Summary statistics of repeated measurements (seconds or any unit)."""

    n: int
    mean: float
    median: float
    stdev: float
    minimum: float
    maximum: float

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "mean": self.mean, "median": self.median, "stdev": self.stdev,
                "min": self.minimum, "max": self.maximum}


def summarize(values: Sequence[float]) -> Summary:
    """Mean, median, sample stdev (0 for one value), min and max of ``values``."""
    if not values:
        raise ValueError("no measurements to summarize")
    vals = [float(v) for v in values]
    return Summary(len(vals), statistics.fmean(vals), statistics.median(vals),
                   statistics.stdev(vals) if len(vals) > 1 else 0.0, min(vals), max(vals))


def time_repeated(fn: Callable[[], Any], repeats: int, *, warmup: int = 1) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out
