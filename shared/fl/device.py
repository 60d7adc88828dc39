"""Where training runs: ``resolve_device("auto" | "cpu" | "cuda[:i]" | "mps")``.

``auto`` picks the first CUDA device when torch sees one, else Apple's MPS when it is
available, else the CPU. A named device that this machine does not have is a
``ConfigError`` (one line a person can act on), never a silent fall-back to the CPU.
Models and client data are kept on the chosen device; every tensor that leaves a client
(updates, heads, checkpoints) is a CPU tensor.
"""

from __future__ import annotations

import re

import torch

from fedchain.shared.config import ConfigError

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"
"""The accepted spellings of ``--device`` / ``FEDCHAIN_DEVICE``."""


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str) -> torch.device:
    """The torch device named by ``name`` (see the module doc); ConfigError if absent."""
    name = name.strip().lower()
    if not re.match(DEVICE_PATTERN, name):
        raise ConfigError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise ConfigError("device mps is not available on this machine (use cpu or auto)")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name}: torch sees no CUDA device here (use cpu or auto)")
    index = int(name.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"device {name}: this machine has {count} CUDA device(s), 0..{count - 1}")
    return torch.device("cuda", index)


def to_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU copies of ``state``'s tensors (what leaves a client or is written)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
