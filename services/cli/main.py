"""Entry point of the ``fedchain`` command.

Each command group lives in its own module with a ``register(app)`` function; heavy
imports (torch, grpc) happen inside the commands so ``fedchain --help`` stays fast.
Every user error — a flag click cannot parse, an unknown option, a bad config value, a
missing dataset — becomes one line on stderr, ``fedchain <command>: <message>``, and exit
code 2, never a traceback. ``fedchain --version`` prints the version; ``--install-completion``
and ``--show-completion`` give shell completion (bash, zsh, fish, PowerShell).

Every ``fedchain`` process restores Python's SIGINT handler at start-up (one started from a
background job inherits SIGINT as ignored), and a child started with the hidden
``--watch-parent PID`` option (``fedchain up`` starts its nodes so) stops when that parent
is gone.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer
import typer.core

try:  # typer >= 0.20 vendors click; its exceptions are not click's
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older typer on plain click
    from click import exceptions as cx  # type: ignore[no-redef]

from fedchain.services.cli import certs, console, init_env, ledger, node, simulate, up
from fedchain.services.cli.errors import error_line, set_command
from fedchain.shared import processes
from fedchain.shared.config import ConfigError


def _no_type_for_flags() -> None:
    """typer 0.29's rich help labels every flag ``<bool>``, which reads as if ``--download
    true`` were the syntax (it is ``--download`` / ``--no-download``): show no type for flags."""
    option = getattr(typer.core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if option is None or shown is None:
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    option.display_type_rich = display_type_rich


_no_type_for_flags()

app = typer.Typer(
    name="fedchain",
    help="Federated learning (FedPer, FedAvg) run by a network of blockchain nodes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings reflow; `code` spans render as code
)



def _show_version(value: bool) -> None:
    if value:
        from fedchain import __version__

        print(f"fedchain {__version__}")
        raise typer.Exit(0)


@app.callback()
def _startup(
    ctx: typer.Context,
    watch_parent: Optional[int] = typer.Option(  # noqa: UP045 - typer reads the annotation
        None, processes.WATCH_PARENT_FLAG, hidden=True, help="stop when process PID is gone"
    ),
    version: bool = typer.Option(
        False, "--version", "-V", is_eager=True, callback=_show_version, help="print the version and exit"
    ),
) -> None:
    if ctx.invoked_subcommand is not None:
        set_command(f"{ctx.command_path} {ctx.invoked_subcommand}")
    if watch_parent is not None:
        processes.watch_parent(watch_parent)


for module in (simulate, ledger, node, up, console, init_env, certs):
    module.register(app)


def _usage_error(exc: cx.UsageError) -> str:
    """``fedchain node: Invalid value for '--port': 'eighty' is not a valid integer.``"""
    where = exc.ctx.command_path if exc.ctx is not None else "fedchain"
    hint = f" (see '{where} --help')" if exc.ctx is not None else ""
    return error_line(f"{exc.format_message()}{hint}", where)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; exit 2 with one line for any usage or configuration error."""
    processes.restore_default_sigint()
    try:
        code = app(args=argv, prog_name="fedchain", standalone_mode=False)
    except cx.NoArgsIsHelpError:  # typer has already printed the help
        sys.exit(0)
    except cx.UsageError as exc:
        print(_usage_error(exc), file=sys.stderr)
        sys.exit(2)
    except ConfigError as exc:
        print(error_line(str(exc)), file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("fedchain: interrupted", file=sys.stderr)
        sys.exit(130)
    except cx.ClickException as exc:
        print(error_line(exc.format_message()), file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
