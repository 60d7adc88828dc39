"""The chain's rules: who may produce blocks and what makes a block valid after a tip.

``ChainState`` is what the chain says at its tip (height, hash, admitted keys).
``check_block`` raises a ``ChainError`` naming the first rule a block breaks; the
ledger runs it before every append and verification runs it over every stored row.

Who may write: genesis names the entry key, and that key alone produces every later
block. node_joined admits a member key (it may then sign messages the nodes exchange,
never blocks), node_left revokes it. The entry hands its authority to another key only
by an ``authority_handover`` block signed by both: the outgoing key signs the block, the
incoming key signs its acceptance of that exact position on the chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fedchain.shared.chain import evidence
from fedchain.shared.chain.blocks import ZERO_HASH, Block
from fedchain.shared.chain.errors import (
    BlobMissing,
    BlockInvalid,
    NotNextBlock,
    ProducerNotAdmitted,
)
from fedchain.shared.chain.payloads import (
    AuthorityHandoverPayload,
    BlockKind,
    CheckpointPayload,
    GenesisPayload,
    NodeJoinedPayload,
    NodeLeftPayload,
    RoundPayload,
    handover_statement,
)
from fedchain.shared.crypto import node_id_for, verify_signature

BlobProblem = Callable[[str], "str | None"]
"""Given a blob digest, None when the blob is stored intact, else what is wrong ("missing")."""


@dataclass(frozen=True)
class Member:
    """An admitted node: its key and what its node_joined (or genesis) block said."""

    node_id: str
    public_key: bytes
    role: str
    address: str
    admitted_at: int
    parent_sn: str = ""
    """The SN an EN was admitted under (its latest node_joined block); "" for an SN."""


@dataclass
class ChainState:
    """The chain as of its tip: tip height/hash, admitted and revoked nodes, last round."""

    height: int = -1
    tip_hash: bytes = ZERO_HASH
    members: dict[str, Member] = field(default_factory=dict)
    revoked: dict[str, int] = field(default_factory=dict)
    last_round: int = 0
    """Round number of the newest round block (0 before the first round)."""
    authority: str = ""
    """Node id of the key that may write the next block (the entry; "" before genesis)."""
    authority_key: bytes = b""
    """That key's Ed25519 public key."""
    chain_id: bytes = b""
    """The genesis block's hash: the chain id every node statement is signed under."""

    @property
    def next_height(self) -> int:
        """Height the next block must have."""
        return self.height + 1

    def copy(self) -> ChainState:
        """An independent copy (members are immutable)."""
        return ChainState(
            self.height,
            self.tip_hash,
            dict(self.members),
            dict(self.revoked),
            self.last_round,
            self.authority,
            self.authority_key,
            self.chain_id,
        )

    def apply(self, block: Block) -> None:
        """Advance to ``block`` (which ``check_block`` accepted)."""
        p = block.payload
        if isinstance(p, GenesisPayload):
            self.members[p.entry_node_id] = Member(
                p.entry_node_id, bytes.fromhex(p.entry_public_key), "SN", "", block.height
            )
            self.authority = p.entry_node_id
            self.authority_key = bytes.fromhex(p.entry_public_key)
            self.chain_id = block.hash
        elif isinstance(p, AuthorityHandoverPayload):
            self.members[p.new_node_id] = Member(
                p.new_node_id, bytes.fromhex(p.new_public_key), "SN", "", block.height
            )
            self.authority = p.new_node_id
            self.authority_key = bytes.fromhex(p.new_public_key)
        elif isinstance(p, NodeJoinedPayload):
            self.members[p.node_id] = Member(
                p.node_id, bytes.fromhex(p.public_key), p.role, p.address, block.height,
                p.parent_sn,
            )
            self.revoked.pop(p.node_id, None)
        elif isinstance(p, NodeLeftPayload):
            self.members.pop(p.node_id, None)
            self.revoked[p.node_id] = block.height
        elif isinstance(p, RoundPayload):
            self.last_round = p.round
        self.height = block.height
        self.tip_hash = block.hash

    @classmethod
    def replay(cls, blocks: Iterable[Block], blob_problem: BlobProblem | None = None) -> ChainState:
        """Check and apply ``blocks`` from genesis; raises ChainError at the first bad one."""
        state = cls()
        for block in blocks:
            check_block(block, state, blob_problem)
            state.apply(block)
        return state


