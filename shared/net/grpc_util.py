"""gRPC channels and servers with explicit message-size bounds and optional mutual TLS.

Every channel and server fedchain opens goes through here so that the bounds from
``Settings.max_message_mb`` and the TLS files (``--tls-cert/--tls-key/--tls-ca``) apply
everywhere alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.crypto import NodeKey
from fedchain.shared.limits import FRAMING_BYTES, message_bytes
from fedchain.shared.net.ports import check_free
from fedchain.shared.net.tls import (
    CertificateIssuer,
    NodeTls,
    PeerIdentityCheck,
    TlsPair,
    TlsRefused,
    node_tls,
)


@dataclass(frozen=True)
class NetConfig:
    """What a gRPC endpoint needs to know: size bound and TLS material (PEM bytes).

    ``identity``: a node's own certificate (bearing its node id), which the entry may
    replace at join (``shared/net/tls.py``); it then takes the place of cert and key.
    """

    max_message_bytes: int
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    tls_ca: bytes | None = None
    identity: NodeTls | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None or self.tls_ca is not None or self.identity is not None

    def pair(self) -> TlsPair | None:
        """The key and certificate this endpoint presents now (None: none)."""
        if self.identity is not None:
            return self.identity.pair()
        if self.tls_cert is not None and self.tls_key is not None:
            return TlsPair(self.tls_key, self.tls_cert)
        return None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, node_key: NodeKey | None = None, hosts: tuple[str, ...] = ()
    ) -> NetConfig:
        """Read the TLS files named in settings; refuse half a configuration with a clear message.

        With ``node_key`` (an SN or EN process) and ``--tls-ca``, the node presents a
        certificate bearing its node id: its own from an earlier join, one it issues itself
        with ``--tls-ca-key`` (the entry), or the enroll certificate until the entry issues
        it one at join.
        """

        def read(path: Path | None, what: str) -> bytes | None:
            if path is None:
                return None
            if not Path(path).is_file():
                raise ConfigError(f"TLS {what} file {path} does not exist")
            return Path(path).read_bytes()

        cert = read(settings.tls_cert, "certificate")
        key = read(settings.tls_key, "key")
        ca = read(settings.tls_ca, "CA")
        if (cert is None) != (key is None):
            raise ConfigError("--tls-cert and --tls-key must be given together")
        if cert is not None and ca is None:
            raise ConfigError("--tls-ca is needed with --tls-cert (peers are verified against it)")
        if settings.tls_ca_key is not None and ca is None:
            raise ConfigError("--tls-ca-key needs --tls-ca (the CA certificate it belongs to)")
        read(settings.tls_ca_key, "CA key")
        net = cls(message_bytes(settings), cert, key, ca)
        if node_key is None or ca is None:
            return net
        try:
            issuer = None
            if settings.tls_ca_key is not None and settings.tls_ca is not None:
                issuer = CertificateIssuer.load(settings.tls_ca, settings.tls_ca_key)
            bootstrap = TlsPair(key, cert) if key is not None and cert is not None else None
            identity = node_tls(
                ca, bootstrap, node_key=node_key, state_dir=settings.state_dir, hosts=hosts,
                issuer=issuer,
            )
        except (TlsRefused, ValueError, OSError) as exc:
            raise ConfigError(f"TLS: {exc}") from None
        return cls(net.max_message_bytes, cert, key, ca, identity)

    def options(self) -> list[tuple[str, int]]:
        """Channel/server options: explicit send/receive bounds (+ 64 KiB for framing)."""
        bound = self.max_message_bytes + FRAMING_BYTES
        return [
            ("grpc.max_send_message_length", bound),
            ("grpc.max_receive_message_length", bound),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]


STREAM_BUDGET_S = 300.0
"""Default server-side budget (seconds) of one streaming call (model, update, blob)."""
STREAM_BUDGETS: Mapping[str, float] = {"Range": 60.0}
"""Budgets of streaming methods (by method name) that differ from ``STREAM_BUDGET_S``."""
RESERVED_WORKERS = 4
"""Workers that streams may never take, so unary calls (Join, Heartbeat, ...) always run."""
QUEUED_RPCS_PER_WORKER = 4
"""``maximum_concurrent_rpcs`` is the worker count times this; more calls are refused."""


@dataclass(frozen=True)
class ServerBounds:
    """Resource bounds of a gRPC server: workers, streams, calls, and stream budgets."""

    workers: int = 32
    budget_s: float = STREAM_BUDGET_S
    budgets: Mapping[str, float] | None = None

    @property
    def max_streams(self) -> int:
        """Streaming calls served at once: the workers less the ones kept for unary calls."""
        return max(1, self.workers - min(RESERVED_WORKERS, self.workers // 2))

    @property
    def max_rpcs(self) -> int:
        return self.workers * QUEUED_RPCS_PER_WORKER

    def budget(self, method: str) -> float:
        table = STREAM_BUDGETS if self.budgets is None else self.budgets
        return float(table.get(method, self.budget_s))


class StreamBounds(grpc.ServerInterceptor):  # type: ignore[misc]
    """Caps the streaming calls served at once and ends any that outlive their budget.

    A stream over the cap is refused at once with RESOURCE_EXHAUSTED (it would otherwise
    queue for a worker, and unary calls behind it). A stream still running when its
    method's budget is spent is cancelled by the server, which wakes a handler blocked on
    a silent client or a stalled reader.
    """

    def __init__(self, bounds: ServerBounds) -> None:
        self.bounds = bounds
        self._slots = threading.BoundedSemaphore(bounds.max_streams)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return handler
        method = str(handler_call_details.method).rpartition("/")[2]
        budget = self.bounds.budget(method)
        if handler.request_streaming and handler.response_streaming:
            return handler  # no bidirectional methods in fedchain's services
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                self._unary_reply(handler.stream_unary, method, budget),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_stream_rpc_method_handler(
            self._streamed_reply(handler.unary_stream, method, budget),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _enter(self, context: grpc.ServicerContext, method: str, budget: float) -> threading.Timer:
        if not self._slots.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{method}: {self.bounds.max_streams} streams are already in progress; retry later",
            )
        timer = threading.Timer(budget, context.cancel)
        timer.daemon = True
        timer.start()
        return timer

    def _leave(self, timer: threading.Timer) -> None:
        timer.cancel()
        self._slots.release()

    def _unary_reply(self, behaviour: Any, method: str, budget: float) -> Any:
        def handle(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            timer = self._enter(context, method, budget)
            try:
                return behaviour(requests, context)
            finally:
                self._leave(timer)

        return handle

    def _streamed_reply(self, behaviour: Any, method: str, budget: float) -> Any:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            timer = self._enter(context, method, budget)
            try:
                yield from behaviour(request, context)
            finally:
                self._leave(timer)

        return handle


def make_server(
    net: NetConfig, host: str, port: int, *, workers: int = 32, bounds: ServerBounds | None = None
) -> grpc.Server:
    """A bounded gRPC server bound to host:port (TLS when configured).

    ``workers`` threads (or ``bounds.workers``); at most ``bounds.max_rpcs`` calls at once;
    streams capped and given budgets by ``StreamBounds``. Raises ConfigError if the port is
    taken: gRPC enables SO_REUSEPORT by default, which lets a second server silently share a
    port; it is turned off so that a taken port is an error, not two nodes answering at random.
    """
    if port:
        check_free(host, port, "--port")  # one line, before gRPC's C core logs its own
    limits = bounds if bounds is not None else ServerBounds(workers=workers)
    options = [*net.options(), ("grpc.so_reuseport", 0)]
    interceptors: list[grpc.ServerInterceptor] = [StreamBounds(limits)]
    if net.tls_ca is not None:  # mutual TLS: a signed message must come from its signer
        interceptors.append(PeerIdentityCheck())
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="grpc"),
        interceptors=interceptors,
        options=options,
        maximum_concurrent_rpcs=limits.max_rpcs,
    )
    address = f"{host}:{port}"
    pair = net.pair()
    try:
        if pair is not None:
            bound = server.add_secure_port(address, _server_credentials(net, pair))
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on {address}: {exc}") from exc
    if bound == 0:
        raise ConfigError(f"cannot listen on {address} (port in use or address not local)")
    return server


def _server_credentials(net: NetConfig, pair: TlsPair) -> grpc.ServerCredentials:
    """Server TLS; with a node identity, each handshake presents its current certificate."""
    identity = net.identity
    if identity is None:
        return grpc.ssl_server_credentials(
            [(pair.key, pair.cert)],
            root_certificates=net.tls_ca,
            require_client_auth=net.tls_ca is not None,
        )
    ca = identity.ca
    seen = [identity.version]

    def config(now: TlsPair) -> Any:
        return grpc.ssl_server_certificate_configuration([(now.key, now.cert)], root_certificates=ca)

    def fetch() -> Any:
        if identity.version == seen[0]:
            return None  # unchanged
        seen[0] = identity.version
        return config(identity.pair())

    return grpc.dynamic_ssl_server_credentials(
        config(pair), fetch, require_client_authentication=True
    )


RECONNECT_BACKOFF_MS = (250, 2_000)
"""First and longest wait (ms) before a channel redials a peer that went away.

