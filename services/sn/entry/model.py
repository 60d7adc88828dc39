"""The global model the entry serves: current version, its bytes and tensors, recent versions.

``GlobalModel`` answers ``FetchModel`` for the SNs (the entry's own SN part reads through
it too) and is what a round starts from. ``bootstrap`` writes genesis on an empty chain or
loads the model at the chain tip.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch

from fedchain.services.sn.chain import TREE_HEAD_FILE, ModelRef
from fedchain.services.sn.entry.ports import ChainWriter
from fedchain.services.sn.model_ops import initial_state
from fedchain.shared.chain.errors import ChainError
from fedchain.shared.chain.payloads import GenesisPayload
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.digests import digest_of
from fedchain.shared.net.federation import fl_config
from fedchain.shared.tensors import decode, encode

log = logging.getLogger("fedchain.entry")

RECENT_MODELS = 3
"""Model versions kept in memory besides the current one (a new model is served before its block)."""


class GlobalModel:
    """The entry's current global model (thread-safe) and a few recent ones by digest."""

    def __init__(self, chain: ChainWriter, max_bytes: int) -> None:
        self.chain = chain
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.ref = ModelRef(0, "", 0, "")
        self.data = b""
        self.state: dict[str, torch.Tensor] = {}
        self._recent: dict[str, bytes] = {}

    # ---- start-up ----
    def bootstrap(self, settings: Settings, key: NodeKey) -> None:
        """Refuse a chain that does not extend the entry's last signed tree head; write genesis
        on an empty chain (refuse a chain of another entry), then load the tip's model."""
        try:
            self.chain.check_head()
        except ChainError as exc:
            raise ConfigError(
                f"refusing the ledger: {exc} (this entry's last signed head is in "
                f"{Path(settings.state_dir) / TREE_HEAD_FILE})"
            ) from None
        genesis = self.chain.genesis()
        if genesis is None:
            data = encode(initial_state(settings))
            d = self.chain.ledger.put_blob(data)
            payload = GenesisPayload(
                config=fl_config(settings),
                model_digest=d,
                entry_node_id=key.node_id,
                entry_public_key=key.public_hex,
            )
            self.chain.append("genesis", payload)
            log.info("genesis written: model %s", d[:16])
        elif genesis.payload.entry_public_key != key.public_hex:
            raise ConfigError(
                "the chain was started by another entry node (its genesis names a different key); "
                "use that node's --state-dir or a fresh ledger"
            )
        ref = self.chain.latest_model()
        self.adopt(ref, self.chain.ledger.get_blob(ref.digest))

    # ---- changes ----
    def adopt(self, ref: ModelRef, data: bytes, state: dict[str, torch.Tensor] | None = None) -> None:
        """Make ``ref`` (with its bytes) the current model."""
        tensors = state if state is not None else decode(data, max_bytes=self.max_bytes)
        with self._lock:
            self.ref, self.data, self.state = ref, data, tensors
            self._keep(data)

    def stage(self, data: bytes) -> str:
        """Serve ``data`` by digest before it becomes current (a new round's model)."""
        with self._lock:
            return self._keep(data)

    def _keep(self, data: bytes) -> str:
        d = digest_of(data)  # hashed once per model; FetchModel then streams it without re-hashing
        self._recent[d] = data
        while len(self._recent) > RECENT_MODELS:
            self._recent.pop(next(iter(self._recent)))
        return d

    # ---- queries ----
    def current(self) -> tuple[ModelRef, bytes, dict[str, torch.Tensor]]:
        with self._lock:
            return self.ref, self.data, self.state

    def model_bytes(self, version: int, model_digest: str) -> bytes:
        """A global model by digest (or by version when the digest is empty).

        Memory first, then the blob store. Raises KeyError for an unknown version and the
        ledger's errors when the blob store cannot answer.
        """
        if not model_digest:
            found = self.chain.model_digest(version)
            if found is None:
                raise KeyError(f"unknown model version {version}")
            model_digest = found
        with self._lock:
            if model_digest == self.ref.digest and self.data:
                return self.data
            kept = self._recent.get(model_digest)
        if kept is not None:
            return kept
        return self.chain.ledger.get_blob(model_digest)
