"""Container health check: GET /health on this container's HTTP port, curl-free.

The port is ``FC_HEALTH_PORT`` if set, else ``FEDCHAIN_HTTP_PORT``, else
``FEDCHAIN_PORT`` + 1000 (the node's default), else 9080. Healthy means HTTP 200 with
a JSON body whose ``status`` is ``"ok"``. Exit 0 when healthy, 1 otherwise with one line
on stdout (Docker keeps it in ``docker inspect``). Standard library only.

When the service serves HTTPS (``FEDCHAIN_HTTP_TLS_CERT`` is set) the check speaks HTTPS,
verifying the certificate against ``FEDCHAIN_TLS_CA`` (else the system's roots); the host
name is not checked, since the probe dials 127.0.0.1 whatever names the certificate holds.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping


def health_url(env: Mapping[str, str]) -> str:
    """The URL of this container's /health endpoint, from its environment."""
    port = env.get("FC_HEALTH_PORT") or env.get("FEDCHAIN_HTTP_PORT")
    if not port:
        port = str(int(env.get("FEDCHAIN_PORT") or 8080) + 1000)
    scheme = "https" if env.get("FEDCHAIN_HTTP_TLS_CERT") else "http"
    return f"{scheme}://127.0.0.1:{int(port)}/health"


def tls_context(env: Mapping[str, str]) -> ssl.SSLContext | None:
    """The context that checks this container's HTTPS certificate (None over plain HTTP)."""
    if not env.get("FEDCHAIN_HTTP_TLS_CERT"):
        return None
    context = ssl.create_default_context(cafile=env.get("FEDCHAIN_TLS_CA") or None)
    context.check_hostname = False  # 127.0.0.1 need not be among the certificate's names
    return context


def check(url: str, timeout: float = 3.0, context: ssl.SSLContext | None = None) -> tuple[bool, str]:
    """Return (healthy, one-line reason) for the /health endpoint at ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310
            body = json.loads(response.read(65536) or b"{}")
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}"
    if not isinstance(body, dict) or body.get("status") != "ok":
        return False, f"{url}: unexpected answer {body!r:.200}"
    return True, f"{url}: ok ({body.get('role', '?')})"


def main() -> int:
    """Run the check once; exit status is what Docker's HEALTHCHECK reads."""
    try:
        context = tls_context(os.environ)
    except (OSError, ssl.SSLError) as exc:
        print(f"cannot load the CA {os.environ.get('FEDCHAIN_TLS_CA')}: {exc}")
        return 1
    ok, reason = check(health_url(os.environ), context=context)
    print(reason)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
