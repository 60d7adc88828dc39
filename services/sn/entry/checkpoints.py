"""Checkpoints: the current global model written to a file, recorded in a checkpoint block."""

from __future__ import annotations

import os
from pathlib import Path

from fedchain.services.sn.entry.model import GlobalModel
from fedchain.services.sn.entry.ports import ChainWriter
from fedchain.shared.chain.payloads import CheckpointPayload
from fedchain.shared.control_api import SaveResult, model_file_name


class Checkpoints:
    """Saves model files (default ``<state_dir>/models/model-v<version>.safetensors``)."""

    def __init__(self, chain: ChainWriter, model: GlobalModel, state_dir: Path) -> None:
        self.chain = chain
        self.model = model
        self.state_dir = state_dir

    def save(self, name: str | None) -> SaveResult:
        """Write the current model (atomically) under ``<state_dir>/models/`` and append a
        checkpoint block.

        ``name`` is a plain file name (``model_file_name``), never a path: nothing outside
        the models folder (the node key, the ledger) can be overwritten through it. Raises
        ValueError for a name that is not one, OSError when the file cannot be written and
        the ledger's errors when the block cannot be appended.
        """
        ref, data, _ = self.model.current()
        folder = self.state_dir / "models"
        target = folder / model_file_name(name or f"model-v{ref.version}")
        if target.parent != folder:  # model_file_name allows no separator; belt and braces
            raise ValueError(f"{name!r} is not a plain file name")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        payload = CheckpointPayload(
            model_version=ref.version, model_digest=ref.digest, note=f"saved to {target}"
        )
        block = self.chain.append("checkpoint", payload)
        return SaveResult(
            version=ref.version, digest=ref.digest, height=int(block.height),
            path=str(target.resolve()),
        )
