"""Every node stops on SIGTERM within 5 s, whatever it is doing (issue 16 point 2): an EN
joining an entry that does not answer, an entry whose ledger hangs (SIGSTOP), the ledger
service, and, in the middle of a round, an EN inside its local training, its SN
and the entry driving the round. Each exits 0 with no traceback. The bound is the
project's, well inside compose's 20 s grace and the nodes' 15 s stop watchdog."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from fedchain.shared.processes import free_port
from tests.network.harness import LocalNet, Proc

pytestmark = pytest.mark.slow  # real processes

STOP_WITHIN_S = 5.0
# Many local epochs: each round keeps the ENs inside torch for many seconds.
FL = ["--dataset", "mnist-sample", "--clients", "2", "--max-samples", "1000", "--local-epochs", "40",
      "--quorum", "0.5", "--seed", "3"]


def stop_seconds(net: LocalNet, proc: Proc) -> float:
    """SIGTERM to ``proc``; the seconds until it exited (asserting 0, no traceback)."""
    proc.popen.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    try:
        code = proc.popen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{proc.name} still running 30 s after SIGTERM\n{net.logs()}") from None
    seconds = time.monotonic() - t0
    log = proc.log.read_text(errors="replace")
    assert code == 0, f"{proc.name} exited {code} after SIGTERM\n{net.logs()}"
    assert "Traceback" not in log, f"{proc.name}:\n{log[-3000:]}"
    return seconds


def settle(seconds: float) -> None:
    """Let a just-started process reach the state under test (its imports take seconds)."""
    time.sleep(seconds)


def test_nodes_stop_within_5_s_while_waiting_for_a_peer(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net")
    try:
        joining = net.start("en-joining", ["--nt", "EN", "--entry", f"127.0.0.1:{free_port()}"])
        ledger = net.start("ledger", [], command="ledger")
        net.wait_for(lambda: net.get("/health", ledger), "the ledger to answer", 120)
        entry = net.start_entry("--ledger", ledger.address)
        net.wait_healthy(entry)
        assert joining.popen.poll() is None, net.logs()  # still trying to join the dead address
        ledger.popen.send_signal(signal.SIGSTOP)  # the ledger hangs: every call to it waits
        try:
            settle(2)
            took = {"EN joining a dead entry": stop_seconds(net, joining),
                    "entry with a hung ledger": stop_seconds(net, entry)}
        finally:
            ledger.popen.send_signal(signal.SIGCONT)
        took["ledger"] = stop_seconds(net, ledger)
    finally:
        net.close()
    print("stop seconds:", {k: round(v, 2) for k, v in took.items()})
    assert all(s < STOP_WITHIN_S for s in took.values()), took


def test_nodes_stop_within_5_s_in_the_middle_of_a_round(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net", FEDCHAIN_HEARTBEAT_TIMEOUT="5")
    try:
        entry = net.start_entry(*FL)
        net.wait_healthy(entry)
        sn = net.start_sn("sn-1")
        net.wait_for(lambda: net.get("/status")["sns"] == 2, "the SN to join")
        ens = [net.start_en(f"en-{i}") for i in range(2)]
        net.wait_edges(2)
        r = net.post("/train", {"rounds": 3})
        assert r.status_code == 202, r.text
        training = net.wait_for(
            lambda: next((e for e in ens if net.get("/status", e)["state"] == "training"), None),
            "an EN to be training", timeout=120,
        )
        took = {training.name: stop_seconds(net, training)}
        # its SN and the entry while the round is still open on them
        assert net.get("/status")["state"] == "training"
        took[sn.name] = stop_seconds(net, sn)
        took[entry.name] = stop_seconds(net, entry)
    finally:
        net.close()
    print("stop seconds:", {k: round(v, 2) for k, v in took.items()})
    assert all(s < STOP_WITHIN_S for s in took.values()), took
