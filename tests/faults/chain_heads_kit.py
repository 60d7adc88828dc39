"""What the chain-heads fault tests share: a network's ledger and head files, and the checks
that ``fedchain verify``, the entry at start-up and the ENs at the next round report a chain
shortened or replaced (``test_fault_chain_rollback``, ``_truncated``, ``_replaced``: one
module each, so parallel workers run them side by side).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import Block, BlockKind, build_block
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.errors import InvalidBlock
from tests.faults.cluster import start_network, start_training, verify_cli, wait_done
from tests.network.harness import LocalNet, Proc


@contextmanager
def trained_network(tmp_path: Path, rounds: int) -> Iterator[tuple[LocalNet, list[Proc]]]:
    """The entry (embedded SQLite ledger, its own SN part) and two ENs, ``rounds`` trained."""
    net = LocalNet(tmp_path / "net", FEDCHAIN_ROUND_TIMEOUT="30", FEDCHAIN_HEARTBEAT_TIMEOUT="10")
    try:
        edges = start_network(net, 2, sns=0)
        wait_done(net, start_training(net, rounds))
        yield net, edges
    finally:
        net.close()


def db(net: LocalNet) -> Path:
    assert net.entry is not None
    return net.entry.state_dir / "ledger.db"


def head_file(net: LocalNet) -> Path:
    assert net.entry is not None
    return net.entry.state_dir / "tree_head.json"


def verify_fails_on_the_head(net: LocalNet, what: str) -> None:
    assert net.entry is not None
    done = verify_cli("--state-dir", str(net.entry.state_dir), "--head", str(head_file(net)))
    assert done.returncode == 1 and what in done.stdout, done.stdout + done.stderr


def entry_refuses_to_start(net: LocalNet, what: str) -> None:
    assert net.entry is not None
    net.restart(net.entry)
    code = net.entry.popen.wait(timeout=90)
    text = net.entry.log.read_text(errors="replace")
    assert code == 2 and "refusing the ledger" in text and what in text, text[-2000:]


def ens_refuse_the_next_round(net: LocalNet, edges: list[Proc], what: str) -> None:
    """Start the entry without its kept head: the ENs hold the chain to theirs and refuse."""
    assert net.entry is not None
    head_file(net).rename(head_file(net).with_suffix(".moved"))
    net.restart(net.entry)
    net.wait_healthy(net.entry)
    net.wait_edges(len(edges))
    before = net.get("/status")["round"]
    r = net.post("/train", {"rounds": 1})  # or the interrupted plan resumes by itself
    assert r.status_code == 202 or "already running" in r.text, r.text
    status = net.wait_for(
        lambda: (s := net.get("/status"))["state"] != "training" and s, "the refused round", 240
    )
    assert status["round"] == before and "quorum not met: 0 of 2" in (status["error"] or ""), status
    for en in edges:
        s = net.get("/status", en)
        assert s["chain_error"] and what in s["chain_error"], s
        assert what in en.log.read_text(errors="replace")



def re_sign_from_a_new_genesis(state_dir: Path) -> tuple[bytes, int]:
    """Replace the chain by its blocks re-signed with the entry key from another genesis, as an
    attacker holding the entry key but no EN key can: a round block carries each EN's own
    signature over its update header bound to the chain id, which no longer holds on the new
    chain, so the ledger refuses those and the attacker leaves them out. Returns the old
    genesis hash and the number of round blocks the replacement kept."""
    key = NodeKey.load_or_create(state_dir / "node.key")
    ledger = Ledger(f"sqlite:///{state_dir / 'ledger.db'}", state_dir / "blobs")
    old = ledger.range(0, 1000)
    ledger.close()
    with sqlite3.connect(state_dir / "ledger.db") as conn:
        for table in ("blocks", "tree_heads"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("UPDATE ledger_meta SET value = '-1 ' WHERE name = 'tip'")
    ledger = Ledger(f"sqlite:///{state_dir / 'ledger.db'}", state_dir / "blobs")
    prev: Block | None = None
    rounds = 0
    for b in old:
        try:
            prev = ledger.append(build_block(b.kind, b.payload, prev, key, b.timestamp_ms + 1))
        except InvalidBlock as exc:
            assert b.kind == BlockKind.ROUND and "not its own" in str(exc), exc  # only EN evidence
            continue
        rounds += b.kind == BlockKind.ROUND
    ledger.close()
    assert prev is not None and prev.height > 0  # the replacement holds more than a genesis
    return old[0].hash, rounds

