"""Container health check: GET /health on this container's HTTP port, curl-free.

The port is ``FC_HEALTH_PORT`` if set, else ``FEDCHAIN_HTTP_PORT``, else
``FEDCHAIN_PORT`` + 1000 (the node's default), else 9080. Healthy means HTTP 200 with
a JSON body whose ``status`` is ``"ok"``. Exit 0 when healthy, 1 otherwise with one line
on stdout (Docker keeps it in ``docker inspect``). Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping


def health_url(env: Mapping[str, str]) -> str:
    """The URL of this container's /health endpoint, from its environment."""
    port = env.get("FC_HEALTH_PORT") or env.get("FEDCHAIN_HTTP_PORT")
    if not port:
        port = str(int(env.get("FEDCHAIN_PORT") or 8080) + 1000)
    return f"http://127.0.0.1:{int(port)}/health"


def check(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    """Return (healthy, one-line reason) for the /health endpoint at ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed http URL)
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
    ok, reason = check(health_url(os.environ))
    print(reason)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
