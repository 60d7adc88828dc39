"""gRPC channels and servers with explicit message-size bounds and optional mutual TLS.

Every channel and server fedchain opens goes through here so that the bounds from
``Settings.max_message_mb`` and the TLS files (``--tls-cert/--tls-key/--tls-ca``) apply
everywhere alike.
"""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from fedchain.shared.config import ConfigError, Settings


@dataclass(frozen=True)
class NetConfig:
    """What a gRPC endpoint needs to know: size bound and TLS material (PEM bytes)."""

    max_message_bytes: int
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    tls_ca: bytes | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None or self.tls_ca is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> NetConfig:
        """Read the TLS files named in settings; refuse half a configuration with a clear message."""

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
        return cls(settings.max_message_mb * 1024 * 1024, cert, key, ca)

    def options(self) -> list[tuple[str, int]]:
        """Channel/server options: explicit send/receive bounds (+ 64 KiB for framing)."""
        bound = self.max_message_bytes + 64 * 1024
        return [
            ("grpc.max_send_message_length", bound),
            ("grpc.max_receive_message_length", bound),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]


def make_server(net: NetConfig, host: str, port: int, *, workers: int = 16) -> grpc.Server:
    """A gRPC server bound to host:port (TLS when configured). Raises ConfigError if the port is taken.

    gRPC enables SO_REUSEPORT by default, which lets a second server silently share a port;
    it is turned off so that a taken port is an error, not two nodes answering at random.
    """
    options = [*net.options(), ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    address = f"{host}:{port}"
    try:
        if net.tls_cert is not None and net.tls_key is not None:
            creds = grpc.ssl_server_credentials(
                [(net.tls_key, net.tls_cert)],
                root_certificates=net.tls_ca,
                require_client_auth=net.tls_ca is not None,
            )
            bound = server.add_secure_port(address, creds)
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on {address}: {exc}") from exc
    if bound == 0:
        raise ConfigError(f"cannot listen on {address} (port in use or address not local)")
    return server


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
        creds = grpc.ssl_channel_credentials(
            root_certificates=net.tls_ca, private_key=net.tls_key, certificate_chain=net.tls_cert
        )
        return grpc.secure_channel(address, creds, options=options)
    return grpc.insecure_channel(address, options=options)


def parse_address(value: str, what: str = "address") -> tuple[str, int]:
    """Split HOST:PORT; raise ConfigError with a one-line message when it is not one."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} must be HOST:PORT, got {value!r}")
    return host, int(port)
