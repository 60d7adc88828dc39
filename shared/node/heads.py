"""The highest signed tree head an SN or EN has seen: kept in its state dir, held against each new one.

Every ``OpenRound`` carries the entry's latest signed tree head (size and RFC 6962 root of
the chain's block hashes). A node keeps the highest head it accepted in
``<state_dir>/chain_head.json`` (written atomically) and holds every new head to it:

- the head must be signed by the entry key and name the chain the node joined (else: the
  chain was replaced by one from another genesis);
- it must not be smaller (else: the chain went backwards, blocks were removed or the
  database rolled back);
- a larger head must extend the kept one, shown by a consistency proof (else: the history
  was rewritten).

The proof comes from the entry (``Consistency`` over gRPC, asked only when the sizes
differ). A proof verifies itself against the two signed roots, so its source need not be
trusted: a wrong or missing proof can only make the node refuse, never accept a fork. What
is read from the wire is bounded (at most ``MAX_PROOF_HASHES`` hashes of 32 bytes; sizes
and times below 2^63). A refusal is ``ChainRefused`` with one line, which the node logs and
shows in its ``/status`` (``chain_error``) until a head that extends the kept one arrives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from fedchain.shared.chain import merkle
from fedchain.shared.chain.errors import ChainError
from fedchain.shared.chain.treehead import ChainForked, TreeHead, TreeHeadInvalid, check_extends
from fedchain.shared.config import ConfigError
from fedchain.shared.node.trust import EntryTrust
from fedchain.shared.rpc import ledger_pb2

log = logging.getLogger("fedchain.heads")

HEAD_FILE = "chain_head.json"
MAX_PROOF_HASHES = 64
"""A consistency proof has about 2·log2(size) hashes at most: 64 covers chains of 2^32 blocks."""

ProofSource = Callable[[int, int], Sequence[bytes]]
"""``consistency(from_size, to_size)``: the proof, or ``ProofUnavailable``."""


class ChainRefused(Exception):
    """A tree head this node will not build on (one line: what happened to the chain)."""


class HeadInvalid(ChainRefused):
    """A missing or malformed head, or one the entry did not sign: says nothing about the chain."""


class ProofUnavailable(Exception):
    """The proof source did not answer (the head is then neither accepted nor kept)."""


def head_from_message(msg: ledger_pb2.TreeHead) -> TreeHead:
    """The tree head of an ``OpenRound``; TreeHeadInvalid when it is missing or malformed."""
    if msg.size == 0 and not msg.signature:
        raise TreeHeadInvalid("the round request carries no signed tree head")
    return TreeHead.from_json(
        {
            "chain_id": bytes(msg.chain_id).hex(),
            "size": int(msg.size),
            "root": bytes(msg.root).hex(),
            "timestamp_ms": int(msg.timestamp_ms),
            "signer": msg.signer,
            "signature": bytes(msg.signature).hex(),
        }
    )


def bounded_proof(proof: Sequence[bytes]) -> list[bytes]:
    """``proof`` as a list; TreeHeadInvalid when it has too many hashes or one of a wrong size."""
    if len(proof) > MAX_PROOF_HASHES:
        raise TreeHeadInvalid(
            f"a consistency proof of {len(proof)} hashes is longer than {MAX_PROOF_HASHES}"
        )
    out = [bytes(p) for p in proof]
    if any(len(p) != merkle.HASH_BYTES for p in out):
        raise TreeHeadInvalid("a consistency proof hash is not 32 bytes")
    return out


def check_authentic(head: TreeHead, trust: EntryTrust) -> None:
    """Raise unless ``head`` is signed by the entry and names the chain this node joined."""
    head.check_signature(trust.entry_public_key)
    if head.chain_id != trust.chain_id:
        raise ChainForked(
            f"the chain's genesis changed: {head.chain_id.hex()[:16]}… is not the chain "
            f"{trust.chain_id.hex()[:16]}… this node joined (the chain was replaced)"
        )


def check_new_head(
    old: TreeHead | None, new: TreeHead, trust: EntryTrust, proof: Sequence[bytes]
) -> None:
    """Raise a ChainError (TreeHeadInvalid, ChainWentBackwards, ChainForked) unless ``new``
    is the entry's, of this node's chain, and extends ``old`` (``proof``: from ``old.size``)."""
    check_authentic(new, trust)
    if old is not None:
        check_extends(old, new, bounded_proof(proof))


def proofs_from_entry(stub: Callable[[], Any], timeout: float = 10.0) -> ProofSource:
    """A proof source asking the entry's ``Consistency`` RPC (``stub()``: a Node stub)."""

    def fetch(from_size: int, to_size: int) -> Sequence[bytes]:
        request = ledger_pb2.ConsistencyRequest(from_size=from_size, to_size=to_size)
        try:
            reply = stub().Consistency(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise ProofUnavailable(
                f"the entry gave no consistency proof ({exc.code().name}: "
                f"{str(exc.details())[:200]})"
            ) from None
        return list(reply.proof)

    return fetch


class HeadKeeper:
    """The highest head a node accepted (``state_dir=None``: memory only) and its check."""

    def __init__(self, state_dir: Path | None, proofs: ProofSource) -> None:
        """Raises ConfigError (one line, the node exits 2) when the kept head cannot be read."""
        self.path = None if state_dir is None else Path(state_dir) / HEAD_FILE
        self._proofs = proofs
        self._lock = threading.Lock()
        self.refusal: str | None = None
        """Why the last head was refused (None once a good one came): shown in /status."""
        self._highest = self._load()

    def _load(self) -> TreeHead | None:
        if self.path is None:
            return None
        try:
            return TreeHead.load(self.path)
        except TreeHeadInvalid as exc:  # refuse to start on a kept head that cannot be read
            raise ConfigError(f"{exc}; move it away to trust the entry's next head") from None

    @property
    def highest(self) -> TreeHead | None:
        with self._lock:
            return self._highest

    def status(self) -> dict[str, Any]:
        """``head_size`` and ``chain_error`` of the node's /status."""
        highest = self.highest
        return {
            "head_size": None if highest is None else highest.size,
            "chain_error": self.refusal,
        }

    def authentic(self, msg: ledger_pb2.TreeHead, trust: EntryTrust) -> TreeHead:
        """Parse the head of a request and check it is the entry's, of this node's chain."""
        try:
            head = head_from_message(msg)
            check_authentic(head, trust)
        except TreeHeadInvalid as exc:  # not the entry's word: logged, not shown as the chain's state
            line = f"refusing the round: {exc}"
            log.warning("%s", line)
            raise HeadInvalid(line) from None
        except ChainError as exc:
            raise self._refuse(exc) from None
        return head

    def accept(self, head: TreeHead, trust: EntryTrust) -> None:
        """Hold an authentic ``head`` to the highest one kept; keep it when it is higher.

        Raises ChainRefused (went backwards, forked, a bad proof, or no proof to be had).
        """
        with self._lock:
            old = self._highest
            proof: Sequence[bytes] = []
            if old is not None and head.size > old.size:
                try:
                    proof = self._proofs(old.size, head.size)
                except ProofUnavailable as exc:
                    raise self._refuse(
                        ChainError(
                            f"cannot check that the chain of {head.size} blocks extends the "
                            f"{old.size} seen before: {exc}"
                        ),
                        quiet=True,
                    ) from None
            try:
                check_new_head(old, head, trust, proof)
            except ChainError as exc:
                raise self._refuse(exc) from None
            if old is None or head.size > old.size:
                if self.path is not None:
                    head.save(self.path)
                self._highest = head
            if self.refusal is not None:
                log.info("the entry's chain of %d blocks extends the head kept here", head.size)
            self.refusal = None

    def refuse_chain(self, reason: str) -> None:
        """The entry answered a re-join with another chain (``ChainReplaced``): no head of it
        can extend the kept one, so /status shows ``reason`` until one that does arrives."""
        line = f"refusing the entry's chain: {reason}"
        if self.refusal != line:
            log.error("%s", line)
        self.refusal = line

    def _refuse(self, exc: ChainError, quiet: bool = False) -> ChainRefused:
        line = f"refusing the round: {exc}"
        if quiet:
            log.warning("%s", line)
        else:
            log.error("%s", line)
            self.refusal = line
        return ChainRefused(line)
