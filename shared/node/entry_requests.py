"""Checks an SN and an EN run on what the entry asks of them, before they act on it.

``OpenRound``, ``Evaluate`` and ``AssignEdge`` (and the EN list of an SN's heartbeat reply)
are signed by the entry over every field the receiver acts on; an SN relays ``OpenRound``
and ``Evaluate`` to its ENs unchanged. ``EntryRequests`` checks them against the chain id
and the entry key the node learnt at join (``shared/node/trust.py``), that the request is
meant for this node, that it is fresh, and that a round request is newer than every round
request it accepted before (a replayed or older ``OpenRound`` is refused). Each refusal is
``RequestRefused`` with a gRPC status and a one-line reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc

from fedchain.shared.crypto import node_id_for
from fedchain.shared.net.ingress import (
    MAX_ALGORITHM,
    IngressRefused,
    check_address,
    check_count,
    check_digest,
    check_finite,
    check_node_id,
    check_node_ids,
    check_short_text,
)
from fedchain.shared.net.signing import (
    SignatureRefused,
    assign_edge_fields,
    check_signed,
    evaluate_fields,
    open_round_fields,
)
from fedchain.shared.net.statements import Domain
from fedchain.shared.node.heads import ChainRefused, HeadInvalid, HeadKeeper
from fedchain.shared.node.trust import EntryTrust
from fedchain.shared.rpc import node_pb2 as pb

MAX_REQUEST_AGE_MS = 10 * 60 * 1000
"""A request stamped further than this from the receiver's clock is stale."""
MAX_TIMEOUT_S = 7 * 24 * 3600.0


