"""Sample-weighted averaging of model states (the FedAvg / FedPer server step)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def weighted_average(updates: Sequence[tuple[Mapping[str, torch.Tensor], int]]) -> dict[str, torch.Tensor]:
    """Average the states in ``updates`` weighted by their sample counts.

    Every state must hold the same keys with the same shapes and dtypes. Floating-point
    tensors are averaged in float64 and cast back to their dtype. Integer tensors (such as
    batch norm's ``num_batches_tracked``) get the weighted mean rounded to the nearest
    integer. Raises ValueError on an empty list, a non-positive total weight, a negative
    weight or mismatched states.
    """
    if not updates:
        raise ValueError("nothing to aggregate: no updates")
    weights = [int(n) for _, n in updates]
    if any(w < 0 for w in weights):
        raise ValueError("sample counts must not be negative")
    total = sum(weights)
    if total <= 0:
        raise ValueError("nothing to aggregate: the updates hold no samples")
    first = updates[0][0]
    keys = list(first)
    for i, (state, _) in enumerate(updates[1:], start=1):
        if set(state) != set(keys):
            diff = sorted(set(state) ^ set(keys))
            raise ValueError(f"update {i} holds different tensors than update 0: {', '.join(diff[:5])}")
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        ref = first[key]
        acc = torch.zeros(ref.shape, dtype=torch.float64)
        for i, ((state, _), w) in enumerate(zip(updates, weights)):
            t = state[key]
            if t.shape != ref.shape or t.dtype != ref.dtype:
                raise ValueError(
                    f"update {i}: tensor {key} is {t.dtype}{tuple(t.shape)}, "
                    f"expected {ref.dtype}{tuple(ref.shape)}"
                )
            if w:
                acc.add_(t.detach().to("cpu", torch.float64), alpha=w / total)
        if ref.is_floating_point():
            out[key] = acc.to(ref.dtype)
        elif ref.dtype == torch.bool:
            out[key] = acc >= 0.5
        else:
            out[key] = acc.round().to(ref.dtype)
    return out
