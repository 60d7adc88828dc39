"""Worker processes for the concurrency and crash tests (run as a script, not collected).

python ledger_workers.py race DB_URL BLOB_DIR KEY_PEM NAME COUNT GO_FILE
python ledger_workers.py replay DB_URL BLOB_DIR BLOCKS_JSON GO_FILE
python ledger_workers.py loop DB_URL BLOB_DIR KEY_PEM MAX_SECONDS
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save

from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import Block, build_block
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.errors import HeightConflict, OutOfSequence


def wait_for(go: Path, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("go file never appeared")
        time.sleep(0.01)


def race(ledger: Ledger, key: NodeKey, name: str, count: int, go: Path) -> None:
    """Append ``count`` checkpoint blocks after whatever the tip is, retrying lost races."""
    wait_for(go)
    digest = ledger.get(0).payload.model_digest  # type: ignore[union-attr]
    deadline = time.monotonic() + 120
    conflicts = 0
    for i in range(count):
        while True:
            if time.monotonic() > deadline:
                sys.exit("gave up: too slow")
            tip = ledger.tip()
            block = build_block(
                "checkpoint",
                {"model_version": i, "model_digest": digest, "note": f"{name}-{i}"},
                tip,
                key,
            )
            try:
                ledger.append(block)
                break
            except (HeightConflict, OutOfSequence):
                conflicts += 1
    print(json.dumps({"name": name, "conflicts": conflicts}), flush=True)


def replay(ledger: Ledger, blocks: list[Block], go: Path) -> None:
    """Append the same pre-built blocks as the other workers (idempotent retries)."""
    wait_for(go)
    for block in blocks:
        assert ledger.append(block) == block
    print("ok", flush=True)


def loop(ledger: Ledger, key: NodeKey, max_seconds: float) -> None:
    """Put a fresh blob and append a block naming it, forever (until killed); print each height."""
    deadline = time.monotonic() + max_seconds
    i = 0
    while time.monotonic() < deadline:
        i += 1
        blob = save({"w": np.full(4096, i, dtype=np.float32)})
        digest = ledger.put_blob(blob)
        block = build_block(
            "checkpoint",
            {"model_version": i, "model_digest": digest, "note": "loop"},
            ledger.tip(),
            key,
        )
        stored = ledger.append(block)
        print(stored.height, flush=True)


def main() -> None:
    mode, db_url, blob_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    ledger = Ledger(db_url, blob_dir)
    try:
        if mode == "race":
            race(
                ledger,
                NodeKey.load_or_create(Path(sys.argv[4])),
                sys.argv[5],
                int(sys.argv[6]),
                Path(sys.argv[7]),
            )
        elif mode == "replay":
            blocks = [Block.from_json(b) for b in json.loads(Path(sys.argv[4]).read_text())]
            replay(ledger, blocks, Path(sys.argv[5]))
        elif mode == "loop":
            loop(ledger, NodeKey.load_or_create(Path(sys.argv[4])), float(sys.argv[5]))
    finally:
        ledger.close()


if __name__ == "__main__":
    main()
