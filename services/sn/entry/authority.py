"""The entry's signature on what it asks of SNs and ENs: ``OpenRound``, ``AssignEdge``, ``Evaluate``.

``EntryAuthority`` holds the entry key and the chain id (the genesis block hash, known once
genesis is written or read: ``bind``). Each request is signed over every field its receiver
acts on (``shared/net/signing.py``); an SN relays ``OpenRound`` and ``Evaluate`` to its ENs
unchanged, so the ENs check the entry's signature too. ``partition_size`` tells the size of
each EN's training share, which bounds the sample count of its updates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.signing import assign_edge_fields, evaluate_fields, open_round_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.rpc import node_pb2 as pb

log = logging.getLogger("fedchain.entry")


def partition_sizes(settings: Settings) -> list[int]:
    """Training samples of every client partition, from the FL core's partitioner."""
    from fedchain.shared.fl.data import client_indices, load_pool

    pool = load_pool(settings.dataset, settings.data_dir, download=False)
    return [len(train) for train, _ in client_indices(settings, pool.labels.numpy())]


class EntryAuthority:
    """Signs the entry's requests; ``chain_id`` is set by ``bind`` after bootstrap."""

    def __init__(
        self,
        key: NodeKey,
        settings: Settings,
        *,
        sizes: Callable[[Settings], list[int]] = partition_sizes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.settings = settings
        self.chain_id = b""
        self._sizes_of = sizes
        self._sizes: list[int] | None = None
        self._lock = threading.Lock()
        self._clock = clock
        self._last_ms = 0

    def bind(self, chain_id: bytes) -> None:
        """The chain the entry writes (its genesis hash)."""
        self.chain_id = bytes(chain_id)

    @property
    def public_key(self) -> bytes:
        return self.key.public_bytes

    def partition_size(self, index: int) -> int:
        """Training samples of partition ``index`` (0 when the data cannot be read here)."""
        with self._lock:
            if self._sizes is None:
                try:
                    self._sizes = self._sizes_of(self.settings)
                except (ConfigError, OSError, ValueError) as exc:
                    log.warning("partition sizes unknown (%s); sample counts are bounded loosely", exc)
                    self._sizes = []
            sizes = self._sizes
        return sizes[index] if 0 <= index < len(sizes) else 0

    def issued_ms(self) -> int:
        """A strictly increasing wall-clock stamp for a request."""
        with self._lock:
            self._last_ms = max(self._last_ms + 1, int(self._clock() * 1000))
            return self._last_ms

    def sign_assignment(self, info: pb.EdgeInfo) -> pb.EdgeInfo:
        info.signature = sign(self.key, Domain.ASSIGN_EDGE, self.chain_id, assign_edge_fields(info))
        return info

    def sign_open_round(self, req: pb.OpenRoundRequest) -> pb.OpenRoundRequest:
        req.issued_ms = self.issued_ms()
        req.signature = sign(self.key, Domain.OPEN_ROUND, self.chain_id, open_round_fields(req))
        return req

    def sign_evaluate(self, req: pb.EvaluateRequest) -> pb.EvaluateRequest:
        req.issued_ms = self.issued_ms()
        req.signature = sign(self.key, Domain.EVALUATE, self.chain_id, evaluate_fields(req))
        return req
