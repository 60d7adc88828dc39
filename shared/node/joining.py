"""Joining the federation through the entry: one signed request, one retry policy, one deadline.

An SN and an EN join the same way: they send a signed ``JoinRequest`` to the entry and retry
while it cannot be reached. A status in ``FATAL_STATUSES`` (bad token, bad signature, a
refused role...) stops at once with the entry's own message; any other failure is retried,
pausing a little longer each time (the nodes' one ``RetryPolicy``, ``shared/net/retry.py``),
until the join's total time is used up. Setting the node's stop event (SIGTERM, SIGINT) ends
a join within ``POLL_S``, even in the middle of an RPC to an entry that does not answer.

The reply tells the node the chain it joined (``chain_id``, the genesis hash) and the
entry's key, and is signed by that key (``JOIN_REPLY``, over every field the node acts on and
its own request's timestamp, so an old reply replayed does not hold). The joiner checks the
signature, then the key: against ``entry_key`` (``--entry-key``) when it is given, else
against the key its ``TrustStore`` kept from the first join (trust on first use); a reply
that is not signed, or names another entry key or chain, is refused (``JoinRefused``).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import grpc

from fedchain.shared.config import ConfigError, Settings, token_value
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.retry import RETRY, RetryInterrupted, RetryPolicy
from fedchain.shared.net.signing import SignatureRefused, check_signed, join_message, join_reply_fields
from fedchain.shared.net.statements import Domain
from fedchain.shared.net.tls import NodeTls, TlsRefused
from fedchain.shared.node.trust import TrustRefused, TrustStore
from fedchain.shared.rpc import node_pb2 as pb
from fedchain.shared.rpc import node_pb2_grpc

FATAL_STATUSES: frozenset[grpc.StatusCode] = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
"""Statuses with which the entry refuses a node: retrying cannot help, so the join stops."""

POLL_S = 0.1
"""How often a join waiting on an RPC looks at the stop event."""

RPC_TIMEOUT_S = 30.0
"""The longest one Join RPC may take (less when the join's deadline is nearer)."""

ROLE_NAMES = {"SN": "super node", "EN": "edge node"}

ROLE_TOKENS = {"SN": "sn_join_token", "EN": "en_join_token"}
"""The join token each role presents: an SN its SN token, an EN its EN token, never the other."""


def join_token_for(role: str, settings: Settings) -> str:
    """The join token a node of ``role`` sends to the entry (the SN or the EN token)."""
    if role not in ROLE_TOKENS:
        raise ValueError(f"role must be one of {sorted(ROLE_TOKENS)}, got {role!r}")
    return token_value(settings, ROLE_TOKENS[role])


def entry_key_of(settings: Settings) -> bytes | None:
    """The entry key a node was given (``--entry-key`` / ``FEDCHAIN_ENTRY_KEY``), or None."""
    return bytes.fromhex(settings.entry_key) if settings.entry_key else None


class JoinError(ConfigError):
    """The node could not join; its message is one line a person can act on."""


class JoinRefused(JoinError):
    """The entry answered with a status in ``FATAL_STATUSES``; the message carries its reason."""


class ChainReplaced(JoinRefused):
    """The entry answered with another chain or entry key than the one this node joined."""


class JoinTimedOut(JoinError):
    """The entry stayed unreachable (or kept failing) for the join's whole time."""


class JoinCancelled(JoinError):
    """The node's stop event was set while it was joining."""


class StubSource(Protocol):
    """Where the joiner gets a stub for an address (``Peers`` in a node, a fake in tests)."""

    def stub(self, address: str) -> node_pb2_grpc.NodeStub: ...


class Joiner:
    """Joins one node (SN or EN) through the entry; one instance serves the first join and re-joins."""

    def __init__(
        self,
        peers: StubSource,
        key: NodeKey,
        *,
        role: str,
        entry: str,
        token: str,
        address: str,
        http_address: str,
        stop: threading.Event,
        policy: RetryPolicy = RETRY,
        trust: TrustStore | None = None,
        entry_key: bytes | None = None,
        tls: NodeTls | None = None,
    ) -> None:
        if role not in ROLE_NAMES:
            raise ValueError(f"role must be one of {sorted(ROLE_NAMES)}, got {role!r}")
        self.peers = peers
        self.key = key
        self.role = role
        self.entry = entry
        self.token = token
        self.address = address
        self.http_address = http_address
        self.stop = stop
        self.policy = policy
        self.trust = trust
        self.entry_key = entry_key
        """The entry key given (``--entry-key``): a join reply must be signed by it."""
        self.tls = tls
        """With mutual TLS: the join asks for a certificate bearing this node's id."""

    def request(self, avoid_sn: str = "") -> pb.JoinRequest:
        """A freshly timestamped, signed JoinRequest (built again for every attempt)."""
        ts = int(time.time() * 1000)
        req = pb.JoinRequest(
            token=self.token,
            role=self.role,
            public_key=self.key.public_bytes,
            address=self.address,
            http_address=self.http_address,
            timestamp_ms=ts,
            signature=self.key.sign(
                join_message(
                    self.role, self.key.public_bytes, self.address, ts, self.http_address, avoid_sn
                )
            ),
            avoid_sn=avoid_sn,
        )
        if self.tls is not None:
            self.tls.attach_csr(req)
        return req

    def join(self, *, avoid_sn: str = "", timeout: float = 120.0) -> pb.JoinReply:
        """Join through the entry within ``timeout`` s (``avoid_sn``: an SN an EN must not get).

        Raises ``JoinRefused``, ``JoinTimedOut`` or ``JoinCancelled`` (all ``ConfigError``s).
        """
        if self.stop.is_set():
            raise JoinCancelled(f"this {ROLE_NAMES[self.role]} stopped while joining")
        deadline = time.monotonic() + timeout

        def attempt() -> pb.JoinReply:
            request = self.request(avoid_sn)
            remaining = deadline - time.monotonic()
            reply = self._call(request, max(0.1, min(RPC_TIMEOUT_S, remaining)))
            return self._trusted(reply, request.timestamp_ms)

        try:
            return self.policy.within(timeout).call(
                attempt, retry_on=_retried, stop=self.stop
            )
        except RetryInterrupted:
            raise JoinCancelled(f"this {ROLE_NAMES[self.role]} stopped while joining") from None
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
            if code in FATAL_STATUSES:
                raise JoinRefused(f"the entry refused this {ROLE_NAMES[self.role]}: {details}") from None
            raise JoinTimedOut(
                f"could not join through the entry at {self.entry} within {timeout:.0f} s: "
                f"{code.name} {details}".rstrip()
            ) from None

    def _trusted(self, reply: pb.JoinReply, timestamp_ms: int) -> pb.JoinReply:
        """Check the reply's signature and its entry key; keep (or check) its chain and key."""
        key = bytes(reply.entry_public_key)
        if self.entry_key is not None and key != self.entry_key:
            raise JoinRefused(
                f"refusing the entry at {self.entry}: it answered with key {key.hex()[:16]}…, "
                f"not the --entry-key {self.entry_key.hex()[:16]}…"
            )
        try:
            check_signed(
                key, bytes(reply.signature), Domain.JOIN_REPLY, bytes(reply.chain_id),
                reply.entry_node_id, join_reply_fields(reply, timestamp_ms),
            )
        except SignatureRefused as exc:
            raise JoinRefused(
                f"refusing the entry at {self.entry}: its join reply does not hold ({exc})"
            ) from None
        if self.tls is not None:
            try:
                self.tls.accept(reply)
            except (TlsRefused, ValueError) as exc:
                raise JoinRefused(f"refusing the entry at {self.entry}: {exc}") from None
        if self.trust is None:
            return reply
        try:
            self.trust.adopt(
                bytes(reply.chain_id), bytes(reply.entry_public_key), reply.entry_node_id
            )
        except TrustRefused as exc:
            raise ChainReplaced(f"refusing the entry at {self.entry}: {exc}") from None
        return reply

    def _call(self, request: pb.JoinRequest, timeout: float) -> pb.JoinReply:
        """One Join RPC, abandoned (cancelled) as soon as the stop event is set."""
        future = self.peers.stub(self.entry).Join.future(request, timeout=timeout)
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        while not done.wait(POLL_S):
            if self.stop.is_set():
                future.cancel()
                raise JoinCancelled(f"this {ROLE_NAMES[self.role]} stopped while joining")
        reply: pb.JoinReply = future.result()
        return reply


def _retried(error: BaseException) -> bool:
    """A join is tried again after an RPC error, unless the entry refused the node."""
    return isinstance(error, grpc.RpcError) and error.code() not in FATAL_STATUSES
