"""A simulation's resumable checkpoint: what a finished round leaves, on disk.

What the rounds after round r depend on:

* the server's full global state (FedPer: the averaged base under the initial head);
* every client's personal state (FedPer's head; a FedAvg client holds none) -- a client's
  shared state is the global one, given to it again when the run restarts;
* the round number: selection and local training draw from seeds derived from (seed,
  round, client) (``seeding.py``), the attack's noise from (seed, round, client) too, and
  every fit builds a fresh optimiser, so no RNG or optimiser state carries over a round;
* the run's settings (checked, not restored: a resumed run is given them again).

With the rounds' results so far that is the whole checkpoint, so a run resumed from it
ends with the same global model, bit for bit, and the same accuracies per round as the
run that was never stopped (same engine and torch threads per process, as ``engine.py``
says of the runners).

A checkpoint directory holds::

    checkpoint.json         format, round, the run's identity, the rounds' results and
                            the name and SHA-256 of the state file
    state-NNNN.safetensors  global/<key> (the global state), head/<client>/<key> (heads)

After each round the new state file is written first, then ``checkpoint.json`` is
replaced atomically, then the previous state file is removed: a crash or Ctrl-C at any
moment leaves a complete checkpoint of the last round that finished. No pickle: tensors
as safetensors, the rest as JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from fedchain.shared import tensors
from fedchain.shared.config import ConfigError, Settings, flag_name
from fedchain.shared.fl.attacks import AttackPlan
from fedchain.shared.fl.simulation import RoundResult, Simulation, settings_summary

CHECKPOINT_FILE = "checkpoint.json"
FORMAT = "fedchain-simulate-checkpoint"
VERSION = 1

UNCHECKED_SETTINGS = ("rounds", "data_dir", "download")
"""Settings a resumed run may change: more rounds, and where the data is read from."""


class CheckpointError(ConfigError):
    """A checkpoint directory that is missing, corrupt or from another run (one line)."""


@dataclass
class Checkpoint:
    """A run after ``round`` rounds: its identity, results and state (see the module doc)."""

    round: int
    identity: dict[str, Any]
    rounds: list[RoundResult]
    global_state: dict[str, torch.Tensor]
    heads: dict[int, dict[str, torch.Tensor]]


def run_identity(
    settings: Settings, *, attack: AttackPlan | None, vectorize: int, eval_every: int
) -> dict[str, Any]:
    """What a resumed run must share with the checkpointed one, by flag name.

    Every learning setting but ``UNCHECKED_SETTINGS``, the attack, and what changes the
    arithmetic or the records: ``--vectorize`` (lockstep training rounds differently) and
    ``--eval-every``.
    """
    summary = settings_summary(settings)
    identity: dict[str, Any] = {
        flag_name(k): v for k, v in summary.items() if k not in UNCHECKED_SETTINGS
    }
    identity["--attack"] = None if attack is None else str(attack.spec)
    identity["--attackers"] = None if attack is None else attack.share
    identity["--vectorize"] = vectorize
    identity["--eval-every"] = eval_every
    return identity


def has_checkpoint(directory: Path) -> bool:
    """True when ``directory`` holds a ``checkpoint.json`` (sound or not)."""
    return (directory / CHECKPOINT_FILE).is_file()


def _bad(directory: Path, why: str) -> CheckpointError:
    return CheckpointError(f"--resume {directory}: {why}; nothing was changed")


def load(directory: Path) -> Checkpoint:
    """Read and verify the checkpoint in ``directory`` (``CheckpointError`` saying what is wrong)."""
    if not directory.exists():
        raise _bad(directory, "no such directory")
    if not directory.is_dir():
        raise _bad(directory, "not a directory")
    index = directory / CHECKPOINT_FILE
    if not index.is_file():
        raise _bad(directory, f"no {CHECKPOINT_FILE} here (write one with --checkpoint-dir)")
    try:
        meta = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(directory, f"{CHECKPOINT_FILE} is corrupt ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(directory, f"{CHECKPOINT_FILE} is not a fedchain simulate checkpoint")
    if meta.get("version") != VERSION:
        raise _bad(directory, f"checkpoint version {meta.get('version')!r}, this fedchain reads {VERSION}")
    try:
        done = int(meta["round"])
        identity = dict(meta["identity"])
        known = {f.name for f in fields(RoundResult)}
        rounds = [RoundResult(**{k: v for k, v in r.items() if k in known}) for r in meta["rounds"]]
        name, digest = str(meta["state"]["file"]), str(meta["state"]["sha256"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        why = f"no {exc} entry" if isinstance(exc, KeyError) else str(exc)
        raise _bad(directory, f"{CHECKPOINT_FILE} is corrupt ({why})") from None
    if [r.round for r in rounds] != list(range(1, done + 1)):
        raise _bad(directory, f"{CHECKPOINT_FILE} is corrupt (its rounds are not 1..{done})")
    path = directory / name
    if Path(name).name != name or not path.is_file():
        raise _bad(directory, f"state file {name} is missing")
    data = path.read_bytes()
    if tensors.digest(data) != digest:
        raise _bad(directory, f"state file {name} is corrupt (its SHA-256 differs from {CHECKPOINT_FILE}'s)")
    try:
        state = tensors.decode(data)
    except tensors.TensorError as exc:
        raise _bad(directory, f"state file {name} is corrupt ({exc})") from None
    global_state: dict[str, torch.Tensor] = {}
    heads: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        kind, _, rest = key.partition("/")
        if kind == "global":
            global_state[rest] = value
        elif kind == "head" and rest.partition("/")[0].isdigit():
            client, _, tensor = rest.partition("/")
            heads.setdefault(int(client), {})[tensor] = value
        else:
            raise _bad(directory, f"state file {name} holds an unknown tensor {key}")
    return Checkpoint(done, identity, rounds, global_state, heads)


def check_resumable(checkpoint: Checkpoint, directory: Path, identity: Mapping[str, Any], rounds: int) -> None:
    """Refuse a checkpoint of another run (the first setting that differs) or one that has
    done more rounds than ``rounds``."""
    for key in sorted(set(identity) | set(checkpoint.identity)):
        ours, theirs = identity.get(key), checkpoint.identity.get(key)
        if ours != theirs:
            raise _bad(
                directory,
                f"made with {key} {_show(theirs)}, this run has {key} {_show(ours)} "
                "(give the checkpointed run's settings)",
            )
    if rounds < checkpoint.round:
        raise _bad(directory, f"it has done {checkpoint.round} rounds, more than --rounds {rounds}")


def _show(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _personal_keys(sim: Simulation) -> list[str]:
    shared = set(sim.shared_keys)
    return [k for k in sim.global_state if k not in shared]


def save(sim: Simulation, directory: Path, identity: Mapping[str, Any]) -> Path:
    """Write the checkpoint of ``sim`` after its last round into ``directory``; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {f"global/{k}": v for k, v in sim.global_state.items()}
    if _personal_keys(sim):  # wherever the clients live: this process, worker processes, Ray
        for i, head in sorted(sim.runner.personal_states().items()):
            state.update({f"head/{i}/{k}": v for k, v in head.items()})
    name = f"state-{sim.round:04d}.safetensors"
    data = tensors.encode(state)  # no metadata: the same state gives the same bytes
    _write_atomic(directory / name, data)
    index = directory / CHECKPOINT_FILE
    previous = _state_file(index)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "round": sim.round,
        "identity": dict(identity),
        "rounds": [asdict(r) for r in sim.history],
        "state": {"file": name, "sha256": tensors.digest(data)},
    }
    _write_atomic(index, (json.dumps(meta, indent=1) + "\n").encode())
    if previous is not None and previous != name:
        (directory / previous).unlink(missing_ok=True)
    return index


