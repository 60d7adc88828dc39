"""`fedchain console`: the seed's command vocabulary over a super node's control API.

Interactive by default; ``-c CMD`` (repeatable) runs commands in order for scripts, and
so do lines on a stdin that is not a terminal. Exit codes: 0 success, 1 a command or the
connection failed, 2 bad flags or a bad command line, 130 interrupted.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import typer

DEFAULT_PORT = 9080


def _base_url(ip: str, port: int, https: bool = False) -> str:
    host = f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
    return f"{'https' if https else 'http'}://{host}:{port}"


def _target(ip: str, port: int, url: str | None, ca: Path | None) -> tuple[str, ssl.SSLContext | bool]:
    """The base URL and httpx ``verify`` of the node to drive (``--url`` beats --ip/--port).

    ``--ca`` means HTTPS, checked against that CA; an https ``--url`` without it is checked
    against the system's trust store.
    """
    from fedchain.shared.config import ConfigError
    from fedchain.shared.net.https import client_context

    if url is not None:
        base = url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"--url {url!r}: give http://HOST:PORT or https://HOST:PORT")
        if ca is not None and not base.startswith("https://"):
            raise ConfigError(f"--ca is for HTTPS; --url {url!r} is plain HTTP")
    else:
        base = _base_url(ip, port, https=ca is not None)
    if not base.startswith("https://"):
        return base, True
    if ca is not None and not ca.is_file():
        raise ConfigError(f"--ca {ca}: no such file")
    return base, client_context(ca)


def console(
    ip: str = typer.Option("127.0.0.1", "--ip", help="address of a super node (SN)"),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="the SN's HTTP port (the entry's is 9080)"),
    commands: list[str] | None = typer.Option(
        None, "-c", "--command", help='a command to run, e.g. -c "train(rounds=2)"; repeat to run several in order'
    ),
    json_output: bool = typer.Option(False, "--json", help="one JSON object per command on stdout"),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="FEDCHAIN_API_TOKEN",
        show_default=False,
        help="API token for train/pause/save/eval (default: $FEDCHAIN_API_TOKEN; none: reading only)",
    ),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="seconds to wait for any one HTTP answer"),
    poll: float = typer.Option(
        0.5, "--poll", min=0.05, max=60.0, help="seconds between polls while following training"
    ),
    history: Path | None = typer.Option(
        None, "--history", help="history file (default: $FEDCHAIN_HOME/console_history or ~/.fedchain_history)"
    ),
    url: str | None = typer.Option(
        None, "--url", help="base URL of the SN instead of --ip/--port, e.g. https://msn:9080"
    ),
    ca: Path | None = typer.Option(
        None, "--ca", help="CA file (fedchain certs' ca.pem): talk HTTPS, checked against it"
    ),
) -> None:
    """Drive a running network: train(), pause(), save(), eval(), getSN(), getModel(), trainFL(), ..."""
    from fedchain.services.console.client import ControlClient
    from fedchain.services.console.errors import ConsoleError
    from fedchain.services.console.render import JsonRenderer, RichRenderer
    from fedchain.services.console.repl import default_history_path, run_repl
    from fedchain.services.console.session import EXIT_INTERRUPTED, Session

    interactive = not commands and sys.stdin.isatty()
    if json_output and interactive:
        print("fedchain console: error: --json is for scripts: give commands with -c", file=sys.stderr)
        raise typer.Exit(2)
    api_token = token if token is not None else ""  # no token: reading commands only
    if token is not None and not token.strip():
        print("fedchain console: error: the API token is empty (--token or FEDCHAIN_API_TOKEN)", file=sys.stderr)
        raise typer.Exit(2)
    from fedchain.shared.config import ConfigError

    try:
        base_url, verify = _target(ip, port, url, ca)
    except ConfigError as exc:
        print(f"fedchain console: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    renderer = JsonRenderer() if json_output else RichRenderer()
    session = Session(
        lambda: ControlClient(base_url, api_token, timeout, verify=verify), renderer, poll_interval=poll
    )
    try:
        if commands:
            code = session.run_script(commands)
        elif not interactive:
            code = session.run_script(line.rstrip("\n") for line in sys.stdin)
        else:
            try:
                session.connect()
            except ConsoleError as exc:
                renderer.error(None, exc.message)
                code = exc.exit_code
            else:
                code = run_repl(session, history or default_history_path())
    except KeyboardInterrupt:
        renderer.error(None, "interrupted")
        code = EXIT_INTERRUPTED
    finally:
        session.close()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``fedchain console`` to the app."""
    app.command("console")(console)
