"""The Python API: ``fedchain.simulate(...)``, a run of the simulation from a script.

``simulate`` is a thin wrapper over ``simulation.run_simulation``: it turns its keyword
arguments into ``Settings`` exactly as the command line does (``load_settings``: defaults <
``config`` file < ``FEDCHAIN_*`` environment < the arguments given) and returns the run's
``SimulationResult`` (``rounds``, ``final_accuracy``, ``global_state``, ``to_json()``)::

    import fedchain

    result = fedchain.simulate(
        model=MyNet,              # a ModelFactory, or "package.module:factory", or "mnist-cnn"
        dataset=my_loader,        # a loader (fedchain.shared.fl.loaders), or "mnist-sample"
        strategy=MyStrategy,      # a Strategy subclass, a registered name, or "package.module:Class"
        clients=4, rounds=2, max_samples=600,
    )
    print(result.final_accuracy)

A class or function given as an object is recorded by its spec ``module:qualname``
(``__main__:MyNet`` for a script's own), so it must be defined at the top level of its
module; the run's ``config`` (and a results file) names it that way. Any bad value is a
``ConfigError`` with a one-line message, raised before anything trains.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fedchain.shared.config import load_settings
from fedchain.shared.fl.engine import EngineOptions
from fedchain.shared.fl.simulation import RoundResult, SimulationResult, run_simulation
from fedchain.shared.fl.specs import spec_of
from fedchain.shared.fl.strategy import STRATEGIES


def _as_setting(value: object) -> str | None:
    """A setting's text: a string as it is, a class or function as its spec."""
    if value is None or isinstance(value, str):
        return value
    name = getattr(value, "name", None)
    if isinstance(name, str) and name and STRATEGIES.get(name) is value:
        return name  # a registered strategy: its name
    return spec_of(value)


def simulate(
    *,
    model: str | Callable[..., torch.nn.Module] | None = None,
    dataset: str | Callable[[Path], object] | None = None,
    strategy: str | type | None = None,
    config: Path | str | None = None,
    progress: Callable[[RoundResult], None] | None = None,
    engine: EngineOptions | None = None,
    **settings: Any,
) -> SimulationResult:
    """Run a simulation; return its ``SimulationResult``.

    Parameters:
        model: ``--model``: a name, a spec or a ``models.ModelFactory``.
        dataset: ``--dataset``: a name, a spec or a ``loaders.Loader``.
        strategy: ``--algorithm``: a name (registered or fedchain's), a spec or a class.
        config: a config file (JSON/YAML/TOML) under the arguments.
        progress: called with each ``RoundResult`` as the round ends.
        engine: where the clients train (default: serially, in this process).
        settings: any other ``Settings`` field (``clients=4``, ``rounds=2``, ``lr=0.05``).

    Raises ConfigError (one line) for any value that cannot be used.
    """
    flags = {
        **settings,
        "model": _as_setting(model),
        "dataset": _as_setting(dataset),
        "algorithm": _as_setting(strategy),
    }
    run_settings = load_settings(config, **flags)
    if run_settings.torch_threads is not None:
        torch.set_num_threads(run_settings.torch_threads)
    return run_simulation(run_settings, progress=progress, engine=engine)
