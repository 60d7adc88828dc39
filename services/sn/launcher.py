"""Local child processes of a network (`fedchain up`): start, wait for, record and stop them.

Children run in their own session (a terminal's Ctrl-C reaches only `fedchain up`,
which then stops them in order). Their pids and ports go to ``<state-dir>/network.json``
so `fedchain down --state-dir DIR` can stop a network left up with ``--keep``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from fedchain.shared.config import ConfigError

PIDS_FILE = "network.json"


@dataclass
class Child:
    """One child process of the network."""

    name: str
    pid: int
    grpc_port: int
    http_port: int
    log: str


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (and is not a zombie of ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class Network:
    """The set of children started by one `fedchain up`."""

    def __init__(self, state_dir: Path, env: dict[str, str]) -> None:
        self.state_dir = state_dir
        self.env = env
        self.children: list[Child] = []
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        (state_dir / "logs").mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], grpc_port: int, http_port: int) -> Child:
        """Start ``fedchain <args>`` as a child logging to logs/<name>.log."""
        log_path = self.state_dir / "logs" / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedchain.services.cli.main", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        child = Child(name, proc.pid, grpc_port, http_port, str(log_path))
        self.children.append(child)
        self._procs[proc.pid] = proc
        self.save()
        return child

    def save(self) -> None:
        path = self.state_dir / PIDS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(c) for c in self.children], indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def check_alive(self) -> None:
        """Raise ConfigError naming the first child that exited (with its log)."""
        for c in self.children:
            proc = self._procs.get(c.pid)
            if proc is not None and proc.poll() is not None:
                raise ConfigError(f"{c.name} exited with code {proc.returncode}; see {c.log}\n{tail(Path(c.log))}")

    def wait_http(self, child: Child, timeout: float) -> None:
        """Wait until the child's HTTP /health answers (bounded), or it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"http://127.0.0.1:{child.http_port}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ConfigError(f"{child.name} did not come up within {timeout:.0f} s; see {child.log}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every child (newest first), wait, SIGKILL stragglers; forget the pid file."""
        stop_children(self.children, timeout, self._procs)
        (self.state_dir / PIDS_FILE).unlink(missing_ok=True)


def is_fedchain_process(pid: int) -> bool:
    """True when ``pid`` runs fedchain (guards against a recycled pid in a stale network file)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"fedchain.services.cli.main" in fh.read()
    except OSError:
        return False


def stop_children(children: list[Child], timeout: float, procs: dict[int, subprocess.Popen[bytes]] | None = None) -> list[str]:
    """Stop the given children in reverse order; returns the names that needed SIGKILL."""
    procs = procs or {}
    children = [c for c in children if c.pid in procs or is_fedchain_process(c.pid)]
    for c in reversed(children):
        if pid_alive(c.pid):
            try:
                os.kill(c.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    killed: list[str] = []
    deadline = time.monotonic() + timeout
    for c in reversed(children):
        proc = procs.get(c.pid)
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    break
            elif not pid_alive(c.pid):
                break
            time.sleep(0.1)
        if pid_alive(c.pid):
            try:
                os.kill(c.pid, signal.SIGKILL)
                killed.append(c.name)
            except ProcessLookupError:
                pass
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    return killed


def read_network(state_dir: Path) -> list[Child]:
    """The children recorded in ``state_dir`` (empty when none)."""
    path = state_dir / PIDS_FILE
    if not path.is_file():
        return []
    try:
        return [Child(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a network file written by fedchain up: {exc}") from None


def tail(path: Path, lines: int = 8) -> str:
    """The last lines of a log file (for error messages)."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
