"""The chain a node belongs to: learnt from the entry at join, kept in the state dir.

``JoinReply`` carries the chain id (the genesis block hash) and the entry's public key. A
node keeps both in ``entry.json`` in its state dir; every later signed message from the
entry (``OpenRound``, ``AssignEdge``, ``Evaluate``) is checked against that key and that
chain id, and a later join reply naming another entry key or chain is refused (the node
must be given a fresh state dir to move to another federation).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fedchain.shared.crypto import node_id_for

TRUST_FILE = "entry.json"


class TrustRefused(ValueError):
    """A join reply or message from an entry other than the one this node joined."""


@dataclass(frozen=True)
class EntryTrust:
    """The chain id and the entry key a node checks the entry's messages against."""

    chain_id: bytes
    entry_public_key: bytes

    @property
    def entry_node_id(self) -> str:
        return node_id_for(self.entry_public_key)

    def __post_init__(self) -> None:
        if len(self.chain_id) != 32:
            raise TrustRefused("the entry sent no chain id (a 32-byte genesis hash)")
        if len(self.entry_public_key) != 32:
            raise TrustRefused("the entry sent no public key (32 bytes, Ed25519)")


class TrustStore:
    """``entry.json`` in a state dir (``path=None``: memory only, for tests)."""

    def __init__(self, state_dir: Path | None) -> None:
        self._path = None if state_dir is None else Path(state_dir) / TRUST_FILE
        self._trust: EntryTrust | None = self._load()

    def _load(self) -> EntryTrust | None:
        if self._path is None or not self._path.is_file():
            return None
        row = json.loads(self._path.read_text(encoding="utf-8"))
        return EntryTrust(bytes.fromhex(row["chain_id"]), bytes.fromhex(row["entry_public_key"]))

    @property
    def trust(self) -> EntryTrust | None:
        return self._trust

    def adopt(self, chain_id: bytes, entry_public_key: bytes, entry_node_id: str = "") -> EntryTrust:
        """Keep what a join reply says; refuse one that names another chain or entry key."""
        new = EntryTrust(bytes(chain_id), bytes(entry_public_key))
        if entry_node_id and entry_node_id != new.entry_node_id:
            raise TrustRefused(
                f"the join reply names entry {entry_node_id[:40]!r} but carries {new.entry_node_id}'s key"
            )
        old = self._trust
        if old is not None and old != new:
            what = "key" if old.chain_id == new.chain_id else "chain"
            raise TrustRefused(
                f"the entry answered with another {what} than the one this node joined "
                f"(entry {old.entry_node_id}, chain {old.chain_id.hex()[:16]}); "
                "use a fresh --state-dir to join another federation"
            )
        if old is None:
            self._trust = new
            self._save(new)
        return new

    def _save(self, trust: EntryTrust) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {"chain_id": trust.chain_id.hex(), "entry_public_key": trust.entry_public_key.hex()}
            ),
            encoding="utf-8",
        )
        os.replace(tmp, self._path)
