"""The entry with a robust aggregator, in one process: its SN forwards every EN update, the
entry runs the rule over all of them, and the round block lists the rule's decisions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from fedchain.shared.chain.payloads import Decision, RoundPayload
from fedchain.shared.config import Settings
from fedchain.shared.tensors import decode
from tests.services.sn.entry.test_entry_rounds import Federation, federation

ENS = 5


def _federation(tmp_path: Path, aggregator: str) -> Federation:
    settings = Settings(
        state_dir=tmp_path / "entry", dataset="mnist-sample", clients=ENS, quorum=0.5,
        heartbeat_interval=0.05, heartbeat_timeout=60.0, round_timeout=5.0, eval=False,
        aggregator=aggregator, sn_join_token="sn-join-token-for-tests",
        en_join_token="en-join-token-for-tests", api_token="api-token-for-entry-tests",
    )
    return federation(settings, ENS)


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    f = _federation(tmp_path, "multikrum:1")
    yield f
    f.entry.stop()


def _round(fed: Federation) -> RoundPayload:
    (payload,) = fed.round_payloads()
    return payload


def test_the_rule_rejects_the_scaled_update_and_the_block_says_why(fed: Federation) -> None:
    attacker = fed.ens[2]
    fed.sn.scale[attacker] = 50.0
    fed.train(1)
    payload = _round(fed)
    assert payload.decisions == [
        Decision(attacker, "rejected", "multikrum: score rank 5 of 5 (keeps 4)", fed.key.node_id)
    ]
    assert payload.participant_ids == [en for en in fed.ens if en != attacker]
    # the SN's manifest still lists the attacker (it forwarded it), its signed header set aside
    (manifest,) = payload.manifests
    assert attacker in manifest.used and [p.node_id for p in manifest.set_aside] == [attacker]
    assert payload.metrics["aggregator_rejected"] == 1.0
    assert payload.metrics["samples"] == 40.0  # the four kept updates' samples
    # the new model is the mean of the four honest updates (all 10 samples): far from the attacker
    state = decode(fed.ledger.get_blob(payload.model_digest))
    initial = decode(fed.ledger.get_blob(fed.ledger.get(0).payload.model_digest))  # type: ignore[attr-defined]
    key = fed.sn.template.shared_keys("fedper")[0]
    honest = [0.01 + 0.002 * (i + 1) for i, en in enumerate(fed.ens) if en != attacker]
    expected = initial[key].double() + sum(honest) / len(honest)
    assert torch.allclose(state[key].double(), expected, atol=1e-6)
    assert fed.ledger.verify().ok


def test_the_forwarded_updates_are_the_ones_kept_without_a_retain_request(fed: Federation) -> None:
    attacker = fed.ens[2]
    fed.sn.scale[attacker] = 50.0
    fed.train(1)
    payload = _round(fed)
    assert fed.settings.keep_updates == "all" and fed.sn.handed_over == []
    kept = [*payload.participants, *payload.manifests[0].set_aside]  # the attacker's too
    assert sorted(p.node_id for p in kept) == fed.ens
    for p in kept:
        assert hashlib.sha256(fed.ledger.get_blob(p.update_digest)).hexdigest() == p.update_digest


def test_clipping_keeps_the_update_and_lists_it_as_clipped(tmp_path: Path) -> None:
    fed = _federation(tmp_path, "clip:1.5")
    try:
        attacker = fed.ens[0]
        fed.sn.scale[attacker] = 10.0
        fed.train(1)
        payload = _round(fed)
        assert payload.participant_ids == fed.ens  # a clipped update still takes part
        (d,) = payload.decisions
        assert (d.node_id, d.action, d.by) == (attacker, "clipped", fed.key.node_id)
        assert d.reason.startswith("norm ") and "> bound" in d.reason
        assert payload.manifests[0].set_aside == []
        assert payload.metrics["aggregator_clipped"] == 1.0
    finally:
        fed.entry.stop()


def test_a_rule_that_cannot_run_on_the_updates_fails_the_round(tmp_path: Path) -> None:
    fed = _federation(tmp_path, "krum:2")  # needs 2f + 3 = 7 updates, 5 delivered
    try:
        fed.train(1)
        assert fed.round_payloads() == []
        assert "krum:2 needs at least 2f+3 = 7 updates" in (fed.entry.status().error or "")
    finally:
        fed.entry.stop()
