"""Aggregate intake: the SNs' aggregates for the open round, checked and collected.

An aggregate arrives as a manifest (``AggregateHeader``) and the partial's bytes. Before
anything is recorded the intake checks who sent it: an SN the round was opened to, whose
signature over the manifest (``shared/net/signing.py`` ``manifest_fields``) holds. Then what
the manifest claims, each failure listed as the SN's rejection: every EN header it used is
signed by that EN's own key (from the entry's registry), the EN belongs to that SN and was
selected on it, its samples are within its partition, the weights add up, an empty aggregate
lists no participants; what it rejected is kept only for that SN's own participants. An
accepted manifest reaches the round as ``extra["manifest"]`` (the block's ``SnManifest``
record, digest over what the SN signed), its rejections exactly as signed: they must be
well-formed node ids and clean reasons, or the manifest is refused before anything is recorded.

The manifest names the aggregator the SN applied; it must be the federation's. With the
plain mean the bytes are the SN's float64 partial sums. With any other rule they are the
used ENs' update bytes, forwarded unchanged: each piece (its size in its ``UsedUpdate``)
must hash to the digest its EN signed and hold the shared tensors of the round's model, so
the entry runs the rule over updates each EN vouches for, not over anything the SN made.
Those bytes are what the entry keeps for the round (``RetainedUpdates.keep_forwarded``):
no ``RetainUpdate`` is asked for a forwarded update.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import grpc
import torch

from fedchain.services.sn.collector import Accepted, RoundCollector
from fedchain.services.sn.entry.authority import EntryAuthority
from fedchain.services.sn.entry.ports import AggregateStream
from fedchain.services.sn.entry.retained import RetainedUpdates
from fedchain.services.sn.registry import Member, Registry
from fedchain.services.sn.validation import Rejected, check_update, partial_max_bytes
from fedchain.shared.chain.evidence import manifest_record
from fedchain.shared.limits import StreamLimits
from fedchain.shared.net.ingress import (
    MAX_LOSS,
    MAX_REASON,
    MAX_REJECTED,
    MAX_SECONDS,
    IngressRefused,
    check_digest,
    check_finite,
    check_node_id,
    check_samples,
    reason_text,
)
from fedchain.shared.net.signing import (
    SignatureRefused,
    check_signed,
    manifest_fields,
    used_update_fields,
)
from fedchain.shared.net.statements import Domain
from fedchain.shared.net.streams import StreamRefused, read_body, read_header
from fedchain.shared.rpc import node_pb2 as pb


@dataclass(frozen=True)
class ForwardedUpdate:
    """One EN's update as its SN forwarded it (a robust aggregator), checked by the entry."""

    node_id: str
    state: dict[str, torch.Tensor]
    samples: int


