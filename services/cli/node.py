"""`fedchain node`: run one SN (the entry with -z) or EN of a federation.

Seed-compatible: ``fedchain node --port 8080 --nt SN --entry HOST:8080 -z`` starts the
entry super node (M-SN); ``--nt SN --entry HOST:8080`` a super node; ``--nt EN --entry
HOST:8080`` an edge node. Flags the user does not give stay ``None`` so the config file
and FEDCHAIN_* environment apply (defaults < --config < environment < flags).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from fedchain.shared.config import ConfigError, Settings, load_settings
from fedchain.shared.ledger.contract import LedgerContract


def setup_process(settings: Settings) -> None:
    """Logging and torch threads for a node process (nodes share a machine: 1 thread each by default)."""
    logging.basicConfig(
        level=os.environ.get("FEDCHAIN_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("FEDCHAIN_TORCH_THREADS", "1"))))


def _embedded_ledger(settings: Settings) -> LedgerContract:
    """The entry's own ledger store (imported only when the entry embeds one)."""
    from fedchain.services.ledger.store import open_ledger

    return open_ledger(settings)


def node(
    port: Optional[int] = typer.Option(None, help="gRPC port (default 8080)"),
    nt: Optional[str] = typer.Option(None, "--nt", help="node type: SN or EN"),
    entry: Optional[str] = typer.Option(None, help="HOST:PORT of the entry super node"),
    is_entry: bool = typer.Option(False, "-z", "--is-entry", help="this SN is the entry (M-SN)"),
    http_port: Optional[int] = typer.Option(None, help="HTTP control port (default gRPC port + 1000)"),
    host: Optional[str] = typer.Option(None, help="address to bind (default 127.0.0.1)"),
    advertise_host: Optional[str] = typer.Option(None, help="address peers use to reach this node"),
    ledger: Optional[str] = typer.Option(None, help="HOST:PORT of the ledger (entry; default: embedded)"),
    db_url: Optional[str] = typer.Option(None, help="entry with embedded ledger: SQLAlchemy URL (default SQLite)"),
    state_dir: Optional[Path] = typer.Option(None, help="key, identity, personal layers (default ./.fedchain)"),
    data_dir: Optional[Path] = typer.Option(None, help="EN: dataset root (torchvision layout)"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="config file (JSON, YAML or TOML)"),
    algorithm: Optional[str] = typer.Option(None, help="entry: fedper or fedavg"),
    dataset: Optional[str] = typer.Option(None, help="entry: mnist, fmnist, cifar10 or mnist-sample"),
    model: Optional[str] = typer.Option(None, help="entry: auto, mnist-cnn, cifar-cnn or resnet18"),
    clients: Optional[int] = typer.Option(None, help="entry: number of partitions (ENs)"),
    local_epochs: Optional[int] = typer.Option(None, help="entry: local epochs per round"),
    batch_size: Optional[int] = typer.Option(None, help="entry: batch size"),
    lr: Optional[float] = typer.Option(None, help="entry: learning rate"),
    partition: Optional[str] = typer.Option(None, help="entry: iid, dirichlet or pathological"),
    alpha: Optional[float] = typer.Option(None, help="entry: Dirichlet alpha"),
    seed: Optional[int] = typer.Option(None, help="entry: seed"),
    max_samples: Optional[int] = typer.Option(None, help="entry: use only this many samples of the dataset"),
    quorum: Optional[float] = typer.Option(None, help="entry: fraction of ENs a round needs"),
    round_timeout: Optional[float] = typer.Option(None, help="seconds an EN may take per round"),
    heartbeat_interval: Optional[float] = typer.Option(None, help="seconds between heartbeats"),
    heartbeat_timeout: Optional[float] = typer.Option(None, help="seconds without heartbeat before a node is dead"),
    max_message_mb: Optional[int] = typer.Option(None, help="largest gRPC message / model"),
    tls_cert: Optional[Path] = typer.Option(None, help="PEM certificate of this node (TLS)"),
    tls_key: Optional[Path] = typer.Option(None, help="PEM private key of this node (TLS)"),
    tls_ca: Optional[Path] = typer.Option(None, help="PEM CA that signed every node's certificate"),
) -> None:
    """Run a super node (SN; the entry with -z) or an edge node (EN) until SIGTERM/Ctrl-C."""
    flags: dict[str, Any] = dict(
        port=port, nt=nt.upper() if nt else None, entry=entry, http_port=http_port, host=host,
        advertise_host=advertise_host, ledger=ledger, db_url=db_url, state_dir=state_dir, data_dir=data_dir,
        algorithm=algorithm, dataset=dataset, model=model, clients=clients, local_epochs=local_epochs,
        batch_size=batch_size, lr=lr, partition=partition, alpha=alpha, seed=seed, quorum=quorum,
        round_timeout=round_timeout, heartbeat_interval=heartbeat_interval, heartbeat_timeout=heartbeat_timeout,
        max_message_mb=max_message_mb, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca,
    )
    if max_samples is not None:
        flags["max_samples"] = max_samples
    settings = load_settings(config, **flags)
    if settings.nt is None:
        raise ConfigError("--nt SN or --nt EN is required")
    if is_entry and settings.nt != "SN":
        raise ConfigError("-z (entry) is only valid with --nt SN")
    if settings.nt == "SN" and not is_entry and not settings.entry:
        raise ConfigError("a super node needs --entry HOST:PORT, or -z to be the entry")
    if settings.effective_http_port == settings.port:
        raise ConfigError("--http-port must differ from --port")
    from fedchain.shared.net.grpc_util import NetConfig, parse_address

    NetConfig.from_settings(settings)  # TLS files exist and come in pairs
    if settings.entry:
        parse_address(settings.entry, "--entry")
    if settings.ledger:
        parse_address(settings.ledger, "--ledger")
    setup_process(settings)
    if settings.nt == "EN":
        from fedchain.services.en.process import run_edge_node

        run_edge_node(settings)
    else:
        from fedchain.services.sn.process import run_super_node

        run_super_node(settings, entry_mode=is_entry, embedded_ledger=_embedded_ledger)


def register(app: typer.Typer) -> None:
    """Add ``fedchain node``."""
    app.command("node")(node)
