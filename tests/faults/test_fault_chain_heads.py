"""A chain shortened or replaced under a real network: the database rolled back to an older copy
while the network runs, the last blocks deleted with the tip row rewritten, the chain re-signed
from a new genesis. Each is reported by ``fedchain verify`` given the entry's last head (or the
genesis), by the entry at start-up, and by the ENs when the entry is made to start anyway (its
own kept head moved away): on a shortened chain they refuse the next round, say so in their
/status and logs, and the round does not count them; a replaced chain has another chain id,
which every EN message is signed over, so no EN is live on it and none trains its rounds.

The network is the entry (embedded SQLite ledger, its own SN part) and two ENs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import Block, BlockKind, build_block
from fedchain.shared.chain.treehead import TreeHead
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.errors import InvalidBlock
from tests.faults.cluster import start_network, start_training, verify_cli, wait_done, wait_round
from tests.network.harness import LocalNet, Proc
from tests.services.ledger.ledger_kit import truncate

pytestmark = pytest.mark.slow  # each starts a real multi-process network


def _db(net: LocalNet) -> Path:
    assert net.entry is not None
    return net.entry.state_dir / "ledger.db"


def _head_file(net: LocalNet) -> Path:
    assert net.entry is not None
    return net.entry.state_dir / "tree_head.json"


def _verify_fails_on_the_head(net: LocalNet, what: str) -> None:
    assert net.entry is not None
    done = verify_cli("--state-dir", str(net.entry.state_dir), "--head", str(_head_file(net)))
    assert done.returncode == 1 and what in done.stdout, done.stdout + done.stderr


def _entry_refuses_to_start(net: LocalNet, what: str) -> None:
    assert net.entry is not None
    net.restart(net.entry)
    code = net.entry.popen.wait(timeout=90)
    text = net.entry.log.read_text(errors="replace")
    assert code == 2 and "refusing the ledger" in text and what in text, text[-2000:]


def _ens_refuse_the_next_round(net: LocalNet, edges: list[Proc], what: str) -> None:
    """Start the entry without its kept head: the ENs hold the chain to theirs and refuse."""
    assert net.entry is not None
    _head_file(net).rename(_head_file(net).with_suffix(".moved"))
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


def test_database_rolled_back_while_the_network_runs(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net", FEDCHAIN_ROUND_TIMEOUT="30", FEDCHAIN_HEARTBEAT_TIMEOUT="10")
    try:
        edges = start_network(net, 2, sns=0)
        start_training(net, 1)
        wait_done(net, 1)
        backup = tmp_path / "backup.db"
        with sqlite3.connect(_db(net)) as live, sqlite3.connect(backup) as copy:
            live.backup(copy)  # an online copy at round 1
        start_training(net, 2)
        wait_done(net, 3)
        with sqlite3.connect(backup) as copy, sqlite3.connect(_db(net)) as live:
            copy.backup(live)  # the running entry's database, rolled back under it
        start_training(net, 1)
        status = net.wait_for(
            lambda: (s := net.get("/status"))["state"] != "training" and s, "the next round", 240
        )
        assert "refusing to append: the chain went backwards" in (status["error"] or ""), status
        _verify_fails_on_the_head(net, "missing")
        assert net.entry is not None
        net.kill(net.entry, 15)
        _entry_refuses_to_start(net, "went backwards")
        last = TreeHead.load(_head_file(net))  # the entry's last head: what the ENs hold too
        assert last is not None
        _ens_refuse_the_next_round(net, edges, "went backwards")
        assert [net.get("/status", en)["head_size"] for en in edges] == [last.size] * 2
    finally:
        net.close()


def test_last_blocks_deleted_and_the_tip_row_rewritten(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net", FEDCHAIN_ROUND_TIMEOUT="30", FEDCHAIN_HEARTBEAT_TIMEOUT="10")
    try:
        edges = start_network(net, 2, sns=0)
        start_training(net, 2)
        wait_round(net, 2)
        wait_done(net, 2)
        assert net.entry is not None
        net.kill(net.entry, 15)
        head = TreeHead.load(_head_file(net))
        assert head is not None
        engine = sa.create_engine(f"sqlite:///{_db(net)}")
        truncate(engine, keep=head.size - 2)  # the two round blocks gone, the tip row rewritten
        engine.dispose()
        _verify_fails_on_the_head(net, f"blocks {head.size - 2}..{head.size - 1} are missing")
        _entry_refuses_to_start(net, "went backwards")
        _ens_refuse_the_next_round(net, edges, "went backwards")
    finally:
        net.close()


def _re_sign_from_a_new_genesis(state_dir: Path) -> tuple[bytes, int]:
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


def test_chain_re_signed_from_a_new_genesis(tmp_path: Path) -> None:
    net = LocalNet(tmp_path / "net", FEDCHAIN_ROUND_TIMEOUT="30", FEDCHAIN_HEARTBEAT_TIMEOUT="10")
    try:
        edges = start_network(net, 2, sns=0)
        start_training(net, 1)
        wait_done(net, 1)
        assert net.entry is not None
        net.kill(net.entry, 15)
        genesis, rounds = _re_sign_from_a_new_genesis(net.entry.state_dir)
        done = verify_cli("--state-dir", str(net.entry.state_dir), "--genesis", genesis.hex())
        assert done.returncode == 1 and "the chain was replaced" in done.stdout, done.stdout
        _entry_refuses_to_start(net, "genesis changed")
        _head_file(net).rename(_head_file(net).with_suffix(".moved"))
        net.restart(net.entry)
        net.wait_healthy(net.entry)
        # Every EN message is signed over the chain id: its heartbeats do not hold on the
        # replaced chain, so no EN is live there and none trains a round of it.
        r = net.post("/train", {"rounds": 1})  # or the plan, now short of its round, resumes
        assert r.status_code == 202 or "already running" in r.text, r.text
        status = net.wait_for(
            lambda: (s := net.get("/status"))["state"] != "training" and s, "the refused round", 120
        )
        assert status["round"] == rounds and "no live edge node" in (status["error"] or ""), status
        assert status["ens"] == 0 and all(net.get("/status", en)["round"] == 1 for en in edges)
        for en in edges:  # each EN says why it is not training: its re-join met another chain
            net.wait_for(
                lambda en=en: "another chain" in (net.get("/status", en)["chain_error"] or ""),
                f"{en.name} to report the replaced chain", 90,
            )
    finally:
        net.close()
