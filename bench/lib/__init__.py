"""Helpers of the performance benchmarks in bench/, one module per purpose.

- ``paths``: where results, plots, datasets and the Flower app are; ``require_mnist``.
- ``results``: machine info, JSON results files, plain tables.
- ``charts``: bar, grouped-bar and line charts (PNG).
- ``stats``: summary statistics and repeated timing.
- ``memory``: RSS/PSS/USS of a process and the machine's available memory (psutil).
- ``control``: SIGTERM as SystemExit, bounded waits, the process group (the one launcher,
  ``fedchain.shared.processes``, with benchmark errors).
- ``models``: the MNIST CNN both fedchain and Flower train.
- ``networks``: a fedchain network of ``fedchain node`` processes, or one started by
  ``fedchain up --keep``.

The scripts put bench/ on ``sys.path`` and import ``from lib import ...``.
"""

from __future__ import annotations


class BenchError(RuntimeError):
    """A benchmark could not run; the message says what is missing or what failed."""
