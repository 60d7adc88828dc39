"""Helpers the fault, bad-input and load suites share on top of ``tests/network/harness.py``.

A ledger process joins a ``LocalNet`` as one more ``Proc`` (so ``LocalNet.close`` and
``LocalNet.restart`` handle it like a node); the chain checks every fault test ends with
live here: rounds 1..N each exactly once, and ``fedchain verify`` passing.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from typing import Any

from fedchain.shared.processes import ChildExited, NotHealthy, fedchain_argv
from tests.conftest import REPO
from tests.network.harness import LocalNet, Proc

# A tiny real workload (mnist-sample, 1,500 images over 3 partitions): a round takes seconds.
FL = ["--dataset", "mnist-sample", "--clients", "3", "--max-samples", "1500", "--local-epochs", "1",
      "--lr", "0.05", "--seed", "7"]


def start_ledger(net: LocalNet, name: str = "ledger", *flags: str) -> Proc:
    """Start ``fedchain ledger`` (gRPC + HTTP on free ports, SQLite in its own state dir unless ``flags`` say)."""
    return net.start(name, list(flags), command="ledger")


def wait_ledger(net: LocalNet, ledger: Proc, timeout: float = 60) -> None:
    """Wait until the ledger's HTTP /health answers."""
    try:
        net.group.wait_healthy(ledger.child, timeout)
    except (ChildExited, NotHealthy) as exc:
        raise AssertionError(f"{exc}\n{net.logs()}") from None


def start_network(net: LocalNet, ens: int, *entry_flags: str, sns: int = 1) -> list[Proc]:
    """Entry (with ``entry_flags``) + ``sns`` SNs + ``ens`` ENs; returns the EN processes once all are live."""
    entry = net.start_entry(*FL, *entry_flags)
    net.wait_healthy(entry)
    for i in range(sns):
        net.start_sn(f"sn-{i}")
    net.wait_for(lambda: net.get("/status")["sns"] == sns + 1, f"{sns} SNs to join")
    edges = [net.start_en(f"en-{i}") for i in range(ens)]
    net.wait_edges(ens)
    return edges


def start_training(net: LocalNet, rounds: int) -> int:
    """POST /train; returns the target round."""
    r = net.post("/train", {"rounds": rounds})
    assert r.status_code == 202, r.text
    return int(r.json()["target_round"])


def wait_round(net: LocalNet, round_no: int, timeout: float = 240) -> dict[str, Any]:
    """Wait until round ``round_no`` is on the chain (status answered by the entry)."""
    return net.wait_for(lambda: (s := net.get("/status"))["round"] >= round_no and s, f"round {round_no}", timeout)


class TrainingStopped(Exception):
    """The entry gave up training before reaching the target round (not an AssertionError, so
    ``LocalNet.wait_for`` lets it through instead of polling on)."""


def wait_done(net: LocalNet, target: int, timeout: float = 300) -> dict[str, Any]:
    """Wait until training reached ``target`` and stopped; fail at once if the entry gave up early."""

    def check() -> dict[str, Any] | None:
        s = net.get("/status")
        if s["state"] == "training" or s["state"] == "pausing":
            return None
        if s["round"] < target:
            raise TrainingStopped(
                f"the entry stopped at round {s['round']} of {target} ({s['state']}): {s.get('error')}\n{net.logs()}"
            )
        return s

    return net.wait_for(check, f"training to reach round {target}", timeout)


def round_blocks(net: LocalNet) -> list[dict[str, Any]]:
    """Every round block on the chain, read through the entry's /blocks."""
    blocks = net.get("/blocks", params={"from": 0, "limit": 1000})
    return [b for b in blocks if b["kind"] == "round"]


def assert_rounds_exactly_once(net: LocalNet, rounds: int) -> list[dict[str, Any]]:
    """Round numbers on the chain are 1..``rounds``, each exactly once, in order, versions following."""
    blocks = round_blocks(net)
    numbers = [b["payload"]["round"] for b in blocks]
    doubled = sorted(n for n, c in Counter(numbers).items() if c > 1)
    missing = sorted(set(range(1, rounds + 1)) - set(numbers))
    assert not doubled and not missing and numbers == list(range(1, rounds + 1)), (
        f"round numbers on the chain: {numbers} (doubled {doubled}, missing {missing})\n{net.logs()}"
    )
    assert [b["payload"]["model_version"] for b in blocks] == list(range(1, rounds + 1))
    return blocks


def verify_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``fedchain verify ARGS`` and return the finished process."""
    return subprocess.run(
        fedchain_argv(["verify", *args]),
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )


def assert_verifies(*args: str) -> str:
    """``fedchain verify ARGS`` exits 0; returns its summary line."""
    done = verify_cli(*args)
    assert done.returncode == 0, f"fedchain verify {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout.strip()

