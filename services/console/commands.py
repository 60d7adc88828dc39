"""The command table: every console command, its parameters (type, default, help) and handler.

Handlers call the :class:`~fedchain.services.console.client.ControlClient` through the context and
return an :class:`~fedchain.services.console.spec.Outcome` for a renderer; they never print.
"""

from __future__ import annotations

from fedchain.services.console.errors import ConsoleError
from fedchain.services.console.spec import Command, CommandContext, CommandTable, Outcome, Param
from fedchain.shared.control_api import TrainStarted, VerifiedChain

ALGORITHMS = ("fedper", "fedavg")
MAX_BLOCKS = 1000  # the control API's /blocks limit

_ROUNDS = Param("rounds", "int", "how many rounds to run", default=1, minimum=1)
_WAIT = Param("wait", "bool", "follow the rounds until they finish (Ctrl-C leaves, training goes on)", default=True)
_TIMEOUT = Param(
    "timeout", "float", "give up following after this many seconds (training goes on)", nullable=True, minimum=0
)


def _help(ctx: CommandContext, command: str | None) -> Outcome:
    table = ctx.table
    chosen = [table.resolve(command)] if command is not None else list(table)
    entries = [
        {
            "name": c.name,
            "signature": c.signature(),
            "summary": c.summary,
            "example": c.example,
            "params": [
                {"name": p.name, "expects": p.expects(), "default": p.default, "help": p.help}
                for p in c.params
            ],
        }
        for c in chosen
    ]
    return Outcome("help", {"commands": entries, "detail": command is not None})


def _status(ctx: CommandContext) -> Outcome:
    return Outcome("status", ctx.client.status())


def _start_training(
    ctx: CommandContext, start: TrainStarted, prev_round: int, wait: bool, timeout: float | None
) -> Outcome:
    if not wait:
        return Outcome("train-started", start)
    return ctx.follow_training(start, prev_round, timeout)


def _train(ctx: CommandContext, rounds: int, algorithm: str | None, wait: bool, timeout: float | None) -> Outcome:
    prev_round = ctx.client.status().round
    start = ctx.client.train(rounds, algorithm)
    return _start_training(ctx, start, prev_round, wait, timeout)


def _train_fl(ctx: CommandContext, rounds: int, wait: bool, timeout: float | None) -> Outcome:
    prev_round = ctx.client.status().round
    start = ctx.client.train_fl(rounds)
    return _start_training(ctx, start, prev_round, wait, timeout)


def _pause(ctx: CommandContext) -> Outcome:
    return Outcome("pause", ctx.client.pause())


def _save(ctx: CommandContext, name: str | None) -> Outcome:
    return Outcome("save", ctx.client.save(name))


def _eval(ctx: CommandContext) -> Outcome:
    return Outcome("eval", ctx.client.evaluate())


def _get_sn(ctx: CommandContext) -> Outcome:
    return Outcome("sn", ctx.client.super_nodes())


def _get_model(ctx: CommandContext, version: int | None, path: str | None) -> Outcome:
    return Outcome("model", ctx.client.download_model(version, path))


def _rounds(ctx: CommandContext, n: int) -> Outcome:
    return Outcome("rounds", ctx.client.rounds()[-n:])


def _blocks(ctx: CommandContext, n: int, start: int | None) -> Outcome:
    return Outcome("blocks", ctx.client.blocks(n, start))


def _verify(ctx: CommandContext) -> Outcome:
    result = ctx.client.verify()
    if not result.ok:
        where = f" at height {result.height}" if result.height is not None else ""
        raise ConsoleError(
            f"chain verification FAILED{where}: {result.reason or 'no reason given'} "
            f"({result.checked} blocks checked)"
        )
    rounds = ctx.client.rounds()
    last = ctx.client.round_evidence(rounds[-1].round) if rounds else None
    return Outcome("verify", VerifiedChain(**result.model_dump(), last_round=last))


def _quit(ctx: CommandContext) -> Outcome:
    return Outcome("quit", None)


def build_table() -> CommandTable:
    """The console's commands in the order ``help()`` lists them."""
    table = CommandTable()
    for command in (
        Command(
            "train",
            "run federated rounds (FedPer by default) and follow them",
            _train,
            (
                _ROUNDS,
                Param(
                    "algorithm", "str", "fedper or fedavg (default: the network's)", nullable=True, choices=ALGORITHMS
                ),
                _WAIT,
                _TIMEOUT,
            ),
            example='train(rounds=5, algorithm="fedper")',
        ),
        Command(
            "trainFL",
            "run classic FedAvg rounds over the same network",
            _train_fl,
            (_ROUNDS, _WAIT, _TIMEOUT),
            example="trainFL(rounds=5)",
        ),
        Command("pause", "finish the current round, then hold (train() resumes)", _pause),
        Command(
            "save",
            "write a checkpoint block and a model file on the entry",
            _save,
            (
                Param(
                    "name",
                    "str",
                    "file name under the entry's models folder (no path; default model-v<version>.safetensors)",
                    nullable=True,
                ),
            ),
            example='save(name="global-r10")',
        ),
        Command("eval", "evaluate every EN's personal model, and pooled", _eval),
        Command("getSN", "list the super nodes with their addresses and EN counts", _get_sn),
        Command(
            "getModel",
            "download the global model (safetensors) and check its digest",
            _get_model,
            (
                Param("version", "int", "model version (default: latest)", nullable=True, minimum=0),
                Param("path", "str", "local file or directory (default: model-v<version>.safetensors)", nullable=True),
            ),
            example='getModel(version=3, path="global.safetensors")',
        ),
        Command("status", "the node's state, round, model version and chain height", _status),
        Command(
            "rounds",
            "the last n completed rounds with accuracy and participants",
            _rounds,
            (Param("n", "int", "how many rounds", default=10, minimum=1),),
        ),
        Command(
            "blocks",
            "the last n blocks of the chain (or n from height start)",
            _blocks,
            (
                Param("n", "int", "how many blocks", default=10, minimum=1, maximum=MAX_BLOCKS),
                Param("start", "int", "first height (default: the last n)", nullable=True, minimum=0),
            ),
            example="blocks(n=5)",
        ),
        Command(
            "verify", "recompute and check the whole chain; show the newest round's evidence",
            _verify,
        ),
        Command(
            "help",
            "list the commands, or describe one: help(train)",
            _help,
            (Param("command", "command", "a command name", nullable=True),),
        ),
        Command("quit", "leave the console (training goes on)", _quit),
        Command("exit", "leave the console (training goes on)", _quit),
    ):
        table.add(command)
    return table
