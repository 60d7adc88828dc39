"""Checks that a node's listening ports are free, before it creates or opens anything.

gRPC's C core logs its own line when a bind fails and the failure would otherwise come
after the ledger file, the blob folder or the node key were created. Probing with a plain
socket first turns a taken port into one fedchain line that changes nothing.
"""

from __future__ import annotations

import errno
import socket

from fedchain.shared.config import ConfigError


def check_free(host: str, port: int, flag: str) -> None:
    """Raise ConfigError naming ``flag`` if ``host:port`` cannot be bound right now.

    SO_REUSEADDR is set as gRPC and uvicorn set it, so a port left in TIME_WAIT by a
    node that just stopped counts as free, and a port something listens on does not.
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host.strip("[]"), port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{flag} {port}: {host}:{port} is already in use (another node running?)"
            ) from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            reason = "not an address of this machine" if exc.errno == errno.EADDRNOTAVAIL else "not allowed"
            raise ConfigError(f"{flag} {port}: cannot listen on {host}:{port} ({reason})") from None
        raise ConfigError(f"{flag} {port}: cannot listen on {host}:{port}: {exc.strerror}") from None
    except socket.gaierror as exc:
        raise ConfigError(f"{flag} {port}: host {host!r} does not resolve ({exc.strerror})") from None
