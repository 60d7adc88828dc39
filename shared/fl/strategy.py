"""Federated strategies in the style of Flower: FedAvg and FedPer.

A strategy is the one place that decides, for every engine (the in-process simulation,
an edge node's ``LocalClient``, a super node, the entry):

* ``select_clients(server_round, client_ids, rng)`` -- who trains this round
  (``client_fraction`` of them, at least ``min_clients``; all when the fraction is 1);
* ``shared_keys(model)`` -- which state-dict entries leave a client and are averaged
  (``bind(model)`` records them with their shapes and dtypes);
* ``check_update(server_round, index, state, samples)`` -- an update must hold exactly
  the shared keys with the bound shapes and dtypes (for FedPer a head tensor arriving
  at the server is refused) and a sample count of 0 or more;
* ``partial(server_round, updates)`` -- a template method: every update is checked,
  then turned into a ``Partial`` (float64 weighted sums and their total weight);
* ``finish(server_round, partials)`` -- every partial is checked (``check_partial``),
  then they are added up into the new global shared state (divided by the total weight,
  cast back to each tensor's dtype).

``aggregate(server_round, updates)`` is ``finish(server_round, [partial(server_round,
updates)])``: a single server (the simulation) and a two-level network (super nodes send
partials, the entry finishes them) compute the one weighted average defined here.

The aggregation rule is the strategy's ``aggregator`` (``fedchain.shared.fl.robust``;
``--aggregator`` / ``FEDCHAIN_AGGREGATOR``, default ``mean``). ``decomposable`` says whether
it can be split into partials: only the plain mean can. A robust rule (median, trimmed
mean, Krum, Multi-Krum, Bulyan, a norm bound) needs every update at one place:

* ``aggregate_with_decisions(server_round, updates, global_shared)`` -- a template method:
  every update is checked, then the mean goes through ``partial``/``finish`` as above and
  any other rule through the ``robust_aggregate`` hook over the full list; it returns an
  ``Aggregation``: the new shared state and the ``Decision`` list (which updates were
  rejected, clipped or down-weighted, and why);
* ``partial`` refuses a non-decomposable aggregator (summing parts would silently give
  the plain mean).
``apply(global_state, aggregated)`` merges the aggregate into the server's full state.

Your own strategy: subclass ``Strategy`` (or ``FedAvg`` / ``FedPer``), give it a ``name``
and override the hooks (``shared_keys``, ``check_update``, ``check_partial``,
``robust_aggregate``, ``select_clients``) or the template methods (``partial``,
``finish``). Its ``__init__`` must take the keyword arguments of ``Strategy.__init__``
(inherit it, or accept ``**kwargs`` and pass them on): ``strategy_from_settings`` builds
it from the settings. Select it with ``--algorithm package.module:Class`` (alias
``--strategy``, setting ``algorithm``), or register it (``@register_strategy``) and use its
name where the registering module is imported first (the Python API). Every engine
(simulation, workers, edge and super nodes) builds it from the same setting, so its module
must be importable everywhere the run goes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import ClassVar, TypeVar

import torch
from torch import nn

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.fl.aggregate import Partial, StateUpdate, partial_sums
from fedchain.shared.fl.aggregate import finish as finish_partials
from fedchain.shared.fl.robust import Aggregation, AggregationError, Aggregator
from fedchain.shared.fl.robust_spec import AggregatorSpec, AggregatorSpecError
from fedchain.shared.fl.specs import SpecError, is_spec, load_spec
from fedchain.shared.fl.split import base_keys, head_keys

Update = StateUpdate
"""``(state, samples)``: a client's shared state and its number of training samples."""


class UpdateRejected(ValueError):
    """An update that does not hold what the strategy expects (say why in the message)."""