gRPC's defaults (1 s growing to 120 s) leave a node deaf for minutes after a network cut
or a peer restart; nodes on one federation redial quickly instead.
"""


def channel_options(net: NetConfig) -> list[tuple[str, int]]:
    """Options of a client channel: the endpoint bounds plus a short reconnect backoff."""
    first, longest = RECONNECT_BACKOFF_MS
    return [
        *net.options(),
        ("grpc.initial_reconnect_backoff_ms", first),
        ("grpc.min_reconnect_backoff_ms", first),
        ("grpc.max_reconnect_backoff_ms", longest),
    ]


def make_channel(net: NetConfig, address: str) -> grpc.Channel:
    """A channel to HOST:PORT with the same bounds and TLS material as our server."""
    options = channel_options(net)
    if net.tls:
        pair = net.pair()
        creds = grpc.ssl_channel_credentials(
            root_certificates=net.tls_ca if net.identity is None else net.identity.ca,
            private_key=None if pair is None else pair.key,
            certificate_chain=None if pair is None else pair.cert,
        )
        return grpc.secure_channel(address, creds, options=options)
    return grpc.insecure_channel(address, options=options)


def parse_address(value: str, what: str = "address") -> tuple[str, int]:
    """Split HOST:PORT; raise ConfigError with a one-line message when it is not one."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} must be HOST:PORT, got {value!r}")
    return host, int(port)
