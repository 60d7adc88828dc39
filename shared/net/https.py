"""HTTPS for the nodes' HTTP APIs: the server's certificate, and how clients check it.

A node serves HTTPS when ``http_tls_cert`` and ``http_tls_key`` are set (``fedchain certs``
writes ``http.pem`` / ``http.key``); it then never answers plain HTTP on that port. Clients
(an SN forwarding to the entry, `fedchain up`, the console, the container health check)
verify the server against ``tls_ca``, the deployment's one CA, or the system's trust store
when no CA is given.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fedchain.shared.config import ConfigError


class HttpTlsSettings(Protocol):
    """The settings HTTPS needs (``Settings`` has them)."""

    @property
    def http_tls_cert(self) -> Path | None: ...

    @property
    def http_tls_key(self) -> Path | None: ...

    @property
    def tls_ca(self) -> Path | None: ...


@dataclass(frozen=True)
class HttpTls:
    """The certificate and key an HTTP API serves HTTPS with."""

    cert: Path
    key: Path

    @classmethod
    def from_settings(cls, settings: HttpTlsSettings) -> HttpTls | None:
        """The pair from settings (None: plain HTTP); refuse half a pair or a missing file."""
        cert, key = settings.http_tls_cert, settings.http_tls_key
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            raise ConfigError("--http-tls-cert and --http-tls-key must be given together")
        for path, what in ((cert, "certificate"), (key, "key")):
            if not Path(path).is_file():
                raise ConfigError(f"HTTPS {what} file {path} does not exist")
        return cls(Path(cert), Path(key))


def scheme(tls: HttpTls | None) -> str:
    """``https`` when the API is served over TLS, else ``http``."""
    return "https" if tls is not None else "http"


def client_context(ca: Path | None, *, check_hostname: bool = True) -> ssl.SSLContext:
    """A verifying client context: against ``ca`` (a PEM CA file), else the system's roots."""
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use {ca} as the HTTPS CA: {exc}") from None
    context.check_hostname = check_hostname
    return context


@dataclass(frozen=True)
class HttpClientTls:
    """How this node reaches other nodes' HTTP APIs: the scheme and what verifies them.

    A node that serves HTTPS itself reaches its peers over HTTPS too (one deployment,
    one CA); the others speak plain HTTP.
    """

    scheme: str = "http"
    ca: Path | None = None

    @classmethod
    def from_settings(cls, settings: HttpTlsSettings) -> HttpClientTls:
        if HttpTls.from_settings(settings) is None:
            return cls()
        return cls("https", Path(settings.tls_ca) if settings.tls_ca is not None else None)

    def url(self, address: str) -> str:
        """The base URL of HOST:PORT ``address``."""
        return f"{self.scheme}://{address}"

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx's ``verify=`` takes: the CA's context over HTTPS, True otherwise."""
        return client_context(self.ca) if self.scheme == "https" else True
