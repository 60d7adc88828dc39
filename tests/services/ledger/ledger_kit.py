"""Helpers for the ledger tests: model blobs and a realistic chain of every block kind."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import sqlalchemy as sa
from safetensors.numpy import save

from fedchain.shared.chain.blocks import Block, BlockKind, build_block
from fedchain.shared.chain.treehead import TreeHead, head_for
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.client import LedgerClient
from fedchain.shared.ledger.contract import LedgerContract
from tests.shared.chain.evidence_kit import signed_round


def model_blob(seed: int, size: int = 64) -> bytes:
    """A small safetensors file of float32 weights (distinct per seed)."""
    rng = np.random.default_rng(seed)
    return save({"base.weight": rng.standard_normal(size).astype(np.float32)})


def update_digest(seed: int) -> str:
    return hashlib.sha256(f"update-{seed}".encode()).hexdigest()


class Federation:
    """An entry key, one SN and two ENs, and the chain they produce on a ledger."""

    def __init__(self, ledger: LedgerContract) -> None:
        self.ledger = ledger
        self.entry = NodeKey.generate()
        if isinstance(ledger, LedgerClient):
            ledger.signer = self.entry  # only the entry may upload blobs
        self.sn = NodeKey.generate()
        self.ens = [NodeKey.generate(), NodeKey.generate()]
        self.blocks: list[Block] = []
        self.ts = 1_700_000_000_000

    @property
    def tip(self) -> Block | None:
        return self.blocks[-1] if self.blocks else None

    def add(self, kind: BlockKind | str, payload: object, key: NodeKey | None = None) -> Block:
        self.ts += 1000
        block = build_block(kind, payload, self.tip, key or self.entry, self.ts)  # type: ignore[arg-type]
        stored = self.ledger.append(block)
        self.blocks.append(stored)
        return stored

    def genesis(self) -> Block:
        digest = self.ledger.put_blob(model_blob(0))
        return self.add(
            "genesis",
            {
                "config": {"algorithm": "fedper", "dataset": "mnist"},
                "model_digest": digest,
                "entry_node_id": self.entry.node_id,
                "entry_public_key": self.entry.public_hex,
            },
        )

    def join(self, key: NodeKey, role: str, parent: str = "") -> Block:
        return self.add(
            "node_joined",
            {
                "node_id": key.node_id,
                "role": role,
                "public_key": key.public_hex,
                "parent_sn": parent,
                "address": "127.0.0.1:7000",
            },
        )

    def round(self, number: int, participants: list[NodeKey]) -> Block:
        digest = self.ledger.put_blob(model_blob(number))
        payload = signed_round(
            self.blocks[0].hash, number, digest, {self.sn: participants},
            rejected=[("n-late", "timed out")], metrics={"accuracy": 0.5 + number / 100},
        )
        return self.add("round", payload)

    def checkpoint(self, version: int) -> Block:
        digest = self.ledger.put_blob(model_blob(version))
        return self.add(
            "checkpoint", {"model_version": version, "model_digest": digest, "note": "saved"}
        )

    def standard_chain(self) -> list[Block]:
        """Ten blocks: genesis, 3 joins, 2 rounds, checkpoint, a leave, a round, a checkpoint."""
        self.genesis()  # 0
        self.join(self.sn, "SN")  # 1
        self.join(self.ens[0], "EN", self.sn.node_id)  # 2
        self.join(self.ens[1], "EN", self.sn.node_id)  # 3
        self.round(1, self.ens)  # 4
        self.round(2, self.ens)  # 5
        self.checkpoint(2)  # 6
        self.add("node_left", {"node_id": self.ens[1].node_id, "reason": "heartbeat timeout"})  # 7
        self.round(3, self.ens[:1])  # 8
        self.checkpoint(3)  # 9
        return self.blocks

    def sign_head(self) -> TreeHead:
        """The entry's signed tree head over the chain so far, given to the ledger."""
        self.ts += 1
        hashes = [b.hash for b in self.blocks]
        head = head_for(hashes[0], hashes, self.ts).signed(self.entry)
        return self.ledger.put_tree_head(head)


TABLES = ("blocks", "ledger_meta", "tree_heads")


def dump(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of the ledger's tables (a database backup)."""
    with engine.connect() as conn:
        return {
            t: [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {t}")).mappings()]
            for t in TABLES
        }


def restore(engine: sa.Engine, backup: dict[str, list[dict[str, Any]]]) -> None:
    """Put a backup back in place of the tables' rows (rolling the database back)."""
    with engine.begin() as conn:
        for t in TABLES:
            conn.execute(sa.text(f"DELETE FROM {t}"))
            for row in backup[t]:
                cols = ", ".join(row)
                conn.execute(
                    sa.text(f"INSERT INTO {t} ({cols}) VALUES ({', '.join(':' + c for c in row)})"),
                    row,
                )


def truncate(engine: sa.Engine, keep: int, *, heads_too: bool = True) -> None:
    """Delete every block from height ``keep`` on and rewrite the tip row to match, as an
    attacker with write access to the database would (also dropping the larger heads)."""
    with engine.begin() as conn:
        tip = conn.execute(
            sa.text("SELECT height, hash FROM blocks WHERE height = :h"), {"h": keep - 1}
        ).one()
        conn.execute(sa.text("DELETE FROM blocks WHERE height >= :h"), {"h": keep})
        conn.execute(
            sa.text("UPDATE ledger_meta SET value = :v WHERE name = 'tip'"),
            {"v": f"{tip.height} {bytes(tip.hash).hex()}"},
        )
        if heads_too:
            conn.execute(sa.text("DELETE FROM tree_heads WHERE size > :n"), {"n": keep})
