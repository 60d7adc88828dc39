"""Bytes this process sent and received over the chunked gRPC streams, by stream kind.

The stream codec (``streams.py``) counts every data piece it writes or takes; the node's
``/metrics`` reads the totals (``fedchain_bytes_sent_total`` / ``_received_total``).
One count per process: a node process is one node.
"""

from __future__ import annotations

import threading
from collections import defaultdict


class Traffic:
    """Thread-safe byte totals per stream kind (model, update, aggregate, blob)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: defaultdict[str, int] = defaultdict(int)
        self._received: defaultdict[str, int] = defaultdict(int)

    def sent(self, stream: str, n: int) -> None:
        with self._lock:
            self._sent[stream] += n

    def received(self, stream: str, n: int) -> None:
        with self._lock:
            self._received[stream] += n

    def totals(self) -> tuple[dict[str, int], dict[str, int]]:
        """(sent, received) bytes by stream kind so far."""
        with self._lock:
            return dict(self._sent), dict(self._received)


TRAFFIC = Traffic()
"""This process's totals."""
