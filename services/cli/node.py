"""`fedchain node`: run one SN (the entry with -z) or EN of a federation.

Seed-compatible: ``fedchain node --port 8080 --nt SN --entry HOST:8080 -z`` starts the
entry super node (M-SN); ``--nt SN --entry HOST:8080`` a super node; ``--nt EN --entry
HOST:8080`` an edge node. Flags the user does not give stay ``None`` so the config file
and FEDCHAIN_* environment apply (defaults < --config < environment < flags).
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path
from typing import Any

import typer

from fedchain.services.cli.options import SettingsFlags, settings_options
from fedchain.shared.config import (
    FEDERATION_FIELDS,
    ConfigError,
    NodeRole,
    Settings,
    load_settings,
    missing_tokens,
)
from fedchain.shared.ledger.contract import LedgerContract

NODE_LEARNING_FIELDS: tuple[str, ...] = ("data_dir", "download", *FEDERATION_FIELDS)
"""A node's learning options: the federation's fields (the entry's count) and the EN's data."""


NODE_NAMES: dict[NodeRole, str] = {"entry": "entry", "SN": "super node", "EN": "edge node"}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_tokens(settings: Settings, role: NodeRole) -> None:
    """Refuse (one line) a node without the tokens its role needs, before anything binds.

    The rule is the same on every address: a node never makes up or skips a token. On
    loopback, ``fedchain up`` is what starts nodes without you setting tokens: it generates
    them and hands them to its children.
    """
    missing = missing_tokens(settings, role)
    if not missing:
        return
    needs = ", ".join(missing)
    if is_loopback(settings.host):
        raise ConfigError(
            f"this {NODE_NAMES[role]} needs {needs} set, on loopback too "
            "(`fedchain up` makes them for a local network; `fedchain init-env` writes random ones to .env)"
        )
    raise ConfigError(
        f"this {NODE_NAMES[role]} listens on {settings.host} (not loopback) and needs {needs} set "
        "(`fedchain init-env` writes random ones to .env)"
    )


def setup_process(settings: Settings) -> None:
    """Logging and torch threads for a node process (nodes share a machine: 1 thread each by default)."""
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(settings.torch_threads or 1)


def _embedded_ledger(settings: Settings) -> LedgerContract:
    """The entry's own ledger store (imported only when the entry embeds one)."""
    from fedchain.services.ledger.store import open_ledger

    return open_ledger(settings)


@settings_options(
    NODE_LEARNING_FIELDS,
    panel="Learning settings (joining nodes adopt the entry's)",
)
def node(
    *,
    port: int | None = typer.Option(None, help="gRPC port (default 8080; an EN: 8081)"),
    nt: str | None = typer.Option(None, "--nt", help="node type: SN or EN"),
    entry: str | None = typer.Option(None, help="HOST:PORT of the entry super node"),
    is_entry: bool = typer.Option(False, "-z", "--is-entry", help="this SN is the entry (M-SN)"),
    http_port: int | None = typer.Option(None, help="HTTP control port (default gRPC port + 1000)"),
    host: str | None = typer.Option(None, help="address to bind (default 127.0.0.1)"),
    advertise_host: str | None = typer.Option(None, help="address peers use to reach this node"),
    ledger: str | None = typer.Option(None, help="HOST:PORT of the ledger (entry; default: embedded)"),
    db_url: str | None = typer.Option(None, help="entry with embedded ledger: SQLAlchemy URL (default SQLite)"),
    state_dir: Path | None = typer.Option(None, help="key, identity, personal layers (default ./.fedchain)"),
    config: Path | None = typer.Option(None, "--config", "-c", help="config file (JSON, YAML or TOML)"),
    learning: SettingsFlags,
    quorum: float | None = typer.Option(None, help="entry: fraction of ENs a round needs"),
    round_timeout: float | None = typer.Option(None, help="seconds an EN may take per round"),
    heartbeat_interval: float | None = typer.Option(None, help="seconds between heartbeats"),
    heartbeat_timeout: float | None = typer.Option(None, help="seconds without heartbeat before a node is dead"),
    max_message_mb: int | None = typer.Option(None, help="largest gRPC message / model"),
    tls_cert: Path | None = typer.Option(None, help="PEM certificate of this node (TLS)"),
    tls_key: Path | None = typer.Option(None, help="PEM private key of this node (TLS)"),
    tls_ca: Path | None = typer.Option(None, help="PEM CA that signed every node's certificate"),
    attack: str | None = typer.Option(
        None, help="experiment, EN only: send poisoned updates: sign-flip, scale:λ, gaussian:σ, "
        "label-flip or nan (off by default; FEDCHAIN_ATTACK)",
    ),
    entry_key: str | None = typer.Option(
        None, help="SN/EN: the entry's public key (hex); the join reply must be signed by it"
    ),
    node_key: Path | None = typer.Option(None, help="this node's key file (default STATE_DIR/node.key)"),
    tls_ca_key: Path | None = typer.Option(
        None, help="entry: the CA key (fedchain certs) that issues each node a certificate at join"
    ),
    http_tls_cert: Path | None = typer.Option(None, help="PEM certificate: serve the HTTP API over HTTPS"),
    http_tls_key: Path | None = typer.Option(None, help="PEM key of --http-tls-cert"),
) -> None:
    """Run a super node (SN; the entry with -z) or an edge node (EN) until SIGTERM/Ctrl-C."""
    flags: dict[str, Any] = dict(
        port=port, nt=nt.upper() if nt else None, entry=entry, http_port=http_port, host=host,
        advertise_host=advertise_host, ledger=ledger, db_url=db_url, state_dir=state_dir,
        quorum=quorum, round_timeout=round_timeout, heartbeat_interval=heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout, max_message_mb=max_message_mb, tls_cert=tls_cert,
        tls_key=tls_key, tls_ca=tls_ca, attack=attack, entry_key=entry_key, node_key=node_key,
        tls_ca_key=tls_ca_key, http_tls_cert=http_tls_cert, http_tls_key=http_tls_key, **learning,
    )
    settings = load_settings(config, **flags)
    if settings.nt is None:
        raise ConfigError("--nt SN or --nt EN is required")
    if is_entry and settings.nt != "SN":
        raise ConfigError("-z (entry) is only valid with --nt SN")
    if settings.nt == "SN" and not is_entry and not settings.entry:
        raise ConfigError("a super node needs --entry HOST:PORT, or -z to be the entry")
    if settings.nt == "EN" and not settings.entry:
        raise ConfigError("an edge node needs --entry HOST:PORT of the entry super node")
    if settings.attack is not None and settings.nt != "EN":
        raise ConfigError("--attack (an experiment) is only valid with --nt EN")
    if settings.effective_http_port == settings.port:
        raise ConfigError("--http-port must differ from --port")
    from fedchain.shared.net.grpc_util import NetConfig, parse_address
    from fedchain.shared.net.https import HttpTls

    NetConfig.from_settings(settings)  # TLS files exist and come in pairs
    HttpTls.from_settings(settings)  # so do the HTTPS ones
    if settings.entry:
        parse_address(settings.entry, "--entry")
    if settings.ledger:
        parse_address(settings.ledger, "--ledger")
    check_tokens(settings, "entry" if is_entry else settings.nt)  # before anything binds
    setup_process(settings)
    if settings.nt == "EN":
        from fedchain.services.en.process import run_edge_node

        run_edge_node(settings)
    else:
        from fedchain.services.sn.process import run_super_node

        run_super_node(settings, entry_mode=is_entry, embedded_ledger=_embedded_ledger)
    from fedchain.shared.node.process import exit_after_stop

    exit_after_stop(0)  # stopped in order: skip the interpreter's slow teardown (5 s bound)


def register(app: typer.Typer) -> None:
    """Add ``fedchain node``."""
    app.command("node")(node)
