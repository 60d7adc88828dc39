"""Size and count limits of the wire, defined once and derived from ``Settings``.

``max_message_mb`` bounds one gRPC message, one streamed model/update/blob and one blob;
``chunk_kb`` is the size of the pieces a stream is cut into. A stream's chunk-count limit
follows from its byte limit and the smallest chunk size ``Settings`` allows, so a peer
that sends empty (or tiny) chunks is refused after a bounded number of messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from annotated_types import Ge

from fedchain.shared.config import Settings

KIB = 1024
MIB = 1024 * 1024

MAX_HEIGHT = 2**63 - 1
"""Largest block height or model version anything accepts (stored as signed 64-bit)."""

FRAMING_BYTES = 64 * KIB
"""Room above ``max_message_bytes`` for a message's own framing (headers, field tags)."""

HTTP_BODY_BYTES = 1 * MIB
"""Largest HTTP request body the control and ledger APIs read (their bodies are small JSON)."""


def _min_chunk_kb() -> int:
    for meta in Settings.model_fields["chunk_kb"].metadata:
        if isinstance(meta, Ge):
            return int(meta.ge)  # type: ignore[call-overload,no-any-return]
    raise AssertionError("Settings.chunk_kb has no lower bound")


MIN_CHUNK_BYTES = _min_chunk_kb() * KIB
"""The smallest chunk a fedchain sender cuts (``Settings.chunk_kb``'s lower bound)."""


def message_bytes(settings: Settings) -> int:
    """``max_message_mb`` in bytes: the limit of one message, stream or blob."""
    return settings.max_message_mb * MIB


def chunk_bytes(settings: Settings) -> int:
    """``chunk_kb`` in bytes: the size streams are cut into."""
    return settings.chunk_kb * KIB


def max_chunks(max_bytes: int) -> int:
    """Most data messages a stream of at most ``max_bytes`` may take (plus one spare)."""
    return math.ceil(max(0, max_bytes) / MIN_CHUNK_BYTES) + 1


@dataclass(frozen=True)
class StreamLimits:
    """What a bounded stream reader accepts: total body bytes and number of data messages."""

    max_bytes: int
    max_chunks: int

    @classmethod
    def for_bytes(cls, max_bytes: int) -> StreamLimits:
        """Limits of a stream whose body may hold up to ``max_bytes``."""
        return cls(max_bytes, max_chunks(max_bytes))

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamLimits:
        return cls.for_bytes(message_bytes(settings))
