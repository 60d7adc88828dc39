"""Local training and evaluation of one model on one dataset (plain SGD, cross-entropy)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fedchain.shared.fl.data import ImageTensors
from fedchain.shared.fl.seeding import seed_everything


@dataclass
class TrainResult:
    """Mean training loss over all samples seen, the number of training samples, wall time."""

    loss: float
    samples: int
    seconds: float


@dataclass
class EvalResult:
    """Correct predictions, samples evaluated and mean cross-entropy loss."""

    correct: int
    total: int
    loss: float

    @property
    def accuracy(self) -> float:
        """correct / total (0.0 when nothing was evaluated)."""
        return self.correct / self.total if self.total else 0.0


def _batches(
    data: Dataset[Any],
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    n = len(data)  # type: ignore[arg-type]
    # as PFLlib's training loader: drop a ragged last batch, unless it is the only one
    drop_last = drop_last and n > batch_size
    if isinstance(data, ImageTensors):
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            yield data.batch(order[start : start + batch_size])
        return
    loader = DataLoader(
        data, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last
    )
    for x, y in loader:
        yield x, torch.as_tensor(y)


def warm_up() -> None:
    """Import now what the first optimiser imports lazily (``torch._dynamo``, through
    ``Optimizer.__init__``): 3-6 s on a loaded 2-core host, measured with py-spy. A node
    calls this while it starts, so its first round trains at once and stops at once on
    SIGTERM instead of sitting in an import the stop flag cannot reach."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def train_local(
    model: nn.Module,
    data: Dataset[Any],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float,
    seed: int,
) -> TrainResult:
    """Train ``model`` in place for ``epochs`` passes of SGD over ``data``.

    A ragged last batch is dropped when there is at least one full batch (as PFLlib).

    All randomness (batch order, dropout) comes from ``seed``, so the same model, data and
    seed give the same weights.
    """
    start = time.perf_counter()
    n = len(data)  # type: ignore[arg-type]
    if n == 0:
        return TrainResult(loss=0.0, samples=0, seconds=0.0)
    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    total_loss, seen = 0.0, 0
    for _ in range(epochs):
        for x, y in _batches(data, batch_size, shuffle=True, generator=generator, drop_last=True):
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimiser.step()
            total_loss += float(loss.detach()) * len(y)
            seen += len(y)
    if not torch.isfinite(torch.tensor(total_loss)):
        raise FloatingPointError("local training diverged (loss is not finite); lower the lr")
    return TrainResult(loss=total_loss / seen, samples=n, seconds=time.perf_counter() - start)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset[Any], *, batch_size: int = 256) -> EvalResult:
    """Accuracy and mean loss of ``model`` on ``data`` (eval mode, no gradients)."""
    model.eval()
    correct, total, loss_sum = 0, 0, 0.0
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    for x, y in _batches(data, batch_size, shuffle=False, generator=None):
        logits = model(x)
        loss_sum += float(loss_fn(logits, y))
        correct += int((logits.argmax(dim=1) == y).sum())
        total += len(y)
    return EvalResult(correct=correct, total=total, loss=loss_sum / total if total else 0.0)
