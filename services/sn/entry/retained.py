"""The EN updates SNs hand over so that the ledger keeps them (``FEDCHAIN_KEEP_UPDATES``).

When the policy keeps updates (``all`` or ``last:N``), the entry answers an accepted SN
aggregate with the digests of the updates it used (``SubmitReply.retain``); the SN then
streams each one (``RetainUpdate``: the EN's signed header unchanged, then its bytes).
Only a digest asked for is taken, its bytes must hash to it (the digest the EN signed,
checked with the manifest), and its header must name the same EN, round and samples.

At the end of the collection the round ``settle``s: an SN whose updates did not all
arrive, or whose aggregate is not the partial of those updates recomputed with the one
FL core (``fedchain.shared.fl.recompute``), is refused (its ENs are listed as rejected).
The updates of the SNs that count are then uploaded to the ledger (``upload``) before
the round block, so ``fedchain verify --deep`` can replay the round.

Under a robust aggregator the SN forwards its ENs' update bytes in the aggregate stream
itself and the entry has checked each against the digest its EN signed: those bytes are
kept as they are (``keep_forwarded``), no ``RetainUpdate`` is asked for them, and such an
SN sent no partial to recompute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import torch

from fedchain.services.sn.collector import Accepted
from fedchain.services.sn.entry.ports import BlobStore, UpdateStream
from fedchain.services.sn.validation import Rejected, check_update
from fedchain.shared.fl.recompute import UsedState, partial_digest, same_sums, sn_partial
from fedchain.shared.fl.strategy import Strategy, UpdateRejected
from fedchain.shared.ledger.errors import LedgerError
from fedchain.shared.ledger.retention import KeepUpdates, PrunesUpdates
from fedchain.shared.limits import StreamLimits
from fedchain.shared.net.streams import StreamRefused, read_body, read_header
from fedchain.shared.rpc import node_pb2 as pb

log = logging.getLogger("fedchain.entry")

UPLOAD_STREAMS = 4
"""Kept updates the entry uploads to the ledger at once."""
RETAIN_WAIT_S = 60.0
"""Seconds the entry waits, after the last aggregate, for the updates it asked for."""


@dataclass(frozen=True)
class _Wanted:
    sn_node_id: str
    node_id: str
    samples: int


class RetainedUpdates:
    """The open round's requested and received update bytes."""

    def __init__(self, policy: KeepUpdates, max_bytes: int, wait_s: float = RETAIN_WAIT_S) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self.wait_s = wait_s
        """Seconds ``settle`` waits for the updates asked for."""
        self._cond = threading.Condition()
        self._round = 0
        self._version = 0
        self._wanted: dict[str, _Wanted] = {}
        self._received: dict[str, bytes] = {}
        self._forwarding: set[str] = set()
        """SNs whose updates need no recomputed partial: they forwarded them, or are the entry's."""

    def open(self, round_no: int, version: int) -> None:
        """Forget the previous round's updates; take those of ``round_no`` from now on."""
        with self._cond:
            self._round, self._version = round_no, version
            self._wanted, self._received = {}, {}
            self._forwarding = set()

    def want(self, sn_node_id: str, used: Sequence[pb.UsedUpdate]) -> list[str]:
        """The digests to ask ``sn_node_id`` for (none when the policy keeps no updates)."""
        if not self.policy.keeps_any:
            return []
        with self._cond:
            for u in used:
                self._wanted[u.digest] = _Wanted(sn_node_id, u.node_id, int(u.samples))
        return [u.digest for u in used]

    def keep_forwarded(
        self, sn_node_id: str, used: Sequence[pb.UsedUpdate], data: bytes
    ) -> None:
        """Keep the update bytes ``sn_node_id`` forwarded in its aggregate (a robust rule):
        ``data`` is the used updates' bytes one after another, each ``total_bytes`` long and
        already checked against its EN's digest by the intake."""
        if not self.policy.keeps_any:
            return
        with self._cond:
            self._forwarding.add(sn_node_id)
            offset = 0
            for u in used:
                size = int(u.total_bytes)
                self._wanted[u.digest] = _Wanted(sn_node_id, u.node_id, int(u.samples))
                self._received[u.digest] = data[offset : offset + size]
                offset += size
            self._cond.notify_all()

    def keep_own(
        self, sn_node_id: str, used: Sequence[pb.UsedUpdate], data: Mapping[str, bytes]
    ) -> list[str]:
        """Keep the updates the entry's own SN used, from its memory (``data``: digest ->
        bytes, checked against each EN's signed digest when that SN took them).

        Its aggregate is the entry's own computation: ``settle`` recomputes nothing for it.
        Returns the digests not found there, to be asked for as from any SN.
        """
        if not self.policy.keeps_any:
            return []
        missing: list[str] = []
        with self._cond:
            for u in used:
                self._wanted[u.digest] = _Wanted(sn_node_id, u.node_id, int(u.samples))
                if u.digest in data:
                    self._received[u.digest] = data[u.digest]
                else:
                    missing.append(u.digest)
            if not missing:
                self._forwarding.add(sn_node_id)
            self._cond.notify_all()
        return missing

    def receive(self, parts: UpdateStream) -> pb.SubmitReply:
        """Take one update an SN hands over; raises Rejected when it was not asked for."""
        try:
            h = read_header(parts, "retained update").header
        except StreamRefused as exc:
            raise Rejected(exc.code, exc.reason) from None
        with self._cond:
            wanted = self._wanted.get(h.digest)
            round_no = self._round
        if wanted is None or h.round != round_no:
            raise Rejected(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"update {h.digest[:16]}… of round {h.round} was not asked for "
                f"(round {round_no} is being collected)",
            )
        if h.node_id != wanted.node_id or int(h.samples) != wanted.samples:
            raise Rejected(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"update {h.digest[:16]}… is listed for {wanted.node_id} with "
                f"{wanted.samples} samples, not for {h.node_id[:40]} with {h.samples}",
            )
        try:
            data = read_body(
                parts, StreamLimits.for_bytes(self.max_bytes), "retained update",
                size=h.total_bytes, digest=h.digest,
            )
        except StreamRefused as exc:
            raise Rejected(exc.code, exc.reason) from None
        with self._cond:
            if self._round == round_no:
                self._received[h.digest] = data
                self._cond.notify_all()
        return pb.SubmitReply(accepted=True, message=f"update of {h.node_id} retained")

    def _missing(self, sn_ids: set[str]) -> set[str]:
        return {d for d, w in self._wanted.items() if w.sn_node_id in sn_ids} - set(self._received)

    def settle(
        self,
        accepted: Sequence[Accepted],
        strategy: Strategy,
        reference: Mapping[str, torch.Tensor],
    ) -> list[tuple[str, str]]:
        """Wait (bounded) for the updates asked for, then check every SN aggregate against them.

        Returns ``(sn id, reason)`` for each SN to refuse: updates missing, not matching the
        round's model, or an aggregate that is not their partial. ``reference``: what an
        EN update must match (the shared part of the round's model).
        """
        if not self.policy.keeps_any:
            return []
        counted = {a.node_id for a in accepted if a.samples > 0}
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self._missing(counted) and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            missing = self._missing(counted)
            received = dict(self._received)
            wanted = dict(self._wanted)
            forwarding = set(self._forwarding)
        refused: list[tuple[str, str]] = []
        for a in accepted:
            if a.node_id not in counted or a.node_id in forwarding:
                continue  # checked on arrival (forwarded) or the entry's own SN: no partial
            digests = [d for d, w in wanted.items() if w.sn_node_id == a.node_id]
            lacking = [d for d in digests if d in missing]
            if lacking:
                refused.append((a.node_id, f"did not hand over {len(lacking)} of the updates it used"))
                continue
            why = self._check_aggregate(a, digests, received, wanted, strategy, reference)
            if why:
                refused.append((a.node_id, why))
        return refused

    def _check_aggregate(
        self,
        a: Accepted,
        digests: Sequence[str],
        received: Mapping[str, bytes],
        wanted: Mapping[str, _Wanted],
        strategy: Strategy,
        reference: Mapping[str, torch.Tensor],
    ) -> str:
        used: list[UsedState] = []
        for d in digests:
            try:
                state = check_update(
                    round_no=self._round, version=self._version, expected_round=self._round,
                    expected_version=self._version, claimed_digest=d, data=received[d],
                    reference=reference, max_bytes=self.max_bytes,
                )
            except Rejected as rej:
                return f"the update of {wanted[d].node_id} it used does not hold: {rej.reason}"
            used.append(UsedState(wanted[d].node_id, state, wanted[d].samples))
        used.sort(key=lambda u: u.node_id)
        try:
            recomputed = sn_partial(strategy, self._round, used)
        except (UpdateRejected, ValueError) as exc:
            return f"its updates cannot be aggregated: {exc}"
        if recomputed.weight != a.samples or not same_sums(recomputed.sums, a.state):
            return (
                f"its aggregate {a.digest[:16]}… is not the weighted sum of the updates it "
                f"used (recomputed {partial_digest(recomputed)[:16]}…)"
            )
        return ""

    def prune(self, ledger: object) -> None:
        """After the round block: an embedded ledger drops the update blobs of rounds the
        policy no longer keeps (a ledger service does so on its own)."""
        if self.policy.rounds is None or not isinstance(ledger, PrunesUpdates):
            return
        try:
            removed = ledger.prune_updates(self.policy)
        except LedgerError as exc:
            log.warning("could not remove expired update blobs: %s", exc)
            return
        if removed:
            log.info("removed %d update blobs (keep_updates %s)", len(removed), self.policy)

    def upload(self, ledger: BlobStore, sn_ids: Sequence[str]) -> int:
        """Put the received updates of ``sn_ids`` into the ledger; returns how many.

        ``UPLOAD_STREAMS`` at a time: the ledger writes and syncs one while the next arrives.
        A refused upload (quota, ledger down) is logged: the round goes on, not retained.
        """
        with self._cond:
            keep = {d: b for d, b in self._received.items() if self._wanted[d].sn_node_id in sn_ids}
        if not keep:
            return 0

        def put(d: str) -> bool:
            try:
                if ledger.put_blob(keep[d]) != d:  # received bytes hash to d: never expected
                    raise LedgerError("the ledger stored it under another digest")
            except LedgerError as exc:
                log.warning("round %d: update %s… not retained: %s", self._round, d[:16], exc)
                return False
            return True

        with ThreadPoolExecutor(min(UPLOAD_STREAMS, len(keep)), thread_name_prefix="retain") as pool:
            return sum(pool.map(put, sorted(keep)))
