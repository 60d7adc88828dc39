"""Train K clients of one model in lockstep as one batched model (``--vectorize K``).

``train_lockstep`` runs the serial loop's local training (``training.train_local``: SGD
with the same lr and momentum, cross-entropy, the same per-client batch order from
``round_seed``, a ragged last batch dropped when there is a full one) for K clients at
once: their parameters are stacked on a leading client axis and one step computes every
client's gradient with ``torch.func.vmap(grad_and_value(functional_call(...)))``.

Ragged clients are masked: a client whose batch is smaller than the batch size gets
padded samples with weight 0 (its loss is the mean over its real samples, as the serial
loop's), and a client that has run out of steps is frozen (its parameters and momentum
are kept, not updated). The result equals the serial loop within float32 rounding (the
batched kernels add in another order).

On this project's 2-core CPU it is no faster than the plain loop; its use is a GPU, where
one batch of 10 leaves the device idle (see the README). Models with buffers (batch-norm
running statistics, e.g. ``cifar-cnn``) are refused: their in-place buffer updates do not
batch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from fedchain.shared.config import ConfigError
from fedchain.shared.fl.data import ImageTensors
from fedchain.shared.fl.training import TrainResult


def _batch_orders(n: int, batch_size: int, epochs: int, seed: int) -> list[torch.Tensor]:
    """Every step's sample indices, drawn as ``train_local`` draws them."""
    generator = torch.Generator().manual_seed(seed)
    drop_last = n > batch_size
    stop = n - n % batch_size if drop_last else n
    steps: list[torch.Tensor] = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        steps.extend(order[s : s + batch_size] for s in range(0, stop, batch_size))
    return steps


def check_vectorizable(model: nn.Module) -> None:
    """Refuse a model with buffers (batch norm): its buffers cannot be trained in lockstep."""
    buffers = [name for name, _ in model.named_buffers()]
    if buffers:
        raise ConfigError(
            f"--vectorize needs a model without buffers; this one has {buffers[0]} "
            "(batch norm): use --vectorize 1 or the mnist-cnn model"
        )


def train_lockstep(
    model: nn.Module,
    starts: Sequence[Mapping[str, torch.Tensor]],
    datas: Sequence[object],
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float,
) -> list[tuple[dict[str, torch.Tensor], TrainResult]]:
    """Train one copy of ``model`` per start state on its data; (state, result) per client.

    ``model`` gives the architecture only (its own weights are not used or changed);
    ``datas`` are ``ImageTensors``; ``seeds`` the clients' ``round_seed``s.
    """
    check_vectorizable(model)
    images: list[ImageTensors] = []
    for data in datas:
        if not isinstance(data, ImageTensors):
            raise ConfigError("--vectorize needs in-memory image datasets (ImageTensors)")
        images.append(data)
    begin = time.perf_counter()
    device = next(model.parameters()).device
    names = [name for name, _ in model.named_parameters()]
    sizes = [len(d) for d in images]
    live = [k for k, n in enumerate(sizes) if n > 0]
    results: list[tuple[dict[str, torch.Tensor], TrainResult]] = [
        ({k: v.detach().clone() for k, v in s.items()}, TrainResult(0.0, 0, 0.0)) for s in starts
    ]
    if not live:
        return results
    params = {n: torch.stack([starts[k][n].to(device) for k in live]) for n in names}
    steps = [_batch_orders(sizes[k], batch_size, epochs, seeds[k]) for k in live]
    clients = len(live)
    template = images[live[0]].batch(torch.arange(1))[0]
    x_buf = torch.zeros((clients, batch_size, *template.shape[1:]), device=device)
    y_buf = torch.zeros((clients, batch_size), dtype=torch.int64, device=device)
    m_buf = torch.zeros((clients, batch_size), device=device)

    def loss_of(
        p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, m: torch.Tensor
    ) -> torch.Tensor:
        logits = functional_call(model, p, (x,))
        losses = F.cross_entropy(logits, y, reduction="none")
        return (losses * m).sum() / m.sum().clamp_min(1.0)

    step_fn = vmap(grad_and_value(loss_of))
    momenta: dict[str, torch.Tensor] = {}
    total = torch.zeros(clients, dtype=torch.float64, device=device)
    model.train()
    for t in range(max(len(s) for s in steps)):
        active = torch.tensor([t < len(s) for s in steps], device=device)
        counts = torch.zeros(clients, dtype=torch.float64, device=device)
        m_buf.zero_()
        for j, k in enumerate(live):
            if t < len(steps[j]):
                x, y = images[k].batch(steps[j][t])
                b = len(y)
                x_buf[j, :b], y_buf[j, :b], m_buf[j, :b] = x, y, 1.0
                counts[j] = b
        grads, losses = step_fn(params, x_buf, y_buf, m_buf)
        total += losses.detach().to(torch.float64) * counts
        for name in names:
            g = grads[name]
            keep = active.view(-1, *([1] * (g.dim() - 1)))
            if momentum:
                old = momenta.get(name)
                g = g.clone() if old is None else old.mul(momentum).add_(g)
                momenta[name] = g if old is None else torch.where(keep, g, old)
            params[name] = torch.where(keep, params[name].add(g, alpha=-lr), params[name])
    if not bool(torch.isfinite(total).all()):
        raise FloatingPointError("local training diverged (loss is not finite); lower the lr")
    seconds = time.perf_counter() - begin
    for j, k in enumerate(live):
        seen = sum(len(b) for b in steps[j])
        state = {name: params[name][j].detach() for name in names}
        results[k] = (state, TrainResult(float(total[j]) / seen, sizes[k], seconds))
    return results
