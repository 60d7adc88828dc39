"""Faults under the chain's storage while a real network trains: the MySQL server crashes and
restarts, and the ledger process is killed and restarted. After each, training reaches its
target, every round 1..N is on the chain exactly once, and ``fedchain verify`` passes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import need
from tests.faults import mariadb
from tests.faults.cluster import (
    assert_rounds_exactly_once,
    assert_verifies,
    start_ledger,
    start_network,
    start_training,
    wait_done,
    wait_ledger,
    wait_round,
)
from tests.network.harness import LocalNet

pytestmark = pytest.mark.slow  # each starts a real multi-process network

ROUNDS = 20  # enough that the outage lands mid-training: a round here takes well under a second


def assert_fault_was_felt(net: LocalNet) -> None:
    """The outage hit a round (so the test did not pass by missing it): the entry logged a retry."""
    assert net.entry is not None
    log = net.entry.log.read_text(errors="replace")
    assert "failed (1/" in log, f"no round was retried: the outage missed training\n{net.logs()}"


def test_mysql_crash_and_restart_during_training(tmp_path: Path) -> None:
    need(mariadb.available(), "no mariadbd/mariadb-install-db here (apt-get install mariadb-server), or not root")
    db = mariadb.PrivateMariaDB(tmp_path / "mariadb")
    db.install()
    db.start()
    net = LocalNet(tmp_path / "net")
    try:
        url = db.create_database("fedchain")
        start_network(net, 3, "--db-url", url)
        target = start_training(net, ROUNDS)
        wait_round(net, 1)
        db.restart(signal.SIGKILL, down_for=6)  # a crash: InnoDB recovers on start
        status = wait_done(net, target)
        assert_fault_was_felt(net)
        assert status["round"] == ROUNDS and status["state"] == "idle", status
        assert_rounds_exactly_once(net, ROUNDS)
        assert net.get("/verify")["ok"]
        assert_verifies("--db-url", url, "--blobs", str(net.entry.state_dir / "blobs"))  # type: ignore[union-attr]
    finally:
        net.close()
        db.stop()


def test_ledger_process_killed_and_restarted_during_training(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net")
    try:
        ledger = start_ledger(net)
        wait_ledger(net, ledger)
        start_network(net, 3, "--ledger", f"127.0.0.1:{ledger.port}")
        target = start_training(net, ROUNDS)
        wait_round(net, 1)
        net.kill(ledger)  # SIGKILL: no clean shutdown
        time.sleep(6)
        net.restart(ledger)
        wait_ledger(net, ledger)
        status = wait_done(net, target)
        assert_fault_was_felt(net)
        assert status["round"] == ROUNDS and status["state"] == "idle", status
        assert_rounds_exactly_once(net, ROUNDS)
        assert_verifies("--ledger", f"127.0.0.1:{ledger.port}")
        assert httpx.get(ledger.http + "/verify", timeout=30).json()["ok"]
    finally:
        net.close()
    assert_verifies("--state-dir", str(ledger.state_dir))  # and from the files, with the ledger stopped


def test_control_api_answers_while_the_ledger_is_down(tmp_path: Path) -> None:
    """While the chain's storage is unreachable the entry's /status still answers (not a 500)."""
    net = LocalNet(tmp_path / "net")
    try:
        ledger = start_ledger(net)
        wait_ledger(net, ledger)
        start_network(net, 1, "--ledger", f"127.0.0.1:{ledger.port}", sns=0)
        net.kill(ledger)
        assert net.entry is not None
        r = httpx.get(net.entry.http + "/status", timeout=30)
        assert r.status_code in (200, 503), f"/status with the ledger down: {r.status_code} {r.text}"
        if r.status_code == 503:
            assert r.json().get("detail"), r.text
        for path in ("/rounds", "/blocks", "/verify"):
            r = httpx.get(net.entry.http + path, timeout=30)
            assert r.status_code < 500 or r.status_code == 503, f"{path}: {r.status_code} {r.text}"
            if r.status_code >= 400:
                assert r.json().get("detail"), f"{path}: {r.text}"
    finally:
        net.close()
