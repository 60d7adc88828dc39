"""HTTPS on the nodes' HTTP APIs: the certificate of `fedchain certs`, checked against its CA;
plain HTTP on that port gets no answer; half a configuration or a bad file is refused at start."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fedchain.services.cli.certs import make_certs
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.net.http_server import HttpServer
from fedchain.shared.net.https import HttpClientTls, HttpTls, client_context
from tests.conftest import REPO, free_port


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    make_certs(out, ("localhost", "127.0.0.1"))
    return out


@pytest.fixture()
def https_port(certs: Path) -> Iterator[int]:
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "role": "SN"}

    port = free_port()
    server = HttpServer(app, "127.0.0.1", port, tls=HttpTls(certs / "http.pem", certs / "http.key"))
    assert server.start()
    try:
        yield port
    finally:
        server.stop()


def test_https_answers_a_client_that_trusts_the_ca(certs: Path, https_port: int) -> None:
    r = httpx.get(f"https://127.0.0.1:{https_port}/health", verify=client_context(certs / "ca.pem"))
    assert r.json()["status"] == "ok"


def test_plain_http_and_an_unknown_ca_get_no_answer(https_port: int, tmp_path: Path) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{https_port}/health", timeout=5)
    other = tmp_path / "other"
    make_certs(other, ("127.0.0.1",))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{https_port}/health", verify=client_context(other / "ca.pem"))


def test_half_a_pair_or_a_bad_file_is_refused(certs: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="given together"):
        HttpTls.from_settings(Settings(_env_file=None, http_tls_cert=certs / "http.pem"))
    with pytest.raises(ConfigError, match="does not exist"):
        HttpTls.from_settings(
            Settings(_env_file=None, http_tls_cert=tmp_path / "no.pem", http_tls_key=certs / "http.key")
        )
    with pytest.raises(ConfigError, match="cannot serve HTTPS"):
        HttpServer(FastAPI(), "127.0.0.1", free_port(), tls=HttpTls(certs / "ca.pem", certs / "http.key"))


def test_a_node_serving_https_reaches_its_peers_over_https(certs: Path) -> None:
    plain = HttpClientTls.from_settings(Settings(_env_file=None, tls_ca=certs / "ca.pem"))
    assert plain.url("msn:9080") == "http://msn:9080" and plain.verify() is True
    tls = HttpClientTls.from_settings(Settings(
        _env_file=None, tls_ca=certs / "ca.pem",
        http_tls_cert=certs / "http.pem", http_tls_key=certs / "http.key",
    ))
    assert tls.url("msn:9080") == "https://msn:9080" and tls.ca == certs / "ca.pem"


def test_the_container_health_check_speaks_https(certs: Path, https_port: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDCHAIN_", "FC_"))}
    env.update(FC_HEALTH_PORT=str(https_port), FEDCHAIN_HTTP_TLS_CERT=str(certs / "http.pem"),
               FEDCHAIN_TLS_CA=str(certs / "ca.pem"))
    check = [sys.executable, str(REPO / "docker" / "healthcheck.py")]
    ok = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and f"https://127.0.0.1:{https_port}/health: ok (SN)" in ok.stdout
    env.pop("FEDCHAIN_HTTP_TLS_CERT")
    plain = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
    assert plain.returncode == 1, plain.stdout
