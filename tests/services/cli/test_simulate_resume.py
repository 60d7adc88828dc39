"""`fedchain simulate --checkpoint-dir` / `--resume`: a run stopped after k rounds and
resumed to N ends as the uninterrupted N-round run (model bit for bit, accuracies), and a
missing, corrupt or foreign checkpoint is refused in one line without changing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fedchain.services.cli.main import app
from fedchain.shared import tensors
from tests.conftest import isolate_from_fedchain_env
from tests.services.cli.simulate_kit import interrupt_simulate

runner = CliRunner()
BASE = ["--dataset", "mnist-sample", "--max-samples", "400", "--clients", "3", "--local-epochs", "1",
        "--batch-size", "32", "--lr", "0.05", "--threads", "1", "--workers", "0", "--quiet"]
FEDPER = [*BASE, "--algorithm", "fedper", "--partition", "pathological"]
# FedAvg with momentum and a client fraction: the selection of every round must resume too
FEDAVG = [*BASE, "--algorithm", "fedavg", "--momentum", "0.5", "--client-fraction", "0.6"]


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_from_fedchain_env(monkeypatch, tmp_path)


def _simulate(*args: str | Path) -> None:
    result = runner.invoke(app, ["simulate", *map(str, args)])
    assert result.exit_code == 0, result.output


def _state_digest(directory: Path) -> str:
    """SHA-256 of the checkpoint's state file: the global model and every client's head."""
    meta = json.loads((directory / "checkpoint.json").read_text())
    data = (directory / meta["state"]["file"]).read_bytes()
    assert tensors.digest(data) == meta["state"]["sha256"]
    return tensors.digest(data)


def _rounds(out: Path) -> list[tuple[int, float | None, float | None, list[int]]]:
    return [(r["round"], r["accuracy"], r["loss"], r["participants"])
            for r in json.loads(out.read_text())["rounds"]]


@pytest.mark.parametrize("args", [FEDPER, FEDAVG], ids=["fedper", "fedavg"])
def test_resumed_run_ends_as_the_uninterrupted_one(tmp_path: Path, args: list[str]) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    _simulate(*args, "--rounds", "4", "--checkpoint-dir", full, "--save-dir", full / "models",
              "--out", tmp_path / "full.json")
    _simulate(*args, "--rounds", "2", "--checkpoint-dir", part, "--out", tmp_path / "k.json")
    assert sorted(p.name for p in part.iterdir()) == ["checkpoint.json", "state-0002.safetensors"]
    _simulate(*args, "--rounds", "4", "--resume", part, "--save-dir", part / "models",
              "--out", tmp_path / "resumed.json")
    assert _state_digest(part) == _state_digest(full)  # global model and heads, bit for bit
    ours, theirs = (tensors.decode((d / "models" / "round-0004.safetensors").read_bytes()) for d in (part, full))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not (part / "models" / "round-0001.safetensors").exists()  # rounds 1-2 were not rerun
    assert _rounds(tmp_path / "resumed.json") == _rounds(tmp_path / "full.json")
    if "--client-fraction" in args:
        assert {len(r[3]) for r in _rounds(tmp_path / "full.json")} == {2}  # 2 of the 3 clients train
    assert sorted(p.name for p in part.iterdir()) == ["checkpoint.json", "models", "state-0004.safetensors"]


def test_fedper_heads_are_checkpointed_from_worker_processes_too(tmp_path: Path) -> None:
    """Two rounds in 2 worker processes, resumed to 4 in 2 workers, end bit for bit as 4
    serial rounds: the heads come back from the workers and go back into them."""
    workers = list(FEDPER)
    workers[workers.index("--workers") + 1] = "2"
    full, part = tmp_path / "full", tmp_path / "part"
    _simulate(*FEDPER, "--rounds", "4", "--checkpoint-dir", full, "--out", tmp_path / "full.json")
    _simulate(*workers, "--rounds", "2", "--checkpoint-dir", part)
    _simulate(*workers, "--rounds", "4", "--resume", part, "--out", tmp_path / "resumed.json")
    assert _state_digest(part) == _state_digest(full)
    assert _rounds(tmp_path / "resumed.json") == _rounds(tmp_path / "full.json")


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _refused(args: list[str | Path], match: str) -> None:
    result = runner.invoke(app, ["simulate", *map(str, args)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fedchain simulate: ") and match in lines[0], lines
    assert "Traceback" not in result.output


def test_resume_refuses_a_missing_corrupt_or_foreign_checkpoint(tmp_path: Path) -> None:
    ck, out = tmp_path / "ck", tmp_path / "out.json"
    _simulate(*FEDPER, "--rounds", "2", "--checkpoint-dir", ck)
    before = _files(ck)

    def refused(extra: list[str | Path], match: str) -> None:
        _refused([*FEDPER, "--rounds", "3", "--out", out, *extra], match)
        assert _files(ck) == before and not out.exists()  # nothing changed, nothing written

    refused(["--resume", tmp_path / "nowhere"], "no such directory")
    refused(["--resume", tmp_path], "no checkpoint.json here")
    refused(["--resume", ck, "--lr", "0.1"], "made with --lr 0.05, this run has --lr 0.1")
    refused(["--resume", ck, "--algorithm", "fedavg"], "made with --algorithm fedper, this run has --algorithm fedavg")
    refused(["--resume", ck, "--eval-every", "2"], "made with --eval-every 1")
    refused(["--resume", ck, "--attackers", "0.3", "--attack", "sign-flip"], "made with --attack (none)")
    refused(["--resume", ck, "--rounds", "1"], "it has done 2 rounds, more than --rounds 1")
    refused(["--checkpoint-dir", ck], "already holds a checkpoint: continue it with --resume")
    refused(["--resume", ck, "--repeat", "2"], "--resume keeps one run")

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "checkpoint.json").write_text("{not json")
    _refused([*FEDPER, "--resume", bad], "checkpoint.json is corrupt")
    (bad / "checkpoint.json").write_text('{"format": "fedchain-simulate-checkpoint", "version": 1}')
    _refused([*FEDPER, "--resume", bad], "checkpoint.json is corrupt (no 'round' entry)")
    state = ck / "state-0002.safetensors"
    data = bytearray(state.read_bytes())
    data[-1] ^= 0xFF
    state.write_bytes(bytes(data))
    before = _files(ck)
    refused(["--resume", ck], "state file state-0002.safetensors is corrupt")
    state.unlink()
    before = _files(ck)
    refused(["--resume", ck], "state file state-0002.safetensors is missing")


def test_ctrl_c_then_resume_ends_as_the_uninterrupted_run(tmp_path: Path) -> None:
    """SIGINT once round 1 is checkpointed: exit 130 naming --resume; resuming to k + 2
    rounds gives the uninterrupted (k + 2)-round run's model and accuracies."""
    ck = tmp_path / "ck"
    code, err = interrupt_simulate(
        [*FEDPER, "--rounds", "200", "--checkpoint-dir", str(ck)], tmp_path, ck / "checkpoint.json"
    )
    assert code == 130, err
    assert f"--resume {ck}" in err and "Traceback" not in err
    done = json.loads((ck / "checkpoint.json").read_text())["round"]
    assert 1 <= done < 200
    rounds = str(done + 2)
    _simulate(*FEDPER, "--rounds", rounds, "--resume", ck, "--out", tmp_path / "resumed.json")
    _simulate(*FEDPER, "--rounds", rounds, "--checkpoint-dir", tmp_path / "full", "--out", tmp_path / "full.json")
    assert _state_digest(ck) == _state_digest(tmp_path / "full")
    assert _rounds(tmp_path / "resumed.json") == _rounds(tmp_path / "full.json")