class RequestRefused(Exception):
    """An entry request this node will not act on (with the gRPC status to answer)."""

    def __init__(self, code: grpc.StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class EntryRequests:
    """Checks entry requests for one node; ``trust`` gives what it learnt at join (or None)."""

    def __init__(
        self, trust: Callable[[], EntryTrust | None], clock: Callable[[], float] = time.time
    ) -> None:
        self._trust = trust
        self._clock = clock
        self._lock = threading.Lock()
        self._last_round: tuple[int, int] = (0, 0)

    def _need_trust(self) -> EntryTrust:
        trust = self._trust()
        if trust is None:
            raise RequestRefused(
                grpc.StatusCode.FAILED_PRECONDITION, "this node has not joined the federation yet"
            )
        return trust

    def _signed(
        self, domain: Domain, signature: bytes, fields: list[tuple[str, object]] | object
    ) -> None:
        trust = self._need_trust()
        try:
            check_signed(
                trust.entry_public_key, signature, domain, trust.chain_id, trust.entry_node_id,
                fields,  # type: ignore[arg-type]
            )
        except SignatureRefused as exc:
            raise RequestRefused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{domain.name.lower().replace('_', ' ')} is not signed by this federation's entry "
                f"({exc})",
            ) from None

    def _fresh(self, issued_ms: int, what: str) -> None:
        age = abs(int(self._clock() * 1000) - issued_ms)
        if age > MAX_REQUEST_AGE_MS:
            raise RequestRefused(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"stale {what}: issued {age // 1000} s from this node's clock",
            )

    @staticmethod
    def _fields_ok(check: Callable[[], object]) -> None:
        try:
            check()
        except IngressRefused as exc:
            raise RequestRefused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None

    def open_round(
        self,
        req: pb.OpenRoundRequest,
        sn_node_id: str,
        edge_node_id: str = "",
        heads: HeadKeeper | None = None,
    ) -> None:
        """Check an OpenRound for the SN ``sn_node_id`` (on an EN: ``edge_node_id`` is itself).

        With ``heads``, the request's signed tree head must be the entry's, of this node's
        chain (checked first, so a replaced chain is named as such), and extend the highest
        head kept (checked last, on a fresh request issued later than the last one accepted,
        so a replay is refused as a replay and an entry back at an older round on a shorter
        chain as a chain that went backwards; with ``heads`` ``issued_ms`` must grow).
        Accepting it makes (round, issued_ms) the newest: an equal or older one is refused
        after.
        """
        head = None
        bad_head: HeadInvalid | None = None
        if heads is not None:
            try:
                head = heads.authentic(req.head, self._need_trust())
            except HeadInvalid as exc:  # after the request's own signature: it may be a forgery
                bad_head = exc
            except ChainRefused as exc:  # the entry's signed head names another chain
                raise RequestRefused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        self._signed(Domain.OPEN_ROUND, bytes(req.signature), open_round_fields(req))
        if bad_head is not None:
            raise RequestRefused(grpc.StatusCode.PERMISSION_DENIED, str(bad_head))

        def fields() -> None:
            check_count(req.round, "round", 1, 2**31 - 1)
            check_count(req.version, "version", 0, 2**31 - 1)
            check_digest(req.model_digest, "model digest", optional=True)
            check_short_text(req.algorithm, "algorithm", MAX_ALGORITHM)
            check_finite(req.timeout_s, "timeout", 0.0, MAX_TIMEOUT_S)
            check_node_ids(list(req.participants), "participants")

        self._fields_ok(fields)
        if req.sn_node_id != sn_node_id:
            raise RequestRefused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the round request is for super node {req.sn_node_id[:40]!r}, not {sn_node_id}",
            )
        if edge_node_id and req.participants and edge_node_id not in req.participants:
            raise RequestRefused(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{edge_node_id} is not among the participants of round {req.round}",
            )
        self._fresh(req.issued_ms, "round request")
        stamp = (int(req.round), int(req.issued_ms))
        with self._lock:
            # A request issued later than the last one accepted is held to the chain first: an
            # entry back at an older round on a shorter chain is named as that, not as a replay.
            later = int(req.issued_ms) > self._last_round[1]
            if heads is not None and head is not None and later:
                try:
                    heads.accept(head, self._need_trust())
                except ChainRefused as exc:
                    raise RequestRefused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
            if stamp <= self._last_round or (heads is not None and not later):
                raise RequestRefused(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"round request {req.round} is a replay or older than round "
                    f"{self._last_round[0]} already opened here",
                )
            self._last_round = stamp

    def evaluate(self, req: pb.EvaluateRequest, sn_node_id: str) -> None:
        """Check an Evaluate request for the SN ``sn_node_id`` (an EN passes its SN's id)."""
        self._signed(Domain.EVALUATE, bytes(req.signature), evaluate_fields(req))

        def fields() -> None:
            check_count(req.version, "version", 0, 2**31 - 1)
            check_digest(req.model_digest, "model digest", optional=True)
            check_short_text(req.algorithm, "algorithm", MAX_ALGORITHM)
            check_finite(req.timeout_s, "timeout", 0.0, MAX_TIMEOUT_S)

        self._fields_ok(fields)
        if req.sn_node_id != sn_node_id:
            raise RequestRefused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the evaluation request is for super node {req.sn_node_id[:40]!r}, not {sn_node_id}",
            )
        self._fresh(req.issued_ms, "evaluation request")

    def assignment(self, info: pb.EdgeInfo, sn_node_id: str) -> None:
        """Check an EN assignment for this SN: the entry's signature, the EN's id is its key's."""
        self._signed(Domain.ASSIGN_EDGE, bytes(info.signature), assign_edge_fields(info))

        def fields() -> None:
            check_node_id(info.node_id, "edge node id")
            check_address(info.address, "edge address")
            check_address(info.http_address, "edge http address", optional=True)
            check_count(info.partition_index, "partition index", 0, 2**31 - 1)
            check_count(info.partition_size, "partition size", 0, 2**62)

        self._fields_ok(fields)
        if info.sn_node_id != sn_node_id:
            raise RequestRefused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the assignment is for super node {info.sn_node_id[:40]!r}, not {sn_node_id}",
            )
        if len(info.public_key) != 32 or node_id_for(bytes(info.public_key)) != info.node_id:
            raise RequestRefused(
                grpc.StatusCode.INVALID_ARGUMENT, f"{info.node_id} is not the node id of its key"
            )
