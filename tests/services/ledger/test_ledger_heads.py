"""Signed tree heads: the ledger checks and serves them, and nobody can shorten, roll back or
replace the chain unnoticed by ``fedchain verify`` given the last head (SQLite and MySQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from ledger_kit import Federation, dump, restore, truncate

from fedchain.services.cli.ledger import verify_store
from fedchain.services.ledger import schema
from fedchain.services.ledger.store import Ledger
from fedchain.shared.chain.blocks import build_block
from fedchain.shared.chain.merkle import verify_consistency
from fedchain.shared.chain.treehead import check_extends, head_for
from fedchain.shared.crypto import NodeKey
from fedchain.shared.ledger.audit import Anchors, BlockAnchor
from fedchain.shared.ledger.errors import InvalidTreeHead, NotFound


@pytest.fixture
def fed(ledger: Ledger) -> Federation:
    federation = Federation(ledger)
    federation.standard_chain()
    return federation


def test_the_ledger_takes_only_the_entrys_heads_that_match_its_chain(fed: Federation) -> None:
    ledger, hashes = fed.ledger, [b.hash for b in fed.blocks]
    assert ledger.tree_head() is None
    good = head_for(hashes[0], hashes, 1).signed(fed.entry)
    bad = {
        "signed by an admitted EN": head_for(hashes[0], hashes, 1).signed(fed.ens[0]),
        "another chain": head_for(b"\x07" * 32, hashes, 1).signed(fed.entry),
        "more blocks than stored": head_for(hashes[0], hashes + [b"\x01" * 32], 1).signed(
            fed.entry
        ),
        "another root": head_for(hashes[0], hashes[:9] + [b"\x02" * 32], 1).signed(fed.entry),
    }
    for what, head in bad.items():
        with pytest.raises(InvalidTreeHead):
            ledger.put_tree_head(head)
        assert ledger.tree_head() is None, what
    assert ledger.put_tree_head(good) == good and ledger.tree_head() == good
    older = head_for(hashes[0], hashes[:5], 2).signed(fed.entry)
    with pytest.raises(InvalidTreeHead, match="older than the stored head"):
        ledger.put_tree_head(older)
    assert ledger.tree_head() == good


def test_consistency_proofs_link_every_older_head_to_the_newest(fed: Federation) -> None:
    ledger, hashes = fed.ledger, [b.hash for b in fed.blocks]
    heads = [head_for(hashes[0], hashes[:n], n) for n in range(1, 11)]
    for old in heads:
        proof = ledger.consistency(old.size, 10)
        check_extends(old, heads[-1], proof)  # raises if it did not hold
        assert verify_consistency(old.size, 10, old.root, heads[-1].root, proof)
    with pytest.raises(NotFound, match="holds 10 blocks"):
        ledger.consistency(3, 11)
    with pytest.raises(InvalidTreeHead):
        ledger.consistency(5, 4)


def _report(ledger: Ledger, anchors: Anchors | None = None) -> tuple[bool, int | None, str]:
    report = verify_store(ledger, anchors or Anchors())
    return report.ok, report.height, report.reason or ""


def test_deleting_the_last_blocks_and_rewriting_the_tip_is_reported(fed: Federation) -> None:
    ledger = fed.ledger
    head = fed.sign_head()
    assert _report(ledger, Anchors(head=head)) == (True, 9, "")
    truncate(ledger.engine, keep=7, heads_too=False)  # the heads table still holds size 10
    ok, height, reason = _report(ledger)
    assert (ok, height) == (False, 7) and "blocks 7..9 are missing" in reason
    truncate(ledger.engine, keep=7)  # the attacker removes the ledger's heads as well
    assert ledger.verify().ok  # the rows alone are consistent again ...
    ok, height, reason = _report(ledger, Anchors(head=head, head_source="the head FILE"))
    assert (ok, height) == (False, 7), reason  # ... but not with the auditor's head
    assert "the head FILE names 10 blocks, the chain holds 7" in reason
    anchor = BlockAnchor(9, fed.blocks[9].hash)
    ok, height, reason = _report(ledger, Anchors(head=anchor))
    assert (ok, height) == (False, 7) and "blocks 7..9 are missing" in reason


def test_a_chain_re_signed_from_a_new_genesis_is_reported(fed: Federation) -> None:
    ledger = fed.ledger
    head, genesis, entry = fed.sign_head(), fed.blocks[0].hash, fed.entry.public_bytes
    restore(
        ledger.engine,
        {
            "blocks": [],
            "ledger_meta": [
                {"name": "schema_version", "value": schema.SCHEMA_VERSION},
                {"name": "tip", "value": schema.EMPTY_TIP},
            ],
            "tree_heads": [],
        },
    )
    forger = Federation(ledger)
    forger.standard_chain()
    forger.sign_head()
    assert _report(ledger) == (True, 9, "")  # consistent in itself
    for anchors in (Anchors(head=head), Anchors(genesis=genesis), Anchors(entry_key=entry)):
        ok, height, reason = _report(ledger, anchors)
        assert (ok, height) == (False, 0) and "the chain was replaced" in reason, anchors


def test_rolling_the_database_back_to_an_older_copy_is_reported(fed: Federation) -> None:
    ledger = fed.ledger
    fed.blocks = fed.blocks[:6]
    truncate(ledger.engine, keep=6)
    backup = dump(ledger.engine)  # a backup taken at 6 blocks ...
    restore(ledger.engine, backup)
    fed.checkpoint(2)
    fed.round(3, fed.ens)
    head = fed.sign_head()  # ... the chain then grows to 8 and the entry signs that
    restore(ledger.engine, backup)  # rolled back
    ok, height, reason = _report(ledger, Anchors(head=head))
    assert (ok, height) == (False, 6) and "rolled back" in reason
    # rolled back and then grown again with other blocks: a fork, not a longer chain
    fed.blocks = fed.blocks[:6]
    fed.checkpoint(1)
    fed.checkpoint(2)
    fed.checkpoint(3)
    ok, height, reason = _report(ledger, Anchors(head=head))
    assert not ok and "does not extend" in reason and "rewritten" in reason


def test_a_block_by_an_admitted_en_written_into_the_database_is_found_at_its_height(
    fed: Federation,
) -> None:
    ledger = fed.ledger
    en = fed.ens[0]  # admitted at height 2, a member when block 8 was written
    block = fed.blocks[8]
    forged = build_block(block.kind, block.payload, fed.blocks[7], en, block.timestamp_ms)
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE blocks SET producer = :p, hash = :h, signature = :s WHERE height = 8"),
            {"p": forged.producer, "h": forged.hash, "s": forged.signature},
        )
    ok, height, reason = _report(ledger)
    assert (ok, height) == (False, 8)
    assert f"producer {en.node_id} is an admitted EN" in reason and "only by the entry" in reason


def test_an_outsider_cannot_store_a_head_even_over_the_right_root(fed: Federation) -> None:
    hashes = [b.hash for b in fed.blocks]
    with pytest.raises(InvalidTreeHead, match="not by the entry"):
        fed.ledger.put_tree_head(head_for(hashes[0], hashes, 5).signed(NodeKey.generate()))
