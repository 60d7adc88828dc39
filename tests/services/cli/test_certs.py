"""`fedchain certs`: one command writes the CA and certificates; keys 0600; no silent overwrite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography import x509
from typer.testing import CliRunner

from fedchain.services.cli.main import app
from fedchain.shared.crypto import NodeKey
from fedchain.shared.net.tls import ENROLL_URI, CertificateIssuer, new_key, node_id_of, signed_by

runner = CliRunner()


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certs_writes_ca_and_certificates_with_private_keys(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    result = runner.invoke(app, ["certs", "--out", str(out), "--host", "msn", "--host", "10.0.0.5"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["ca.pem", "ca.key", "enroll.pem", "enroll.key", "ledger.pem", "ledger.key", "http.pem", "http.key"]
    )
    for name in names:
        mode = (out / name).stat().st_mode & 0o777
        assert mode == (0o600 if name.endswith(".key") else 0o644), name
        assert str(out / name) in result.output
    ca = load(out / "ca.pem")
    ledger = load(out / "ledger.pem")
    assert signed_by(ledger, ca)
    san = ledger.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "msn" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    enroll = load(out / "enroll.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert enroll.value.get_values_for_type(x509.UniformResourceIdentifier) == [ENROLL_URI]


def test_the_ca_issues_node_certificates_bearing_the_node_id(tmp_path: Path) -> None:
    assert runner.invoke(app, ["certs", "--out", str(tmp_path)]).exit_code == 0
    issuer = CertificateIssuer.load(tmp_path / "ca.pem", tmp_path / "ca.key")
    node = NodeKey.generate()
    cert = issuer.for_node(new_key().public_key(), node.node_id, ["en-3"])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"urn:fedchain:node:{node.node_id}" in san.get_values_for_type(x509.UniformResourceIdentifier)
    assert node_id_of(cert) == node.node_id and signed_by(cert, load(tmp_path / "ca.pem"))


def test_certs_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert runner.invoke(app, ["certs", "--out", str(tmp_path)]).exit_code == 0
    before = (tmp_path / "ca.key").read_bytes()
    again = subprocess.run(
        [sys.executable, "-m", "fedchain.services.cli.main", "certs", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert again.returncode == 2
    assert "--force" in again.stderr and "ca.key" in again.stderr and "Traceback" not in again.stderr
    assert (tmp_path / "ca.key").read_bytes() == before
    forced = runner.invoke(app, ["certs", "--out", str(tmp_path), "--force"])
    assert forced.exit_code == 0 and (tmp_path / "ca.key").read_bytes() != before


def test_owner_gets_the_folder_and_every_file(tmp_path: Path) -> None:
    import os

    import pytest

    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    out = tmp_path / "certs"
    result = runner.invoke(app, ["certs", "--out", str(out), "--owner", "10001"])
    assert result.exit_code == 0, result.output
    assert {p.stat().st_uid for p in (out, *out.iterdir())} == {10001}  # the image's user reads them
