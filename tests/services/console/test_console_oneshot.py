"""`fedchain console -c ...` as a script uses it (subprocess), against the in-test node.

The required end-to-end layer is test_console_live.py (a real network from `fedchain up`);
this one covers exit codes, ordering, JSON and the failure lines quickly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fake_control_node import TOKEN, RunningNode

from tests.conftest import free_port


def fedchain_console(port: int, *args: str, token: str | None = TOKEN, stdin: str | None = None,
                     timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FEDCHAIN_API_TOKEN"}
    if token is not None:
        env["FEDCHAIN_API_TOKEN"] = token
    env["COLUMNS"] = "160"
    cmd = [sys.executable, "-m", "fedchain.services.cli.main", "console", "--ip", "127.0.0.1", "--port", str(port),
           "--poll", "0.05", *args]
    return subprocess.run(cmd, check=False, input=stdin if stdin is not None else "", capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_one_line_failure(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_commands_run_in_order(fake_node: RunningNode, tmp_path: Path) -> None:
    target = tmp_path / "global.safetensors"
    result = fedchain_console(fake_node.port, "-c", "train(rounds=2)", "-c", "eval()", "-c",
                              f'getModel(path="{target}")', "-c", "blocks(n=2)", "-c", "verify()")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    order = [
        out.index(s)
        for s in ("round 1:", "round 2:", "done: round 2 of 2", "pooled", "model v2 ->", "blocks", "chain OK")
    ]
    assert order == sorted(order)
    assert target.is_file()


def test_stops_at_the_first_failure(fake_node: RunningNode) -> None:
    result = fedchain_console(fake_node.port, "-c", "status()", "-c", "trian(rounds=1)", "-c", "train(rounds=1)")
    assert_one_line_failure(result, 2, "unknown command 'trian' - did you mean train()?")
    assert "idle" in result.stdout
    assert fake_node.node.train_calls == []


def test_json_output_is_one_object_per_command(fake_node: RunningNode) -> None:
    result = fedchain_console(fake_node.port, "--json", "-c", "trainFL(rounds=3)", "-c", "getSN()", "-c", "rounds(n=2)")
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["command"] for o in objects] == ["trainFL", "getSN", "rounds"]
    assert all(o["ok"] for o in objects)
    train = objects[0]["result"]
    assert train["start"]["algorithm"] == "fedavg" and train["status"]["round"] == 3
    assert [r["round"] for r in train["rounds"]] == [1, 2, 3]
    assert objects[1]["result"][0]["status"] == "alive"
    assert [r["round"] for r in objects[2]["result"]] == [2, 3]


def test_json_failure_is_machine_readable_too(fake_node: RunningNode) -> None:
    fake_node.node.round = 1
    result = fedchain_console(fake_node.port, "--json", "-c", "getModel(version=9, path='x.safetensors')")
    assert result.returncode == 1
    obj = json.loads(result.stdout)
    assert obj == {
        "command": "getModel",
        "ok": False,
        "error": "GET /model: unknown model version 9 (latest is 1) (HTTP 404)",
    }
    assert_one_line_failure(result, 1, "unknown model version 9")


def test_wrong_token_is_one_line(fake_node: RunningNode) -> None:
    result = fedchain_console(fake_node.port, "-c", "train(rounds=1)", token="not-the-token-at-all")
    assert_one_line_failure(result, 1, "refused the API token", "FEDCHAIN_API_TOKEN")
    assert fake_node.node.train_calls == []
    flag = fedchain_console(fake_node.port, "--token", TOKEN, "-c", "pause()", token="not-the-token-at-all")
    assert flag.returncode == 0, flag.stderr


def test_edge_node_is_refused(fake_node: RunningNode) -> None:
    fake_node.node.role = "EN"
    result = fedchain_console(fake_node.port, "-c", "status()")
    assert_one_line_failure(result, 1, "is an edge node", "super node")


def test_nothing_listening_is_one_line() -> None:
    port = free_port()
    result = fedchain_console(port, "-c", "getSN()")
    assert_one_line_failure(result, 1, f"cannot connect to http://127.0.0.1:{port}")


def test_slow_node_fails_within_the_timeout_flag(fake_node: RunningNode) -> None:
    fake_node.node.status_delay = 5.0
    result = fedchain_console(fake_node.port, "--timeout", "0.5", "-c", "status()")
    assert_one_line_failure(result, 1, "did not answer GET /status within 0.5 s")


def test_commands_from_stdin(fake_node: RunningNode) -> None:
    result = fedchain_console(fake_node.port, stdin="# a script\nstatus()\nsave(name='x')\nquit()\ntrain()\n")
    assert result.returncode == 0, result.stderr
    assert "saved model v0" in result.stdout and "/state/models/x" in result.stdout
    assert fake_node.node.train_calls == []


def test_bad_flag_is_exit_2(fake_node: RunningNode) -> None:
    result = fedchain_console(fake_node.port, "--timeout", "-1", "-c", "status()")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_plain_node_with_ca_is_a_tls_failure_in_one_line(fake_node: RunningNode, tmp_path: Path) -> None:
    from fedchain.services.cli.certs import make_certs

    make_certs(tmp_path, ("127.0.0.1",))
    result = fedchain_console(fake_node.port, "--ca", str(tmp_path / "ca.pem"), "-c", "status()")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"https://127.0.0.1:{fake_node.port}" in result.stderr
    mixed = fedchain_console(fake_node.port, "--url", f"http://127.0.0.1:{fake_node.port}",
                             "--ca", str(tmp_path / "ca.pem"), "-c", "status()")
    assert_one_line_failure(mixed, 2, "--ca is for HTTPS")


def test_verify_shows_the_newest_rounds_evidence_in_a_table(fake_node: RunningNode) -> None:
    result = fedchain_console(fake_node.port, "-c", "train(rounds=2)", "-c", "verify()")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())  # the table's title wraps on a narrow terminal
    assert "chain OK" in out
    assert "round 2 (height 2" in out and "2 signed updates from 1 signed SN manifests" in out
    assert "n-en1" in out and "n-en2" in out and "timed out" in out
    as_json = fedchain_console(fake_node.port, "--json", "-c", "verify()")
    (obj,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    last = obj["result"]["last_round"]
    assert last["round"] == 2 and [p["node_id"] for p in last["participants"]] == ["n-en1", "n-en2"]
