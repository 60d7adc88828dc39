"""`fedchain simulate`: the in-process federated simulation (FedPer or FedAvg).

Flags the user does not give stay ``None`` so they do not override the config file or
the environment (defaults < --config file < FEDCHAIN_* / .env < flags).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from fedchain.services.cli.errors import fail
from fedchain.services.cli.options import SettingsFlags, settings_options
from fedchain.shared.config import LEARNING_FIELDS, ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from rich.console import Console

    from fedchain.services.cli.simulate_outputs import RunLog
    from fedchain.shared.fl.attacks import AttackPlan
    from fedchain.shared.fl.checkpoint import Checkpoint
    from fedchain.shared.fl.engine import EngineOptions
    from fedchain.shared.fl.simulation import Simulation, SimulationResult


def _fail(message: str) -> None:
    fail(message)


def _check_writable(out: Path | None, save_dir: Path | None) -> None:
    """Refuse unusable output paths before any work is done."""
    if out is not None:
        if out.is_dir():
            raise ConfigError(f"--out {out} is a directory; give a file name such as results.json")
        parent = out.parent if str(out.parent) else Path(".")
        if parent.exists() and not os.access(parent, os.W_OK):
            raise ConfigError(f"--out {out}: directory {parent} is not writable")
    if save_dir is not None and save_dir.exists() and not save_dir.is_dir():
        raise ConfigError(f"--save-dir {save_dir} exists and is not a directory")


def _label_summary(label_counts: list[dict[int, int]]) -> str:
    """One line for the clients' label counts (the table only with ``--verbose``)."""
    if not label_counts:
        return "label counts: no clients"
    classes = [sum(1 for v in c.values() if v) for c in label_counts]
    sizes = [sum(c.values()) for c in label_counts]
    return (
        f"label counts: {len(label_counts)} clients, {min(classes)}-{max(classes)} classes and "
        f"{min(sizes)}-{max(sizes)} samples each (--verbose: per client)"
    )


def _print_label_counts(console: Console, label_counts: list[dict[int, int]]) -> None:
    from rich.table import Table

    classes = sorted({k for counts in label_counts for k in counts})
    table = Table(title="label counts per client (train+test)")
    table.add_column("client", justify="right")
    for cls in classes:
        table.add_column(str(cls), justify="right")
    table.add_column("total", justify="right")
    for i, counts in enumerate(label_counts):
        table.add_row(str(i), *[str(counts.get(c, "")) for c in classes], str(sum(counts.values())))
    console.print(table)


def _print_summary(console: Console, result: SimulationResult) -> None:
    from rich.table import Table

    table = Table(title=f"{result.algorithm} on {result.config['dataset']} ({result.config['partition']})")
    robust = result.config.get("aggregator", "mean") != "mean"
    extra: tuple[str, ...] = ("decisions",) if robust else ()
    extra += ("attackers flagged",) if result.attack is not None else ()
    for col in ("round", "accuracy", "test loss", "train loss", "clients", "seconds", *extra):
        table.add_column(col, justify="right")
    for r in result.rounds:
        flagged = "-" if r.attackers_flagged is None else f"{100 * r.attackers_flagged:.0f}%"
        more = ((str(len(r.decisions)),) if robust else ()) + (
            (flagged,) if result.attack is not None else ()
        )
        table.add_row(
            str(r.round),
            "-" if r.accuracy is None else f"{100 * r.accuracy:.2f}%",
            "-" if r.loss is None else f"{r.loss:.4f}",
            f"{r.train_loss:.4f}",
            str(len(r.participants)),
            f"{r.seconds:.1f}",
            *more,
        )
    console.print(table)
    final = result.final_accuracy
    console.print(f"final accuracy: {'-' if final is None else f'{100 * final:.2f}%'}")


