"""The one launcher of local processes: ports, groups stopped with their descendants, start-up hooks."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from fedchain.shared import processes
from tests.conftest import REPO, ignore_sigint


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_free_port_is_free_and_a_listening_port_is_not() -> None:
    port = processes.free_port()
    assert processes.port_is_free(port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        assert not processes.port_is_free(port)


def test_group_stops_children_and_grandchildren_in_their_own_session(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n"
    )
    with processes.ProcessGroup(tmp_path / "logs") as group:
        child = group.start("parent", [sys.executable, "-c", script])
        _wait(lambda: "started" in child.tail() and len(group.pids()) == 2, 30, "the grandchild")
        grandchild = group.pids()[1]
        assert processes.is_alive(grandchild)
    assert not child.running()
    _wait(lambda: not processes.is_alive(grandchild), 10, "the grandchild to stop")


def test_a_child_that_ignores_sigterm_is_killed_and_named(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    )
    group = processes.ProcessGroup(tmp_path / "logs")
    stubborn = group.start("stubborn", [sys.executable, "-c", script])
    polite = group.start("polite", [sys.executable, "-c", "import time; time.sleep(60)"])
    _wait(lambda: "up" in stubborn.tail(), 30, "the stubborn child to ignore SIGTERM")
    assert group.stop(grace=1) == ["stubborn"]
    assert stubborn.popen.returncode == -signal.SIGKILL and polite.popen.returncode == -signal.SIGTERM


def test_check_alive_names_the_dead_child_and_its_log(tmp_path: Path) -> None:
    with processes.ProcessGroup(tmp_path / "logs") as group:
        child = group.start("broken", [sys.executable, "-c", "print('no dataset here'); raise SystemExit(3)"])
        child.popen.wait(timeout=30)
        with pytest.raises(
            processes.ChildExited, match=r"broken exited with code 3; see .*broken.log\nno dataset here"
        ):
            group.check_alive()
        with pytest.raises(processes.ChildExited):
            group.wait_healthy(child, 5, url="http://127.0.0.1:1/health")


def test_restart_appends_to_the_same_log(tmp_path: Path) -> None:
    with processes.ProcessGroup(tmp_path / "logs") as group:
        child = group.start("echo", [sys.executable, "-c", "print('hello', flush=True)"])
        child.popen.wait(timeout=30)
        group.restart(child).popen.wait(timeout=30)
    assert child.log.read_text().split() == ["hello", "hello"]


def test_fedchain_command_lines_are_recognised() -> None:
    argv = processes.fedchain_argv(["node", "--state-dir", "/x/en-1"], parent=42)
    assert argv[3:5] == ["--watch-parent", "42"]
    assert processes.fedchain_command(argv) == "node"
    assert processes.fedchain_command(["/venv/bin/python", "/venv/bin/fedchain", "ledger", "--port", "1"]) == "ledger"
    assert processes.fedchain_command([sys.executable, "-c", "import time"]) is None
    assert not processes.is_fedchain_cmdline(["sleep", "10"])


def test_fedchain_processes_finds_the_nodes_of_a_state_dir(tmp_path: Path) -> None:
    # a stand-in "node": a python whose command line names the fedchain CLI and a state dir
    fake = [sys.executable, "-c", "import time; time.sleep(60)", processes.CLI_MODULE, "node", "--state-dir", "sd/en-1"]
    proc = subprocess.Popen(fake, cwd=tmp_path)
    try:
        _wait(lambda: psutil.Process(proc.pid).cmdline() == fake, 10, "the stand-in node")
        found = [p.pid for p in processes.fedchain_processes(under=tmp_path / "sd")]
        assert found == [proc.pid]
        assert processes.fedchain_processes(under=tmp_path / "other") == []
        assert processes.is_fedchain_process(proc.pid)
        assert processes.stop_processes([psutil.Process(proc.pid)], grace=5) == []
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_child_watching_its_parent_stops_when_the_parent_is_killed(tmp_path: Path) -> None:
    watcher = (
        "import os, sys, time\n"
        "from fedchain.shared.processes import watch_parent\n"
        "watch_parent(os.getppid(), interval=0.1)\n"
        "print('watching', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent_script = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {watcher!r}], start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        time.sleep(1.0)  # let the child import and start watching
        assert processes.is_alive(child_pid)
        parent.kill()
        parent.wait(timeout=10)
        _wait(lambda: not processes.is_alive(child_pid), 5, "the orphan to notice its parent is gone")
    finally:
        parent.kill()


def test_the_fedchain_entry_point_restores_sigint_inherited_as_ignored() -> None:
    # as a background job starts it: SIGINT ignored; every fedchain command must put the handler back
    probe = (
        "import signal\n"
        "from fedchain.services.cli import main as cli\n"
        "def probe() -> None:\n"
        "    print('sigint', signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
        "cli.app.command('probe')(probe)\n"
        "cli.main(['probe'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=ignore_sigint,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sigint True"
