"""Run a FastAPI app with uvicorn in a background thread on a socket we bind ourselves."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from fedchain.shared.config import ConfigError


class HttpServer:
    """A uvicorn server in a daemon thread; ``stop()`` shuts it down."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise ConfigError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror}") from None
        self.sock.listen(128)
        self.sock.set_inheritable(True)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name=f"http-{port}", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self, wait: float = 10.0) -> None:
        """Start serving; wait until uvicorn reports it started (bounded)."""
        self.thread.start()
        deadline = time.monotonic() + wait
        while not self.server.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()
