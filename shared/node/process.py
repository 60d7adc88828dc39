"""What every node process needs at start-up: its addresses, its key, a stop flag for SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import grpc

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


SERVERS_STOP_S = 1.5
"""Seconds a stopping node gives its gRPC calls and HTTP requests in flight (both at once)."""


def stop_servers(http: _Stoppable, server: grpc.Server, budget_s: float = SERVERS_STOP_S) -> None:
    """Stop a node's gRPC server and HTTP API together, within about ``budget_s``: calls in
    flight get that long to finish, then both are closed (part of the 5 s stop budget)."""
    done = server.stop(grace=budget_s)
    http.stop(wait=budget_s)
    done.wait(budget_s)


class _Stoppable(Protocol):
    def stop(self, wait: float = ...) -> None: ...


def exit_after_stop(code: int = 0) -> None:
    """End the process now that the node has stopped in order (servers closed, rounds ended,
    state written): flush the logs and the standard streams, then ``os._exit``.

    Interpreter teardown of a process that imported torch (a collection over a large heap,
    module finalisers) took 1-4 s on a loaded 2-core host, measured with py-spy; nothing
    in it is needed once the node's own stop is done, and it would break the 5 s stop bound.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class StopRequested(BaseException):
    """A stop signal arrived during a start-up step (``StopFlag.starting``): unwind and exit 0.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` on the
    way swallows it."""


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
        self._starting = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, *_: object) -> None:
        self.set()
        if self._starting:  # a start-up step may be blocked on a peer: end it now
            self._starting = False
            raise StopRequested

    @contextmanager
    def starting(self) -> Iterator[None]:
        """A start-up step (the entry's bootstrap: genesis, the tip, the model from the
        ledger): a stop signal inside it raises ``StopRequested`` in the main thread, so a
        step blocked on a hung peer ends at once instead of at its deadline. Nothing runs
        yet that needs an orderly stop; a ledger write under way is rolled back."""
        if self.event.is_set():
            raise StopRequested
        self._starting = True
        try:
            yield
        finally:
            self._starting = False

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
