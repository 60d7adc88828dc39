"""Local processes: start children with their logs, wait for their health, stop them all.

The one launcher of local processes. `fedchain up`, the network tests, the benchmarks and
the docker CI scenario start their children through :class:`ProcessGroup`, pick ports with
:func:`free_port`, and find fedchain processes with :func:`fedchain_processes`.
Supervision goes through psutil (descendants, zombies, command lines, recycled pids).

Start-up hooks every ``fedchain`` process runs (the CLI entry point calls them):

- :func:`restore_default_sigint`: a process started from a background job inherits SIGINT
  as ignored, so Ctrl-C would do nothing; fedchain puts Python's default handler back.
- :func:`watch_parent`: a child started with ``watch_parent=True`` (``fedchain
  --watch-parent PID ...``) stops itself (SIGTERM, then SIGKILL) when that parent is gone,
  so a killed `fedchain up` leaves no network behind.

Lives in ``shared/`` because it depends on nothing of the services: the CLI (which owns
the commands that start networks), the tests, ``bench/`` and ``docker/ci`` all import it
without importing one another.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import psutil

CLI_MODULE = "fedchain.services.cli.main"
WATCH_PARENT_FLAG = "--watch-parent"
NODE_COMMANDS = ("node", "ledger")
"""The long-running fedchain commands (what a network is made of)."""


class ChildExited(RuntimeError):
    """A child process exited while it was expected to run; the message names it and its log."""

    def __init__(self, child: Child, code: int) -> None:
        self.child, self.code = child, code
        super().__init__(f"{child.name} exited with code {code}; see {child.log}\n{child.tail()}")


class NotHealthy(TimeoutError):
    """A child did not answer its health check within the time allowed."""

    def __init__(self, child: Child, timeout: float) -> None:
        self.child = child
        super().__init__(f"{child.name} did not come up within {timeout:.0f} s; see {child.log}")


# ---------------------------------------------------------------- ports


_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10000
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()
_port_rng = random.SystemRandom()


def _ephemeral_range() -> tuple[int, int]:
    """The range the kernel takes source ports of outgoing connections from."""
    try:
        low, high = (int(x) for x in _EPHEMERAL_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now, for a child to listen on.

    Chosen at random below the kernel's ephemeral range (10000 up to it, or above it when
    the range starts too low): a port the OS hands out with ``bind(0)`` can be taken again
    as the source port of any outgoing connection before the child binds it, which made a
    node fail with "port already in use" on a busy machine. Never the same port twice in
    one process; random so that parallel test workers rarely pick alike, and checked free.
    """
    low, high = _ephemeral_range()
    span = (_LOWEST_PORT, low - 1) if low - _LOWEST_PORT >= 2000 else (high + 1, 65535)
    with _handed_out_lock:
        for _ in range(200):
            port = _port_rng.randint(*span)
            if port not in _handed_out and port_is_free(port, host):
                _handed_out.add(port)
                return port
    with socket.socket() as s:  # a crowded range: let the OS choose
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------- start-up hooks of every fedchain process


