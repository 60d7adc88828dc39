"""The HTTP control API's answers as pydantic models (docs/control-api.md).

The nodes declare them as ``response_model`` (so OpenAPI shows them) and the console's
client parses every answer into them: one definition of each shape for both sides.
``NodeStatus`` is the one ``/status`` answer of the entry, a plain SN and an EN.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["SN", "EN"]


class _Answer(BaseModel):
    """Base of every answer: unknown fields are ignored (an older or newer node may add some)."""

    model_config = ConfigDict(extra="ignore")


class ErrorDetail(_Answer):
    """Every 4xx/5xx answer: one line a person can act on."""

    detail: str


class Health(_Answer):
    """GET /health."""

    status: Literal["ok"] = "ok"
    role: Role
    node_id: str
    entry: bool


class NodeStatus(_Answer):
    """GET /status of any node.

    ``round`` is the last round completed (entry) or taken part in (SN, EN);
    ``model_version`` is the global model version: the entry's current one, the version a
    plain SN last relayed, the version an EN last trained from.
    """

    node_id: str
    role: Role
    entry: bool
    state: str = Field(description="idle, training, pausing, paused (an EN also: starting)")
    algorithm: str
    round: int = Field(ge=0)
    target_round: int = Field(ge=0)
    model_version: int = Field(ge=0)
    height: int = Field(ge=-1, description="chain height; -1 when unknown")
    ens: int = Field(ge=0, description="live ENs of the federation (an EN: 1)")
    sns: int = Field(ge=0, description="live SNs of the federation")
    error: str | None = Field(None, description="why the last round failed, if it did")
    local_ens: int | None = Field(None, description="plain SN: its own live ENs")
    partition_index: int | None = Field(None, description="EN: its data partition")
    sn: str | None = Field(None, description="EN: node id of its SN")
    accuracy: float | None = Field(None, description="EN: accuracy of its last evaluation")
    attack: str | None = Field(
        None, description="EN: the poisoning attack it runs (an experiment, --attack); null: honest"
    )
    head_size: int | None = Field(
        None, ge=0, description="SN, EN: size of the highest signed tree head it has seen"
    )
    chain_error: str | None = Field(
        None,
        description="SN, EN: why it refused the last round's chain (went backwards, forked, "
        "replaced); null once the entry's chain extends the head it kept again",
    )


def node_status(
    *,
    node_id: str,
    role: Role,
    entry: bool,
    state: str,
    algorithm: str,
    round: int,
    model_version: int,
    target_round: int | None = None,
    height: int = -1,
    ens: int = 0,
    sns: int = 0,
    error: str | None = None,
    local_ens: int | None = None,
    partition_index: int | None = None,
    sn: str | None = None,
    accuracy: float | None = None,
    attack: str | None = None,
    head_size: int | None = None,
    chain_error: str | None = None,
) -> NodeStatus:
    """The /status answer; ``target_round`` is never below ``round``."""
    return NodeStatus(
        node_id=node_id,
        role=role,
        entry=entry,
        state=state,
        algorithm=algorithm,
        round=round,
        target_round=max(round, target_round if target_round is not None else round),
        model_version=model_version,
        height=height,
        ens=ens,
        sns=sns,
        error=error,
        local_ens=local_ens,
        partition_index=partition_index,
        sn=sn,
        accuracy=accuracy,
        attack=attack,
        head_size=head_size,
        chain_error=chain_error,
    )


class TrainStarted(_Answer):
    """POST /train and /train-fl (202)."""

    status: Literal["training"] = "training"
    algorithm: str
    start_round: int
    target_round: int


class PauseResult(_Answer):
    """POST /pause."""

    status: str = Field(description="pausing, paused or idle (nothing to pause)")
    round: int


MODEL_FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
"""A model file name for POST /save: letters, digits, ``.``, ``_``, ``-``; no folders."""


def model_file_name(name: str) -> str:
    """``name`` as the entry stores it (``.safetensors`` appended when it has no such suffix).

    Raises ValueError for anything that is not a plain file name (a path, ``..``, empty).
    """
    if not re.fullmatch(MODEL_FILE_NAME, name) or name in (".", "..") or ".." in name:
        raise ValueError(
            f"{name[:60]!r} is not a model file name: use letters, digits, '.', '_' and '-' "
            "(no folders); the entry writes it under its models folder"
        )
    return name if name.endswith(".safetensors") else f"{name}.safetensors"


class SaveRequest(BaseModel):
    """POST /save: an optional file name (default ``model-v<version>.safetensors``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None, max_length=100, description="file name under the entry's models folder, no path"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and "path" in data:
            raise ValueError(
                "POST /save takes a file name (\"name\"), not a path: the entry writes under "
                "its own models folder"
            )
        return data

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str | None) -> str | None:
        return None if v is None else model_file_name(v)


