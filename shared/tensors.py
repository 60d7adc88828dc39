"""Model weights on the wire and on disk: safetensors bytes, never pickle.

``encode`` turns a state dict into safetensors bytes; ``decode`` parses bytes back and
checks them: a size bound, a parsable header, and optionally the expected names, shapes
and dtypes and that every value is finite. Any problem raises TensorError with a
message that says what is wrong.

torch is imported when a function first needs it, not with this module: processes that
only move bytes (the ledger service, the stream codec's users) do not pay torch's import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from safetensors import SafetensorError

from fedchain.shared.digests import sha256_hex
from fedchain.shared.safetensors_header import HeaderError, parse_header

if TYPE_CHECKING:
    import torch

DEFAULT_MAX_BYTES = 2 * 1024 * 1024 * 1024


class TensorError(ValueError):
    """Tensor bytes that are malformed or do not match what was expected."""


def digest(data: bytes) -> str:
    """Hex SHA-256 of ``data``: the address of a blob and the digest recorded on the chain."""
    return sha256_hex(data)


def encode(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """Encode tensors as safetensors bytes (contiguous CPU copies; deterministic order)."""
    from safetensors.torch import save as st_save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sorted(state.items())}
    return st_save(tensors, metadata=dict(metadata) if metadata else None)


def _check_header(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise TensorError(f"tensor payload of {len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        parse_header(data)
    except HeaderError as exc:
        raise TensorError(f"not a safetensors payload: {exc}") from None


def is_finite(t: torch.Tensor) -> bool:
    """True unless the floating-point tensor ``t`` holds a NaN or an infinity.

    One vectorised pass (``aminmax``: NaN propagates into both, an infinity shows in
    one of them) and no temporary the size of the tensor.
    """
    if not t.is_floating_point() or t.numel() == 0:
        return True
    import torch

    low, high = torch.aminmax(t)
    return bool(torch.isfinite(low)) and bool(torch.isfinite(high))


def decode(
    data: bytes,
    *,
    expected: Mapping[str, torch.Tensor] | None = None,
    require_finite: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, torch.Tensor]:
    """Decode safetensors bytes, checking them against ``expected`` names/shapes/dtypes."""
    from safetensors.torch import load as st_load

    _check_header(data, max_bytes)
    try:
        state = st_load(bytes(data))
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise TensorError(f"malformed safetensors payload: {exc}") from exc
    if expected is not None:
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing:
            raise TensorError(f"missing tensors: {', '.join(missing[:5])}")
        if extra:
            raise TensorError(f"unexpected tensors: {', '.join(extra[:5])}")
        for name, ref in expected.items():
            got = state[name]
            if tuple(got.shape) != tuple(ref.shape):
                raise TensorError(
                    f"tensor {name} has shape {tuple(got.shape)}, expected {tuple(ref.shape)}"
                )
            if got.dtype != ref.dtype:
                raise TensorError(f"tensor {name} has dtype {got.dtype}, expected {ref.dtype}")
    if require_finite:
        for name, t in state.items():
            if not is_finite(t):
                raise TensorError(f"tensor {name} holds NaN or Inf values")
    return state
