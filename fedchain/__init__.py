"""fedchain: federated learning (FedPer, FedAvg) run by a network of blockchain nodes.

The one top-level package of the distribution. Its parts live in the repository's
``shared/`` (the code several services use: FL core, chain format, transport, settings)
and ``services/`` (ledger, super node, edge node, console, CLI) folders and are imported
as ``fedchain.shared`` and ``fedchain.services``; ``fedchain/shared`` and
``fedchain/services`` are links to those folders, so the installed package, the source
tree and the import-linter contracts all see one package.

``fedchain.simulate(...)`` runs a simulation from Python (your own model, dataset and
strategy included) and returns its result: see ``fedchain.shared.fl.api``. It is imported
on first use, so ``import fedchain`` stays light (no torch).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedchain.shared.fl.api import simulate

try:
    __version__ = version("fedchain")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__", "simulate"]


def __getattr__(name: str) -> Any:
    """``fedchain.simulate``, imported when first asked for."""
    if name == "simulate":
        from fedchain.shared.fl.api import simulate

        return simulate
    raise AttributeError(f"module 'fedchain' has no attribute {name!r}")