class SaveResult(_Answer):
    """POST /save: the checkpoint block and the model file on the entry."""

    version: int
    digest: str
    height: int
    path: str


class Rejection(_Answer):
    """A node left out, and why."""

    node_id: str
    reason: str


class ClientEval(_Answer):
    """One EN's personal evaluation."""

    node_id: str
    sn: str = ""
    accuracy: float
    correct: int
    total: int
    loss: float


class PooledEval(_Answer):
    """Every EN's test samples together."""

    accuracy: float
    correct: int
    total: int


class EvalResult(_Answer):
    """POST /eval."""

    clients: list[ClientEval]
    pooled: PooledEval
    failed: list[Rejection] = Field(default_factory=list)


class SuperNodeInfo(_Answer):
    """One row of GET /sn."""

    node_id: str
    address: str
    http_address: str
    ens: int
    status: Literal["alive", "dead"]
    entry: bool


class RoundSummary(_Answer):
    """One row of GET /rounds (from the round block)."""

    round: int
    algorithm: str
    model_version: int
    model_digest: str | None = Field(None, description="SHA-256 of the model version the round made")
    accuracy: float | None = None
    loss: float | None = None
    participants: list[str]
    rejected: list[Rejection] = Field(default_factory=list)
    height: int
    seconds: float | None = None


class BlockInfo(_Answer):
    """One row of GET /blocks (the block's JSON form without its signature)."""

    height: int
    kind: str
    hash: str
    prev_hash: str
    producer: str
    timestamp_ms: int
    payload: dict[str, Any]


class ParticipantEvidence(_Answer):
    """One EN whose update counted in a round: what it signed, and its signature."""

    node_id: str
    parent_sn: str
    update_digest: str
    samples: int
    train_loss: float
    train_seconds: float
    signature: str = Field(description="the EN's Ed25519 signature over its update header (hex)")
    leaf_index: int = Field(description="position of its leaf under the round's Merkle root")


class ManifestEvidence(_Answer):
    """One SN's signed manifest in a round block."""

    sn_node_id: str
    aggregate_digest: str
    weight: int
    total_bytes: int
    used: list[str]
    rejected: list[Rejection]
    manifest_digest: str
    signature: str = Field(description="the SN's Ed25519 signature over its manifest (hex)")
    aggregator: str = Field("mean", description="the aggregator the SN signed it applied")
    used_bytes: list[str] = Field(
        default_factory=list, description="per used EN: its forwarded update's size (0: mean)"
    )
    set_aside: list[dict[str, Any]] = Field(
        default_factory=list,
        description="signed update headers of used ENs the entry's robust rule rejected",
    )


class DecisionInfo(_Answer):
    """What aggregation did to one update: rejected, clipped or down-weighted, and why."""

    node_id: str
    action: str
    reason: str
    by: str


class RoundEvidence(_Answer):
    """GET /rounds/{r}: what round r's block attests, and where it is on the chain."""

    round: int
    algorithm: str
    model_version: int
    model_digest: str
    merkle_root: str
    participants: list[ParticipantEvidence]
    manifests: list[ManifestEvidence]
    decisions: list[DecisionInfo]
    metrics: dict[str, float]
    height: int
    block_hash: str
    producer: str
    timestamp_ms: int
    head: dict[str, Any] | None = Field(
        None, description="the entry's latest signed tree head, when it has one"
    )


class RoundProofInfo(_Answer):
    """GET /rounds/{r}/proof/{node_id}: the proof file ``fedchain verify --proof`` checks.

    The summary fields repeat what the blocks say; ``block``, ``genesis``, ``admission`` and
    ``authority`` are complete signed blocks (their JSON form).
    """

    format: str
    round: int
    height: int
    block_hash: str
    node_id: str
    parent_sn: str
    update_digest: str
    samples: int
    index: int
    tree_size: int
    path: list[str]
    merkle_root: str
    block: dict[str, Any]
    genesis: dict[str, Any]
    admission: dict[str, Any]
    authority: list[dict[str, Any]]


class VerifyResult(_Answer):
    """GET /verify."""

    ok: bool
    checked: int
    height: int | None = None
    reason: str | None = None


class VerifiedChain(VerifyResult):
    """The console's verify(): the chain's verdict and the newest round's evidence."""

    last_round: RoundEvidence | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorDetail, "description": "missing or wrong API token"},
    409: {"model": ErrorDetail, "description": "training is already running"},
    503: {"model": ErrorDetail, "description": "the ledger or the entry cannot be reached"},
}
"""Error answers declared on the endpoints that can give them (OpenAPI shows the shape)."""