def _state_file(index: Path) -> str | None:
    """The state file the current ``checkpoint.json`` names (None if unreadable)."""
    try:
        name = json.loads(index.read_text(encoding="utf-8"))["state"]["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and Path(name).name == name else None


def _mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str | None:
    """What differs between the names, shapes and dtypes of two states (None: nothing)."""
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        return f"missing {missing[:3]}, unexpected {extra[:3]}"
    for key, ref in expected.items():
        if state[key].shape != ref.shape or state[key].dtype != ref.dtype:
            return f"{key} is {state[key].dtype} {tuple(state[key].shape)}, expected {ref.dtype} {tuple(ref.shape)}"
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def restore(sim: Simulation, checkpoint: Checkpoint, directory: Path) -> None:
    """Put ``sim`` (its clients added, no round run) in the checkpoint's state."""
    if sim.round:
        raise CheckpointError("restore a checkpoint before the first round")
    mismatch = _mismatch(checkpoint.global_state, sim.global_state)
    if mismatch:
        raise _bad(directory, f"its global model does not fit this run's model ({mismatch})")
    if _personal_keys(sim):
        indices = sorted(sim.runner.personal_states())
        if sorted(checkpoint.heads) != indices:
            raise _bad(directory, f"it holds the heads of {len(checkpoint.heads)} clients, this run has {len(indices)}")
        try:
            sim.runner.set_personal_states(checkpoint.heads)
        except tensors.TensorError as exc:
            raise _bad(directory, str(exc)) from None
    elif checkpoint.heads:
        raise _bad(directory, "it holds personal heads, this run keeps none")
    sim.global_state = dict(checkpoint.global_state)
    sim.runner.set_global(sim.global_state)
    sim.history = list(checkpoint.rounds)
