"""What ledger queries return besides blocks: a verification report and an inclusion proof."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedchain.shared.chain import merkle
from fedchain.shared.chain.payloads import round_leaf


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of verifying the whole chain.

    ``ok``: every check held. ``checked``: blocks that passed. ``height``: the first bad
    height when not ok, else the tip height (None for an empty chain). ``reason``: why.
    """

    ok: bool
    checked: int
    height: int | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        """``{"ok", "checked", "height", "reason"}``."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "height": self.height,
            "reason": self.reason,
        }

    def summary(self) -> str:
        """One line for people."""
        if self.ok:
            if self.height is None:
                return "ok: the chain is empty"
            return f"ok: {self.checked} blocks verified (heights 0..{self.height})"
        where = f"height {self.height}" if self.height is not None else "the ledger"
        return f"FAILED at {where}: {self.reason} ({self.checked} blocks before it verified)"


@dataclass(frozen=True)
class InclusionProof:
    """RFC 6962 proof that participant ``node_id``'s leaf (node id, ``update_digest``,
    ``samples``) is leaf ``index`` of round block ``height``."""

    height: int
    index: int
    tree_size: int
    update_digest: str
    path: list[bytes]
    root: bytes
    node_id: str = ""
    samples: int = 0

    def verify(self) -> bool:
        """True when the path leads from the recomputed leaf to ``root``."""
        leaf = round_leaf(self.node_id, self.update_digest, self.samples)
        return merkle.verify_inclusion(leaf, self.index, self.tree_size, self.path, self.root)