class Strategy:
    """Base class; subclasses set ``name`` and may override the hooks.

    Parameters:
        personal_layers: FedPer's number of trailing parameterised layers kept local.
        client_fraction: fraction of the clients that train each round (0 < f <= 1).
        min_clients: the fewest clients selected in a round.
        aggregator: the aggregation rule, as text (``krum:1``, ``clip:2+median``) or parsed.

    Until ``bind`` is called the checks only refuse negative sample counts; a strategy
    serves one model architecture once bound.
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        personal_layers: int = 1,
        client_fraction: float = 1.0,
        min_clients: int = 1,
        aggregator: str | AggregatorSpec = "mean",
    ) -> None:
        if not 0 < client_fraction <= 1:
            raise ConfigError(f"client_fraction must be in (0, 1] (got {client_fraction})")
        if min_clients < 1:
            raise ConfigError(f"min_clients must be at least 1 (got {min_clients})")
        self.personal_layers = personal_layers
        self.client_fraction = client_fraction
        self.min_clients = min_clients
        try:
            self.aggregator = Aggregator(aggregator)
        except AggregatorSpecError as exc:
            raise ConfigError(str(exc)) from exc
        self.expected_keys: list[str] | None = None
        self._specs: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(personal_layers={self.personal_layers}, "
            f"client_fraction={self.client_fraction}, aggregator='{self.aggregator.spec}')"
        )

    # ---- what is shared ------------------------------------------------------

    def shared_keys(self, model: nn.Module) -> list[str]:
        """Hook: state-dict keys that leave a client (default: the whole model)."""
        return list(model.state_dict())

    def bind(self, model: nn.Module) -> list[str]:
        """Record the shared keys of ``model`` with their shapes and dtypes; return the keys."""
        state = model.state_dict()
        keys = self.shared_keys(model)
        self._specs = {k: (tuple(state[k].shape), state[k].dtype) for k in keys}
        self.expected_keys = keys
        return keys

    def _bound_keys(self) -> list[str]:
        if self.expected_keys is None:
            raise ConfigError(f"{type(self).__name__} is not bound to a model: call bind(model)")
        return self.expected_keys

    def reference(self, global_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Shared part of ``global_state``: an update must match (keys, shapes, dtypes)."""
        return {k: global_state[k] for k in self._bound_keys()}

    def partial_reference(
        self, global_state: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """What a partial's sums must match: float64 tensors of the shared shapes (no storage)."""
        return {
            k: torch.empty(global_state[k].shape, dtype=torch.float64, device="meta")
            for k in self._bound_keys()
        }

    # ---- checks --------------------------------------------------------------

    def _check_keys(self, state: Mapping[str, object], what: str) -> None:
        got, want = set(state), set(self.expected_keys or ())
        if got != want:
            extra, missing = sorted(got - want), sorted(want - got)
            detail = (
                f"unexpected {', '.join(extra[:3])}"
                if extra
                else f"missing {', '.join(missing[:3])}"
            )
            raise UpdateRejected(f"{what} holds the wrong tensors: {detail}")

    def check_state(self, state: Mapping[str, torch.Tensor], what: str) -> None:
        """Refuse a state whose keys, shapes or dtypes differ from the bound shared ones.

        Values are not checked for NaN/Inf here: a diverged local run is a result of the
        simulation, not an error. Bytes from the network are refused when not finite as
        they are decoded (``fedchain.shared.tensors.decode``).
        """
        if self.expected_keys is None:
            return
        self._check_keys(state, what)
        for key in self.expected_keys:
            shape, dtype = self._specs[key]
            t = state[key]
            if tuple(t.shape) != shape or t.dtype != dtype:
                raise UpdateRejected(
                    f"{what}: tensor {key} is {t.dtype}{tuple(t.shape)}, expected {dtype}{shape}"
                )

    def check_update(
        self, server_round: int, index: int, state: Mapping[str, torch.Tensor], samples: int
    ) -> None:
        """Hook: refuse an update with a negative sample count or not the bound shared tensors."""
        if samples < 0:
            raise UpdateRejected(f"update {index} of round {server_round}: negative sample count")
        self.check_state(state, f"update {index} of round {server_round}")

    def check_partial(self, server_round: int, index: int, partial: Partial) -> None:
        """Hook: refuse a partial with a negative weight or sums not float64 of bound shapes."""
        what = f"partial aggregate {index} of round {server_round}"
        if partial.weight < 0:
            raise UpdateRejected(f"{what}: negative weight")
        if self.expected_keys is None:
            return
        self._check_keys(partial.sums, what)
        for key in self.expected_keys:
            shape, dtype = self._specs[key]
            t = partial.sums[key]
            if (
                tuple(t.shape) != shape
                or t.dtype != torch.float64
                or partial.dtypes.get(key) != dtype
            ):
                raise UpdateRejected(
                    f"{what}: tensor {key} is a {t.dtype}{tuple(t.shape)} sum of "
                    f"{partial.dtypes.get(key)}, expected a torch.float64{shape} sum of {dtype}"
                )

    # ---- aggregation (template methods) --------------------------------------

    @property
    def decomposable(self) -> bool:
        """True when the aggregator can be summed in parts (``partial``/``finish``): the mean."""
        return self.aggregator.decomposable

    def partial(self, server_round: int, updates: Sequence[Update]) -> Partial:
        """Check every update, then sum them: float64 weighted sums and the total weight.

        Raises ConfigError when the aggregator is not decomposable (a robust rule).
        """
        if not self.decomposable:
            raise ConfigError(
                f"aggregator {self.aggregator.spec} is not decomposable into partial sums: "
                "it needs every update at one place (aggregate_with_decisions)"
            )
        for i, (state, samples) in enumerate(updates):
            self.check_update(server_round, i, state, samples)
        return partial_sums(updates)

    def finish(self, server_round: int, partials: Sequence[Partial]) -> dict[str, torch.Tensor]:
        """Check the partials, then divide their sums by the total weight: the new shared state."""
        for i, p in enumerate(partials):
            self.check_partial(server_round, i, p)
        return finish_partials(partials)

    def robust_aggregate(
        self,
        server_round: int,
        updates: Sequence[Update],
        global_shared: Mapping[str, torch.Tensor] | None,
    ) -> Aggregation:
        """Hook: a non-decomposable aggregator over the full list of (checked) updates.

        ``global_shared`` is the round's global shared state (``clip`` measures distances
        from it). Raises UpdateRejected when the rule cannot run on these updates (fewer
        than its f allows, every update not finite).
        """
        try:
            return self.aggregator(updates, global_shared)
        except AggregationError as exc:
            raise UpdateRejected(f"round {server_round}: {exc}") from exc

    def aggregate_with_decisions(
        self,
        server_round: int,
        updates: Sequence[Update],
        global_shared: Mapping[str, torch.Tensor] | None = None,
    ) -> Aggregation:
        """One level with the aggregator: the new shared state and the decisions taken.

        The mean (decomposable) is ``finish([partial(updates)])`` with no decisions; any
        other rule checks every update, then runs ``robust_aggregate`` over all of them.
        """
        if self.decomposable:
            return Aggregation(self.finish(server_round, [self.partial(server_round, updates)]))
        for i, (state, samples) in enumerate(updates):
            self.check_update(server_round, i, state, samples)
        return self.robust_aggregate(server_round, updates, global_shared)

    def aggregate(
        self,
        server_round: int,
        updates: Sequence[Update],
        global_shared: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """One level: the state of ``aggregate_with_decisions`` (for the mean:
        ``finish(server_round, [partial(server_round, updates)])``)."""
        return self.aggregate_with_decisions(server_round, updates, global_shared).state

    # ---- selection and merging -----------------------------------------------

    def select_clients(
        self, server_round: int, client_ids: Sequence[int], rng: random.Random
    ) -> list[int]:
        """Hook: the clients that train in ``server_round`` (sorted; all when the fraction is 1)."""
        ids = sorted(client_ids)
        if self.client_fraction >= 1 or not ids:
            return ids
        wanted = math.ceil(self.client_fraction * len(ids) - 1e-9)
        count = min(len(ids), max(self.min_clients, wanted))
        return sorted(rng.sample(ids, count))

    @staticmethod
    def apply(
        global_state: Mapping[str, torch.Tensor], aggregated: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The server's full state with the aggregated entries replaced."""
        merged = dict(global_state)
        merged.update(aggregated)
        return merged


class FedAvg(Strategy):
    """McMahan et al. 2017: the whole model is averaged, weighted by sample counts."""

    name = "fedavg"


class FedPer(Strategy):
    """Arivazhagan et al. 2019: the base is averaged; the last ``personal_layers`` stay local."""

    name = "fedper"

    def shared_keys(self, model: nn.Module) -> list[str]:
        """The base: every key but the last ``personal_layers`` parameterised layers'."""
        return base_keys(model, self.personal_layers)

    def head_keys(self, model: nn.Module) -> list[str]:
        """The personal keys: never sent, never aggregated."""
        return head_keys(model, self.personal_layers)


STRATEGIES: dict[str, type[Strategy]] = {"fedavg": FedAvg, "fedper": FedPer}
"""The strategies known by name: fedchain's two and those added by ``register_strategy``."""


_S = TypeVar("_S", bound=type[Strategy])


def register_strategy(cls: _S) -> _S:
    """Class decorator: make ``cls`` selectable by its ``name`` (``algorithm=name``).

    Raises ConfigError when ``cls`` is no Strategy subclass, has no name, or its name is
    taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"register_strategy: {cls!r} is not a Strategy subclass")
    name = cls.name
    if not name or is_spec(name) or name != name.strip():
        raise ConfigError(f"register_strategy: {cls.__name__} needs a name without ':' or spaces")
    if STRATEGIES.get(name, cls) is not cls:
        raise ConfigError(f"register_strategy: the name {name!r} is taken by {STRATEGIES[name].__name__}")
    STRATEGIES[name] = cls
    return cls


def strategy_class(algorithm: str, flag: str = "--algorithm") -> type[Strategy]:
    """The class ``algorithm`` names: a registered name or a spec ``package.module:Class``.

    Raises ConfigError (naming ``flag`` and the value) for an unknown name, a spec that
    does not import, or an object that is no Strategy subclass.
    """
    if is_spec(algorithm):
        obj = load_spec(algorithm, flag)
        if not (isinstance(obj, type) and issubclass(obj, Strategy)):
            raise SpecError(
                f"{flag} {algorithm!r}: {getattr(obj, '__name__', type(obj).__name__)} is not a subclass of "
                "fedchain.shared.fl.strategy.Strategy"
            )
        return obj
    cls = STRATEGIES.get(algorithm)
    if cls is None:
        raise ConfigError(
            f"{flag} {algorithm!r}: unknown algorithm (use {', '.join(sorted(STRATEGIES))} "
            "or package.module:Class)"
        )
    return cls


def strategy_from_settings(settings: Settings, algorithm: str | None = None) -> Strategy:
    """The strategy named by ``algorithm`` (default ``settings.algorithm``), with its parameters.

    A custom class that refuses the parameters, or builds something that is no Strategy,
    is a ConfigError naming ``--algorithm``.
    """
    name = algorithm or settings.algorithm
    cls = strategy_class(name)
    try:
        strategy = cls(
            personal_layers=settings.personal_layers,
            client_fraction=settings.client_fraction,
            aggregator=settings.aggregator,
        )
    except ConfigError:
        raise
    except Exception as exc:  # the user's __init__ failed: any type
        raise SpecError(f"--algorithm {name!r}: {cls.__name__}(...) raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(strategy, Strategy):
        raise SpecError(f"--algorithm {name!r}: {cls.__name__}(...) built {type(strategy).__name__}, not a Strategy")
    return strategy

