"""The safetensors header check, defined once (no torch needed).

A safetensors file is an 8-byte little-endian header length, a JSON object naming each
tensor's dtype, shape and data offsets (and an optional ``__metadata__`` object of
strings), then the tensor bytes. ``parse_header`` checks all of that without decoding a
tensor and raises ``HeaderError`` with a short reason; callers put it in their own words
(``TensorError`` for the codec, ``InvalidBlob`` for the ledger, the console's error).
"""

from __future__ import annotations

import json
import struct
from typing import Any

LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100_000_000
"""Largest header accepted (the safetensors library's own limit)."""


class HeaderError(ValueError):
    """Bytes that are not laid out as a safetensors file; the message says why."""


def header_length(first: bytes | memoryview, size: int) -> int:
    """The header length announced by the first 8 bytes of a file of ``size`` bytes."""
    if size < LENGTH_BYTES or len(first) < LENGTH_BYTES:
        raise HeaderError("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", bytes(first[:LENGTH_BYTES]))
    if n > MAX_HEADER_BYTES:
        raise HeaderError(f"header of {n} bytes is larger than the limit of {MAX_HEADER_BYTES}")
    if n > size - LENGTH_BYTES:
        raise HeaderError("header length points past the end")
    return int(n)


def _check_entry(name: str, info: Any, body: int) -> None:
    if not isinstance(info, dict):
        raise HeaderError(f"tensor {name[:40]!r} is not described by a JSON object")
    offsets = info.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= body
    ):
        raise HeaderError(f"tensor {name[:40]!r} has bad offsets")
    shape = info.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise HeaderError(f"tensor {name[:40]!r} has a bad shape")
    if not isinstance(info.get("dtype"), str):
        raise HeaderError(f"tensor {name[:40]!r} has no dtype")


def parse_header(data: bytes | memoryview, size: int | None = None) -> dict[str, Any]:
    """Parse and check the header at the start of ``data`` (a file of ``size`` bytes).

    ``data`` holds at least the length and the header; ``size`` (default ``len(data)``)
    is the length of the whole file, against which the tensors' offsets are checked.
    """
    total = len(data) if size is None else size
    n = header_length(data, total)
    if len(data) < LENGTH_BYTES + n:
        raise HeaderError("header length points past the end")
    raw = bytes(data[LENGTH_BYTES : LENGTH_BYTES + n])
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HeaderError("header is not JSON") from None
    except RecursionError:
        raise HeaderError("header is nested too deeply to be a safetensors header") from None
    if not isinstance(header, dict):
        raise HeaderError("header is not a JSON object")
    body = total - LENGTH_BYTES - n
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise HeaderError("__metadata__ is not an object of strings")
            continue
        _check_entry(name, info, body)
    return header
