"""Entry point of the ``fedchain`` command.

Each command group lives in its own module with a ``register(app)`` function; heavy
imports (torch, grpc) happen inside the commands so ``fedchain --help`` stays fast.
A ConfigError anywhere becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from services.cli import console, ledger, node, simulate, up
from shared.config import ConfigError

app = typer.Typer(
    name="fedchain",
    help="Federated learning (FedPer, FedAvg) run by a network of blockchain nodes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (simulate, ledger, node, up, console):
    module.register(app)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"fedchain: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
