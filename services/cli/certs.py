"""`fedchain certs`: the CA and certificates of a TLS deployment, with one command.

Written into ``--out`` (keys mode 0600, certificates 0644):

- ``ca.pem`` / ``ca.key``: the federation's CA. Every node gets ``ca.pem``; only the entry
  gets ``ca.key`` (``--tls-ca-key``): it issues each SN and EN, at join, a certificate
  bearing the node's id (``urn:fedchain:node:<node id>``, see ``shared/net/tls.py``).
- ``enroll.pem`` / ``enroll.key``: the certificate an SN or EN presents until the entry
  enrolls it; it names no node and opens ``Join`` only.
- ``ledger.pem`` / ``ledger.key``: the ledger's server certificate.
- ``http.pem`` / ``http.key``: the certificate of the nodes' HTTP APIs (uvicorn).

Host names (``--host``) go into the ledger, HTTP and enroll certificates; a node's own
certificate names the hosts of the addresses it joins with. Existing files are kept unless
``--force``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from fedchain.shared.config import ConfigError

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "msn", "ledger", "sn", "en")
"""Names the compose services are reached by, and loopback."""


@dataclass(frozen=True)
class Written:
    path: Path
    what: str
    mode: int


FILES: dict[str, str] = {
    "ca.pem": "CA certificate: every node and client (--tls-ca)",
    "ca.key": "CA key: the entry only (--tls-ca-key); it issues node certificates at join",
    "enroll.pem": "enroll certificate: SNs and ENs until the entry enrolls them (--tls-cert)",
    "enroll.key": "its key (--tls-key)",
    "ledger.pem": "ledger server certificate (--tls-cert of fedchain ledger)",
    "ledger.key": "its key (--tls-key of fedchain ledger)",
    "http.pem": "HTTP API certificate (--http-tls-cert)",
    "http.key": "its key (--http-tls-key)",
}


def make_certs(
    out: Path, hosts: tuple[str, ...] = DEFAULT_HOSTS, *, days: int = 825, force: bool = False
) -> list[Written]:
    """Write the deployment's CA and certificates into ``out``; return what was written."""
    from fedchain.shared.net.tls import (
        ENROLL_URI,
        cert_pem,
        issue,
        key_pem,
        make_ca,
        new_key,
        write_private,
    )

    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is not a directory")
    existing = [name for name in FILES if (out / name).exists()]
    if existing and not force:
        raise ConfigError(
            f"{out} already holds {', '.join(existing)}; pass --force to replace them (nodes "
            "enrolled by the old CA then need new certificates)"
        )
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca = make_ca(days=max(days, 1) * 2)
    blobs: dict[str, bytes] = {"ca.pem": cert_pem(ca), "ca.key": key_pem(ca_key)}
    for stem, name, uris in (
        ("enroll", "fedchain enroll", [ENROLL_URI]),
        ("ledger", "fedchain ledger", []),
        ("http", "fedchain http", []),
    ):
        key = new_key()
        cert = issue(ca_key, ca, key.public_key(), common_name=name, hosts=hosts, uris=uris, days=days)
        blobs[f"{stem}.pem"], blobs[f"{stem}.key"] = cert_pem(cert), key_pem(key)
    written = []
    for name, data in blobs.items():
        path = out / name
        private = name.endswith(".key")
        write_private(path, data)
        mode = 0o600 if private else 0o644
        os.chmod(path, mode)
        written.append(Written(path, FILES[name], mode))
    return written


def command(
    out: Annotated[Path, typer.Option("--out", help="folder to write the files into")] = Path("certs"),
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="host name or IP the servers are reached by (repeat it)"),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="validity of the certificates")] = 825,
    owner: Annotated[
        int | None,
        typer.Option("--owner", help="uid to own the folder and files (10001: the image's user)"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace files that exist")] = False,
) -> None:
    """Make a CA and the certificates a TLS deployment needs (keys mode 0600)."""
    hosts = tuple(host) if host else DEFAULT_HOSTS
    written = make_certs(out, hosts, days=days, force=force)
    if owner is not None:
        try:
            for path in (out, *(w.path for w in written)):  # the folder too: it is mounted as is
                os.chown(path, owner, -1)
        except PermissionError:
            raise ConfigError(
                f"cannot give the files to uid {owner} (run as root, or chown them yourself)"
            ) from None
    print(f"fedchain certs: wrote {len(written)} files to {out} (hosts: {', '.join(hosts)})")
    for w in written:
        print(f"  {w.path}  {oct(w.mode)[2:]}  {w.what}")
    print(
        "each SN and EN gets a certificate bearing its node id from the entry when it joins; "
        "keep ca.key on the entry only"
    )


def register(app: typer.Typer) -> None:
    """Add ``fedchain certs``."""
    app.command("certs")(command)
