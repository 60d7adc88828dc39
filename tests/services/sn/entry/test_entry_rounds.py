"""Whole rounds of the entry in one process: a fake ledger (real chain rules), fake SNs
(they submit aggregates when a round opens), no sockets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedchain.services.sn.chain import EntryChain
from fedchain.services.sn.entry import EntryRole, GlobalModel
from fedchain.services.sn.model_ops import ModelTemplate
from fedchain.services.sn.supernode import SuperNode
from fedchain.shared.chain.payloads import RoundPayload
from fedchain.shared.config import Settings, token_value
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.retention import KeepUpdates
from fedchain.shared.node.heartbeats import HeartbeatCounter, signed_heartbeat
from fedchain.shared.tensors import digest
from tests.services.sn.entry.entry_fakes import (
    FakeLedger,
    FakePeers,
    FakeSuperNode,
    QuickClock,
    join_request,
)

ENS = 4
WAIT_S = 60.0
ENTRY_ADDRESS = "127.0.0.1:7000"


@dataclass
class Federation:
    settings: Settings
    key: NodeKey
    ledger: FakeLedger
    peers: FakePeers
    sn: FakeSuperNode
    ens: list[str]
    clock: QuickClock
    entry: EntryRole
    counter: HeartbeatCounter = field(default_factory=HeartbeatCounter)

    def start_entry(self) -> EntryRole:
        """A new entry process on the same ledger and state dir (a restart)."""
        self.entry.stop()
        self.entry = _build_entry(self.settings, self.key, self.ledger, self.peers, self.clock)
        self.sn.entry = self.entry
        self.entry.bootstrap()
        self.beat()
        return self.entry

    def beat(self) -> None:
        """The SN's heartbeat, reporting every EN alive."""
        self.entry.heartbeat(signed_heartbeat(
            self.sn.key, self.entry.authority.chain_id, self.counter.next(), role="SN",
            address=self.sn.address, http_address="127.0.0.1:9001", state="idle",
            alive_edges=self.ens,
        ))

    def train(self, rounds: int) -> None:
        self.entry.start_training(rounds, None)
        assert self.entry.driver.join(WAIT_S), "the driver did not finish"

    def round_payloads(self) -> list[RoundPayload]:
        out = [b.payload for b in self.ledger.rounds()]
        assert all(isinstance(p, RoundPayload) for p in out)
        return out  # type: ignore[return-value]


def _build_entry(
    settings: Settings, key: NodeKey, ledger: FakeLedger, peers: FakePeers, clock: QuickClock
) -> EntryRole:
    chain = EntryChain(ledger, key)  # type: ignore[arg-type]
    model = GlobalModel(chain, settings.max_message_mb * 1024 * 1024)
    own = SuperNode(
        settings, key, peers, address=ENTRY_ADDRESS, http_address="127.0.0.1:9000",  # type: ignore[arg-type]
        upstream_model=model.model_bytes, entry_address=ENTRY_ADDRESS, entry_node_id=key.node_id,
    )
    own.configure(settings)
    return EntryRole.build(
        settings, key, chain, peers, own, model,
        address=ENTRY_ADDRESS, http_address="127.0.0.1:9000", clock=clock,
    )


def federation(settings: Settings, count: int) -> Federation:
    """An entry on fakes with one SN and ``count`` admitted ENs, bootstrapped and heartbeating."""
    key = NodeKey.generate()
    ledger, peers, clock = FakeLedger(), FakePeers(), QuickClock()
    sn = FakeSuperNode(NodeKey.generate(), "127.0.0.1:7001", ModelTemplate(settings))
    peers.nodes[sn.address] = sn
    entry = _build_entry(settings, key, ledger, peers, clock)
    sn.entry = entry
    entry.bootstrap()
    entry.join(join_request(sn.key, "SN", sn.address, token_value(settings, "sn_join_token")))
    ens = []
    for i in range(count):
        en_key = NodeKey.generate()
        entry.join(join_request(en_key, "EN", f"127.0.0.1:71{i:02d}", token_value(settings, "en_join_token")))
        sn.en_keys[en_key.node_id] = en_key
        ens.append(en_key.node_id)
    f = Federation(settings, key, ledger, peers, sn, sorted(ens), clock, entry)
    f.beat()
    return f


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    settings = Settings(
        state_dir=tmp_path / "entry", dataset="mnist-sample", clients=ENS, quorum=0.5,
        heartbeat_interval=0.05, heartbeat_timeout=60.0, round_timeout=5.0, eval=True,
        sn_join_token="sn-join-token-for-tests", en_join_token="en-join-token-for-tests",
        api_token="api-token-for-entry-tests",
    )
    f = federation(settings, ENS)
    yield f
    f.entry.stop()


def test_two_rounds_are_appended_with_consecutive_numbers_and_their_participants(fed: Federation) -> None:
    assert sorted(fed.sn.assigned) == fed.ens  # every EN went to the only plain SN

    fed.train(2)

    rounds = fed.round_payloads()
    assert [p.round for p in rounds] == [1, 2]
    assert [p.model_version for p in rounds] == [1, 2]
    assert all(p.participant_ids == fed.ens for p in rounds)
    # the evidence: each EN's signed row under its SN, the SN's signed manifest of them
    for p in rounds:
        assert {row.parent_sn for row in p.participants} == {fed.sn.node_id}
        assert [m.sn_node_id for m in p.manifests] == [fed.sn.node_id]
        assert sorted(p.manifests[0].used) == fed.ens
    assert rounds[0].metrics["accuracy"] == pytest.approx(0.8)  # the evaluation fan-out ran
    assert [r.version for r in fed.sn.opened] == [0, 1]
    assert fed.sn.opened[1].model_digest == rounds[0].model_digest
    status = fed.entry.status()
    assert (status.state, status.round, status.model_version, status.target_round) == ("idle", 2, 2, 2)
    assert status.height == len(fed.ledger.blocks) - 1
    assert status.ens == ENS and status.error is None
    assert fed.ledger.verify().ok


