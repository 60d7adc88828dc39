"""Inclusion proofs of an EN's update in a round: made from the chain, checked offline."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from fedchain.shared.chain.blocks import Block, build_block
from fedchain.shared.chain.round_proof import (
    ProofInvalid,
    ProofUnavailable,
    RoundProof,
    check_proof,
    make_proof,
)
from tests.shared.chain.test_chain_round_evidence import (
    EN1,
    EN2,
    EN3,
    ENTRY,
    STRANGER,
    honest_round,
    lying_block,
    prefix,
)


def chain() -> list[Block]:
    blocks = prefix()
    blocks.append(build_block("round", honest_round(blocks), blocks[-1], ENTRY, 99))
    return blocks


def proof_json(node_id: str = EN2.node_id) -> dict[str, Any]:
    return make_proof(chain(), 1, node_id).to_json()


@pytest.mark.parametrize("en", [EN1, EN2, EN3])
def test_each_participant_has_a_proof_that_checks_offline(en: Any) -> None:
    data = json.loads(json.dumps(proof_json(en.node_id)))  # through a file's text
    row = check_proof(RoundProof.from_json(data))
    assert row.node_id == en.node_id and data["round"] == 1 and data["height"] == 5
    assert check_proof(RoundProof.from_json(data), genesis_hash=chain()[0].hash) == row


def test_no_proof_for_a_node_that_did_not_take_part_or_a_missing_round() -> None:
    with pytest.raises(ProofUnavailable, match="not a participant of round 1"):
        make_proof(chain(), 1, STRANGER.node_id)
    with pytest.raises(ProofUnavailable, match="no round 2"):
        make_proof(chain(), 2, EN1.node_id)


def _flip(hex_text: str) -> str:
    return ("0" if hex_text[0] != "0" else "1") + hex_text[1:]


def path_flipped(d: dict[str, Any]) -> None:
    d["path"][0] = _flip(d["path"][0])


def index_moved(d: dict[str, Any]) -> None:
    d["index"] = (d["index"] + 1) % 3


def samples_in_block_edited(d: dict[str, Any]) -> None:
    d["block"]["payload"]["participants"][d["index"]]["samples"] += 1
    d["block"]["payload"]["manifests"][0]["weight"] += 1
    d["samples"] += 1


def summary_edited(d: dict[str, Any]) -> None:
    d["samples"] = 10**6


def other_admission(d: dict[str, Any]) -> None:
    d["admission"] = make_proof(chain(), 1, EN3.node_id).to_json()["admission"]


def root_rewritten_and_resigned(d: dict[str, Any]) -> None:
    # an entry that signs a round whose root is not over its rows
    def swap(data: dict[str, Any]) -> None:
        data["merkle_root"] = hashlib.sha256(b"x").hexdigest()

    d["block"] = lying_block(prefix(), swap)
    d["block_hash"] = d["block"]["hash"]
    d["merkle_root"] = d["block"]["payload"]["merkle_root"]


def row_signature_resigned(d: dict[str, Any]) -> None:
    # the entry re-signs a block in which EN2's own signature no longer holds
    def flip(data: dict[str, Any]) -> None:
        row = data["participants"][d["index"]]
        row["signature"] = _flip(row["signature"])

    d["block"] = lying_block(prefix(), flip)
    d["block_hash"] = d["block"]["hash"]


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("audit path entry flipped", path_flipped, "audit path does not lead"),
    ("leaf index moved", index_moved, f"not {EN2.node_id}"),
    ("samples edited in the block", samples_in_block_edited, "(root|hash does not match)"),
    ("summary edited", summary_edited, "samples"),
    ("another EN's admission", other_admission, "does not admit"),
    ("root over other rows", root_rewritten_and_resigned, "RFC 6962 root"),
    ("EN signature broken, block re-signed", row_signature_resigned, "not signed by"),
]


@pytest.mark.parametrize(("name", "corrupt", "reason"), CASES, ids=[c[0] for c in CASES])
def test_a_wrong_proof_fails_with_a_one_line_reason(
    name: str, corrupt: Callable[[dict[str, Any]], None], reason: str
) -> None:
    data = copy.deepcopy(proof_json())
    corrupt(data)
    with pytest.raises(ProofInvalid, match=reason) as caught:
        check_proof(RoundProof.from_json(data))
    assert "\n" not in str(caught.value)


def test_a_proof_from_another_federation_fails_against_the_pinned_genesis() -> None:
    with pytest.raises(ProofInvalid, match="is not the genesis"):
        check_proof(RoundProof.from_json(proof_json()), genesis_hash=b"\x01" * 32)
