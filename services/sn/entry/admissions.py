"""Admissions: SNs and ENs join through the entry, SNs heartbeat it, ENs are pushed to their SN.

A join is first charged to its source address (``JoinRateLimiter``: a token bucket per
peer host, ``RESOURCE_EXHAUSTED`` when empty), then checked (token of its role, key, clock,
addresses, signature), then admitted within the caps: at most ``max_sns`` SNs, at most
``clients`` ENs (one partition each). The join reply tells the node the chain id and the
entry's key and is signed by the entry (``JOIN_REPLY``, bound to the request's timestamp);
every EN assignment the entry hands an SN (``AssignEdge`` and the heartbeat reply's list) is
signed by the entry (``EntryAuthority``) and carries the EN's partition size. SN heartbeats
are checked against the SN's key before they change anything (``shared/node/heartbeats.py``).

Lifecycle: every admission is a ``node_joined`` block. The upkeep tick declares a member
that missed its heartbeats for ``heartbeat_timeout`` dead and writes ``node_left`` (reason
"heartbeat timeout"); its partition is then free. The same key coming back is admitted
again with a new ``node_joined``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import grpc

from fedchain.services.sn.entry.authority import EntryAuthority
from fedchain.services.sn.entry.ports import ChainWriter, Clock, OwnSuperNode, PeerDirectory
from fedchain.services.sn.registry import (
    FederationFull,
    Member,
    NoSuperNode,
    Registry,
    SuperNodesFull,
)
from fedchain.services.sn.validation import Rejected
from fedchain.shared.chain.errors import ChainError
from fedchain.shared.chain.payloads import NodeJoinedPayload, NodeLeftPayload
from fedchain.shared.config import Settings
from fedchain.shared.crypto import NodeKey, node_id_for, verify_signature
from fedchain.shared.ledger.errors import LedgerError
from fedchain.shared.net.federation import fl_config
from fedchain.shared.net.ingress import (
    MAX_PARTICIPANTS,
    IngressRefused,
    check_address,
    check_node_id,
    check_short_text,
    is_node_id,
)
from fedchain.shared.net.signing import SignatureRefused, join_message, join_reply_fields
from fedchain.shared.net.statements import Domain, sign
from fedchain.shared.net.tls import CertificateIssuer, TlsRefused
from fedchain.shared.node.admission import (
    JoinRateExceeded,
    JoinRateLimiter,
    JoinTokenRefused,
    check_join_token,
)
from fedchain.shared.node.heartbeats import HeartbeatRefused, ReplayGuard, check_heartbeat
from fedchain.shared.rpc import node_pb2 as pb

log = logging.getLogger("fedchain.entry")

JOIN_CLOCK_SKEW_MS = 10 * 60 * 1000
ASSIGN_TIMEOUT_S = 5.0
HEARTBEAT_TIMEOUT_REASON = "heartbeat timeout"


def edge_info(m: Member, authority: EntryAuthority) -> pb.EdgeInfo:
    """The entry-signed EdgeInfo an SN gets for one of its ENs."""
    return authority.sign_assignment(
        pb.EdgeInfo(
            node_id=m.node_id,
            public_key=bytes.fromhex(m.public_key),
            address=m.address,
            http_address=m.http_address,
            partition_index=m.partition_index,
            sn_node_id=m.parent_sn,
            partition_size=authority.partition_size(m.partition_index),
        )
    )


class Admissions:
    """Join (checked, recorded on the chain), SN heartbeats, EN assignment, periodic upkeep."""

    def __init__(
        self,
        settings: Settings,
        key: NodeKey,
        registry: Registry,
        chain: ChainWriter,
        peers: PeerDirectory,
        own_sn: OwnSuperNode,
        *,
        http_address: str,
        authority: EntryAuthority,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.authority = authority
        self.node_id = key.node_id
        self.registry = registry
        self.chain = chain
        self.peers = peers
        self.own_sn = own_sn
        self.http_address = http_address
        self.clock = clock or Clock()
        self._key = key
        self._lock = threading.Lock()
        self.beats = ReplayGuard(self.clock.time)
        self.in_round: Callable[[], frozenset[str]] = frozenset
        """Members of the round now running: they expire after its block (set by the role)."""
        self.limiter = JoinRateLimiter(
            settings.join_rate, settings.join_burst, clock=self.clock.monotonic
        )
        self.certificates = (  # with --tls-ca-key: a certificate bearing its id for each node
            CertificateIssuer.load(settings.tls_ca, settings.tls_ca_key)
            if settings.tls_ca is not None and settings.tls_ca_key is not None
            else None
        )

    def join(self, req: pb.JoinRequest, source: str = "") -> pb.JoinReply:
        """Admit an SN or EN joining from ``source`` (its peer host); raises Rejected with a
        clear reason."""
        try:
            self.limiter.take(source or "unknown")
        except JoinRateExceeded as exc:
            raise Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None
        self._check(req)
        certificate = self._certificate(req)
        pk = bytes(req.public_key)
        node_id = node_id_for(pk)
        existing = self.registry.get(node_id)
        if existing is not None and existing.role != req.role:
            raise Rejected(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{node_id} joined as {existing.role} before; use a separate --state-dir per node",
            )
        with self._lock:
            member, record = self._admit(req, node_id, pk)
            if record:
                self._record(req, member, pk, forget=existing is None)
        reply = pb.JoinReply(
            node_id=node_id,
            entry_node_id=self.node_id,
            config_json=json.dumps(fl_config(self.settings)),
            height=self.chain.height(),
            entry_http_address=self.http_address,
            chain_id=self.authority.chain_id,
            entry_public_key=self.authority.public_key,
            tls_certificate=certificate,
        )
        if req.role == "EN":
            parent = self.registry.get(member.parent_sn)
            if parent is None:
                raise Rejected(grpc.StatusCode.UNAVAILABLE, "the assigned super node left; join again")
            reply.sn_node_id = parent.node_id
            reply.sn_address = parent.address
            reply.partition_index = member.partition_index
            reply.partition_size = self.authority.partition_size(member.partition_index)
            self.push_edge(parent, member)
        reply.signature = sign(
            self._key, Domain.JOIN_REPLY, reply.chain_id, join_reply_fields(reply, req.timestamp_ms)
        )
        log.info("%s %s joined (%s)", req.role, node_id, req.address)
        return reply

    def _check(self, req: pb.JoinRequest) -> None:
        if req.role not in ("SN", "EN"):
            raise Rejected(
                grpc.StatusCode.INVALID_ARGUMENT, f"role must be SN or EN, got {req.role!r}"
            )
        try:  # an EN's token never admits an SN, nor the other way round
            check_join_token(req.role, req.token, self.settings)
        except JoinTokenRefused as exc:
            raise Rejected(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from exc
        pk = bytes(req.public_key)
        if len(pk) != 32:
            raise Rejected(
                grpc.StatusCode.INVALID_ARGUMENT, "public key must be 32 bytes (Ed25519)"
            )
        if abs(int(self.clock.time() * 1000) - req.timestamp_ms) > JOIN_CLOCK_SKEW_MS:
            raise Rejected(
                grpc.StatusCode.INVALID_ARGUMENT,
                "join request timestamp is too far from the entry's clock",
            )
        try:
            check_address(req.address, "address")
            check_address(req.http_address, "http address", optional=True)
            if req.avoid_sn:
                check_node_id(req.avoid_sn, "avoid_sn")
        except IngressRefused as exc:
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        message = join_message(
            req.role, pk, req.address, req.timestamp_ms, req.http_address, req.avoid_sn
        )
        if not verify_signature(pk, bytes(req.signature), message):
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, "bad signature on join request")
        if node_id_for(pk) == self.node_id:
            raise Rejected(
                grpc.StatusCode.INVALID_ARGUMENT, "a node cannot join with the entry's own key"
            )

    def _certificate(self, req: pb.JoinRequest) -> bytes:
        """The TLS certificate for the request's CSR (b"" without CSR or CA key)."""
        if self.certificates is None:
            return b""
        try:
            return self.certificates.for_join(req)
        except TlsRefused as exc:
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, f"TLS enrollment: {exc}") from None

    def _admit(self, req: pb.JoinRequest, node_id: str, pk: bytes) -> tuple[Member, bool]:
        if req.role == "SN":
            try:
                return self.registry.admit_sn(
                    node_id, pk.hex(), req.address, req.http_address, self.settings.max_sns
                )
            except SuperNodesFull as exc:
                raise Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None
        try:
            return self.registry.admit_en(
                node_id, pk.hex(), req.address, req.http_address, self.settings.clients,
                req.avoid_sn,
            )
        except (FederationFull, NoSuperNode) as exc:
            raise Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None

    def _record(self, req: pb.JoinRequest, member: Member, pk: bytes, *, forget: bool) -> None:
        """Append the node_joined block; undo a new admission when the chain does not take it."""
        try:
            payload = NodeJoinedPayload(
                node_id=member.node_id,
                role=req.role,
                public_key=pk.hex(),
                parent_sn=member.parent_sn,
                address=req.address,
            )
            self.chain.append("node_joined", payload)
        except ChainError as exc:
            if forget:
                self.registry.remove(member.node_id)
            raise Rejected(
                grpc.StatusCode.INVALID_ARGUMENT, f"the join cannot be recorded: {exc}"
            ) from None
        except LedgerError as exc:
            if forget:
                self.registry.remove(member.node_id)
            raise Rejected(
                grpc.StatusCode.UNAVAILABLE, f"could not record the join on the chain: {exc}"
            ) from None

    def push_edge(self, parent: Member, edge: Member) -> None:
        """Tell ``parent`` about its new EN (the entry's own SN part directly)."""
        info = edge_info(edge, self.authority)
        if parent.node_id == self.node_id:
            self.own_sn.assign_edge(info)
            return
        try:
            self.peers.stub(parent.address).AssignEdge(info, timeout=ASSIGN_TIMEOUT_S)
        except grpc.RpcError as exc:
            log.warning(
                "could not tell SN %s about EN %s: %s", parent.node_id, edge.node_id,
                exc.code().name,
            )

    def heartbeat(self, req: pb.HeartbeatRequest) -> pb.HeartbeatReply:
        """An SN's heartbeat: refresh its liveness; answer with the ENs assigned to it.

        An unknown sender is answered ``known=False`` (it re-joins); a heartbeat that does not
        hold (forged, replayed, stale, malformed) raises Rejected and changes nothing.
        """
        member = self.registry.get(req.node_id) if is_node_id(req.node_id) else None
        if member is None or member.role != "SN" or member.entry:
            return pb.HeartbeatReply(
                known=False, entry_node_id=self.node_id, entry_http_address=self.http_address
            )
        try:
            check_heartbeat(
                req, bytes.fromhex(member.public_key), self.authority.chain_id, self.beats
            )
            check_address(req.address, "address")
            check_address(req.http_address, "http address", optional=True)
            check_short_text(req.state, "state", 32)
            if len(req.alive_edges) > MAX_PARTICIPANTS:
                raise IngressRefused(f"alive_edges lists more than {MAX_PARTICIPANTS} nodes")
        except SignatureRefused as exc:
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None
        except (HeartbeatRefused, IngressRefused) as exc:
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        known = self.registry.heartbeat(
            req.node_id, req.address, req.http_address, list(req.alive_edges)
        )
        reply = pb.HeartbeatReply(
            known=known, entry_node_id=self.node_id, entry_http_address=self.http_address
        )
        if known:
            reply.edges.extend(
                edge_info(m, self.authority) for m in self.registry.edges_of(req.node_id)
            )
        return reply

    def tick(self) -> None:
        """Periodic upkeep: sync the entry's own SN part with the registry, expire the dead."""
        self.own_sn.sync_edges(
            [edge_info(m, self.authority) for m in self.registry.edges_of(self.node_id)]
        )
        alive = [e.node_id for e in self.own_sn.edges.alive()]
        self.registry.set_entry_edges(self.node_id, alive)
        self.expire()

    def expire(self) -> list[str]:
        """Write ``node_left`` ("heartbeat timeout") for every member silent for longer than the
        heartbeat timeout and free its place; returns the node ids that left.

        A member whose block the ledger cannot take now (down) stays and is tried again at the
        next tick; the chain refusing it (the chain does not list it) only frees its place.
        """
        left: list[str] = []
        with self._lock:
            busy = self.in_round()
            for m in self.registry.expired():
                if m.node_id in busy:
                    continue  # after the round block that may count it
                try:
                    self.chain.append(
                        "node_left",
                        NodeLeftPayload(node_id=m.node_id, reason=HEARTBEAT_TIMEOUT_REASON),
                    )
                except LedgerError as exc:
                    log.warning("could not record that %s %s left: %s", m.role, m.node_id, exc)
                    continue
                except ChainError as exc:
                    log.warning("the chain does not list %s %s as a member: %s", m.role, m.node_id, exc)
                self.registry.depart(m.node_id)
                self.beats.forget(m.node_id)
                left.append(m.node_id)
                log.info(
                    "%s %s left: no heartbeat for %.0f s", m.role, m.node_id,
                    self.settings.heartbeat_timeout,
                )
        return left