@settings_options(LEARNING_FIELDS)
def simulate(
    learning: SettingsFlags,
    threads: int | None = typer.Option(
        None, min=1, max=256, help="torch CPU threads (FEDCHAIN_TORCH_THREADS; default: torch's choice)"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="config file (JSON, YAML or TOML)"),
    out: Path | None = typer.Option(None, help="write the results as JSON here"),
    save_dir: Path | None = typer.Option(
        None, help="write each round's global model (safetensors; FedPer: the shared base) here"
    ),
    workers: str = typer.Option(
        "auto", help="worker processes training clients in parallel: N, or auto (workers on a "
        "multi-core CPU for runs big enough to repay their start-up, else 0: serial)",
    ),
    vectorize: int = typer.Option(
        1, min=1, max=4096, help="train K clients at a time in lockstep as one batched model (vmap)"
    ),
    device: str | None = typer.Option(
        None, help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps (FEDCHAIN_DEVICE)"
    ),
    backend: str = typer.Option(
        "local", help="local (this machine) or ray (Ray actors; pip install 'fedchain[ray]')"
    ),
    ray_address: str | None = typer.Option(
        None, help="--backend ray: auto or HOST:PORT of a running Ray cluster (default: start one)"
    ),
    attackers: float | None = typer.Option(
        None, help="experiment: share of the clients that attack, in [0, 1) (needs --attack)"
    ),
    attack: str | None = typer.Option(
        None, help="experiment: sign-flip, scale:λ, gaussian:σ, label-flip or nan (needs --attackers)"
    ),
    eval_every: int = typer.Option(
        1, min=1, max=100_000, help="evaluate every N rounds (and the last); PFLlib's -eg"
    ),
    repeat: int = typer.Option(
        1, min=1, max=1000, help="run K times with seeds seed, seed+1, ...: final accuracy as mean ± std"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the final accuracy (and errors)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also the label counts of every client"),
    checkpoint_dir: Path | None = typer.Option(
        None, help="keep a resumable checkpoint of the last finished round here (rewritten every "
        "round; continue with --resume DIR)",
    ),
    resume: Path | None = typer.Option(
        None, help="continue the run checkpointed in DIR from its last finished round (same settings; "
        "--rounds may be raised); it goes on checkpointing into DIR",
    ),
    plot: Path | None = typer.Option(
        None, help="draw the accuracy curve as a PNG here (--repeat: mean ± std band)"
    ),
    tensorboard: Path | None = typer.Option(
        None, help="write per-round accuracy, losses and seconds as TensorBoard event files here "
        "(pip install 'fedchain[tensorboard]')",
    ),
    mlflow: str | None = typer.Option(
        None, metavar="DIR|URI", help="log the settings and per-round accuracy, losses and seconds as MLflow "
        "runs: a directory (its own SQLite tracking database) or a tracking URI such as "
        "http://host:5000 (pip install 'fedchain[mlflow]')",
    ),
) -> None:
    """Run federated learning in one process and report accuracy per round.

    ``--out FILE.json`` writes every round and the run's settings; ``--out FILE.csv`` one
    row per round. Ctrl-C stops after the round in progress is abandoned: the rounds that
    finished are written to ``--out`` (marked interrupted) and the exit code is 130.

    ``--checkpoint-dir DIR`` keeps the last finished round resumable (global model, FedPer
    heads, results so far); ``--resume DIR`` with the same settings continues it and ends
    with the model and accuracies of the run that was never stopped.
    """
    from fedchain.shared.fl.workers import WorkerFailed

    try:
        if quiet and verbose:
            raise ConfigError("--quiet and --verbose cannot go together")
        settings = load_settings(config, **learning, torch_threads=threads, device=device)
        engine = _engine(workers, vectorize, backend, ray_address)
        _check_writable(out, save_dir)
        plan = _attack_plan(settings, attackers, attack)
        if repeat > 1 and save_dir is not None:
            raise ConfigError("--save-dir keeps one run's models: leave it out with --repeat")
        saving = _saving(settings, checkpoint_dir, resume, engine, plan, eval_every, repeat)
        if plot is not None:
            from fedchain.services.cli.simulate_outputs import check_plot_path

            check_plot_path(plot)
        logs = _run_logs(tensorboard, mlflow, repeat)
        _run(settings, out=out, save_dir=save_dir, engine=engine, attack=plan,
             verbosity=-1 if quiet else 1 if verbose else 0, eval_every=eval_every, repeat=repeat,
             saving=saving, plot=plot, logs=logs)
    except (ConfigError, FloatingPointError, WorkerFailed) as exc:
        _fail(str(exc))


class _Saving:
    """``--checkpoint-dir`` / ``--resume``: where checkpoints go, what they must match, and
    the checkpoint resumed (None: a new run)."""

    def __init__(self, directory: Path, identity: dict[str, Any], resumed: Checkpoint | None) -> None:
        self.directory = directory
        self.identity = identity
        self.resumed = resumed

    def save(self, sim: Simulation) -> None:
        from fedchain.shared.fl.checkpoint import save

        save(sim, self.directory, self.identity)

    def restore(self, sim: Simulation) -> None:
        from fedchain.shared.fl.checkpoint import restore

        if self.resumed is not None:
            restore(sim, self.resumed, self.directory)


def _saving(
    settings: Settings, checkpoint_dir: Path | None, resume: Path | None, engine: EngineOptions,
    attack: AttackPlan | None, eval_every: int, repeat: int,
) -> _Saving | None:
    """Check ``--checkpoint-dir`` and ``--resume`` (and read the checkpoint resumed) before
    any work is done; None when neither is given."""
    if checkpoint_dir is None and resume is None:
        return None
    from fedchain.shared.fl import checkpoint

    flag = "--resume" if resume is not None else "--checkpoint-dir"
    if repeat > 1:
        raise ConfigError(f"{flag} keeps one run: leave out --repeat")
    if resume is not None and checkpoint_dir is not None and resume.resolve() != checkpoint_dir.resolve():
        raise ConfigError("--resume DIR goes on checkpointing into DIR: leave out --checkpoint-dir")
    identity = checkpoint.run_identity(
        settings, attack=attack, vectorize=engine.vectorize, eval_every=eval_every
    )
    if resume is not None:
        resumed = checkpoint.load(resume)
        checkpoint.check_resumable(resumed, resume, identity, settings.rounds)
        return _Saving(resume, identity, resumed)
    assert checkpoint_dir is not None
    if checkpoint_dir.exists() and not checkpoint_dir.is_dir():
        raise ConfigError(f"--checkpoint-dir {checkpoint_dir} exists and is not a directory")
    if checkpoint.has_checkpoint(checkpoint_dir):
        raise ConfigError(
            f"--checkpoint-dir {checkpoint_dir} already holds a checkpoint: continue it with "
            f"--resume {checkpoint_dir}, or give another directory"
        )
    return _Saving(checkpoint_dir, identity, None)


def _run_logs(tensorboard: Path | None, mlflow: str | None, repeat: int) -> list[RunLog]:
    """``--tensorboard DIR`` / ``--mlflow DEST``: refuse a missing package or a file for a
    directory before anything trains; the logs to write."""
    from fedchain.services.cli.simulate_outputs import MlflowLog, TensorBoardLog, check_mlflow, check_tensorboard

    logs: list[RunLog] = []
    if tensorboard is not None:
        check_tensorboard()
        if tensorboard.exists() and not tensorboard.is_dir():
            raise ConfigError(f"--tensorboard {tensorboard} exists and is not a directory")
        logs.append(TensorBoardLog(tensorboard, per_seed=repeat > 1))
    if mlflow is not None:
        check_mlflow()
        logs.append(MlflowLog(mlflow))
    return logs


def _engine(workers: str, vectorize: int, backend: str, ray_address: str | None) -> EngineOptions:
    """The engine options of the flags (ConfigError on a bad value)."""
    from fedchain.shared.fl.engine import EngineOptions

    count: int | Literal["auto"]
    if workers.strip().lower() == "auto":
        count = "auto"
    elif workers.strip().isdigit():
        count = int(workers)
    else:
        raise ConfigError(f"--workers must be auto or a number (got {workers!r})")
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend must be local or ray (got {backend!r})")
    if ray_address is not None and backend != "ray":
        raise ConfigError("--ray-address needs --backend ray")
    return EngineOptions(count, vectorize, "ray" if backend == "ray" else "local", ray_address)


def _attack_plan(settings: Settings, share: float | None, attack: str | None) -> AttackPlan | None:
    """The attack of an experiment (``--attackers`` with ``--attack``), or None (the default)."""
    if share is None and attack is None:
        return None
    if share is None or attack is None:
        raise ConfigError("--attackers and --attack go together (e.g. --attackers 0.3 --attack sign-flip)")
    from fedchain.shared.fl.attacks import AttackPlan

    return AttackPlan.build(attack, share, list(range(settings.clients)), settings.seed)


def _run(
    settings: Settings,
    *,
    out: Path | None,
    save_dir: Path | None,
    engine: EngineOptions,
    attack: AttackPlan | None = None,
    verbosity: int = 0,
    eval_every: int = 1,
    repeat: int = 1,
    saving: _Saving | None = None,
    plot: Path | None = None,
    logs: Sequence[RunLog] = (),
) -> None:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fedchain.shared.fl.data import load_federated
    from fedchain.shared.fl.device import resolve_device
    from fedchain.shared.fl.models import build_model, resolve_model_name
    from fedchain.shared.fl.simulation import (
        RoundResult,
        SimulationResult,
        resolve_engine,
        run_simulation,
        settings_summary,
    )
    from fedchain.shared.fl.split import head_keys
    from fedchain.shared.fl.strategy import UpdateRejected
    from fedchain.shared.fl.vectorized import check_vectorizable

    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)
    console = Console(stderr=False, quiet=verbosity < 0)
    if settings.algorithm == "fedper":  # refuse a bad split before loading any data
        head_keys(build_model(settings.model, settings.dataset, data_dir=settings.data_dir), settings.personal_layers)
    else:
        resolve_model_name(settings.model, settings.dataset)
    device = resolve_device(settings.device)  # refuse a missing device before loading data
    if engine.vectorize > 1:
        check_vectorizable(build_model(settings.model, settings.dataset, data_dir=settings.data_dir))
    console.print(
        f"{settings.algorithm}: {settings.clients} clients, {settings.rounds} rounds, "
        f"dataset {settings.dataset}, partition {settings.partition}, seed {settings.seed}"
        + (f" (x{repeat}: seeds {settings.seed}..{settings.seed + repeat - 1})" if repeat > 1 else "")
    )
    done: list[SimulationResult] = []
    for k in range(repeat):
        run_settings = settings if k == 0 else settings.model_copy(update={"seed": settings.seed + k})
        data = load_federated(run_settings)  # the seed splits the data too
        run_engine = resolve_engine(run_settings, engine, data)
        if k == 0:
            console.print(
                f"engine: {run_engine.backend}, device {device}, workers {run_engine.workers or 'none (serial)'}"
                + (f", vectorize {run_engine.vectorize}" if run_engine.vectorize > 1 else "")
            )
            console.print(f"aggregator: {settings.aggregator}")
            if attack is not None:
                console.print(f"[bold red]{attack.describe()}[/]")
        counts = [d.label_counts for d in data]
        if verbosity > 0:
            _print_label_counts(console, counts)
        else:
            console.print(_label_summary(counts))
        finished: list[RoundResult] = []
        if saving is not None and saving.resumed is not None:
            finished.extend(saving.resumed.rounds)
            console.print(
                f"resuming {saving.directory}: {saving.resumed.round} of {settings.rounds} rounds done"
            )
        for log in logs:
            log.start(run_settings.seed, settings_summary(run_settings))
        with Progress(
            TextColumn("round" if repeat == 1 else f"run {k + 1}/{repeat}, round"), MofNCompleteColumn(),
            BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=False,
        ) as bar:
            task = bar.add_task("", total=settings.rounds, completed=len(finished))

            def on_round(
                r: RoundResult, finished: list[RoundResult] = finished, bar: Progress = bar, task: Any = task
            ) -> None:
                finished.append(r)
                for log in logs:
                    log.log(r)
                acc = "-" if r.accuracy is None else f"{100 * r.accuracy:.2f}%"
                bar.update(task, advance=1, description=f"accuracy {acc}")

            try:
                result = run_simulation(
                    run_settings, progress=on_round, save_dir=save_dir, clients=data, engine=run_engine,
                    attack=attack, eval_every=eval_every,
                    restore=None if saving is None else saving.restore,
                    after_round=None if saving is None else saving.save,
                )
            except UpdateRejected as exc:  # e.g. an aggregator's f too large for the clients
                raise ConfigError(str(exc)) from exc
            except KeyboardInterrupt:
                bar.stop()
                partial = SimulationResult(
                    settings.algorithm, settings_summary(run_settings), finished, counts,
                    None if attack is None else attack.to_json(),
                )
                for log in logs:
                    log.close(interrupted=True)
                _interrupted(done, partial, settings.rounds, out, plot, saving)
        _print_summary(console, result)
        done.append(result)
    for log in logs:
        log.close()
        console.print(log.where())
    if repeat > 1:
        console.print(f"final accuracy over {repeat} runs: {_mean_std(done)}")
    if out is not None:
        _write_out(out, done)
        console.print(f"results written to {out}")
    if plot is not None:
        from fedchain.services.cli.simulate_outputs import write_plot

        write_plot(plot, done)
        console.print(f"accuracy curve drawn in {plot}")
    if saving is not None:
        console.print(f"checkpoint of round {settings.rounds} in {saving.directory} (--resume it with more --rounds)")
    if save_dir is not None:
        console.print(f"global models written to {save_dir}/round-NNNN.safetensors")
    if verbosity < 0:
        final = done[-1].final_accuracy
        print(
            f"final accuracy: {_mean_std(done)} over {repeat} runs" if repeat > 1
            else f"final accuracy: {'-' if final is None else f'{100 * final:.2f}%'}"
        )