class AggregateIntake:
    """Holds the open round's collector; ``submit`` checks one SN aggregate into it."""

    def __init__(
        self,
        registry: Registry,
        max_bytes: int,
        authority: EntryAuthority,
        retained: RetainedUpdates | None = None,
        own_updates: Callable[[int, Collection[str]], dict[str, bytes]] | None = None,
    ) -> None:
        self.registry = registry
        self.own_updates = own_updates
        """The bytes of the updates the entry's own SN used (``SuperNode.used_update_bytes``)."""
        self.max_bytes = max_bytes
        self.authority = authority
        self.retained = retained
        """The update bytes the SNs hand over to be kept (None: none are asked for)."""
        self._open: RoundCollector | None = None
        self._groups: Mapping[str, Sequence[str]] = {}

    def open(self, collector: RoundCollector, groups: Mapping[str, Sequence[str]]) -> None:
        """Start taking aggregates for ``collector``'s round (``groups``: SN id -> its ENs)."""
        self._groups = {sn: list(ens) for sn, ens in groups.items()}
        if self.retained is not None:
            self.retained.open(collector.round, collector.version)
        self._open = collector

    def close(self) -> None:
        self._open = None

    def submit(self, parts: AggregateStream) -> pb.SubmitReply:
        """Receive an SN's aggregate for the open round; raises Rejected on refusal."""
        try:
            h = read_header(parts, "aggregate").header
        except StreamRefused as exc:
            raise Rejected(exc.code, exc.reason) from None
        collector = self._open
        if collector is None or collector.closed:
            raise Rejected(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no round is open (aggregate for round {h.round})",
            )
        self._check_sender(h, collector)
        if collector.forward:
            limit = self.max_bytes * max(1, len(self._groups.get(h.sn_node_id, [])))
        else:
            limit = partial_max_bytes(collector.reference or {}, self.max_bytes)
        data = self._read(parts, limit, h)
        group = self._groups.get(h.sn_node_id, [])
        try:
            if h.round != collector.round or h.version != collector.version:
                raise Rejected(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"aggregate is for round {h.round} version {h.version}, "
                    f"but round {collector.round} on version {collector.version} is open",
                )
            if h.total_bytes == 0 and (h.used or h.samples != 0 or h.digest):
                raise Rejected(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "an empty aggregate must list no used updates and no weight",
                )
            if h.aggregator != collector.aggregator:
                raise Rejected(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"the manifest says aggregator {h.aggregator[:40]!r}, "
                    f"the federation's is {collector.aggregator}",
                )
            used = self._check_used(h, group)
            extra: dict[str, object] = {
                "used": used,
                "rejected": _rejected(h, group, used),
                "manifest": manifest_record(self.authority.chain_id, h),
            }
            if h.total_bytes == 0:
                collector.accept(Accepted(h.sn_node_id, {}, 0, "", 0.0, extra))
                return pb.SubmitReply(accepted=True, message="empty aggregate recorded")
            if collector.reference is None:
                raise Rejected(grpc.StatusCode.UNAVAILABLE, "the round's model is not ready yet")
            if h.samples <= 0 or h.samples != sum(u.samples for u in used):
                raise Rejected(
                    grpc.StatusCode.INVALID_ARGUMENT, "aggregate sample count does not add up"
                )
            if collector.forward:
                extra["updates"] = self._forwarded(h, data, used, collector)
                state: dict[str, torch.Tensor] = {}
            else:
                state = check_update(
                    round_no=h.round,
                    version=h.version,
                    expected_round=collector.round,
                    expected_version=collector.version,
                    claimed_digest=h.digest,
                    data=data,
                    reference=collector.reference,
                    max_bytes=limit,
                )
        except Rejected as rej:
            collector.reject(h.sn_node_id, reason_text(rej.reason))  # its ENs are listed too
            raise
        if not collector.accept(Accepted(h.sn_node_id, state, int(h.samples), h.digest, 0.0, extra)):
            raise Rejected(
                grpc.StatusCode.ALREADY_EXISTS, f"{h.sn_node_id} already answered round {h.round}"
            )
        retain: list[str] = []
        if self.retained is not None and collector.forward:
            self.retained.keep_forwarded(h.sn_node_id, used, data)  # already in the stream
        elif self.retained is not None and self.own_updates is not None and (
            h.sn_node_id == self.authority.key.node_id
        ):  # the entry's own SN: its updates are in this process already
            digests = [u.digest for u in used]
            retain = self.retained.keep_own(h.sn_node_id, used, self.own_updates(h.round, digests))
        elif self.retained is not None:
            retain = self.retained.want(h.sn_node_id, used)
        return pb.SubmitReply(
            accepted=True, message=f"aggregate of {len(used)} updates accepted", retain=retain
        )

    def _check_sender(self, h: pb.AggregateHeader, collector: RoundCollector) -> Member:
        """The SN that signed the manifest, one the round was opened to (nothing recorded)."""
        try:
            check_node_id(h.sn_node_id, "super node id")
        except IngressRefused as exc:
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        member = self.registry.get(h.sn_node_id)
        if member is None or member.role != "SN":
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, f"unknown super node {h.sn_node_id}")
        if h.sn_node_id not in collector.expected:
            raise Rejected(
                grpc.StatusCode.PERMISSION_DENIED,
                f"round {collector.round} was not opened to super node {h.sn_node_id}",
            )
        if len(h.rejected) > MAX_REJECTED:
            raise Rejected(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the manifest lists {len(h.rejected)} rejections, more than {MAX_REJECTED}",
            )
        for r in h.rejected:  # recorded in the round block as signed: they must fit it
            try:
                check_node_id(r.node_id, "rejected node id")
            except IngressRefused as exc:
                raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
            if reason_text(r.reason) != r.reason:
                raise Rejected(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the manifest's reason for {r.node_id} is not printable text of at most "
                    f"{MAX_REASON} characters",
                )
        try:
            check_signed(
                bytes.fromhex(member.public_key), bytes(h.signature), Domain.MANIFEST,
                self.authority.chain_id, h.sn_node_id, manifest_fields(h),
            )
        except SignatureRefused:
            raise Rejected(
                grpc.StatusCode.PERMISSION_DENIED, f"bad signature on the manifest of {h.sn_node_id}"
            ) from None
        if collector.has_answered(h.sn_node_id):
            raise Rejected(
                grpc.StatusCode.ALREADY_EXISTS, f"{h.sn_node_id} already answered round {h.round}"
            )
        return member

    def _check_used(self, h: pb.AggregateHeader, group: Sequence[str]) -> list[pb.UsedUpdate]:
        """Every EN header the SN used: that EN's own signature, on this SN, selected, bounded."""
        seen: set[str] = set()
        for u in h.used:
            try:
                check_node_id(u.node_id, "used node id")
                check_digest(u.digest, "used update digest")
                check_finite(u.train_loss, "train_loss", 0.0, MAX_LOSS)
                check_finite(u.train_seconds, "train_seconds", 0.0, MAX_SECONDS)
            except IngressRefused as exc:
                raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
            # an EN that left (heartbeat timeout) after it sent its update still counts in the
            # round it trained for, under the key and SN it had
            en = self.registry.get(u.node_id) or self.registry.departed(u.node_id)
            if en is None or en.role != "EN" or en.parent_sn != h.sn_node_id:
                raise Rejected(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"the manifest uses {u.node_id}, which is not an edge node of {h.sn_node_id}",
                )
            if u.node_id not in group or u.node_id in seen:
                raise Rejected(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the manifest uses {u.node_id}, not selected on {h.sn_node_id} or listed twice",
                )
            seen.add(u.node_id)
            try:
                check_signed(
                    bytes.fromhex(en.public_key), bytes(u.signature), Domain.UPDATE,
                    self.authority.chain_id, u.node_id, used_update_fields(h.round, h.version, u),
                )
            except SignatureRefused:
                raise Rejected(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"the update of {u.node_id} in the manifest is not signed by {u.node_id}",
                ) from None
            try:
                check_samples(int(u.samples), self.authority.partition_size(en.partition_index))
            except IngressRefused as exc:
                raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, f"{u.node_id}: {exc}") from None
        return list(h.used)

    def _forwarded(
        self,
        h: pb.AggregateHeader,
        data: bytes,
        used: Sequence[pb.UsedUpdate],
        collector: RoundCollector,
    ) -> list[ForwardedUpdate]:
        """The used ENs' updates in a forwarding manifest: split by their sizes, each checked
        against the digest its EN signed and against the round's shared tensors."""
        sizes = [int(u.total_bytes) for u in used]
        if any(n <= 0 for n in sizes) or sum(sizes) != len(data):
            raise Rejected(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the forwarded updates' sizes do not add up to the aggregate's bytes",
            )
        assert collector.reference is not None
        out: list[ForwardedUpdate] = []
        offset = 0
        for u, size in zip(used, sizes, strict=True):
            piece = data[offset : offset + size]
            offset += size
            try:
                state = check_update(
                    round_no=h.round,
                    version=h.version,
                    expected_round=collector.round,
                    expected_version=collector.version,
                    claimed_digest=u.digest,
                    data=piece,
                    reference=collector.reference,
                    max_bytes=self.max_bytes,
                )
            except Rejected as rej:
                raise Rejected(rej.code, f"the forwarded update of {u.node_id}: {rej.reason}") from None
            out.append(ForwardedUpdate(u.node_id, state, int(u.samples)))
        return out

    def _read(self, parts: AggregateStream, limit: int, h: pb.AggregateHeader) -> bytes:
        try:
            return read_body(
                parts, StreamLimits.for_bytes(limit), "aggregate",
                size=h.total_bytes, digest=h.digest,
            )
        except StreamRefused as exc:
            raise Rejected(exc.code, exc.reason) from None


def _rejected(
    h: pb.AggregateHeader, group: Sequence[str], used: Sequence[pb.UsedUpdate]
) -> list[tuple[str, str]]:
    """What the SN rejected, kept for its own selected ENs only (once each, reasons cleaned)."""
    mine = set(group) - {u.node_id for u in used}
    out: list[tuple[str, str]] = []
    for r in h.rejected:
        if r.node_id in mine:
            mine.discard(r.node_id)
            out.append((r.node_id, reason_text(r.reason)))
    return out
