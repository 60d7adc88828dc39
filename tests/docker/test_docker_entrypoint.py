"""docker/entrypoint.py: each scaled replica gets its own state slot, held for its lifetime."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

ENTRYPOINT = REPO / "docker" / "entrypoint.py"


def run_entrypoint(env: dict[str, str], *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ENTRYPOINT), *command], env=env,
                          capture_output=True, text=True, timeout=timeout)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDCHAIN_", "FC_"))}
    env.update(extra)
    return env


PRINT_STATE = "import os; print(os.environ['FEDCHAIN_STATE_DIR'])"


def test_replica_gets_first_free_slot_and_keeps_it_while_running(tmp_path: Path) -> None:
    env = base_env(FC_STATE_SLOTS_DIR=str(tmp_path))
    first = run_entrypoint(env, sys.executable, "-c", PRINT_STATE)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(tmp_path / "slot-0")
    # a live replica (its lock survives exec into the service) keeps slot-0 busy
    holder = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), sys.executable, "-c",
         "import os, sys, time; print(os.environ['FEDCHAIN_STATE_DIR'], flush=True); time.sleep(60)"],
        env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == str(tmp_path / "slot-0")
        second = run_entrypoint(env, sys.executable, "-c", PRINT_STATE)
        assert second.stdout.strip() == str(tmp_path / "slot-1")
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # once that replica is gone its slot (and the key/personal layers in it) is reused
    again = run_entrypoint(env, sys.executable, "-c", PRINT_STATE)
    assert again.stdout.strip() == str(tmp_path / "slot-0")
    assert (tmp_path / "slot-0").is_dir() and (tmp_path / "slot-1").is_dir()


def test_concurrent_replicas_never_share_a_slot(tmp_path: Path) -> None:
    env = base_env(FC_STATE_SLOTS_DIR=str(tmp_path))
    code = "import os, time; print(os.environ['FEDCHAIN_STATE_DIR'], flush=True); time.sleep(20)"
    procs = [subprocess.Popen([sys.executable, str(ENTRYPOINT), sys.executable, "-c", code],
                              env=env, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        slots = []
        for p in procs:
            assert p.stdout is not None
            slots.append(p.stdout.readline().strip())
        assert sorted(slots) == [str(tmp_path / f"slot-{i}") for i in range(4)]
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)


def test_advertises_own_address_only_when_binding_everything(tmp_path: Path) -> None:
    code = "import os; print(os.environ.get('FEDCHAIN_ADVERTISE_HOST', '-'))"
    wildcard = run_entrypoint(base_env(FEDCHAIN_HOST="0.0.0.0"), sys.executable, "-c", code)
    assert wildcard.returncode == 0, wildcard.stderr
    assert wildcard.stdout.strip() not in {"", "-"}
    given = run_entrypoint(base_env(FEDCHAIN_HOST="0.0.0.0", FEDCHAIN_ADVERTISE_HOST="msn"),
                           sys.executable, "-c", code)
    assert given.stdout.strip() == "msn"
    local = run_entrypoint(base_env(FEDCHAIN_HOST="127.0.0.1"), sys.executable, "-c", code)
    assert local.stdout.strip() == "-"


@pytest.mark.parametrize("command", [[], ["/nonexistent/fedchain-binary"]])
def test_unusable_command_is_one_line_exit_2(command: list[str]) -> None:
    result = run_entrypoint(base_env(), *command)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("entrypoint: ")
    assert "Traceback" not in result.stderr


def test_unwritable_slots_dir_is_one_line_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_entrypoint(base_env(FC_STATE_SLOTS_DIR=str(blocker / "slots")), "true")
    assert result.returncode == 2
    assert result.stderr.startswith("entrypoint: cannot use state slots")
    assert "Traceback" not in result.stderr


def test_signals_reach_the_service_directly() -> None:
    """The entrypoint execs: SIGTERM stops the service at once (graceful `docker stop`)."""
    proc = subprocess.Popen([sys.executable, str(ENTRYPOINT), sys.executable, "-c",
                             "import signal, sys, time\n"
                             "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
                             "print('up', flush=True)\ntime.sleep(60)"],
                            env=base_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "up"
    start = time.monotonic()
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - start < 5
