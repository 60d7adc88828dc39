"""`fedchain console` one-shot mode against a LIVE local network from `fedchain up --keep`.

One network (ledger + entry M-SN + 1 SN + 2 ENs on 1,200 mnist-sample images, SQLite ledger) is
started in a temporary state dir on free ports for the module and stopped with
`fedchain down` afterwards; every test drives it through the real `fedchain console`.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import free_port, need

TOKEN = "live-console-token"
ENS = 2
UP_TIMEOUT = 480.0
TRAIN_TIMEOUT = 300.0

pytestmark = pytest.mark.slow


def fedchain(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fedchain.services.cli.main", *args], check=False, capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


@dataclass
class LiveNetwork:
    entry_http: int
    sn_http: int | None
    en_http: int
    state_dir: Path
    env: dict[str, str]

    def console(
        self, port: int, *args: str, token: str = TOKEN, timeout: float = TRAIN_TIMEOUT + 60
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, FEDCHAIN_API_TOKEN=token, COLUMNS="160")
        return fedchain(
            "console", "--ip", "127.0.0.1", "--port", str(port), "--timeout", "120", *args, env=env, timeout=timeout
        )


def _entry_port() -> int:
    """A free gRPC port whose HTTP port (+1000) is free too (bounded tries)."""
    for _ in range(50):
        port = free_port()
        if port + 1000 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair found")


def _children(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "network.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _roles(children: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """/health of every child with an HTTP port, by that port."""
    out: dict[int, dict[str, Any]] = {}
    for child in children:
        try:
            out[child["http_port"]] = httpx.get(f"http://127.0.0.1:{child['http_port']}/health", timeout=5).json()
        except (httpx.HTTPError, ValueError, KeyError):
            continue
    return out


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNetwork]:
    env = dict(os.environ, FEDCHAIN_API_TOKEN=TOKEN, FEDCHAIN_TORCH_THREADS="1")
    env.pop("FEDCHAIN_HOME", None)
    helped = fedchain("up", "--help", env=env, timeout=60)
    need(helped.returncode == 0 and "--keep" in helped.stdout, "`fedchain up --keep` is not available yet")
    state_dir = tmp_path_factory.mktemp("live-network")
    port = _entry_port()
    up = fedchain(
        "up",
        "--keep",
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
        "--sns",
        "1",
        "--ens",
        str(ENS),
        "--rounds",
        "1",
        "--max-samples",
        "1200",
        env=env,
        timeout=UP_TIMEOUT,
    )
    children = _children(state_dir)
    try:
        assert up.returncode == 0, f"fedchain up failed ({up.returncode}):\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        roles = _roles(children)
        entry_http = port + 1000
        assert roles.get(entry_http, {}).get("entry") is True, roles
        en_ports = [p for p, h in roles.items() if h.get("role") == "EN"]
        sn_ports = [p for p, h in roles.items() if h.get("role") == "SN" and not h.get("entry")]
        assert len(en_ports) == ENS, roles
        yield LiveNetwork(entry_http, sn_ports[0] if sn_ports else None, en_ports[0], state_dir, env)
    finally:
        down = fedchain("down", "--state-dir", str(state_dir), env=env, timeout=120)
        leftovers = [c for c in children if _pid_alive(int(c["pid"]))]
        for child in leftovers:  # last resort, by pid: never leave processes behind
            os.kill(int(child["pid"]), signal.SIGKILL)
        assert down.returncode == 0, f"fedchain down failed: {down.stdout}\n{down.stderr}"
        assert not leftovers, f"still running after fedchain down: {[c['name'] for c in leftovers]}"


def _json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_get_sn_lists_the_super_nodes(live: LiveNetwork) -> None:
    result = live.console(live.entry_http, "-c", "getSN()")
    assert result.returncode == 0, result.stderr
    assert "super nodes" in result.stdout and "alive" in result.stdout and "yes" in result.stdout
    (obj,) = _json_lines(live.console(live.entry_http, "--json", "-c", "getSN()"))
    sns = obj["result"]
    assert [s["entry"] for s in sns].count(True) == 1
    assert all(s["status"] == "alive" for s in sns)
    assert sum(s["ens"] for s in sns) == ENS


def test_train_eval_model_blocks_verify(live: LiveNetwork, tmp_path: Path) -> None:
    model = tmp_path / "global.safetensors"
    before = _json_lines(live.console(live.entry_http, "--json", "-c", "status()"))[0]["result"]
    result = live.console(
        live.entry_http,
        "--json",
        "-c",
        f"train(rounds=1, timeout={TRAIN_TIMEOUT})",
        "-c",
        "eval()",
        "-c",
        f'getModel(path="{model}")',
        "-c",
        "blocks(n=5)",
        "-c",
        "verify()",
    )
    train, evaluation, got, blocks, verify = _json_lines(result)
    assert [o["command"] for o in (train, evaluation, got, blocks, verify)] == [
        "train",
        "eval",
        "getModel",
        "blocks",
        "verify",
    ]

    (done,) = train["result"]["rounds"]
    assert done["round"] == before["round"] + 1
    assert len(done["participants"]) == ENS and done["rejected"] == []
    assert 0.0 <= done["accuracy"] <= 1.0
    assert train["result"]["status"]["model_version"] == done["model_version"]

    clients = evaluation["result"]["clients"]
    assert len(clients) == ENS and all(c["total"] > 0 for c in clients)
    pooled = evaluation["result"]["pooled"]
    assert pooled["total"] == sum(c["total"] for c in clients)
    assert pooled["correct"] == sum(c["correct"] for c in clients)

    data = model.read_bytes()
    assert got["result"]["version"] == done["model_version"]
    assert got["result"]["digest"] == hashlib.sha256(data).hexdigest()

    heights = [b["height"] for b in blocks["result"]]
    assert len(heights) == 5 and heights == list(range(heights[0], heights[0] + 5))
    round_block = next(b for b in blocks["result"] if b["height"] == done["height"])
    assert round_block["kind"] == "round"
    assert round_block["payload"]["model_digest"] == got["result"]["digest"]

    assert verify["result"]["ok"] is True and verify["result"]["height"] == heights[-1]


def test_human_output_and_forwarding_sn(live: LiveNetwork) -> None:
    result = live.console(live.entry_http, "-c", "blocks(n=5)", "-c", "verify()", "-c", "rounds(n=3)")
    assert result.returncode == 0, result.stderr
    assert "blocks" in result.stdout and "chain OK:" in result.stdout and "fedper" in result.stdout
    if live.sn_http is not None:  # a non-entry SN forwards entry-only requests
        via_sn = _json_lines(live.console(live.sn_http, "--json", "-c", "getSN()", "-c", "verify()"))
        assert via_sn[1]["result"]["ok"] is True


def test_wrong_token_is_one_line_and_changes_nothing(live: LiveNetwork) -> None:
    before = _json_lines(live.console(live.entry_http, "--json", "-c", "status()"))[0]["result"]
    result = live.console(live.entry_http, "-c", "train(rounds=1)", token="not-the-token-at-all")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "refused the API token" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    after = _json_lines(live.console(live.entry_http, "--json", "-c", "status()"))[0]["result"]
    assert after["state"] == before["state"] == "idle" and after["round"] == before["round"]


def test_edge_node_is_refused_in_one_line(live: LiveNetwork) -> None:
    result = live.console(live.en_http, "-c", "status()")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "is an edge node" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
