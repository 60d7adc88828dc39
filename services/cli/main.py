"""Entry point of the ``fedchain`` command.

Each command group lives in its own module with a ``register(app)`` function; heavy
imports (torch, grpc) happen inside the commands so ``fedchain --help`` stays fast.
Every user error — a flag click cannot parse, an unknown option, a bad config value, a
missing dataset — becomes one line on stderr and exit code 2, never a traceback.

Every ``fedchain`` process restores Python's SIGINT handler at start-up (one started from a
background job inherits SIGINT as ignored), and a child started with the hidden
``--watch-parent PID`` option (``fedchain up`` starts its nodes so) stops when that parent
is gone.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

try:  # typer >= 0.20 vendors click; its exceptions are not click's
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older typer on plain click
    from click import exceptions as cx  # type: ignore[no-redef]

from fedchain.services.cli import certs, console, init_env, ledger, node, simulate, up
from fedchain.shared import processes
from fedchain.shared.config import ConfigError

app = typer.Typer(
    name="fedchain",
    help="Federated learning (FedPer, FedAvg) run by a network of blockchain nodes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _startup(
    watch_parent: Optional[int] = typer.Option(  # noqa: UP045 - typer reads the annotation
        None, processes.WATCH_PARENT_FLAG, hidden=True, help="stop when process PID is gone"
    ),
) -> None:
    if watch_parent is not None:
        processes.watch_parent(watch_parent)


for module in (simulate, ledger, node, up, console, init_env, certs):
    module.register(app)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _usage_error(exc: cx.UsageError) -> str:
    """``fedchain node: Invalid value for '--port': 'eighty' is not a valid integer.``"""
    where = exc.ctx.command_path if exc.ctx is not None else "fedchain"
    hint = f" (see '{where} --help')" if exc.ctx is not None else ""
    return f"{where}: {_one_line(exc.format_message())}{hint}"


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; exit 2 with one line for any usage or configuration error."""
    processes.restore_default_sigint()
    try:
        code = app(args=argv, standalone_mode=False)
    except cx.NoArgsIsHelpError:  # typer has already printed the help
        sys.exit(0)
    except cx.UsageError as exc:
        print(f"fedchain: error: {_usage_error(exc)}", file=sys.stderr)
        sys.exit(2)
    except ConfigError as exc:
        print(f"fedchain: error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("fedchain: interrupted", file=sys.stderr)
        sys.exit(130)
    except cx.ClickException as exc:
        print(f"fedchain: error: {_one_line(exc.format_message())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
