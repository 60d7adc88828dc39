"""A real multi-process fedchain network on 127.0.0.1 for tests: start, query, kill, clean up.

Processes are started through the one launcher (``fedchain.shared.processes``): each node
logs to ``<root>/logs/<name>.log`` and watches the test process, so even a killed test run
leaves no node behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fedchain.shared.processes import Child, ProcessGroup, free_port
from tests.conftest import REPO

API_TOKEN = "test-api-token-of-the-harness"
SN_JOIN_TOKEN = "test-sn-join-token-of-the-harness"
EN_JOIN_TOKEN = "test-en-join-token-of-the-harness"


@dataclass
class Proc:
    """One node (or ledger) process of a test network."""

    name: str
    child: Child
    port: int
    http_port: int
    state_dir: Path

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        return self.child.popen

    @property
    def log(self) -> Path:
        return self.child.log

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


class LocalNet:
    """Processes of one test network; ``close()`` leaves none behind."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root = root
        self.procs: list[Proc] = []
        self.env = dict(os.environ)
        self.env.update(
            FEDCHAIN_HEARTBEAT_INTERVAL="0.5",
            # 30 s: a loaded CI machine can starve a node's heartbeats for 10 s (it then
            # leaves and re-joins); modules that kill nodes pass a shorter one
            FEDCHAIN_HEARTBEAT_TIMEOUT="30",
            FEDCHAIN_ROUND_TIMEOUT="90",
            FEDCHAIN_API_TOKEN=API_TOKEN,
            FEDCHAIN_SN_JOIN_TOKEN=SN_JOIN_TOKEN,
            FEDCHAIN_EN_JOIN_TOKEN=EN_JOIN_TOKEN,
            FEDCHAIN_TORCH_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        self.env.update(env)
        self.entry: Proc | None = None
        self.group = ProcessGroup(root / "logs", cwd=REPO)

    # ---- processes ----
    def start(self, name: str, args: list[str], port: int | None = None, command: str = "node") -> Proc:
        """Start ``fedchain COMMAND`` (a node by default) on free ports with its own state dir and log."""
        port = port or free_port()
        http_port = free_port()
        state = self.root / name
        full = [command, "--port", str(port), "--http-port", str(http_port), "--state-dir", str(state), *args]
        child = self.group.start_fedchain(name, full, watch_parent=True, env=self.env, grpc_port=port,
                                          http_port=http_port)
        proc = Proc(name, child, port, http_port, state)
        self.procs.append(proc)
        return proc

    def start_entry(self, *flags: str, port: int | None = None) -> Proc:
        self.entry = self.start("entry", ["--nt", "SN", "-z", *flags], port=port)
        return self.entry

    def start_sn(self, name: str, *flags: str) -> Proc:
        assert self.entry is not None
        return self.start(name, ["--nt", "SN", "--entry", self.entry.address, *flags])

    def start_en(self, name: str, *flags: str) -> Proc:
        assert self.entry is not None
        return self.start(name, ["--nt", "EN", "--entry", self.entry.address, *flags])

    def restart(self, proc: Proc) -> Proc:
        """Start ``proc`` again with the same ports, state dir and flags (and the current env)."""
        self.group.restart(proc.child, env=self.env)
        return proc

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        proc.popen.send_signal(sig)
        proc.popen.wait(timeout=20)

    def close(self) -> None:
        self.group.stop(grace=15)

    def logs(self) -> str:
        """Tails of every log (for assertion messages)."""
        out = []
        for p in self.procs:
            lines = p.log.read_text(errors="replace").splitlines()[-15:]
            out.append(f"--- {p.name} ---\n" + "\n".join(lines))
        return "\n".join(out)

    # ---- HTTP ----
    def get(self, path: str, proc: Proc | None = None, **kw: Any) -> Any:
        target = proc or self.entry
        assert target is not None
        r = httpx.get(target.http + path, timeout=30, **kw)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        return r.json()

    def post(self, path: str, body: dict[str, Any] | None = None, proc: Proc | None = None) -> httpx.Response:
        target = proc or self.entry
        assert target is not None
        return httpx.post(
            target.http + path, json=body, timeout=120, headers={"Authorization": f"Bearer {API_TOKEN}"}
        )

    def wait_for(self, check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
        """Poll ``check`` until it returns something truthy (bounded)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for p in self.procs:
                code = p.popen.poll()
                if code is not None and p.popen.returncode not in (-9, -15, 0) and p is self.entry:
                    raise AssertionError(f"{p.name} exited with {code}\n{self.logs()}")
            try:
                last = check()
                if last:
                    return last
            except (httpx.HTTPError, AssertionError, KeyError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last})\n{self.logs()}")

    def wait_healthy(self, proc: Proc, timeout: float = 90) -> None:
        self.wait_for(lambda: self.get("/health", proc)["status"] == "ok", f"{proc.name} to answer /health", timeout)

    def wait_edges(self, count: int, timeout: float = 120) -> dict[str, Any]:
        return self.wait_for(lambda: (s := self.get("/status"))["ens"] >= count and s, f"{count} live ENs", timeout)

    def train(self, rounds: int, algorithm: str | None = None, timeout: float = 240) -> list[dict[str, Any]]:
        """POST /train and wait until the target round is on the chain; returns /rounds."""
        r = self.post("/train", {"rounds": rounds, "algorithm": algorithm})
        assert r.status_code == 202, r.text
        target = r.json()["target_round"]
        self.wait_for(
            lambda: (s := self.get("/status"))["round"] >= target and s["state"] != "training",
            f"round {target}", timeout,
        )
        return self.get("/rounds")
