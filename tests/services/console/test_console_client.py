"""ControlClient against a node speaking the control API over real HTTP, and against failures."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from fake_control_node import TOKEN, RunningNode
from safetensors.numpy import load_file

from fedchain.services.console.client import ControlClient
from fedchain.services.console.errors import (
    ApiError,
    AuthError,
    ConnectError,
    ConsoleError,
    UsageError,
)
from tests.conftest import free_port


def client_for(node: RunningNode, token: str = TOKEN, timeout: float = 5.0) -> ControlClient:
    return ControlClient(node.url, token, timeout=timeout)


def test_super_node_is_accepted(fake_node: RunningNode) -> None:
    with client_for(fake_node) as client:
        assert client.ensure_super_node().role == "SN"


def test_edge_node_is_refused_with_one_line(fake_node: RunningNode) -> None:
    fake_node.node.role = "EN"
    with client_for(fake_node) as client, pytest.raises(ConnectError) as info:
        client.ensure_super_node()
    message = str(info.value)
    assert "is an edge node (EN n-fake0000000000)" in message and "super node" in message
    assert "\n" not in message


def test_nothing_listening_is_one_line() -> None:
    port = free_port()
    with ControlClient(f"http://127.0.0.1:{port}", TOKEN, timeout=2) as client, pytest.raises(ConnectError) as info:
        client.status()
    assert f"cannot connect to http://127.0.0.1:{port}: nothing answers there" in str(info.value)


def test_wrong_token_is_refused_and_changes_nothing(fake_node: RunningNode) -> None:
    with client_for(fake_node, token="wrong") as client, pytest.raises(AuthError) as info:
        client.train(2, None)
    assert "refused the API token (missing or wrong API token)" in str(info.value)
    assert "FEDCHAIN_API_TOKEN" in str(info.value)
    assert fake_node.node.train_calls == [] and fake_node.node.state == "idle"


def test_node_error_detail_is_passed_on(fake_node: RunningNode) -> None:
    with client_for(fake_node) as client:
        client.train(3, "fedavg")
        with pytest.raises(ApiError) as info:
            client.train(1, None)
    assert info.value.status_code == 409
    assert str(info.value) == "POST /train: already training; pause() first (HTTP 409)"


def test_slow_node_fails_within_the_stated_timeout(fake_node: RunningNode) -> None:
    fake_node.node.status_delay = 3.0
    began = time.monotonic()
    with client_for(fake_node, timeout=0.5) as client, pytest.raises(ConnectError) as info:
        client.status()
    assert time.monotonic() - began < 2.0
    assert "did not answer GET /status within 0.5 s (--timeout)" in str(info.value)


def test_model_download_checks_digest(fake_node: RunningNode, tmp_path: Path) -> None:
    fake_node.node.round = 2
    target = tmp_path / "global.safetensors"
    with client_for(fake_node) as client:
        result = client.download_model(1, str(target))
    data = target.read_bytes()
    assert result == {"version": 1, "digest": hashlib.sha256(data).hexdigest(), "bytes": len(data), "path": str(target)}
    assert load_file(str(target))["base.weight"].tolist() == [[1.0] * 3] * 4
    assert [p.name for p in tmp_path.iterdir()] == ["global.safetensors"]


def test_model_download_into_a_directory_uses_the_version_name(fake_node: RunningNode, tmp_path: Path) -> None:
    fake_node.node.round = 4
    with client_for(fake_node) as client:
        result = client.download_model(None, str(tmp_path))
    assert result["version"] == 4 and result["path"] == str(tmp_path / "model-v4.safetensors")


def test_digest_mismatch_writes_nothing(fake_node: RunningNode, tmp_path: Path) -> None:
    fake_node.node.round = 1
    fake_node.node.bad_digest = True
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"old")
    with client_for(fake_node) as client, pytest.raises(ConsoleError, match="digest mismatch.*nothing was written"):
        client.download_model(None, str(target))
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_a_model_the_chain_does_not_record_is_refused(fake_node: RunningNode, tmp_path: Path) -> None:
    """A node that serves other bytes with a header matching them is caught by the chain's digest."""
    fake_node.node.round = 2
    fake_node.node.forged_model = True
    with client_for(fake_node) as client, pytest.raises(ConsoleError, match="the chain records .*nothing was written"):
        client.download_model(2, str(tmp_path / "m.safetensors"))
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_version_is_the_nodes_message(fake_node: RunningNode, tmp_path: Path) -> None:
    with (
        client_for(fake_node) as client,
        pytest.raises(ApiError, match=r"unknown model version 7 \(latest is 0\) \(HTTP 404\)"),
    ):
        client.download_model(7, str(tmp_path / "m.safetensors"))
    assert list(tmp_path.iterdir()) == []


def test_download_into_a_missing_directory_is_a_usage_error(fake_node: RunningNode, tmp_path: Path) -> None:
    with client_for(fake_node) as client, pytest.raises(UsageError, match="directory .*nope does not exist"):
        client.download_model(None, str(tmp_path / "nope" / "m.safetensors"))


class _HtmlHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>not fedchain</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def html_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_something_else_on_the_port_is_not_a_fedchain_node(html_server: str) -> None:
    with (
        ControlClient(html_server, TOKEN, timeout=2) as client,
        pytest.raises(ConnectError, match="not JSON: is it a fedchain node"),
    ):
        client.ensure_super_node()


def test_silent_listener_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        began = time.monotonic()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with ControlClient(url, TOKEN, timeout=0.5) as client, pytest.raises(ConnectError, match="within 0.5 s"):
            client.health()
        assert time.monotonic() - began < 2.0
    finally:
        listener.close()
