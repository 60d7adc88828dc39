"""The ledger service: gRPC and HTTP over one ``Ledger``, in one process.

``LedgerService`` starts and stops both listeners (used by tests and by ``serve``);
``serve(settings)`` runs until SIGTERM or SIGINT and then stops cleanly.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import grpc

from fedchain.services.ledger.grpc_service import LedgerServicer
from fedchain.services.ledger.http_api import create_app
from fedchain.services.ledger.metrics import LedgerMetrics
from fedchain.services.ledger.store import Ledger, open_ledger, redact
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.limits import chunk_bytes
from fedchain.shared.net.grpc_util import NetConfig, make_server
from fedchain.shared.net.http_server import HttpServer
from fedchain.shared.net.https import HttpTls, scheme
from fedchain.shared.net.ports import check_free
from fedchain.shared.rpc import ledger_pb2_grpc


class LedgerService:
    """gRPC on ``settings.port`` and HTTP on ``settings.effective_http_port`` for one Ledger."""

    def __init__(self, settings: Settings, ledger: Ledger | None = None) -> None:
        self.settings = settings
        self.ledger = ledger if ledger is not None else open_ledger(settings)
        self.metrics = LedgerMetrics()
        self.metrics.height.set(self.ledger.height())
        self._grpc: grpc.Server | None = None
        self._http: HttpServer | None = None

    @property
    def grpc_address(self) -> str:
        """HOST:PORT of the gRPC listener."""
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP listener."""
        tls = HttpTls.from_settings(self.settings)
        return f"{scheme(tls)}://{self.settings.host}:{self.settings.effective_http_port}"

    def start(self) -> None:
        """Bind both listeners and start serving (ConfigError if a port is taken)."""
        net = NetConfig.from_settings(self.settings)
        http = HttpServer(
            create_app(self.ledger, self.metrics),
            self.settings.host,
            self.settings.effective_http_port,
            tls=HttpTls.from_settings(self.settings),
        )
        try:
            server = make_server(net, self.settings.host, self.settings.port)
        except ConfigError:
            http.sock.close()
            raise
        servicer = LedgerServicer(
            self.ledger, self.metrics, chunk_bytes(self.settings),
            self.settings.keep_updates_policy,
        )
        ledger_pb2_grpc.add_LedgerServicer_to_server(servicer, server)
        server.start()
        self._grpc = server
        self._http = http
        if not http.start():
            self.stop()
            raise ConfigError(f"the HTTP server did not start on {self.http_url}")

    def stop(self, grace: float = 2.0) -> None:
        """Stop both listeners (in-flight calls get ``grace`` seconds) and close the database."""
        if self._http is not None:
            self._http.server.should_exit = True
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1)
            self._grpc = None
        if self._http is not None:
            self._http.stop(wait=grace + 3)
            self._http = None
        self.ledger.close()


def serve(
    settings: Settings,
    announce: Callable[[str], None] = print,
    *,
    entry_key: bytes | None = None,
    blob_quota_bytes: int | None = None,
) -> None:
    """Run the ledger service until SIGTERM/SIGINT, then stop cleanly.

    ``entry_key``: the entry's public key, pinned from the start (uploads before genesis
    and the genesis itself must be the entry's); ``blob_quota_bytes``: bytes of blobs no
    block references that the ledger accepts.
    """
    kwargs = {} if blob_quota_bytes is None else {"blob_quota_bytes": blob_quota_bytes}
    check_free(settings.host, settings.port, "--port")  # before the database and blobs exist
    check_free(settings.host, settings.effective_http_port, "--http-port")
    service = LedgerService(settings, open_ledger(settings, entry_key=entry_key, **kwargs))
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        announce(
            f"ledger: gRPC on {service.grpc_address}, HTTP on {service.http_url} "
            f"(chain {redact(service.ledger.db_url)}, blobs {service.ledger.blobs.root}, "
            f"height {service.ledger.height()}"
            + (f", entry key {entry_key.hex()[:16]}…" if entry_key else "")
            + ")"
        )
        while not stop.wait(0.5):
            pass
        announce("ledger: stopping")
    finally:
        service.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
