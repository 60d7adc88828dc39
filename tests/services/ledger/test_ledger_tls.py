"""The ledger over mutual TLS: a client with the CA and its own certificate gets in, others do not."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedchain.services.ledger.server import LedgerService
from fedchain.shared.config import Settings
from fedchain.shared.ledger.client import LedgerClient
from fedchain.shared.ledger.errors import LedgerUnavailable
from tests.conftest import free_port


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA, and a certificate for 127.0.0.1 signed by it (used by both server and client)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("fedchain test CA"))
        .issuer_name(_name("fedchain test CA"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": folder / "ca.pem", "cert": folder / "node.pem", "key": folder / "node.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(_pem_key(key))
    return paths


def test_mutual_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    settings = Settings(
        state_dir=tmp_path / "state",
        port=free_port(),
        http_port=free_port(),
        tls_ca=pki["ca"],
        tls_cert=pki["cert"],
        tls_key=pki["key"],
    )
    service = LedgerService(settings)
    service.start()
    try:
        with LedgerClient(
            service.grpc_address, tls_ca=pki["ca"], tls_cert=pki["cert"], tls_key=pki["key"]
        ) as c:
            assert c.tip() is None and c.verify().ok
        with (
            LedgerClient(service.grpc_address, timeout=3) as plain,
            pytest.raises(LedgerUnavailable),
        ):
            plain.tip()
    finally:
        service.stop()


def test_ledger_with_the_files_of_fedchain_certs_serves_grpc_and_https(tmp_path: Path) -> None:
    """What `up --tls` and docker-compose.tls.yml give the ledger: ledger.pem on gRPC (a
    node's enroll certificate gets in), http.pem on HTTP (HTTPS only)."""
    import httpx

    from fedchain.services.cli.certs import make_certs
    from fedchain.shared.net.https import client_context

    certs = tmp_path / "certs"
    make_certs(certs, ("localhost", "127.0.0.1"))
    settings = Settings(
        _env_file=None, state_dir=tmp_path / "state", port=free_port(), http_port=free_port(),
        tls_ca=certs / "ca.pem", tls_cert=certs / "ledger.pem", tls_key=certs / "ledger.key",
        http_tls_cert=certs / "http.pem", http_tls_key=certs / "http.key",
    )
    service = LedgerService(settings)
    service.start()
    try:
        assert service.http_url.startswith("https://")
        with LedgerClient(service.grpc_address, tls_ca=certs / "ca.pem", tls_cert=certs / "enroll.pem",
                          tls_key=certs / "enroll.key") as c:
            assert c.tip() is None
        health = httpx.get(f"{service.http_url}/health", verify=client_context(certs / "ca.pem"), timeout=10)
        assert health.status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{settings.effective_http_port}/health", timeout=5)
    finally:
        service.stop()
