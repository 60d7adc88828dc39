"""What every node process needs at start-up: its addresses, its key, a stop flag for SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.crypto import NodeKey


def node_addresses(settings: Settings) -> tuple[str, str]:
    """(gRPC address, HTTP address) peers use to reach this node.

    Bound to all interfaces without --advertise-host, the node advertises its host name
    (what a container network resolves).
    """
    host = settings.advertise_host or settings.host
    if host in ("0.0.0.0", "::", "") and not settings.advertise_host:
        host = socket.gethostname()
    return f"{host}:{settings.port}", f"{host}:{settings.effective_http_port}"


def load_key(settings: Settings) -> NodeKey:
    """The node's Ed25519 key: ``--node-key`` or ``node.key`` in its state dir (made on first start)."""
    path = settings.node_key or Path(settings.state_dir) / "node.key"
    try:
        return NodeKey.load_or_create(path)
    except (ValueError, OSError) as exc:
        raise ConfigError(str(exc)) from None


class StopFlag:
    """Set by SIGTERM/SIGINT; the main thread waits on it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.event.set())

    def wait(self) -> None:
        while not self.event.wait(0.5):
            pass
