"""Model weights on the wire and on disk: safetensors bytes, never pickle.

``encode`` turns a state dict into safetensors bytes; ``decode`` parses bytes back and
checks them: a size bound, a parsable header, and optionally the expected names, shapes
and dtypes and that every value is finite. Any problem raises TensorError with a
message that says what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

DEFAULT_MAX_BYTES = 2 * 1024 * 1024 * 1024


class TensorError(ValueError):
    """Tensor bytes that are malformed or do not match what was expected."""


def digest(data: bytes) -> str:
    """Hex SHA-256 of ``data``: the address of a blob and the digest recorded on the chain."""
    return hashlib.sha256(data).hexdigest()


def encode(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """Encode tensors as safetensors bytes (contiguous CPU copies; deterministic order)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sorted(state.items())}
    return st_save(tensors, metadata=dict(metadata) if metadata else None)


def _check_header(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise TensorError(f"tensor payload of {len(data)} bytes exceeds the limit of {max_bytes}")
    if len(data) < 8:
        raise TensorError("tensor payload is shorter than a safetensors header")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise TensorError("safetensors header length points past the end of the payload")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TensorError(f"safetensors header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise TensorError("safetensors header is not a JSON object")


def decode(
    data: bytes,
    *,
    expected: Mapping[str, torch.Tensor] | None = None,
    require_finite: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, torch.Tensor]:
    """Decode safetensors bytes, checking them against ``expected`` names/shapes/dtypes."""
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
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise TensorError(f"tensor {name} holds NaN or Inf values")
    return state


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    """Split ``data`` into pieces of at most ``size`` bytes (at least one piece)."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    if not data:
        yield b""
        return
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


def join_chunks(pieces: Iterator[bytes], max_bytes: int) -> bytes:
    """Concatenate streamed pieces, refusing to grow beyond ``max_bytes``."""
    buf = bytearray()
    for piece in pieces:
        if len(buf) + len(piece) > max_bytes:
            raise TensorError(f"stream exceeds the limit of {max_bytes} bytes")
        buf.extend(piece)
    return bytes(buf)