def test_a_refused_append_is_retried_and_the_round_lands_once(fed: Federation) -> None:
    fed.ledger.refuse_round_appends = 1

    fed.train(1)

    assert fed.ledger.refused == 1
    assert [p.round for p in fed.round_payloads()] == [1]
    assert len(fed.sn.opened) == 2  # the round was run again after the refusal
    status = fed.entry.status()
    assert (status.round, status.model_version, status.error) == (1, 1, None)


def test_a_new_entry_resumes_from_the_chain_tip(fed: Federation) -> None:
    fed.train(2)
    tip = fed.round_payloads()[-1]

    entry = fed.start_entry()
    assert (entry.model.ref.round, entry.model.ref.version, entry.model.ref.digest) == (
        2,
        2,
        tip.model_digest,
    )
    fed.train(1)

    assert [p.round for p in fed.round_payloads()] == [1, 2, 3]
    third = fed.sn.opened[-1]
    assert (third.round, third.version, third.model_digest) == (3, 2, tip.model_digest)
    assert entry.status().model_version == 3


def test_pause_holds_after_the_current_round_and_train_resumes(fed: Federation) -> None:
    fed.sn.on_open = lambda req: fed.entry.pause() if req.round == 1 else None
    fed.entry.start_training(5, None)
    assert fed.entry.driver.join(WAIT_S)

    status = fed.entry.status()
    assert (status.state, status.round, status.target_round) == ("paused", 1, 5)
    assert [p.round for p in fed.round_payloads()] == [1]

    fed.sn.on_open = None
    fed.train(1)
    assert [p.round for p in fed.round_payloads()] == [1, 2]
    assert fed.entry.status().state == "idle"


def test_a_paused_plan_is_not_resumed_by_a_restart_but_an_unfinished_one_is(fed: Federation) -> None:
    fed.sn.on_open = lambda req: fed.entry.pause() if req.round == 1 else None
    fed.entry.start_training(3, None)
    assert fed.entry.driver.join(WAIT_S)
    fed.sn.on_open = None

    entry = fed.start_entry()
    assert not entry.driver.running() and entry.status().round == 1

    stopping = fed.entry
    fed.sn.on_open = lambda req: stopping.driver.stop_event.set()  # the process stops in round 2
    stopping.start_training(2, None)
    assert stopping.driver.join(WAIT_S)
    assert [p.round for p in fed.round_payloads()] == [1, 2]
    fed.sn.on_open = None

    entry = fed.start_entry()  # the saved plan (target 3) is resumed at start-up
    assert entry.driver.join(WAIT_S)
    assert [p.round for p in fed.round_payloads()] == [1, 2, 3]


def test_quorum_not_met_appends_nothing_and_says_why(fed: Federation) -> None:
    fed.sn.deliver = 1  # 1 of 4 ENs delivers; quorum 0.5 needs 2
    fed.sn.hand_over = False  # real time per retry counts: no update bytes to hand over
    began = fed.clock.monotonic()  # the driver's clock: real time plus the pauses it skipped

    fed.train(1)

    assert fed.round_payloads() == []
    status = fed.entry.status()
    assert status.state == "idle" and status.round == 0
    assert status.error == "round 1: quorum not met: 1 of 4 edge nodes delivered, 2 needed"
    assert fed.clock.monotonic() - began >= fed.entry.driver.retry_span()  # retried for the whole span
    assert len(fed.sn.opened) > 1


def test_the_updates_an_sn_used_are_kept_in_the_ledger_before_the_round_block(
    fed: Federation,
) -> None:
    fed.train(1)

    (payload,) = fed.round_payloads()
    assert len(payload.update_digests) == ENS
    for d in payload.update_digests:  # the EN bytes, checked against the digest they signed
        assert digest(fed.ledger.get_blob(d)) == d


def test_keep_updates_none_asks_the_sns_for_no_update(fed: Federation) -> None:
    assert fed.entry.intake.retained is not None
    fed.entry.intake.retained.policy = KeepUpdates(0)

    fed.train(1)

    (payload,) = fed.round_payloads()
    assert not any(d in fed.ledger.blobs for d in payload.update_digests)


@pytest.mark.parametrize(
    ("lie", "why"),
    [
        ("noise", "is not the weighted sum of the updates it used"),
        ("drop_one", "is not the weighted sum of the updates it used"),
        ("hand_over", "did not hand over 4 of the updates it used"),
    ],
)
def test_an_sn_whose_aggregate_is_not_the_sum_of_its_updates_is_refused(
    fed: Federation, lie: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    setattr(fed.sn, lie, lie != "hand_over")
    assert fed.entry.intake.retained is not None
    fed.entry.intake.retained.wait_s = 0.05

    fed.train(1)

    assert fed.round_payloads() == []  # its ENs are rejected: the round lacks its quorum
    error = fed.entry.status().error or ""
    assert "quorum not met: 0 of 4" in error
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any(fed.sn.node_id in m and why in m for m in refusals), refusals
