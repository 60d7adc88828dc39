"""Inclusion proofs of one EN's update in a round, checkable offline by anyone.

A ``RoundProof`` carries the round block, the EN's leaf index and RFC 6962 audit path, and
the blocks that say whose keys these are: genesis (the chain id and the first entry key),
every ``authority_handover`` before the round (the entry keys that wrote since), and the
EN's latest ``node_joined`` before the round (its key and SN). ``check_proof`` recomputes
the EN's leaf (node id, update digest, samples) and its path to the block's Merkle root,
every block's hash over its canonical header and the entry signature on it (with the key
the blocks before it hand on), and the EN's own signature over its update header with the
key the chain admitted. It raises ``ProofInvalid`` with a one-line reason.

What a proof does not show by itself: that no block between the EN's admission and the
round revoked it, and that the round block is on the chain a given head names (check the
chain with ``fedchain verify`` and a signed head for that).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fedchain.shared.chain import merkle
from fedchain.shared.chain.blocks import Block
from fedchain.shared.chain.errors import ChainError
from fedchain.shared.chain.evidence import signature_holds, update_statement
from fedchain.shared.chain.payloads import (
    AuthorityHandoverPayload,
    GenesisPayload,
    NodeJoinedPayload,
    Participant,
    RoundPayload,
    handover_statement,
)
from fedchain.shared.crypto import node_id_for, verify_signature
from fedchain.shared.digests import is_hex64

FORMAT = "fedchain/round-proof/v1"
SUMMARY = (
    "round", "height", "block_hash", "parent_sn", "update_digest", "samples", "merkle_root",
)
"""Fields of a proof file that repeat what its blocks say, for people to read."""


class ProofInvalid(ValueError):
    """A round proof that does not hold (the message says what failed)."""


class ProofUnavailable(LookupError):
    """No proof can be made: no such round, or the node did not take part in it."""


@dataclass(frozen=True)
class RoundProof:
    """Proof that ``node_id`` signed its update and that it counted in round block ``block``."""

    node_id: str
    index: int
    tree_size: int
    path: list[bytes]
    block: Block
    genesis: Block
    admission: Block
    authority: list[Block]

    @property
    def round(self) -> int:
        p = self.block.payload
        return p.round if isinstance(p, RoundPayload) else -1

    def participant(self) -> Participant:
        """The EN's row in the round block (ProofInvalid if the index does not name it)."""
        p = self.block.payload
        if not isinstance(p, RoundPayload):
            raise ProofInvalid(f"block {self.block.height} is a {self.block.kind} block, not a round")
        if not 0 <= self.index < len(p.participants):
            raise ProofInvalid(
                f"leaf index {self.index} is outside the round's {len(p.participants)} participants"
            )
        row = p.participants[self.index]
        if row.node_id != self.node_id:
            raise ProofInvalid(f"leaf {self.index} of the round is {row.node_id}, not {self.node_id}")
        return row

    def to_json(self) -> dict[str, Any]:
        """The proof file's JSON (``fedchain verify --proof FILE`` reads it)."""
        row = self.participant()
        return {
            "format": FORMAT,
            "round": self.round,
            "height": self.block.height,
            "block_hash": self.block.hash.hex(),
            "node_id": self.node_id,
            "parent_sn": row.parent_sn,
            "update_digest": row.update_digest,
            "samples": row.samples,
            "index": self.index,
            "tree_size": self.tree_size,
            "path": [h.hex() for h in self.path],
            "merkle_root": self.block.payload.merkle_root,  # type: ignore[union-attr]
            "block": self.block.to_json(),
            "genesis": self.genesis.to_json(),
            "admission": self.admission.to_json(),
            "authority": [b.to_json() for b in self.authority],
        }

    @classmethod
    def from_json(cls, data: Any) -> RoundProof:
        """Parse a proof file; ProofInvalid with a one-line reason on any problem."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ProofInvalid(f"not a round proof (expected \"format\": \"{FORMAT}\")")
        try:
            path = [_hash(h) for h in data["path"]]
            index, size = data["index"], data["tree_size"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, size)):
                raise ProofInvalid("index and tree_size must be integers")
            proof = cls(
                node_id=str(data["node_id"]),
                index=index,
                tree_size=size,
                path=path,
                block=Block.from_json(data["block"]),
                genesis=Block.from_json(data["genesis"]),
                admission=Block.from_json(data["admission"]),
                authority=[Block.from_json(b) for b in data["authority"]],
            )
        except KeyError as exc:
            raise ProofInvalid(f"the proof is missing {exc.args[0]}") from None
        except (TypeError, ChainError) as exc:
            raise ProofInvalid(f"the proof does not parse: {exc}") from None
        summary = proof.to_json()
        for name in SUMMARY:  # what a reader sees must be what the blocks say
            if data.get(name) != summary[name]:
                raise ProofInvalid(
                    f"the proof's {name} {str(data.get(name))[:40]!r} is not what its round "
                    f"block says ({str(summary[name])[:40]!r})"
                )
        return proof


def _hash(value: Any) -> bytes:
    if not is_hex64(value):
        raise ProofInvalid("every audit path entry must be 64 hex characters")
    return bytes.fromhex(value)


def make_proof(blocks: Iterable[Block], round_no: int, node_id: str) -> RoundProof:
    """The proof for ``node_id`` in round ``round_no`` from the chain's blocks (in order).

    Raises ProofUnavailable when the chain has no such round or the node is not in it.
    """
    genesis: Block | None = None
    authority: list[Block] = []
    admission: Block | None = None
    for block in blocks:
        p = block.payload
        if isinstance(p, GenesisPayload):
            genesis = block
        elif isinstance(p, AuthorityHandoverPayload):
            authority.append(block)
        elif isinstance(p, NodeJoinedPayload) and p.node_id == node_id:
            admission = block
        elif isinstance(p, RoundPayload) and p.round == round_no:
            ids = p.participant_ids
            if node_id not in ids:
                raise ProofUnavailable(f"{node_id} is not a participant of round {round_no}")
            if genesis is None or admission is None:
                raise ProofUnavailable(f"the chain does not hold {node_id}'s admission")
            index = ids.index(node_id)
            leaves = [row.leaf() for row in p.participants]
            return RoundProof(
                node_id, index, len(leaves), merkle.inclusion_proof(leaves, index), block,
                genesis, admission, authority,
            )
    raise ProofUnavailable(f"no round {round_no} on the chain")


def _check_block(block: Block, key: bytes, what: str) -> None:
    if block.computed_hash() != block.hash:
        raise ProofInvalid(f"{what} (height {block.height}): hash does not match its contents")
    if not verify_signature(key, block.signature, block.hash):
        raise ProofInvalid(f"{what} (height {block.height}): not signed by the entry key")


def check_proof(proof: RoundProof, genesis_hash: bytes | None = None) -> Participant:
    """Check ``proof`` offline; return the EN's row. ProofInvalid names the first failure.

    ``genesis_hash`` (e.g. ``--genesis``) pins the federation; without it the proof's own
    genesis is taken as the chain.
    """
    g = proof.genesis.payload
    if not isinstance(g, GenesisPayload) or proof.genesis.height != 0:
        raise ProofInvalid("the proof's genesis is not a genesis block at height 0")
    if genesis_hash is not None and proof.genesis.hash != genesis_hash:
        raise ProofInvalid(
            f"the proof's genesis {proof.genesis.hash.hex()[:16]}… is not the genesis "
            f"{genesis_hash.hex()[:16]}… it must have"
        )
    key = bytes.fromhex(g.entry_public_key)
    _check_block(proof.genesis, key, "genesis")
    later = sorted([*proof.authority, proof.admission], key=lambda b: b.height)
    if proof.block.height <= later[-1].height:
        raise ProofInvalid("the EN's admission and the handovers must come before the round block")
    for block in later:
        _check_block(block, key, f"{block.kind} block")
        hp = block.payload
        if isinstance(hp, AuthorityHandoverPayload):
            new_key = bytes.fromhex(hp.new_public_key)
            accepted = handover_statement(block.prev_hash, hp.new_public_key)
            if not verify_signature(new_key, bytes.fromhex(hp.acceptance), accepted):
                raise ProofInvalid(f"handover at height {block.height} is not accepted by its key")
            key = new_key
        elif block is not proof.admission:
            raise ProofInvalid(f"block {block.height} in the proof's authority list is no handover")
    _check_block(proof.block, key, "round block")
    row = proof.participant()
    a = proof.admission.payload
    if not isinstance(a, NodeJoinedPayload) or a.node_id != proof.node_id or a.role != "EN":
        raise ProofInvalid(f"the proof's admission block does not admit {proof.node_id} as an EN")
    en_key = bytes.fromhex(a.public_key)
    if node_id_for(en_key) != proof.node_id:
        raise ProofInvalid(f"the admitted key is not {proof.node_id}'s")
    if a.parent_sn != row.parent_sn:
        raise ProofInvalid(
            f"the round lists {proof.node_id} under SN {row.parent_sn}, the chain admitted it "
            f"under {a.parent_sn}"
        )
    p = proof.block.payload
    assert isinstance(p, RoundPayload)
    if proof.tree_size != len(p.participants):
        raise ProofInvalid(
            f"tree size {proof.tree_size} is not the round's {len(p.participants)} participants"
        )
    if not merkle.verify_inclusion(
        row.leaf(), proof.index, proof.tree_size, proof.path, bytes.fromhex(p.merkle_root)
    ):
        raise ProofInvalid("the audit path does not lead from the EN's leaf to the block's root")
    statement = update_statement(proof.genesis.hash, p.round, p.model_version - 1, row)
    if not signature_holds(en_key, row.signature, statement):
        raise ProofInvalid(f"the update row is not signed by {proof.node_id}'s admitted key")
    return row