def restore_default_sigint() -> None:
    """Put Python's SIGINT handler (KeyboardInterrupt) back, whatever was inherited.

    A process started from a non-interactive shell's background job inherits SIGINT as
    ignored; without this, Ctrl-C and ``kill -INT`` would do nothing to it.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


def watch_parent(pid: int, *, interval: float = 0.5, grace: float = 10.0) -> threading.Thread:
    """Stop this process once process ``pid`` is gone (SIGTERM to itself, SIGKILL after ``grace`` s).

    The watch runs in a daemon thread and notices within ``interval`` seconds; a recycled
    pid does not fool it (psutil compares the creation time).
    """
    try:
        parent: psutil.Process | None = psutil.Process(pid)
    except psutil.NoSuchProcess:
        parent = None

    def parent_alive() -> bool:
        if parent is None:
            return False
        try:
            return bool(parent.is_running()) and parent.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def watch() -> None:
        while parent_alive():
            time.sleep(interval)
        print(f"fedchain: parent process {pid} is gone; stopping", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="watch-parent", daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------- fedchain command lines


def fedchain_argv(args: Sequence[str], *, parent: int | None = None) -> list[str]:
    """argv that runs ``fedchain ARGS`` with this interpreter (watching ``parent`` when given)."""
    watch = [WATCH_PARENT_FLAG, str(parent)] if parent is not None else []
    return [sys.executable, "-m", CLI_MODULE, *watch, *args]


def _cli_index(cmdline: Sequence[str]) -> int | None:
    """Index of the argument that names the fedchain CLI in ``cmdline`` (None: not fedchain)."""
    for i, arg in enumerate(cmdline[:4]):
        if CLI_MODULE in arg or Path(arg).name == "fedchain":
            return i
    return None


def is_fedchain_cmdline(cmdline: Sequence[str]) -> bool:
    """True when ``cmdline`` runs the fedchain CLI (module, console script or ``-c`` import)."""
    return _cli_index(cmdline) is not None


def fedchain_command(cmdline: Sequence[str]) -> str | None:
    """The fedchain subcommand of ``cmdline`` ("node", "ledger", "up", …), None if not fedchain."""
    i = _cli_index(cmdline)
    if i is None:
        return None
    rest = list(cmdline[i + 1 :])
    while rest:
        arg = rest.pop(0)
        if arg == WATCH_PARENT_FLAG:
            rest = rest[1:]
        elif not arg.startswith("-"):
            return arg
    return None


def _flag_value(cmdline: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(cmdline):
        if arg == flag and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def is_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def is_fedchain_process(pid: int) -> bool:
    """True when live process ``pid`` runs fedchain (guards against a recycled pid in a stale record)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and is_fedchain_cmdline(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def fedchain_processes(
    under: Path | None = None, commands: Collection[str] = NODE_COMMANDS
) -> list[psutil.Process]:
    """Live fedchain processes running one of ``commands`` (this process excluded).

    With ``under``, only those whose ``--state-dir`` (relative to their working directory)
    is ``under`` or inside it: the nodes of one state dir, however they were started.
    """
    root = under.resolve() if under is not None else None
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["cmdline", "status", "cwd"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline: list[str] = proc.info["cmdline"] or []
        if fedchain_command(cmdline) not in commands:
            continue
        if root is not None:
            state = _flag_value(cmdline, "--state-dir")
            if state is None:
                continue
            path = (Path(proc.info["cwd"] or "/") / state).resolve()
            if path != root and root not in path.parents:
                continue
        found.append(proc)
    return found


def stop_processes(procs: Sequence[psutil.Process], grace: float = 15.0) -> list[psutil.Process]:
    """SIGTERM ``procs`` in the order given, wait up to ``grace`` s, SIGKILL the rest.

    Returns the processes that needed SIGKILL.
    """
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(list(procs), timeout=grace)
    killed: list[psutil.Process] = []
    for proc in alive:
        try:
            proc.kill()
            killed.append(proc)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(killed, timeout=5)
    return killed


def tail(path: Path, lines: int = 8) -> str:
    """The last ``lines`` lines of a log file ("" when it cannot be read)."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------- children


@dataclass
class Child:
    """One child process: its name, command line, log file and (for nodes) ports."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes]
    grpc_port: int | None = None
    http_port: int | None = None
    env: dict[str, str] | None = None
    cwd: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def health_url(self) -> str:
        """``http://127.0.0.1:<http_port>/health`` of a fedchain node or ledger."""
        return f"http://127.0.0.1:{self.http_port}/health"

    def running(self) -> bool:
        """True until the child exits."""
        return self.popen.poll() is None

    def tail(self, lines: int = 8) -> str:
        """The last lines of the child's log."""
        return tail(self.log, lines)


@dataclass
class ProcessGroup:
    """Children started together and stopped together, descendants included.

    Each child writes stdout and stderr to ``<log_dir>/<name>.log`` (appended, so a
    restarted child keeps one log). ``stop`` sends SIGTERM to every child (newest first)
    and to all their descendants, waits, then SIGKILLs what is left. As a context manager
    an error or Ctrl-C never leaves a process behind. ``new_session`` starts each child in
    its own session (a terminal's Ctrl-C then reaches only the parent, which stops them in
    order).
    """

    log_dir: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    new_session: bool = False
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        grpc_port: int | None = None,
        http_port: int | None = None,
    ) -> Child:
        """Start ``argv`` as child ``name`` (``env`` and ``cwd`` default to the group's)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        use_env = env if env is not None else self.env
        log = self.log_dir / f"{name}.log"
        popen = self._popen(list(argv), use_env, cwd, log)
        child = Child(name, list(argv), log, popen, grpc_port, http_port,
                      dict(use_env) if use_env is not None else None, cwd or self.cwd)
        self.children.append(child)
        return child

    def start_fedchain(
        self,
        name: str,
        args: Sequence[str],
        *,
        watch_parent: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        grpc_port: int | None = None,
        http_port: int | None = None,
    ) -> Child:
        """Start ``fedchain ARGS``; with ``watch_parent`` it stops itself when this process is gone."""
        argv = fedchain_argv(args, parent=os.getpid() if watch_parent else None)
        return self.start(name, argv, env=env, cwd=cwd, grpc_port=grpc_port, http_port=http_port)

    def restart(self, child: Child, env: Mapping[str, str] | None = None) -> Child:
        """Start ``child`` again with the same command line, working dir and log."""
        use_env = env if env is not None else child.env
        child.popen = self._popen(child.argv, use_env, child.cwd, child.log)
        return child

    def _popen(self, argv: list[str], env: Mapping[str, str] | None, cwd: Path | None,
               log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None, cwd=cwd or self.cwd,
                start_new_session=self.new_session,
            )

    def check_alive(self) -> None:
        """Raise :class:`ChildExited` naming the first child that has exited."""
        for child in self.children:
            code = child.popen.poll()
            if code is not None:
                raise ChildExited(child, code)

    def wait_healthy(self, child: Child, timeout: float, url: str | None = None,
                     interval: float = 0.2, verify: ssl.SSLContext | bool = True) -> None:
        """Wait until GET ``url`` (the child's /health) answers 200; raise if the child exits.

        ``verify`` checks an https ``url`` (an ``ssl.SSLContext`` holding the CA)."""
        target = url or child.health_url
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = child.popen.poll()
            if code is not None:
                raise ChildExited(child, code)
            try:
                if httpx.get(target, timeout=1.0, verify=verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(interval)
        raise NotHealthy(child, timeout)

    def pids(self) -> list[int]:
        """Pids of the running children and all their descendants."""
        out: list[int] = []
        for child in self.children:
            if child.running():
                out.append(child.pid)
                out.extend(p.pid for p in _descendants(child.pid))
        return out

    def stop(self, grace: float = 15.0) -> list[str]:
        """Stop every child (newest first) and its descendants; returns the names that needed SIGKILL."""
        live = [c for c in reversed(self.children) if c.running()]
        below = [p for c in live for p in _descendants(c.pid)]
        for child in live:
            _signal(child.popen, signal.SIGTERM)
        for proc in below:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + grace
        killed: list[str] = []
        for child in live:
            try:
                child.popen.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(child.popen, signal.SIGKILL)
                killed.append(child.name)
                child.popen.wait(timeout=5)
        _gone, alive = psutil.wait_procs(below, timeout=max(0.05, deadline - time.monotonic()))
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        return killed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _signal(popen: subprocess.Popen[bytes], sig: int) -> None:
    if popen.poll() is None:
        try:
            popen.send_signal(sig)
        except ProcessLookupError:
            pass