def model_digests(block: Block) -> list[str]:
    """Blob digests a block needs stored (its model weights)."""
    p = block.payload
    if isinstance(p, (GenesisPayload, RoundPayload, CheckpointPayload)):
        return [p.model_digest]
    return []


def _producer_key(block: Block, state: ChainState) -> bytes:
    p = block.payload
    if isinstance(p, GenesisPayload):
        key = bytes.fromhex(p.entry_public_key)
        if p.entry_node_id != node_id_for(key):
            raise BlockInvalid(
                f"genesis entry_node_id {p.entry_node_id} is not the id of entry_public_key "
                f"({node_id_for(key)})"
            )
        if block.producer != p.entry_node_id:
            raise ProducerNotAdmitted(
                f"genesis must be produced by the entry node {p.entry_node_id}, not {block.producer}"
            )
        return key
    if block.producer == state.authority:
        return state.authority_key
    who = f"the entry {state.authority}" if state.authority else "the entry named in genesis"
    if block.producer in state.revoked:
        raise ProducerNotAdmitted(
            f"producer {block.producer} was revoked at height {state.revoked[block.producer]}; "
            f"only {who} may write blocks"
        )
    member = state.members.get(block.producer)
    if member is None:
        raise ProducerNotAdmitted(
            f"producer {block.producer} is not an admitted node; only {who} may write blocks"
        )
    raise ProducerNotAdmitted(
        f"producer {block.producer} is an admitted {member.role}, but a {block.kind} block "
        f"may be written only by {who}"
    )


def _check_payload(block: Block, state: ChainState) -> None:
    p = block.payload
    if isinstance(p, NodeJoinedPayload):
        expected = node_id_for(bytes.fromhex(p.public_key))
        if p.node_id != expected:
            raise BlockInvalid(
                f"node_joined node_id {p.node_id} is not the id of its key ({expected})"
            )
        if p.parent_sn:
            parent = state.members.get(p.parent_sn)
            if parent is None or parent.role != "SN":
                raise BlockInvalid(f"node_joined parent_sn {p.parent_sn} is not an admitted SN")
        if p.node_id == state.authority:
            raise BlockInvalid("node_joined cannot admit the entry's own key as a member")
        current = state.members.get(p.node_id)
        if current is not None and (current.role != p.role or current.parent_sn == p.parent_sn):
            # joined while joined: only a move of an EN to another SN is recorded again
            raise BlockInvalid(
                f"node_joined names {p.node_id}, already a member since height "
                f"{current.admitted_at}; it joins again only after node_left "
                "(or, for an EN, to move to another SN)"
            )
    elif isinstance(p, NodeLeftPayload):
        if p.node_id in state.revoked:
            raise BlockInvalid(
                f"node_left names {p.node_id}, which left already at height "
                f"{state.revoked[p.node_id]}"
            )
        if p.node_id not in state.members:
            raise BlockInvalid(f"node_left names {p.node_id}, which is not an admitted node")
        if p.node_id == state.authority:
            raise BlockInvalid("node_left cannot revoke the entry; hand its authority over first")
    elif isinstance(p, AuthorityHandoverPayload):
        new_key = bytes.fromhex(p.new_public_key)
        if p.new_node_id != node_id_for(new_key):
            raise BlockInvalid(
                f"authority_handover new_node_id {p.new_node_id} is not the id of its key "
                f"({node_id_for(new_key)})"
            )
        if p.new_node_id == state.authority:
            raise BlockInvalid("authority_handover names the key that already holds authority")
        if p.new_node_id in state.revoked:
            raise BlockInvalid(f"authority_handover names {p.new_node_id}, a revoked key")
        other = state.members.get(p.new_node_id)
        if other is not None:
            raise BlockInvalid(
                f"authority_handover names {p.new_node_id}, an admitted {other.role}: "
                "the entry's key must be a key of its own"
            )
        statement = handover_statement(block.prev_hash, p.new_public_key)
        if not verify_signature(new_key, bytes.fromhex(p.acceptance), statement):
            raise BlockInvalid(
                "authority_handover acceptance is not the new key's signature over this handover"
            )
    elif isinstance(p, RoundPayload):
        if p.round != state.last_round + 1:
            # a round recorded twice (a retried append whose first reply was lost) or skipped
            raise BlockInvalid(
                f"round block records round {p.round}, but the previous round block recorded "
                f"round {state.last_round} (the next round is {state.last_round + 1})"
            )
        check_round_evidence(p, state)


