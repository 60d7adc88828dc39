"""HTTP routes of one round's evidence: ``GET /rounds/{r}`` and ``GET /rounds/{r}/proof/{node_id}``.

The entry answers from the chain it writes; a plain SN forwards both to the entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Path, Request
from fastapi.responses import Response

from fedchain.services.sn.entry import EntryRole
from fedchain.shared.chain.blocks import Block
from fedchain.shared.chain.payloads import RoundPayload
from fedchain.shared.chain.round_proof import ProofUnavailable, make_proof
from fedchain.shared.control_api import (
    ERROR_RESPONSES,
    DecisionInfo,
    ErrorDetail,
    ManifestEvidence,
    ParticipantEvidence,
    Rejection,
    RoundEvidence,
    RoundProofInfo,
)
from fedchain.shared.limits import MAX_HEIGHT

Forward = Callable[[Request], Awaitable[Response]]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "no such round, or the node is not in it"},
    **ERROR_RESPONSES,
}
NODE_ID = r"^[A-Za-z0-9_-]{1,64}$"


def round_evidence(block: Block, head: dict[str, Any] | None) -> RoundEvidence:
    """The /rounds/{r} answer for a round block."""
    p = block.payload
    assert isinstance(p, RoundPayload)
    return RoundEvidence(
        round=p.round, algorithm=p.algorithm, model_version=p.model_version,
        model_digest=p.model_digest, merkle_root=p.merkle_root,
        participants=[
            ParticipantEvidence(**row.to_json(), leaf_index=i) for i, row in enumerate(p.participants)
        ],
        manifests=[
            ManifestEvidence(
                **{**m.to_json(), "rejected": [Rejection(node_id=n, reason=r) for n, r in m.rejected]}
            )
            for m in p.manifests
        ],
        decisions=[DecisionInfo(**d.to_json()) for d in p.decisions],
        metrics=dict(p.metrics), height=block.height, block_hash=block.hash.hex(),
        producer=block.producer, timestamp_ms=block.timestamp_ms, head=head,
    )


def _round_block(entry: EntryRole, r: int) -> Block:
    for block in entry.chain.blocks(kind="round"):
        if isinstance(block.payload, RoundPayload) and block.payload.round == r:
            return block
    raise HTTPException(404, f"no round {r} on the chain")


def add_round_routes(app: FastAPI, entry: EntryRole | None, forward: Forward) -> None:
    """Mount the two routes: answered by ``entry``, or forwarded to it by a plain SN."""
    if entry is None:
        for path, model in (("/rounds/{r}", RoundEvidence),
                            ("/rounds/{r}/proof/{node_id}", RoundProofInfo)):
            app.add_api_route(path, forward, methods=["GET"], response_model=model,
                              responses=NOT_FOUND)
        return
    the_entry = entry

    @app.get("/rounds/{r}", response_model=RoundEvidence, responses=NOT_FOUND,
             summary="what round r's block attests")
    def one_round(r: int = Path(ge=1, le=MAX_HEIGHT)) -> RoundEvidence:
        head = the_entry.chain.latest_head()
        return round_evidence(_round_block(the_entry, r), None if head is None else head.to_json())

    @app.get("/rounds/{r}/proof/{node_id}", response_model=RoundProofInfo, responses=NOT_FOUND,
             summary="inclusion proof of node_id's update in round r")
    def proof(
        r: int = Path(ge=1, le=MAX_HEIGHT), node_id: str = Path(pattern=NODE_ID)
    ) -> RoundProofInfo:
        _round_block(the_entry, r)  # 404 for a round the chain does not hold
        try:
            made = make_proof(the_entry.chain.blocks(), r, node_id)
        except ProofUnavailable as exc:
            raise HTTPException(404, str(exc)) from None
        return RoundProofInfo.model_validate(made.to_json())
