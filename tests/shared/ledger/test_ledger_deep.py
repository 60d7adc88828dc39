"""``verify --deep`` on hand-built rounds: honest rounds recompute bit for bit; an altered
update blob, a noisy SN aggregate, a model that is not the average, and a round whose
updates are gone are each named at their round's height. Under a robust rule the rule is
rerun over every update (set-aside ones too): edited decisions, a rejected update kept, or a
model that is not the rule's fail at their round."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fedchain.shared.chain.errors import BlockInvalid
from fedchain.shared.config import Settings
from fedchain.shared.ledger.deep import MISMATCH, NOT_RETAINED, OK, verify_deep
from fedchain.shared.ledger.retention import KeepUpdates
from tests.shared.ledger.deep_kit import EN2, SN_B, Federation

REPO = Path(__file__).resolve().parents[3]


def fedchain(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_")}
    return subprocess.run(
        [sys.executable, "-m", "fedchain.services.cli.main", *args], capture_output=True,
        text=True, timeout=300, check=False, cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    return Federation.create(tmp_path)


def deep(fed: Federation, require_all: bool = False):  # type: ignore[no-untyped-def]
    return verify_deep(fed.ledger, require_all=require_all, strategy_for=lambda _: fed.strategy)


def test_honest_rounds_recompute_bit_for_bit(fed: Federation) -> None:
    heights = [fed.run_round(r).height for r in (1, 2, 3)]

    report = deep(fed)

    assert report.ok, report.summary()
    assert [(c.height, c.status) for c in report.checks] == [(h, OK) for h in heights]
    assert "3 rounds recomputed bit for bit" in report.summary()


def test_an_update_blob_altered_on_disk_is_caught_at_its_round(fed: Federation) -> None:
    fed.run_round(1)
    second = fed.run_round(2)
    fed.run_round(3)
    path = fed.ledger.blobs.path(fed.update_digests[2][EN2.node_id])
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))

    report = deep(fed)

    assert not report.ok
    bad = report.first_bad
    assert bad is not None and bad.height == second.height and bad.round == 2
    assert f"the update of {EN2.node_id}" in bad.detail and "altered" in bad.detail
    assert f"height {second.height}" in report.summary()


def test_a_noisy_sn_aggregate_is_named_at_its_round(fed: Federation) -> None:
    fed.run_round(1)
    bad_round = fed.run_round(2, noisy_sn=SN_B)

    report = deep(fed)

    bad = report.first_bad
    assert bad is not None and bad.status == MISMATCH and bad.height == bad_round.height
    assert bad.sn_node_id == SN_B.node_id
    assert "not the weighted sum of the updates it lists" in bad.detail


def test_a_model_that_is_not_the_average_fails_at_its_round(fed: Federation) -> None:
    fed.run_round(1, lying_model=True)
    fed.run_round(2)

    report = deep(fed)

    bad = report.first_bad
    assert bad is not None and bad.round == 1 and bad.sn_node_id == ""
    assert "is not the recomputed average" in bad.detail
    assert [c.status for c in report.checks] == [MISMATCH, OK]  # round 2 holds on its own


def test_rounds_whose_updates_were_pruned_are_not_retained_not_failed(fed: Federation) -> None:
    for r in (1, 2, 3):
        fed.run_round(r)
    removed = fed.ledger.prune_updates(KeepUpdates(1))  # keep the last round's updates

    report = deep(fed)

    assert len(removed) == 6
    assert [c.status for c in report.checks] == [NOT_RETAINED, NOT_RETAINED, OK]
    assert report.ok
    strict = deep(fed, require_all=True)
    assert not strict.ok and strict.first_bad is not None and strict.first_bad.round == 1
    assert fed.ledger.verify().ok  # every model a block names is still there


def test_prune_never_removes_a_model_or_an_update_of_a_retained_round(fed: Federation) -> None:
    for r in (1, 2):
        fed.run_round(r)
    models = [b.payload.model_digest for b in fed.blocks if hasattr(b.payload, "model_digest")]

    assert fed.ledger.prune_updates(KeepUpdates(None)) == []
    assert fed.ledger.prune_updates(KeepUpdates(2)) == []
    gone = fed.ledger.prune_updates(KeepUpdates(0))

    assert set(gone) == set(fed.update_digests[1].values()) | set(fed.update_digests[2].values())
    assert all(fed.ledger.has_blob(m) for m in models)


def test_fedchain_verify_deep_names_the_height_of_an_altered_update(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path, Settings(dataset="mnist-sample"))
    fed.run_round(1)
    second = fed.run_round(2)
    fed.ledger.close()
    state = ["--state-dir", str(tmp_path)]

    ok = fedchain("verify", "--deep", *state)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 rounds recomputed bit for bit, 0 not retained, 0 do not match" in ok.stdout

    path = tmp_path / "blobs" / fed.update_digests[2][EN2.node_id][:2]
    blob = path / fed.update_digests[2][EN2.node_id]
    data = bytearray(blob.read_bytes())
    data[-2] ^= 0x10
    blob.write_bytes(bytes(data))
    bad = fedchain("verify", "--deep", *state)

    assert bad.returncode == 1
    assert bad.stdout.startswith("ok: ")  # the chain itself holds: only --deep sees it
    assert f"FAILED at height {second.height} (round 2)" in bad.stdout
    assert f"the update of {EN2.node_id}" in bad.stdout
    assert fedchain("verify", *state).returncode == 0  # without --deep nothing is amiss

    pruned = fedchain("ledger", "gc", "--keep-updates", "last:1", "--yes", *state)
    assert "removing 3 update blobs" in pruned.stdout, pruned.stdout + pruned.stderr
    strict = fedchain("verify", "--deep", "--require-all", *state)
    assert strict.returncode == 1 and "1 not retained" in strict.stdout


# ---- robust rules: the entry's rule rerun over every update, in the block's order ----

ROBUST = "clip:2+multikrum:1"


@pytest.fixture
def robust(tmp_path: Path) -> Federation:
    return Federation.create(tmp_path, aggregator=ROBUST)


def test_a_robust_round_recomputes_with_its_decisions(robust: Federation) -> None:
    first = robust.run_robust_round(1, attacker=EN2)
    robust.run_robust_round(2)

    report = deep(robust)

    assert report.ok, report.summary()
    assert [c.status for c in report.checks] == [OK, OK]
    payload = first.payload
    assert payload.set_aside and payload.set_aside[0].node_id == EN2.node_id  # the 10x update
    assert any(d.action == "rejected" and d.node_id == EN2.node_id for d in payload.decisions)


@pytest.mark.parametrize(
    ("lie", "says"),
    [
        ("reason", "the aggregator's decisions differ from the block's"),
        ("keep", "the aggregator's decisions differ from the block's"),
        ("model", "is not the recomputed average"),
    ],
)
def test_a_robust_round_that_lies_fails_at_its_height(robust: Federation, lie: str, says: str) -> None:
    robust.run_robust_round(1, attacker=EN2)
    bad = robust.run_robust_round(2, attacker=EN2, lie=lie)

    report = deep(robust)

    failed = report.first_bad
    assert failed is not None and failed.height == bad.height, report.summary()
    assert says in failed.detail, failed.detail
    assert [c.status for c in report.checks] == [OK, MISMATCH]


def test_a_set_aside_update_is_retained_and_checked(robust: Federation) -> None:
    robust.run_robust_round(1, attacker=EN2)
    path = robust.ledger.blobs.path(robust.update_digests[1][EN2.node_id])

    assert robust.ledger.prune_updates(KeepUpdates(1)) == []  # the set-aside blob is the round's
    assert robust.update_digests[1][EN2.node_id] not in {
        b.digest for b in robust.ledger.unreferenced_blobs()
    }
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))

    bad = deep(robust).first_bad
    assert bad is not None and f"the update of {EN2.node_id}" in bad.detail and "altered" in bad.detail


def test_a_round_block_names_every_update_of_a_robust_rule_once(robust: Federation) -> None:
    payload = robust.run_robust_round(1, attacker=EN2).payload
    order = payload.aggregation_order

    assert sorted(order) == sorted([*payload.participant_ids, EN2.node_id])
    for bad, says in [
        (order[1:], f"{order[0]} is missing"),
        ([*order, order[0]], f"lists {order[0]} twice"),
        ([*order[:-1], "en-stranger"], "en-stranger is no participant or set-aside update"),
    ]:
        with pytest.raises(BlockInvalid, match=says):
            replace(payload, aggregation_order=bad)


def test_a_mean_round_block_records_no_aggregation_order(fed: Federation) -> None:
    payload = fed.run_round(1).payload

    assert payload.aggregation_order == []
    with pytest.raises(BlockInvalid, match="must be empty under the plain mean"):
        replace(payload, aggregation_order=payload.participant_ids)
