"""The dashboard's own answers: the node tree (M-SN → SN → EN) and the events it pushes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fedchain.shared.control_api import BlockInfo, NodeStatus, RoundSummary

Liveness = Literal["alive", "dead"]


class EdgeNodeInfo(BaseModel):
    """One EN under its SN."""

    node_id: str
    address: str
    http_address: str
    partition_index: int = Field(description="the EN's data partition")
    status: Liveness


class SuperNodeBranch(BaseModel):
    """One SN (the entry first) with its ENs."""

    node_id: str
    address: str
    http_address: str
    entry: bool
    status: Liveness
    ens: list[EdgeNodeInfo]
    alive_ens: int = Field(ge=0)


class NodeTree(BaseModel):
    """GET /dashboard/tree: the federation as the entry's registry sees it."""

    entry: str = Field(description="node id of the entry super node (M-SN)")
    sns: list[SuperNodeBranch]


class DashboardEvent(BaseModel):
    """One server-sent event's data (the SSE ``event:`` line names ``kind``)."""

    kind: Literal["status", "tree", "block", "round"]
    status: NodeStatus | None = None
    tree: NodeTree | None = None
    block: BlockInfo | None = None
    round: RoundSummary | None = None
