"""Verify a chain from the outside: replay it from the blocks and blobs a ledger hands out,
and hold it to what the auditor already knows (anchors).

``replay`` checks every block with the chain's rules and every blob digest through the
``LedgerContract`` alone, so ``fedchain verify --ledger`` trusts nothing the ledger says
about its own chain. ``check_anchors`` then fails, naming what is missing, on a chain
whose genesis is not the expected one (``--genesis``, ``--entry-key``: the chain was
replaced), that is shorter than a head the auditor holds (``--head``: truncated or rolled
back) or that does not extend it (its history was rewritten). The ledger's own latest
signed head is held to the same rules: a chain cut back behind it is caught even without
``--head``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fedchain.shared.chain import merkle
from fedchain.shared.chain.errors import ChainError
from fedchain.shared.chain.payloads import AuthorityHandoverPayload, GenesisPayload
from fedchain.shared.chain.rules import ChainState, check_block
from fedchain.shared.chain.treehead import TreeHead, TreeHeadInvalid
from fedchain.shared.crypto import verify_signature
from fedchain.shared.ledger.contract import MAX_RANGE, LedgerContract, Progress
from fedchain.shared.ledger.errors import LedgerCorrupt, NotFound
from fedchain.shared.ledger.results import VerifyReport


@dataclass(frozen=True)
class BlockAnchor:
    """``HEIGHT:HASH``: the block at ``height`` had hash ``hash`` when the auditor saw it."""

    height: int
    hash: bytes


@dataclass(frozen=True)
class Anchors:
    """What the auditor knows about the chain beforehand (every field optional)."""

    genesis: bytes | None = None
    entry_key: bytes | None = None
    head: TreeHead | BlockAnchor | None = None
    head_source: str = "--head"


@dataclass
class ChainFacts:
    """What anchors are checked against: block hashes in order and the entry's keys."""

    leaves: list[bytes] = field(default_factory=list)
    genesis_key: bytes | None = None
    authority_keys: list[bytes] = field(default_factory=list)

    def add(self, block_hash: bytes, payload: object) -> None:
        self.leaves.append(block_hash)
        if isinstance(payload, GenesisPayload):
            self.genesis_key = bytes.fromhex(payload.entry_public_key)
            self.authority_keys.append(self.genesis_key)
        elif isinstance(payload, AuthorityHandoverPayload):
            self.authority_keys.append(bytes.fromhex(payload.new_public_key))


def _hex32(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != merkle.HASH_BYTES:
        raise ValueError(f"{what} must be 64 hex characters, got {text[:80]!r}")
    return raw


def parse_hash(text: str, what: str) -> bytes:
    """A 32-byte value given as 64 hex characters (ValueError with a one-line reason)."""
    return _hex32(text.strip(), what)


def parse_head(text: str) -> TreeHead | BlockAnchor:
    """``--head``: ``HEIGHT:HASH`` or a tree head JSON file (``tree_head.json``)."""
    height, sep, rest = text.partition(":")
    if sep and height.strip().isdigit() and not Path(text).exists():
        return BlockAnchor(int(height), _hex32(rest.strip(), "the hash in --head HEIGHT:HASH"))
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"--head {text!r} is neither HEIGHT:HASH nor a tree head file")
    try:
        head = TreeHead.load(path)
    except TreeHeadInvalid as exc:
        raise ValueError(str(exc)) from None
    assert head is not None
    return head


def replay(ledger: LedgerContract, progress: Progress | None = None) -> tuple[VerifyReport, ChainFacts]:
    """Check every block and blob the ledger serves, on this side; never ask for its verdict."""
    blob_results: dict[str, str | None] = {}

    def blob_problem(digest: str) -> str | None:
        if digest not in blob_results:
            try:
                ledger.get_blob(digest)
                blob_results[digest] = None
            except NotFound:
                blob_results[digest] = "missing from the blob store"
            except LedgerCorrupt:
                blob_results[digest] = "altered in the blob store (its content does not hash to it)"
        return blob_results[digest]

    state = ChainState()
    facts = ChainFacts()
    top = ledger.height()
    while state.height < top:
        page = ledger.range(state.height + 1, MAX_RANGE)
        if not page:
            break
        for block in page:
            if block.height != state.next_height:
                return (
                    VerifyReport(
                        False,
                        len(facts.leaves),
                        state.next_height,
                        f"block is missing (the ledger served height {block.height} next)",
                    ),
                    facts,
                )
            try:
                check_block(block, state, blob_problem)
            except ChainError as exc:
                return VerifyReport(False, len(facts.leaves), block.height, str(exc)), facts
            state.apply(block)
            facts.add(block.hash, block.payload)
        if progress is not None:
            progress(len(facts.leaves))
    if state.height < top:
        return (
            VerifyReport(
                False,
                len(facts.leaves),
                state.height + 1,
                f"block is missing (the ledger's tip is at height {top})",
            ),
            facts,
        )
    return VerifyReport(True, len(facts.leaves), None if top < 0 else top, None), facts


