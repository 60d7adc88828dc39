"""Bounds at the transport: streams cannot starve unary calls or outlive their budget;
HTTP bodies are bounded and the token is checked before a body is read. 127.0.0.1 only."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from fastapi import FastAPI, Request

from fedchain.shared import processes
from fedchain.shared.net.grpc_util import NetConfig, ServerBounds, make_channel, make_server
from fedchain.shared.net.http_server import MISSING_TOKEN, HttpServer, RequestGuard

STREAMS = 24
BUDGET_S = 2.0
PING_BOUND_S = 1.5


_free_port = processes.free_port


@pytest.fixture()
def stalling_server() -> Iterator[tuple[str, threading.Event]]:
    """A bounded server with a stream that never ends on its own and a unary Ping."""
    release = threading.Event()

    def stall(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        for _ in requests:  # blocks: the clients send nothing and never close
            pass
        return b"done"

    def ping(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"pong"

    handler = grpc.method_handlers_generic_handler(
        "t.Bounds",
        {
            "Stall": grpc.stream_unary_rpc_method_handler(stall),
            "Ping": grpc.unary_unary_rpc_method_handler(ping),
        },
    )
    port = _free_port()
    server = make_server(
        NetConfig(1 << 20), "127.0.0.1", port, bounds=ServerBounds(workers=8, budget_s=BUDGET_S)
    )
    server.add_generic_rpc_handlers((handler,))
    server.start()
    try:
        yield f"127.0.0.1:{port}", release
    finally:
        release.set()
        server.stop(0).wait(5)


def test_many_stalled_streams_do_not_starve_a_unary_call_and_end_after_their_budget(
    stalling_server: tuple[str, threading.Event],
) -> None:
    address, release = stalling_server
    net = NetConfig(1 << 20)

    def silent() -> Iterator[bytes]:
        release.wait(BUDGET_S * 5)  # a client that sends nothing (bounded for the test)
        return
        yield b""

    def open_stream(channel: grpc.Channel) -> tuple[grpc.StatusCode, float]:
        start = time.monotonic()
        try:
            channel.stream_unary("/t.Bounds/Stall")(silent(), timeout=BUDGET_S * 6)
            return grpc.StatusCode.OK, time.monotonic() - start
        except grpc.RpcError as err:
            return err.code(), time.monotonic() - start

    with make_channel(net, address) as channel, ThreadPoolExecutor(STREAMS) as pool:
        streams = [pool.submit(open_stream, channel) for _ in range(STREAMS)]
        time.sleep(0.5)  # let them all arrive
        ping = channel.unary_unary("/t.Bounds/Ping")
        for _ in range(5):
            start = time.monotonic()
            assert ping(b"", timeout=PING_BOUND_S * 2) == b"pong"
            assert time.monotonic() - start < PING_BOUND_S
        results = [f.result(timeout=BUDGET_S * 6) for f in streams]
    codes = [code for code, _ in results]
    served = ServerBounds(workers=8).max_streams
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == STREAMS - served, codes
    ended = [secs for code, secs in results if code == grpc.StatusCode.CANCELLED]
    assert len(ended) == served, codes
    assert all(BUDGET_S * 0.9 < secs < BUDGET_S + 3 for secs in ended), ended


def test_stream_budgets_are_per_method() -> None:
    bounds = ServerBounds(budget_s=300, budgets={"Range": 60})
    assert (bounds.budget("Range"), bounds.budget("FetchModel")) == (60, 300)
    assert bounds.max_streams == 28 and bounds.max_rpcs == 128
    assert ServerBounds(workers=2).max_streams == 1


# ---------------------------------------------------------------- HTTP

LIMIT = 64 * 1024
TOKEN = "s3cret-token"


@pytest.fixture()
def http_url() -> Iterator[str]:
    app = FastAPI()
    app.add_middleware(RequestGuard, token=TOKEN, protected=lambda method, path: method == "POST")

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    port = _free_port()
    server = HttpServer(app, "127.0.0.1", port, max_body_bytes=LIMIT)
    assert server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


def _headers_only(address: str, head: str) -> tuple[int, dict[str, str]]:
    """Send only a request's head (no body) and read the answer; bounded by a timeout."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(head.encode())
        raw = b""
        while b"\r\n\r\n" not in raw or not raw.endswith(b"}"):
            piece = conn.recv(4096)
            if not piece:
                break
            raw += piece
    status_line, _, rest = raw.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body)


def test_an_oversized_body_is_a_413_with_a_json_message(http_url: str) -> None:
    status, body = _headers_only(
        http_url,
        f"POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {LIMIT + 1}\r\n\r\n",
    )
    assert status == 413
    assert body == {"detail": f"request body of {LIMIT + 1} bytes exceeds the limit of {LIMIT} bytes"}


def test_an_oversized_chunked_body_is_refused_after_the_limit(http_url: str) -> None:
    sent = 0

    def pieces() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 8192
            yield b"x" * 8192

    r = httpx.post(f"http://{http_url}/echo", content=pieces(), timeout=10,
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 413 and "exceeds the limit" in r.json()["detail"]


def test_an_unauthenticated_body_is_refused_before_it_is_read(http_url: str) -> None:
    status, body = _headers_only(
        http_url,
        f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {LIMIT // 2}\r\n\r\n",
    )
    assert status == 401 and body == {"detail": MISSING_TOKEN}


def test_a_small_authenticated_body_and_a_get_pass(http_url: str) -> None:
    r = httpx.post(f"http://{http_url}/echo", content=b"y" * 1000, timeout=10,
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json() == {"bytes": 1000}
    assert httpx.get(f"http://{http_url}/health", timeout=10).json() == {"status": "ok"}
    wrong = httpx.post(f"http://{http_url}/echo", content=b"{}", timeout=10,
                       headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "wrong API token" in wrong.json()["detail"]
