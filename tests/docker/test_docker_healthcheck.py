"""docker/healthcheck.py: healthy only when /health answers {"status": "ok"}."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import REPO, free_port

HEALTHCHECK = REPO / "docker" / "healthcheck.py"


class _Handler(BaseHTTPRequestHandler):
    status_code = 200
    body: bytes = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path != "/health":
            self.send_error(404)
            return
        self.send_response(self.server.status_code)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.server.body)  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("FEDCHAIN_", "FC_"))}
    full.update(env)
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env=full, capture_output=True,
                          text=True, timeout=30)


def serve(srv: ThreadingHTTPServer, code: int, body: object) -> None:
    srv.status_code = code  # type: ignore[attr-defined]
    srv.body = json.dumps(body).encode()  # type: ignore[attr-defined]


def test_healthy_node(server: ThreadingHTTPServer) -> None:
    serve(server, 200, {"status": "ok", "role": "EN"})
    result = run_check(FEDCHAIN_HTTP_PORT=str(server.server_port))
    assert result.returncode == 0
    assert "ok (EN)" in result.stdout


def test_default_port_is_grpc_port_plus_1000(server: ThreadingHTTPServer) -> None:
    serve(server, 200, {"status": "ok", "role": "SN"})
    port = server.server_port
    if port <= 1000:
        pytest.skip("ephemeral port too low to derive a gRPC port")
    assert run_check(FEDCHAIN_PORT=str(port - 1000)).returncode == 0


@pytest.mark.parametrize("code, body", [(500, {"detail": "boom"}), (200, {"status": "starting"}),
                                        (200, ["ok"])])
def test_unhealthy_answers(server: ThreadingHTTPServer, code: int, body: object) -> None:
    serve(server, code, body)
    result = run_check(FC_HEALTH_PORT=str(server.server_port))
    assert result.returncode == 1
    assert result.stdout.count("\n") == 1


def test_nothing_listening_is_unhealthy() -> None:
    result = run_check(FEDCHAIN_HTTP_PORT=str(free_port()))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
