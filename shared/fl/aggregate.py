"""Sample-weighted averaging of model states, in two composable steps.

The server step of FedAvg / FedPer is a weighted mean. It is computed in two steps so
that it can be split over several aggregators (edge nodes -> super nodes -> entry) and
still give the one result a single server would:

* ``partial_sums(updates)`` turns ``(state, samples)`` pairs into a ``Partial``: the
  float64 sum of ``samples * tensor`` for every tensor (integer and bool buffers too)
  and the total weight;
* ``finish(partials)`` adds partials up, divides by the total weight and casts every
  tensor back to its dtype (floats: plain cast; integers: rounded to the nearest,
  ties to even; bools: true when the weighted mean is at least 0.5).

``weighted_average(updates)`` is ``finish([partial_sums(updates)])``. Because the sums
are float64 and addition is exact up to float64 rounding, ``finish`` over partials of
any grouping of the updates equals the single-level result up to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

StateUpdate = tuple[Mapping[str, torch.Tensor], int]
"""A client's state and its weight (its number of training samples)."""


@dataclass(frozen=True)
class Partial:
    """Part of an aggregate: float64 weighted sums, their total weight, the tensors' dtypes.

    Attributes:
        sums: per key, the float64 sum of ``weight * tensor`` over the updates it covers.
        weight: the sum of those updates' weights (sample counts); may be 0.
        dtypes: per key, the dtype the finished tensor is cast back to.
    """

    sums: dict[str, torch.Tensor]
    weight: int
    dtypes: dict[str, torch.dtype]

    @classmethod
    def like(
        cls, sums: Mapping[str, torch.Tensor], weight: int, reference: Mapping[str, torch.Tensor]
    ) -> Partial:
        """A partial received from elsewhere, finished to the dtypes of ``reference``."""
        return cls(dict(sums), int(weight), {k: reference[k].dtype for k in sums if k in reference})


def _check_weights(weights: Sequence[int], what: str) -> int:
    if any(w < 0 for w in weights):
        raise ValueError("sample counts must not be negative")
    total = sum(weights)
    if total <= 0:
        raise ValueError(f"nothing to aggregate: the {what} hold no samples")
    return total


def _check_same_keys(states: Sequence[Mapping[str, object]], what: str) -> list[str]:
    keys = list(states[0])
    for i, state in enumerate(states[1:], start=1):
        if set(state) != set(keys):
            diff = sorted(set(state) ^ set(keys))
            raise ValueError(
                f"{what} {i} holds different tensors than {what} 0: {', '.join(diff[:5])}"
            )
    return keys


def partial_sums(updates: Sequence[StateUpdate]) -> Partial:
    """The float64 weighted sums of ``updates`` and their total weight.

    Every state must hold the same keys with the same shapes and dtypes. Raises
    ValueError on an empty list, a negative weight or mismatched states. A zero total
    weight is allowed here (``finish`` refuses it when nothing else adds weight).
    """
    if not updates:
        raise ValueError("nothing to aggregate: no updates")
    weights = [int(n) for _, n in updates]
    if any(w < 0 for w in weights):
        raise ValueError("sample counts must not be negative")
    first = updates[0][0]
    keys = _check_same_keys([s for s, _ in updates], "update")
    sums: dict[str, torch.Tensor] = {}
    for key in keys:
        ref = first[key]
        acc = torch.zeros(ref.shape, dtype=torch.float64)
        for i, ((state, _), w) in enumerate(zip(updates, weights, strict=True)):
            t = state[key]
            if t.shape != ref.shape or t.dtype != ref.dtype:
                raise ValueError(
                    f"update {i}: tensor {key} is {t.dtype}{tuple(t.shape)}, "
                    f"expected {ref.dtype}{tuple(ref.shape)}"
                )
            if w:
                acc.add_(t.detach().to("cpu", torch.float64), alpha=w)
        sums[key] = acc
    return Partial(sums, sum(weights), {k: first[k].dtype for k in keys})


def finish(partials: Sequence[Partial]) -> dict[str, torch.Tensor]:
    """The weighted mean the partials add up to, cast back to each tensor's dtype.

    Raises ValueError on an empty list, a non-positive total weight, partials that hold
    different tensors, shapes or dtypes, or sums that are not float64.
    """
    if not partials:
        raise ValueError("nothing to aggregate: no updates")
    total = _check_weights([p.weight for p in partials], "updates")
    first = partials[0]
    keys = _check_same_keys([p.sums for p in partials], "partial")
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        if key not in first.dtypes:
            raise ValueError(f"partial 0 does not say the dtype of tensor {key}")
        dtype, shape = first.dtypes[key], first.sums[key].shape
        acc = torch.zeros(shape, dtype=torch.float64)
        for i, p in enumerate(partials):
            t = p.sums[key]
            if t.dtype != torch.float64 or t.shape != shape or p.dtypes.get(key) != dtype:
                raise ValueError(
                    f"partial {i}: tensor {key} is a {t.dtype}{tuple(t.shape)} sum of "
                    f"{p.dtypes.get(key)}, expected a torch.float64{tuple(shape)} sum of {dtype}"
                )
            acc.add_(t)
        acc.div_(total)
        out[key] = cast_back(acc, dtype)
    return out


def cast_back(value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A float64 aggregate cast to ``dtype``: floats cast, integers rounded (ties to even),
    bools true from 0.5 -- the one rule every aggregator (mean or robust) finishes with."""
    if dtype.is_floating_point:
        return value.to(dtype)
    if dtype == torch.bool:
        return value >= 0.5
    return value.round().to(dtype)


def weighted_average(updates: Sequence[StateUpdate]) -> dict[str, torch.Tensor]:
    """Average the states in ``updates`` weighted by their sample counts (one level).

    The same as ``finish([partial_sums(updates)])``. Raises ValueError on an empty list,
    a non-positive total weight, a negative weight or mismatched states.
    """
    return finish([partial_sums(updates)])
