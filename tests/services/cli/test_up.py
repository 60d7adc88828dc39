"""`fedchain up` end to end: real child processes, real rounds on the chain, nothing left behind.

The signal tests start `up` with SIGINT ignored, as a background job would: `up` must stop
its network on SIGINT and SIGTERM alike however it was started, and its children must stop
on their own when `up` is killed.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from fedchain.shared.crypto import NodeKey
from fedchain.shared.processes import fedchain_argv, port_is_free
from tests.conftest import REPO, free_port, ignore_sigint

SMALL = ["--sns", "1", "--ens", "2", "--max-samples", "1000"]
TINY = ["--sns", "0", "--ens", "1", "--max-samples", "600"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(FEDCHAIN_HEARTBEAT_INTERVAL="0.5", FEDCHAIN_HEARTBEAT_TIMEOUT="10", FEDCHAIN_TORCH_THREADS="1")
    return env


def _fedchain(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fedchain_argv(args),
        capture_output=True, text=True, timeout=timeout, env=_env(), cwd=REPO, check=False,
    )


def _processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention ``path`` (our children would)."""
    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(cmd)
    return out


def _port_free(port: int) -> bool:
    return port_is_free(port)


def _wait_gone(path: Path, timeout: float) -> list[str]:
    """Wait until no process mentions ``path``; returns what is still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := _processes_using(path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _up_until_round_one(
    state: Path, port: int, rounds: int = 50, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[str], str]:
    """``fedchain up`` started with SIGINT ignored (as from a background job), read up to round 1."""
    proc = subprocess.Popen(
        fedchain_argv(["up", "--state-dir", str(state), "--port", str(port), "--rounds", str(rounds), *TINY, *extra]),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=REPO,
        preexec_fn=ignore_sigint,  # noqa: PLW1509 - one syscall
    )
    deadline = time.monotonic() + 240
    seen = ""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if "round 1/" in line or not line:
            break
    if "round 1/" not in seen:
        proc.kill()
        proc.wait(timeout=30)
        pytest.fail(seen)
    return proc, seen


def _stops_every_child_on(sig: signal.Signals, tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "fc"
    proc, seen = _up_until_round_one(state, port)
    try:
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, seen + rest
    assert f"interrupted ({sig.name})" in rest and "stopping the network" in rest
    assert "stopped 3 processes" in rest  # ledger, entry, one EN
    assert _processes_using(state) == []
    assert not (state / "network.json").exists()
    assert _port_free(port) and _port_free(port + 1000)


def test_up_trains_verifies_and_leaves_nothing_behind(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "fc"
    r = _fedchain("up", "--state-dir", str(state), "--port", str(port), "--rounds", "2", *SMALL)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "round 1/2: accuracy" in out and "round 2/2: accuracy" in out
    assert "2 participants" in out and "block height" in out
    assert "chain verified" in out
    saved = next(state.glob("*/models/model.safetensors"))
    assert (state / "ledger" / "ledger.db").is_file()
    assert str(saved.resolve()) in out
    assert not (state / "network.json").exists()
    assert _processes_using(state) == []
    assert _port_free(port) and _port_free(port + 1000)
    check = _fedchain("verify", "--state-dir", str(state / "ledger"), timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    # the ledger was started for the entry's key: it would take no genesis from another one
    entry_key = NodeKey.load_or_create(state / "entry" / "node.key").public_hex
    assert f"entry key {entry_key[:16]}" in (state / "logs" / "ledger.log").read_text()
    tokens = _run_tokens(state)  # generated for the run, kept 0600, named in one line, never printed
    assert f"tokens      {state / 'tokens.env'} (mode 0600" in out
    assert all(value not in out + r.stderr for value in tokens.values())


def _run_tokens(state: Path) -> dict[str, str]:
    """The tokens `fedchain up` kept for its run (checking the file is private)."""
    path = state / "tokens.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    tokens = dict(line.split("=", 1) for line in lines)
    assert set(tokens) == {"FEDCHAIN_SN_JOIN_TOKEN", "FEDCHAIN_EN_JOIN_TOKEN", "FEDCHAIN_API_TOKEN"}
    assert all(len(value) >= 40 for value in tokens.values()) and len(set(tokens.values())) == 3
    return tokens


def test_up_keep_leaves_the_network_for_the_console_and_down_stops_it(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "fc"
    try:
        r = _fedchain("up", "--state-dir", str(state), "--port", str(port), "--rounds", "1", "--keep", *TINY)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"fedchain console --ip 127.0.0.1 --port {port + 1000}" in r.stdout
        assert f"fedchain down --state-dir {state}" in r.stdout
        health = httpx.get(f"http://127.0.0.1:{port + 1000}/health", timeout=5).json()
        assert health["role"] == "SN" and health["entry"] is True
        assert httpx.get(f"http://127.0.0.1:{port + 1000}/status", timeout=5).json()["round"] == 1
        tokens = _run_tokens(state)
        children = _processes_using(state)
        assert len(children) == 3 and not [c for c in children for t in tokens.values() if t in c]
        pause = f"http://127.0.0.1:{port + 1000}/pause"
        assert httpx.post(pause, timeout=10).status_code == 401
        token = tokens["FEDCHAIN_API_TOKEN"]
        assert httpx.post(pause, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code != 401
        again = _fedchain("up", "--state-dir", str(state), "--port", str(free_port()), timeout=60)
        assert again.returncode == 2 and "already running" in again.stderr
    finally:
        d = _fedchain("down", "--state-dir", str(state), timeout=60)
    assert d.returncode == 0, d.stdout + d.stderr
    assert "stopped 3 processes" in d.stdout  # ledger, entry, one EN
    assert _processes_using(state) == []
    assert _port_free(port) and _port_free(port + 1000)
    nothing = _fedchain("down", "--state-dir", str(state), timeout=60)
    assert nothing.returncode == 2 and "no network" in nothing.stderr


def test_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    _stops_every_child_on(signal.SIGINT, tmp_path)


def test_sigterm_stops_every_child(tmp_path: Path) -> None:
    _stops_every_child_on(signal.SIGTERM, tmp_path)


def test_children_stop_when_up_is_killed(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "fc"
    proc, _seen = _up_until_round_one(state, port)
    proc.kill()
    proc.wait(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()
    left = _wait_gone(state, 20)
    assert left == [], f"children of a killed `fedchain up` still run after 20 s: {left}"
    assert _port_free(port) and _port_free(port + 1000)


def test_up_adopts_the_training_of_a_cut_off_run(tmp_path: Path) -> None:
    # the first `up` is killed after round 1 of 3; its entry kept training.json (target 3) and
    # resumes by itself on restart: the second `up` follows that run instead of refusing itself.
    # Rounds of 8 local epochs (genesis keeps them for the second `up`) take seconds, so rounds
    # 2-3 cannot finish in the ~1 s the nodes take to see their `up` gone (0.3 s rounds could).
    port = free_port()
    state = tmp_path / "fc"
    proc, _seen = _up_until_round_one(state, port, rounds=3, extra=("--local-epochs", "8"))
    proc.kill()
    proc.wait(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()
    assert _wait_gone(state, 30) == []
    r = _fedchain("up", "--state-dir", str(state), "--port", str(port), "--rounds", "3", *TINY)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "adopted the training already running" in r.stdout, r.stdout
    assert "round 3/3: accuracy" in r.stdout and "chain verified" in r.stdout
    check = _fedchain("verify", "--state-dir", str(state), timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert _processes_using(state) == []


def test_up_refuses_a_busy_port_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        r = _fedchain("up", "--state-dir", str(tmp_path / "fc"), "--port", str(busy), timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == f"fedchain up: port {busy} is in use; stop what uses it or pass --port"
    assert not (tmp_path / "fc" / "network.json").exists()


@pytest.mark.mysql
def test_up_with_a_mysql_chain(tmp_path: Path, mysql_url: str) -> None:
    port = free_port()
    state = tmp_path / "fc"
    r = _fedchain("up", "--state-dir", str(state), "--port", str(port), "--rounds", "1", "--db-url", mysql_url, *SMALL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "round 1/1: accuracy" in r.stdout and "chain verified" in r.stdout
    assert "fedchain:fedchain@" not in r.stdout  # the password is not printed
    assert not (state / "ledger" / "ledger.db").exists()
    check = _fedchain("verify", "--db-url", mysql_url, "--blobs", str(state / "ledger" / "blobs"), timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert _processes_using(state) == []


def test_up_tls_trains_over_tls_and_refuses_plain_text(tmp_path: Path) -> None:
    """`up --tls`: certificates in the state dir, a round over mutual TLS and HTTPS, the chain
    verifies; plain-text gRPC and http:// to the kept network get no answer."""
    import grpc

    from fedchain.shared.net.https import client_context
    from fedchain.shared.rpc import node_pb2, node_pb2_grpc

    port = free_port()
    state = tmp_path / "fc"
    ca = state / "certs" / "ca.pem"
    try:
        r = _fedchain("up", "--tls", "--state-dir", str(state), "--port", str(port), "--rounds", "1",
                      "--keep", *TINY)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"CA {ca}" in r.stdout and "round 1/1: accuracy" in r.stdout and "chain verified" in r.stdout
        assert f"--port {port + 1000} --ca {ca}" in r.stdout
        assert len(list(state.glob("*/tls/node.pem"))) == 2  # the entry and the EN, enrolled
        api = f"https://127.0.0.1:{port + 1000}"
        assert httpx.get(f"{api}/verify", verify=client_context(ca), timeout=10).json()["ok"] is True
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port + 1000}/health", timeout=5)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch, pytest.raises(grpc.RpcError) as info:
            node_pb2_grpc.NodeStub(ch).Heartbeat(node_pb2.HeartbeatRequest(node_id="x", role="SN"), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        console = _fedchain("console", "--port", str(port + 1000), "--ca", str(ca), "-c", "verify()", "--json",
                            timeout=60)
        assert console.returncode == 0 and '"ok": true' in console.stdout, console.stdout + console.stderr
    finally:
        d = _fedchain("down", "--state-dir", str(state), timeout=60)
    assert d.returncode == 0, d.stdout + d.stderr
    assert _processes_using(state) == []
