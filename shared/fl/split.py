"""FedPer's base/head split of any ``nn.Module``.

A *parameterised layer* is a module that directly owns at least one parameter (a
``Linear``, a ``Conv2d``, a ``BatchNorm2d``, ...), taken in ``named_modules()`` order,
which is the order the layers are defined in. The head is the last ``personal_layers``
of them: their parameters and their own buffers (e.g. batch-norm running statistics).
Everything else in the state dict is the base. ``personal_layers=0`` makes the head
empty (FedPer then behaves as FedAvg).

Which keys leave a client is the strategy's decision (``Strategy.shared_keys``:
``FedPer`` shares ``base_keys``, ``FedAvg`` everything); this module only finds layers.
"""

from __future__ import annotations

from torch import nn

from fedchain.shared.config import ConfigError


def parameterised_layers(model: nn.Module) -> list[str]:
    """Names of the modules that directly own parameters, in definition order."""
    return [
        name
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]


def _own_keys(model: nn.Module, layer: str) -> list[str]:
    module = model.get_submodule(layer)
    prefix = f"{layer}." if layer else ""
    own = [n for n, _ in module.named_parameters(recurse=False)]
    own += [n for n, _ in module.named_buffers(recurse=False)]
    return [prefix + n for n in own]


def head_keys(model: nn.Module, personal_layers: int) -> list[str]:
    """State-dict keys of the last ``personal_layers`` parameterised layers (with buffers)."""
    layers = parameterised_layers(model)
    if personal_layers < 0:
        raise ConfigError(f"personal_layers must be 0 or more (got {personal_layers})")
    if personal_layers >= len(layers):
        raise ConfigError(
            f"personal_layers={personal_layers} leaves no shared base: the model has only "
            f"{len(layers)} parameterised layers"
        )
    if personal_layers == 0:
        return []
    wanted: set[str] = set()
    for layer in layers[-personal_layers:]:
        wanted.update(_own_keys(model, layer))
    return [k for k in model.state_dict() if k in wanted]


def base_keys(model: nn.Module, personal_layers: int) -> list[str]:
    """State-dict keys that are not in the head: what FedPer averages."""
    head = set(head_keys(model, personal_layers))
    return [k for k in model.state_dict() if k not in head]
