"""What every node process needs at start-up: its addresses, its key, a stop flag for SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.crypto import NodeKey

log = logging.getLogger("fedchain.node")


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


SHUTDOWN_DEADLINE_S = 15.0
"""Seconds from SIGTERM/SIGINT to a forced exit: below compose's 20 s stop grace period."""


class StopFlag:
    """Set by SIGTERM/SIGINT; the main thread waits on it.

    The first signal also starts a watchdog: if the process is still alive ``deadline_s``
    later — a step of the shutdown stuck on a loaded host, a thread the interpreter waits
    for at exit — it logs so and exits at once, so an orchestrator never has to SIGKILL it.
    """

    def __init__(self, deadline_s: float = SHUTDOWN_DEADLINE_S) -> None:
        self.event = threading.Event()
        self.deadline_s = deadline_s
        self._watchdog: threading.Thread | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.set())

    def set(self) -> None:
        """Ask the node to stop (what the signals do); the watchdog starts with the first call."""
        self.event.set()
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._force_exit, name="stop-watchdog", daemon=True)
            self._watchdog.start()

    def _force_exit(self) -> None:
        time.sleep(self.deadline_s)
        log.warning("still stopping %.0f s after the stop signal; exiting now", self.deadline_s)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)

    def wait(self) -> None:
        while not self.event.wait(0.5):
            pass
