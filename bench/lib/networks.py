"""A fedchain network on this machine for a benchmark: ``fedchain node`` processes, or ``fedchain up --keep``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import psutil

from fedchain.shared.processes import fedchain_argv, free_port, is_alive
from lib import BenchError
from lib.control import ProcessGroup, wait_until
from lib.paths import REPO


def fl_flags(settings: Any) -> list[str]:
    """``fedchain node`` flags that carry the learning settings to the entry."""
    return ["--algorithm", settings.algorithm, "--dataset", settings.dataset, "--data-dir", str(settings.data_dir),
            "--model", settings.model, "--clients", str(settings.clients), "--local-epochs", str(settings.local_epochs),
            "--batch-size", str(settings.batch_size), "--lr", str(settings.lr), "--seed", str(settings.seed),
            *(["--max-samples", str(settings.max_samples)] if settings.max_samples else [])]


@dataclass
class FedchainNetwork:
    """An entry SN (embedded ledger, SQLite), extra SNs and ENs as ``fedchain node`` processes.

    Every node is its own process of this interpreter on 127.0.0.1 with free ports and its
    own state folder under ``root``; ``roles`` maps each pid to "entry", "SN" or "EN".
    Settings the node CLI has no flag for (eval) go through the environment (``no_eval_env``).
    """

    root: Path
    settings: Any
    env: Mapping[str, str] | None = None
    group: ProcessGroup = field(init=False)
    roles: dict[int, str] = field(default_factory=dict)
    entry_port: int = 0
    http_port: int = 0
    _count: int = 0

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.env = with_node_tokens(self.env)
        self.group = ProcessGroup(self.root / "logs", env=self.env, cwd=self.root)

    @property
    def base_url(self) -> str:
        """The entry's control API."""
        return f"http://127.0.0.1:{self.http_port}"

    def _node(self, name: str, role: str, extra: Sequence[str]) -> int:
        port, http = free_port(), free_port()
        args = ["node", "--port", str(port), "--http-port", str(http),
                "--state-dir", str(self.root / name), "--data-dir", str(self.settings.data_dir), *extra]
        proc = self.group.start_fedchain(name, args, watch_parent=True, grpc_port=port, http_port=http)
        self.roles[proc.pid] = role
        if role == "entry":
            self.entry_port, self.http_port = port, http
        return proc.pid

    def start_entry(self, timeout: float = 120) -> None:
        """Start the entry SN and wait until its control API answers."""
        self._node("entry", "entry", ["--nt", "SN", "-z", *fl_flags(self.settings)])
        wait_until(lambda: self.status(check=True) is not None, timeout, "the fedchain entry SN's control API")

    def add_sn(self) -> int:
        """Start one more (non-entry) SN."""
        self._count += 1
        return self._node(f"sn-{self._count}", "SN", ["--nt", "SN", "--entry", f"127.0.0.1:{self.entry_port}"])

    def add_en(self) -> int:
        """Start one more EN."""
        self._count += 1
        return self._node(f"en-{self._count}", "EN", ["--nt", "EN", "--entry", f"127.0.0.1:{self.entry_port}"])

    def status(self, check: bool = False) -> dict[str, Any] | None:
        """The entry's /status, or None while it does not answer."""
        import httpx

        if check:
            self.group.check_alive()
        try:
            resp = httpx.get(self.base_url + "/status", timeout=5)
            return resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def wait_members(self, ens: int, sns: int, timeout: float) -> None:
        """Wait until the entry counts ``ens`` ENs and ``sns`` SNs (itself included)."""

        def counted() -> bool:
            st = self.status(check=True)
            return st is not None and int(st.get("ens", 0)) >= ens and int(st.get("sns", 0)) >= sns

        wait_until(counted, timeout, f"{ens} ENs and {sns} SNs to join the fedchain network", interval=0.3)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the entry's control API (with the nodes' FEDCHAIN_API_TOKEN)."""
        import httpx

        token = (self.env or {}).get("FEDCHAIN_API_TOKEN", "")
        resp = httpx.request(method, self.base_url + path, headers={"Authorization": f"Bearer {token}"},
                             timeout=60, **kwargs)
        if resp.status_code >= 400:
            raise BenchError(f"{method} {path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def train(self, rounds: int, timeout: float, on_round: Callable[[int, float], None] | None = None) -> float:
        """POST /train, poll /status until ``rounds`` more rounds are done; returns wall seconds.

        ``on_round(round, seconds_since_start)`` is called as each completed round is seen.
        """
        t0 = time.perf_counter()
        started = self.api("POST", "/train", json={"rounds": rounds, "algorithm": self.settings.algorithm})
        target = int(started["target_round"])
        seen = int(started["start_round"]) - 1

        def done() -> bool:
            nonlocal seen
            st = self.status(check=True) or {}
            if st.get("error"):
                raise BenchError(f"fedchain training failed: {st['error']}")
            current = int(st.get("round", seen))
            while seen < current:
                seen += 1
                if on_round is not None:
                    on_round(seen, time.perf_counter() - t0)
            return current >= target

        wait_until(done, timeout, f"fedchain to finish round {target}", interval=0.05)
        return time.perf_counter() - t0

    def pids(self, role: str) -> list[int]:
        """Live pids of one role ("entry", "SN" or "EN")."""
        return [p for p, r in self.roles.items() if r == role and is_alive(p)]

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after the grace period)."""
        self.group.stop(grace=15)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class UpNetwork:
    """A network started by ``fedchain up --keep`` (ledger, entry M-SN, SNs, ENs as processes).

    ``start`` runs ``fedchain up`` with the given flags until it has trained its rounds,
    verified the chain and returned (its children stay up); ``children`` then maps the
    recorded process names (ledger, entry, sn-i, en-i) to pids; ``stop`` runs
    ``fedchain down`` and SIGKILLs any recorded pid still alive afterwards.
    """

    state_dir: Path
    env: Mapping[str, str] | None = None
    http_port: int = 0
    children: dict[str, int] = field(default_factory=dict)
    output: str = ""

    @property
    def base_url(self) -> str:
        """The entry's control API."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, ens: int, sns: int, rounds: int, fl: Sequence[str], timeout: float) -> float:
        """Run ``fedchain up --keep``; return its wall seconds. Raises BenchError if it fails."""
        self.http_port = free_port()
        argv = [*fedchain_argv([]), "up", "--ens", str(ens), "--sns", str(sns), "--rounds", str(rounds),
                "--state-dir", str(self.state_dir), "--port", str(free_port()), "--http-port", str(self.http_port),
                "--keep", *fl]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(argv, env=dict(self.env) if self.env is not None else None, cwd=REPO,
                                  capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            self._record_children()
            self.stop()
            raise BenchError(f"fedchain up did not finish within {timeout:.0f} s") from exc
        finally:
            self._record_children()
        seconds = time.perf_counter() - t0
        self.output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            self.stop()
            raise BenchError(f"fedchain up failed (exit {proc.returncode}): {self.output.strip()[-800:]}")
        return seconds

    def _record_children(self) -> None:
        path = self.state_dir / "network.json"
        if path.is_file():
            try:
                rows = json.loads(path.read_text(encoding="utf-8"))
                self.children.update({str(r["name"]): int(r["pid"]) for r in rows})
            except (ValueError, KeyError, TypeError):
                pass

    def pids(self, prefix: str) -> list[int]:
        """Live pids whose recorded name starts with ``prefix`` (e.g. "en-", "sn-", "entry")."""
        return [p for n, p in self.children.items() if n.startswith(prefix) and is_alive(p)]

    def get(self, path: str) -> Any:
        """GET a control-API path of the entry, as JSON."""
        import httpx

        resp = httpx.get(self.base_url + path, timeout=60)
        if resp.status_code >= 400:
            raise BenchError(f"GET {path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def stop(self) -> None:
        """``fedchain down``, then SIGKILL whatever recorded process is still alive."""
        if self.state_dir.is_dir():
            subprocess.run(
                [*fedchain_argv([]), "down", "--state-dir", str(self.state_dir)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
                env=dict(self.env) if self.env is not None else None,
                check=False,
            )
        left = []
        for pid in self.children.values():
            try:
                left.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        _gone, alive = psutil.wait_procs(left, timeout=10)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def up_fl_flags(settings: Any) -> list[str]:
    """``fedchain up`` flags carrying the learning settings (up has no --clients: it is --ens)."""
    flags = fl_flags(settings)
    i = flags.index("--clients")
    return flags[:i] + flags[i + 2 :]


NODE_TOKENS = ("FEDCHAIN_SN_JOIN_TOKEN", "FEDCHAIN_EN_JOIN_TOKEN", "FEDCHAIN_API_TOKEN")


def with_node_tokens(env: Mapping[str, str] | None) -> dict[str, str]:
    """``env`` (default: this process's) with a random value for each node token it lacks."""
    import secrets

    out = dict(os.environ if env is None else env)
    for name in NODE_TOKENS:
        if not out.get(name):
            out[name] = secrets.token_urlsafe(32)
    return out


def no_eval_env() -> dict[str, str]:
    """Environment for node processes: no evaluation rounds, one torch thread each."""
    return {
        **os.environ,
        "FEDCHAIN_EVAL": "false",
        "FEDCHAIN_LOCAL_EVAL": "false",
        "OMP_NUM_THREADS": "1",
        "FEDCHAIN_TORCH_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