def collect(ledger: LedgerContract) -> ChainFacts:
    """The block hashes and entry keys of a chain already verified (no checks repeated)."""
    facts = ChainFacts()
    top = ledger.height()
    while len(facts.leaves) <= top:
        page = ledger.range(len(facts.leaves), MAX_RANGE)
        if not page:
            break
        for block in page:
            facts.add(block.hash, block.payload)
    return facts


def _fail(checked: int, height: int | None, reason: str) -> VerifyReport:
    return VerifyReport(False, checked, height, reason)


def head_problem(head: TreeHead, facts: ChainFacts, source: str) -> VerifyReport | None:
    """Why the chain does not extend a signed tree head, or None when it does."""
    n = len(facts.leaves)
    if n == 0:
        return _fail(0, 0, f"the chain is empty, but {source} names {head.size} blocks")
    if head.chain_id != facts.leaves[0]:
        return _fail(
            0,
            0,
            f"genesis {facts.leaves[0].hex()[:16]}… is not the genesis "
            f"{head.chain_id.hex()[:16]}… of {source} (the chain was replaced)",
        )
    if head.size > n:
        return _fail(
            n,
            n,
            f"blocks {n}..{head.size - 1} are missing: {source} names {head.size} blocks, "
            f"the chain holds {n} (it was truncated or rolled back)",
        )
    if merkle.root(facts.leaves[: head.size]) != head.root:
        return _fail(
            0,
            None,
            f"the chain does not extend {source} of {head.size} blocks "
            "(its history was rewritten)",
        )
    statement = head.statement()
    if not any(verify_signature(k, head.signature, statement) for k in facts.authority_keys):
        return _fail(n, None, f"{source} is not signed by this chain's entry")
    return None


def check_anchors(facts: ChainFacts, anchors: Anchors, checked: int) -> VerifyReport | None:
    """The first anchor the chain breaks, as a failed report; None when all hold."""
    n = len(facts.leaves)
    if anchors.genesis is not None:
        if n == 0:
            return _fail(0, 0, "the chain is empty: genesis is missing")
        if facts.leaves[0] != anchors.genesis:
            return _fail(
                0,
                0,
                f"genesis is {facts.leaves[0].hex()[:16]}…, not the expected "
                f"{anchors.genesis.hex()[:16]}… (the chain was replaced)",
            )
    if anchors.entry_key is not None:
        if n == 0:
            return _fail(0, 0, "the chain is empty: genesis is missing")
        if facts.genesis_key != anchors.entry_key:
            named = facts.genesis_key.hex()[:16] if facts.genesis_key else "no key"
            return _fail(
                0,
                0,
                f"genesis names the entry key {named}…, not the expected "
                f"{anchors.entry_key.hex()[:16]}… (the chain was replaced)",
            )
    head = anchors.head
    if isinstance(head, BlockAnchor):
        if head.height >= n:
            return _fail(
                checked,
                n,
                f"blocks {n}..{head.height} are missing: {anchors.head_source} names block "
                f"{head.height}, the chain ends at height {n - 1} (truncated or rolled back)",
            )
        if facts.leaves[head.height] != head.hash:
            return _fail(
                head.height,
                head.height,
                f"block {head.height} is {facts.leaves[head.height].hex()[:16]}…, not the "
                f"{head.hash.hex()[:16]}… {anchors.head_source} names (the chain was "
                "rewritten or replaced)",
            )
    elif head is not None:
        return head_problem(head, facts, anchors.head_source)
    return None


def audit_heads(
    facts: ChainFacts, report: VerifyReport, stored: TreeHead | None, anchors: Anchors
) -> VerifyReport:
    """``report`` unless the anchors or the ledger's own latest head ``stored`` break it."""
    if not report.ok:
        return report
    for problem in (
        check_anchors(facts, anchors, report.checked),
        None if stored is None else head_problem(stored, facts, "the ledger's latest signed head"),
    ):
        if problem is not None:
            return problem
    return report