def _finals(results: list[SimulationResult]) -> list[float]:
    return [100 * r.final_accuracy for r in results if r.final_accuracy is not None]


def _mean_std(results: list[SimulationResult]) -> str:
    """``mean ± std %`` of the runs' final accuracies (sample std; 0 for one run)."""
    import statistics

    finals = _finals(results)
    if not finals:
        return "-"
    std = statistics.stdev(finals) if len(finals) > 1 else 0.0
    return f"{statistics.fmean(finals):.2f} ± {std:.2f}%"


CSV_COLUMNS = ("seed", "round", "accuracy", "loss", "train_loss", "seconds", "participants", "correct", "total",
               "decisions", "attackers_flagged")


def _write_out(out: Path, results: list[SimulationResult], interrupted: dict[str, int] | None = None) -> None:
    """``--out``: the run as JSON, or one row per round as CSV (``.csv``); written atomically.
    With ``--repeat`` the JSON holds ``repeats`` (each run) and the final accuracy's mean,
    std and values; the CSV a ``seed`` column."""
    import csv
    import io
    import statistics

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for result in results:
            seed = result.config.get("seed")
            for r in result.rounds:
                writer.writerow([seed, r.round, r.accuracy, r.loss, r.train_loss, r.seconds, len(r.participants),
                                 r.correct, r.total, len(r.decisions), r.attackers_flagged])
        text = buf.getvalue()
    else:
        if len(results) == 1:
            data = results[0].to_json()
        else:
            finals = [r.final_accuracy for r in results if r.final_accuracy is not None]
            data = {
                "algorithm": results[0].algorithm,
                "repeats": [r.to_json() for r in results],
                "final_accuracy": {
                    "mean": statistics.fmean(finals) if finals else None,
                    "std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
                    "values": finals,
                },
            }
        if interrupted is not None:
            data["interrupted"] = interrupted
        text = json.dumps(data, indent=2) + "\n"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)


def _interrupted(
    done: list[SimulationResult], partial: SimulationResult, rounds: int, out: Path | None,
    plot: Path | None = None, saving: _Saving | None = None,
) -> None:
    """Ctrl-C: say how far the run got, write what finished to ``--out`` (and ``--plot``),
    exit 130. The checkpoint of the last finished round is already on disk."""
    count = len(partial.rounds)
    runs = done + ([partial] if count else [])
    where = ""
    if out is not None and runs:
        _write_out(out, runs, {"after_round": count, "of": rounds, "runs_finished": len(done)})
        where = f"; what finished is in {out}"
    elif out is not None:
        where = f"; nothing finished, nothing written to {out}"
    if plot is not None and runs:
        from fedchain.services.cli.simulate_outputs import write_plot

        write_plot(plot, runs)
    if saving is not None and count:
        where += f"; continue with --resume {saving.directory}"
    of_runs = f" (run {len(done) + 1})" if done else ""
    print(f"fedchain simulate: interrupted after round {count} of {rounds}{of_runs}{where}", file=sys.stderr)
    raise typer.Exit(130)


def register(app: typer.Typer) -> None:
    """Add ``fedchain simulate`` to the app."""
    app.command("simulate")(simulate)
