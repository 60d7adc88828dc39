"""`fedchain ledger` (run the ledger service) and `fedchain verify` (audit a chain).

Exit codes of ``verify``: 0 the chain verifies, 1 it does not (the first bad height
and why are printed), 2 bad flags or configuration, 3 the ledger cannot be reached.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fedchain.shared.config import ConfigError, load_settings

if TYPE_CHECKING:
    from fedchain.shared.ledger.results import VerifyReport


def _fail(message: str, code: int) -> None:
    print(f"fedchain: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``ledger`` and ``verify`` to the app."""

    @app.command("ledger")
    def ledger_command(
        state_dir: Path | None = typer.Option(
            None, "--state-dir", help="chain (SQLite) and blobs live here"
        ),
        db_url: str | None = typer.Option(
            None, "--db-url", help="SQLAlchemy URL, e.g. mysql+pymysql://u:p@host/db"
        ),
        port: int | None = typer.Option(None, "--port", help="gRPC port"),
        http_port: int | None = typer.Option(
            None, "--http-port", help="HTTP port (default port+1000)"
        ),
        host: str | None = typer.Option(None, "--host", help="address to bind"),
        config: Path | None = typer.Option(
            None, "--config", help="config file (JSON, YAML or TOML)"
        ),
    ) -> None:
        """Run the ledger: gRPC and HTTP (/docs) until SIGTERM or Ctrl-C."""
        settings = load_settings(
            config, state_dir=state_dir, db_url=db_url, port=port, http_port=http_port, host=host
        )
        from fedchain.services.ledger.server import serve
        from fedchain.shared.ledger.errors import LedgerError

        try:
            serve(settings, announce=lambda line: print(line, flush=True))
        except LedgerError as exc:
            _fail(str(exc), 2)

    @app.command("verify")
    def verify_command(
        state_dir: Path | None = typer.Option(
            None, "--state-dir", help="verify the ledger kept in this folder"
        ),
        db_url: str | None = typer.Option(
            None, "--db-url", help="verify the chain in this database"
        ),
        blobs: Path | None = typer.Option(None, "--blobs", help="blob folder (with --db-url)"),
        ledger: str | None = typer.Option(None, "--ledger", help="HOST:PORT: ask a running ledger"),
        config: Path | None = typer.Option(
            None, "--config", help="config file (JSON, YAML or TOML)"
        ),
    ) -> None:
        """Recompute every hash, link, signature, Merkle root and blob digest of the chain."""
        from fedchain.shared.ledger.errors import LedgerError, LedgerUnavailable

        if ledger is not None and (state_dir or db_url or blobs):
            _fail("--ledger cannot be combined with --state-dir, --db-url or --blobs", 2)
        if blobs is not None and db_url is None:
            _fail("--blobs goes with --db-url (with --state-dir the blobs are in DIR/blobs)", 2)
        settings = load_settings(config, state_dir=state_dir, db_url=db_url)
        try:
            if ledger is not None:
                from fedchain.shared.ledger.client import LedgerClient
                from fedchain.shared.net.grpc_util import parse_address

                parse_address(ledger, "--ledger")
                with LedgerClient(
                    ledger,
                    tls_ca=settings.tls_ca,
                    tls_cert=settings.tls_cert,
                    tls_key=settings.tls_key,
                    max_message_mb=settings.max_message_mb,
                ) as client:
                    report = client.verify()
            else:
                report = _verify_local(settings.state_dir, settings.db_url, blobs)
        except LedgerUnavailable as exc:
            _fail(str(exc), 3)
        except LedgerError as exc:
            _fail(str(exc), 2)
        print(report.summary())
        raise typer.Exit(0 if report.ok else 1)


def _verify_local(state_dir: Path, db_url: str | None, blobs: Path | None) -> VerifyReport:
    from fedchain.services.ledger.store import Ledger, default_db_url

    if db_url is None:
        if not (Path(state_dir) / "ledger.db").is_file():
            raise ConfigError(
                f"no ledger in {state_dir} (expected {Path(state_dir) / 'ledger.db'})"
            )
        db_url = default_db_url(state_dir)
    blob_dir = blobs if blobs is not None else Path(state_dir) / "blobs"
    if not Path(blob_dir).is_dir():
        raise ConfigError(f"blob folder {blob_dir} does not exist")
    last = [0]

    def progress(checked: int) -> None:
        if sys.stderr.isatty() and checked - last[0] >= 5000:
            last[0] = checked
            print(f"verify: {checked} blocks checked…", file=sys.stderr, flush=True)

    ledger = Ledger(db_url, blob_dir, create=False)
    try:
        return ledger.verify(progress)
    finally:
        ledger.close()