def check_round_evidence(p: RoundPayload, state: ChainState) -> None:
    """Every participant is an admitted EN of the SN it names and signed its row; every
    manifest is an admitted SN's signature over the rows it used (BlockInvalid otherwise)."""
    version = p.model_version - 1
    for part in p.participants:
        member = state.members.get(part.node_id)
        if member is None or member.role != "EN":
            why = f"revoked at height {state.revoked[part.node_id]}" if (
                part.node_id in state.revoked
            ) else "not an admitted edge node"
            raise BlockInvalid(f"round participant {part.node_id} is {why}")
        if member.parent_sn != part.parent_sn:
            raise BlockInvalid(
                f"round participant {part.node_id} names SN {part.parent_sn}, but the chain "
                f"admitted it under {member.parent_sn}"
            )
        message = evidence.update_statement(state.chain_id, p.round, version, part)
        if not evidence.signature_holds(member.public_key, part.signature, message):
            raise BlockInvalid(
                f"round participant {part.node_id}: the signature is not its own over its "
                f"update header (round {p.round}, digest {part.update_digest[:16]}…, "
                f"{part.samples} samples)"
            )
    for m in p.manifests:
        sn = state.members.get(m.sn_node_id)
        if sn is None or sn.role != "SN":
            raise BlockInvalid(f"round manifest of {m.sn_node_id}: not an admitted super node")
        known = {q.node_id for q in (*p.participants, *m.set_aside)}
        unknown = [n for n in m.used if n not in known]
        if unknown:
            raise BlockInvalid(
                f"round manifest of {m.sn_node_id} uses {unknown[0]}, which is neither a "
                "participant nor rejected"
            )
        refused = {d.node_id for d in p.decisions if d.action == "rejected"}
        for q in m.set_aside:
            if q.node_id not in refused:
                raise BlockInvalid(
                    f"round manifest of {m.sn_node_id} uses {q.node_id}, which is neither a "
                    "participant nor rejected"
                )
            message = evidence.update_statement(state.chain_id, p.round, version, q)
            member = state.members.get(q.node_id)
            if member is None or not evidence.signature_holds(
                member.public_key, q.signature, message
            ):
                raise BlockInvalid(
                    f"round manifest of {m.sn_node_id}: the set-aside update of {q.node_id} "
                    "is not signed by that edge node"
                )
        signed = evidence.manifest_statement(state.chain_id, p, m)
        if hashlib.sha256(signed).hexdigest() != m.manifest_digest:
            raise BlockInvalid(
                f"round manifest of {m.sn_node_id}: manifest_digest is not the digest of the "
                "manifest rebuilt from the block"
            )
        if not evidence.signature_holds(sn.public_key, m.signature, signed):
            raise BlockInvalid(
                f"round manifest of {m.sn_node_id}: the signature is not the SN's over its manifest"
            )


def check_block(block: Block, state: ChainState, blob_problem: BlobProblem | None = None) -> None:
    """Raise a ChainError unless ``block`` may follow ``state``'s tip.

    Checks, in order: height and prev_hash link, genesis only at height 0, hash over the
    canonical header, producer is the entry (genesis's key, or the key it handed authority
    to), Ed25519 signature over the hash, payload rules (node ids match keys, Merkle root,
    parent SN, node_left target, a round block's round is the previous round block's
    round + 1 starting at 1, every round participant an admitted EN of the SN it names whose
    own signature holds over its row, every manifest an admitted SN's signature over the
    rows it used, a handover accepted by the new key), blobs present.
    """
    if block.height != state.next_height:
        raise NotNextBlock(
            f"block height {block.height} does not follow the tip (next height is {state.next_height})"
        )
    if block.prev_hash != state.tip_hash:
        raise NotNextBlock(
            f"prev_hash {block.prev_hash.hex()[:16]}… does not match the hash of the block before "
            f"({state.tip_hash.hex()[:16]}…)"
        )
    if (block.kind == BlockKind.GENESIS) != (block.height == 0):
        raise BlockInvalid("the genesis block must be the block at height 0, and only it")
    if block.computed_hash() != block.hash:
        raise BlockInvalid(
            "hash does not match the block's contents (SHA-256 of its canonical header)"
        )
    key = _producer_key(block, state)
    if not verify_signature(key, block.signature, block.hash):
        raise BlockInvalid(f"signature does not verify with the key of producer {block.producer}")
    _check_payload(block, state)
    if blob_problem is not None:
        for digest in model_digests(block):
            problem = blob_problem(digest)
            if problem is not None:
                raise BlobMissing(f"model blob {digest[:16]}… is {problem}")
