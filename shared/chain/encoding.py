"""Canonical byte encoding of block headers: the bytes that are hashed and signed.

Rules (never ``json.dumps``): every value is written in a fixed field order with an
explicit type-determined layout; integers are big-endian (``u64`` for header fields,
signed ``i64`` in payloads); floats are IEEE-754 binary64 big-endian and must be
finite; byte strings and UTF-8 strings carry a ``u32`` length prefix; lists carry a
``u32`` count; mappings are written as a count then key/value pairs sorted by the
key's UTF-8 bytes; a scalar (``scalar_map`` values) is a ``u32`` type tag, then its value.
Distinct values therefore always give distinct bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence

Scalar = None | bool | int | float | str
"""A value of a ``scalar_map``: what a setting holds (genesis records the config so)."""

SCALAR_TAGS: dict[type, int] = {type(None): 0, bool: 1, int: 2, float: 3, str: 4}
"""The type tag written before a scalar (``bool`` before ``int``: a bool is not an int here)."""

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


class CanonicalWriter:
    """Accumulates canonically encoded values; ``getvalue()`` returns the bytes."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def getvalue(self) -> bytes:
        """The bytes written so far."""
        return b"".join(self._parts)

    def u32(self, value: int) -> None:
        """Unsigned 32-bit big-endian integer."""
        if not 0 <= value <= U32_MAX:
            raise ValueError(f"{value} does not fit an unsigned 32-bit integer")
        self._parts.append(struct.pack(">I", value))

    def u64(self, value: int) -> None:
        """Unsigned 64-bit big-endian integer."""
        if isinstance(value, bool) or not 0 <= value <= U64_MAX:
            raise ValueError(f"{value} does not fit an unsigned 64-bit integer")
        self._parts.append(struct.pack(">Q", value))

    def i64(self, value: int) -> None:
        """Signed 64-bit big-endian integer."""
        if isinstance(value, bool) or not I64_MIN <= value <= I64_MAX:
            raise ValueError(f"{value} does not fit a signed 64-bit integer")
        self._parts.append(struct.pack(">q", value))

    def f64(self, value: float) -> None:
        """IEEE-754 binary64, big-endian; NaN and infinities are refused."""
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        self._parts.append(struct.pack(">d", value))

    def raw(self, value: bytes) -> None:
        """Length-prefixed bytes."""
        self.u32(len(value))
        self._parts.append(bytes(value))

    def text(self, value: str) -> None:
        """Length-prefixed UTF-8 string."""
        self.raw(value.encode("utf-8"))

    def text_list(self, values: Sequence[str]) -> None:
        """Count, then each string."""
        self.u32(len(values))
        for item in values:
            self.text(item)

    def pair_list(self, values: Sequence[tuple[str, str]]) -> None:
        """Count, then each (first, second) string pair."""
        self.u32(len(values))
        for first, second in values:
            self.text(first)
            self.text(second)

    def float_map(self, values: Mapping[str, float]) -> None:
        """Count, then key string / binary64 value pairs sorted by the key's UTF-8 bytes."""
        self.u32(len(values))
        for key in sorted(values, key=lambda k: k.encode("utf-8")):
            self.text(key)
            self.f64(values[key])

    def scalar(self, value: Scalar) -> None:
        """Type tag (``SCALAR_TAGS``), then the value: nothing for null, ``u32`` 0/1 for a
        bool, ``i64``, binary64 or a string."""
        tag = SCALAR_TAGS.get(type(value))
        if tag is None:
            raise ValueError(f"{type(value).__name__} is not a scalar (null, bool, int, float or string)")
        self.u32(tag)
        if isinstance(value, bool):
            self.u32(int(value))
        elif isinstance(value, int):
            self.i64(value)
        elif isinstance(value, float):
            self.f64(value)
        elif isinstance(value, str):
            self.text(value)

    def scalar_map(self, values: Mapping[str, Scalar]) -> None:
        """Count, then key string / typed scalar pairs sorted by the key's UTF-8 bytes."""
        self.u32(len(values))
        for key in sorted(values, key=lambda k: k.encode("utf-8")):
            self.text(key)
            self.scalar(values[key])
