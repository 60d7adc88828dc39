"""The one HTTP server runner: a FastAPI app under uvicorn in a background thread.

``HttpServer`` binds the socket itself (a taken port is a ``ConfigError`` at once) and
wraps the app in ``RequestGuard``, which bounds every request body: a declared length
over the limit is answered 413 before anything is read, an undeclared (chunked) body is
read up to the limit and no further. Apps that need a bearer token install the same
guard with ``token`` and ``protected``: the token is checked before the body is read.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from fastapi import FastAPI

from fedchain.shared.config import ConfigError
from fedchain.shared.limits import HTTP_BODY_BYTES
from fedchain.shared.net.https import HttpTls

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MISSING_TOKEN = "missing bearer token: send 'Authorization: Bearer $FEDCHAIN_API_TOKEN'"
WRONG_TOKEN = "wrong API token (FEDCHAIN_API_TOKEN)"


def bearer_problem(header: str, token: str) -> str | None:
    """None when ``header`` (an Authorization value) carries ``token``; else what is wrong."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return MISSING_TOKEN
    if not hmac.compare_digest(given.encode(), token.encode()):
        return WRONG_TOKEN
    return None


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: bearer token first (for ``protected`` requests), then a body limit.

    ``protected(method, path)`` says which requests need ``token``; without a token only
    the body limit applies. Refusals are JSON ``{"detail": ...}``: 401 for the token,
    413 for a body over ``max_body_bytes``, 400 for a malformed Content-Length.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = HTTP_BODY_BYTES,
        token: str | None = None,
        protected: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.token = token
        self.protected = protected

    def _too_large(self, size: int | None) -> str:
        what = "request body" if size is None else f"request body of {size} bytes"
        return f"{what} exceeds the limit of {self.max_body_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {bytes(k).lower(): bytes(v) for k, v in scope.get("headers", ())}
        method, path = str(scope.get("method", "")), str(scope.get("path", ""))
        if self.token is not None and self.protected is not None and self.protected(method, path):
            problem = bearer_problem(headers.get(b"authorization", b"").decode("latin-1"), self.token)
            if problem is not None:
                await _answer(send, 401, problem)
                return
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _answer(send, 400, "malformed Content-Length header")
                return
            size = int(declared)
            if size > self.max_body_bytes:
                await _answer(send, 413, self._too_large(size))
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body.extend(message.get("body", b""))
            if len(body) > self.max_body_bytes:
                await _answer(send, 413, self._too_large(None))
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv6 when the host has a colon); ConfigError if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class HttpServer:
    """A uvicorn server in a daemon thread; ``stop()`` shuts it down.

    Every request body is bounded by ``max_body_bytes`` (``RequestGuard``). With ``tls``
    the port speaks HTTPS only (uvicorn's ``ssl_certfile`` / ``ssl_keyfile``).
    """

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        *,
        max_body_bytes: int = HTTP_BODY_BYTES,
        tls: HttpTls | None = None,
    ) -> None:
        guarded = RequestGuard(app, max_body_bytes=max_body_bytes)
        ssl_files: dict[str, Any] = (
            {} if tls is None else {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
        )
        config = uvicorn.Config(
            guarded, log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=1, **ssl_files,
        )
        try:
            config.load()  # reads the certificate and key now: a bad file is refused at start
        except (OSError, ssl.SSLError) as exc:
            files = "" if tls is None else f" with {tls.cert} and {tls.key}"
            raise ConfigError(f"cannot serve HTTPS{files}: {exc}") from None
        self.tls = tls
        self.sock = bind(host, port)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name=f"http-{port}", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self, wait: float = 10.0) -> bool:
        """Start serving; wait (bounded) until uvicorn reports it started. True when it has."""
        self.thread.start()
        deadline = time.monotonic() + wait
        while not self.server.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)
        return bool(self.server.started)

    def stop(self, wait: float = 5.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=wait)
        self.sock.close()
