"""Round blocks count 1, 2, 3, ...: a repeated or skipped round is refused on append and
flagged by verify at its height (SQLite and MySQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from ledger_kit import Federation, model_blob

from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import RoundPayload, build_block
from fedchain.shared.ledger.errors import InvalidBlock
from tests.shared.chain.evidence_kit import signed_round


def _round_payload(ledger: Ledger, number: int, seed: int, fed: Federation) -> RoundPayload:
    return signed_round(
        fed.blocks[0].hash, number, ledger.put_blob(model_blob(seed)), {fed.sn: fed.ens[:1]},
        metrics={"accuracy": 0.5},
    )


@pytest.fixture
def fed(ledger: Ledger) -> Federation:
    federation = Federation(ledger)
    federation.genesis()  # 0
    federation.join(federation.sn, "SN")  # 1
    federation.join(federation.ens[0], "EN", federation.sn.node_id)  # 2
    federation.round(1, federation.ens[:1])  # 3
    return federation


@pytest.mark.parametrize("number", [1, 3, 0])
def test_a_repeated_or_skipped_round_is_refused_and_the_chain_is_unchanged(fed: Federation, number: int) -> None:
    ledger = fed.ledger
    retry = build_block("round", _round_payload(ledger, number, 77, fed), fed.tip, fed.entry, fed.ts + 1000)
    with pytest.raises(InvalidBlock, match=f"records round {number}.*next round is 2"):
        ledger.append(retry)
    assert ledger.tip() == fed.tip
    assert ledger.verify().ok
    fed.round(2, fed.ens[:1])  # the right next round still goes in
    assert ledger.tip().payload.round == 2  # type: ignore[union-attr]


def test_verify_finds_a_forged_duplicate_round_at_its_height(fed: Federation) -> None:
    ledger = fed.ledger
    fed.round(2, fed.ens[:1])  # 4
    fed.checkpoint(2)  # 5
    assert ledger.verify().ok
    # the entry's own key re-signs block 4 as a second "round 1" (hash, signature and link all hold)
    forged = build_block(
        "round", _round_payload(ledger, 1, 99, fed), fed.blocks[3], fed.entry, fed.blocks[4].timestamp_ms
    )
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE blocks SET payload = :pl, hash = :h, signature = :s WHERE height = 4"),
            {"pl": forged_payload_text(forged), "h": forged.hash, "s": forged.signature},
        )
    report = ledger.verify()
    assert not report.ok
    assert report.height == 4, report.summary()
    assert report.reason is not None and "round 1" in report.reason, report.summary()


def forged_payload_text(block: object) -> str:
    from fedchain.shared.chain.blocks import payload_text

    return payload_text(block.payload)  # type: ignore[attr-defined]
