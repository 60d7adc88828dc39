"""A small in-test node that speaks docs/control-api.md over real HTTP (uvicorn in a thread).

It is an extra layer under the live-network test: training advances one round per
GET /status, so tests are fast and deterministic.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Response
from pydantic import BaseModel, Field
from safetensors.numpy import save as save_safetensors

from tests.conftest import free_port

TOKEN = "console-test-token-0001"


@dataclass
class FakeNode:
    """The state behind the fake control API."""

    role: str = "SN"
    node_id: str = "n-fake0000000000"
    state: str = "idle"
    algorithm: str = "fedper"
    round: int = 0
    target_round: int = 0
    height: int = 1
    stall: bool = False
    status_delay: float = 0.0
    bad_digest: bool = False
    forged_model: bool = False  # serve other bytes, with a header that matches them
    rounds: list[dict[str, Any]] = field(default_factory=list)
    train_calls: list[dict[str, Any]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def model_bytes(self, version: int) -> bytes:
        return save_safetensors({"base.weight": np.full((4, 3), float(version), dtype=np.float32)})

    def advance(self) -> None:
        if self.state not in ("training", "pausing") or self.stall:
            return
        self.round += 1
        self.height += 1
        self.rounds.append({
            "round": self.round, "algorithm": self.algorithm, "model_version": self.round,
            "accuracy": 0.5 + self.round / 100, "loss": 1.0 / self.round,
            "participants": ["n-en1", "n-en2"], "rejected": [], "height": self.height, "seconds": 0.01,
        })
        if self.state == "pausing":
            self.state = "paused"
        elif self.round >= self.target_round:
            self.state = "idle"


class TrainBody(BaseModel):
    rounds: int = Field(ge=1)
    algorithm: Literal["fedper", "fedavg"] | None = None


class TrainFLBody(BaseModel):
    rounds: int = Field(ge=1)


class SaveBody(BaseModel):
    name: str | None = None


def make_app(node: FakeNode) -> FastAPI:
    app = FastAPI()

    def auth(authorization: str | None = Header(default=None)) -> None:
        if authorization != f"Bearer {TOKEN}":
            raise HTTPException(401, "missing or wrong API token")

    def sn_only() -> None:
        if node.role != "SN":
            raise HTTPException(404, "Not Found")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "role": node.role, "node_id": node.node_id, "entry": node.role == "SN"}

    @app.get("/status")
    def status() -> dict[str, Any]:
        if node.status_delay:
            node.released.wait(node.status_delay)
        node.advance()
        return {"node_id": node.node_id, "role": node.role, "entry": True, "state": node.state,
                "algorithm": node.algorithm, "round": node.round, "target_round": node.target_round,
                "model_version": node.round, "height": node.height, "ens": 2, "sns": 1}

    def start(rounds: int, algorithm: str) -> dict[str, Any]:
        if node.state == "training":
            raise HTTPException(409, "already training; pause() first")
        node.algorithm = algorithm
        node.state = "training"
        node.target_round = node.round + rounds
        node.train_calls.append({"rounds": rounds, "algorithm": algorithm})
        return {"status": "training", "algorithm": algorithm, "start_round": node.round + 1,
                "target_round": node.target_round}

    @app.post("/train", status_code=202, dependencies=[Depends(sn_only), Depends(auth)])
    def train(body: TrainBody) -> dict[str, Any]:
        return start(body.rounds, body.algorithm or node.algorithm)

    @app.post("/train-fl", status_code=202, dependencies=[Depends(sn_only), Depends(auth)])
    def train_fl(body: TrainFLBody) -> dict[str, Any]:
        return start(body.rounds, "fedavg")

    @app.post("/pause", dependencies=[Depends(sn_only), Depends(auth)])
    def pause() -> dict[str, Any]:
        if node.state == "training":
            node.state = "pausing"
        return {"status": node.state, "round": node.round}

    @app.post("/save", dependencies=[Depends(sn_only), Depends(auth)])
    def save(body: SaveBody) -> dict[str, Any]:
        node.height += 1
        digest = hashlib.sha256(node.model_bytes(node.round)).hexdigest()
        return {"version": node.round, "digest": digest, "height": node.height,
                "path": f"/state/models/{body.name or f'model-v{node.round}.safetensors'}"}

    @app.post("/eval", dependencies=[Depends(sn_only), Depends(auth)])
    def evaluate() -> dict[str, Any]:
        clients = [
            {"node_id": "n-en1", "sn": node.node_id, "accuracy": 0.9, "correct": 90, "total": 100, "loss": 0.3},
            {"node_id": "n-en2", "sn": node.node_id, "accuracy": 0.8, "correct": 80, "total": 100, "loss": 0.5},
        ]
        return {"clients": clients, "pooled": {"accuracy": 0.85, "correct": 170, "total": 200}}

    @app.get("/sn", dependencies=[Depends(sn_only)])
    def sns() -> list[dict[str, Any]]:
        return [{"node_id": node.node_id, "address": "127.0.0.1:8080", "http_address": "127.0.0.1:9080",
                 "ens": 2, "status": "alive", "entry": True}]

    @app.get("/model", dependencies=[Depends(sn_only)])
    def model(version: int | None = Query(default=None)) -> Response:
        chosen = node.round if version is None else version
        if chosen > node.round or chosen < 0:
            raise HTTPException(404, f"unknown model version {chosen} (latest is {node.round})")
        data = node.model_bytes(chosen + 100 if node.forged_model else chosen)
        digest = hashlib.sha256(data).hexdigest()
        if node.bad_digest:
            digest = "0" * 64
        return Response(data, media_type="application/octet-stream",
                        headers={"X-Model-Version": str(chosen), "X-Model-Digest": digest})

    @app.get("/rounds", dependencies=[Depends(sn_only)])
    def rounds() -> list[dict[str, Any]]:
        # what the chain records: every version up to the current one, with its digest
        recorded = {r["model_version"]: r for r in node.rounds}
        out = []
        for v in range(1, node.round + 1):
            row = dict(recorded.get(v) or {
                "round": v, "algorithm": node.algorithm, "model_version": v, "participants": [],
                "rejected": [], "height": v,
            })
            row["model_digest"] = hashlib.sha256(node.model_bytes(v)).hexdigest()
            out.append(row)
        return out

    @app.get("/blocks", dependencies=[Depends(sn_only)])
    def blocks(
        start: int | None = Query(default=None, alias="from"), limit: int = Query(default=10, ge=1)
    ) -> list[dict[str, Any]]:
        first = start if start is not None else max(0, node.height - limit + 1)
        heights = [h for h in range(first, first + limit) if h <= node.height]
        return [
            {
                "height": h,
                "kind": "genesis" if h == 0 else "round",
                "hash": f"{h:064x}",
                "prev_hash": f"{max(h - 1, 0):064x}",
                "producer": node.node_id,
                "timestamp_ms": 1_764_000_000_000 + h,
                "payload": (
                    {"model_digest": hashlib.sha256(node.model_bytes(0)).hexdigest()} if h == 0 else {"round": h}
                ),
            }
            for h in heights
        ]

    @app.get("/rounds/{r}", dependencies=[Depends(sn_only)])
    def one_round(r: int) -> dict[str, Any]:
        if not 1 <= r <= node.round:
            raise HTTPException(404, f"no round {r} on the chain")
        rows = [
            {"node_id": en, "parent_sn": node.node_id, "update_digest": f"{r:02x}{i:062x}",
             "samples": 10 + i, "train_loss": 0.5, "train_seconds": 1.0, "signature": "ab" * 64,
             "leaf_index": i}
            for i, en in enumerate(("n-en1", "n-en2"))
        ]
        return {
            "round": r, "algorithm": node.algorithm, "model_version": r,
            "model_digest": hashlib.sha256(node.model_bytes(r)).hexdigest(), "merkle_root": "cd" * 32,
            "participants": rows,
            "manifests": [{"sn_node_id": node.node_id, "aggregate_digest": "ef" * 32, "weight": 21,
                           "total_bytes": 100, "used": ["n-en1", "n-en2"], "rejected": [],
                           "manifest_digest": "12" * 32, "signature": "34" * 64}],
            "decisions": [{"node_id": "n-en3", "action": "rejected", "reason": "timed out",
                           "by": node.node_id}],
            "metrics": {"accuracy": 0.5}, "height": r, "block_hash": f"{r:064x}",
            "producer": node.node_id, "timestamp_ms": 1_764_000_000_000 + r, "head": None,
        }

    @app.get("/verify", dependencies=[Depends(sn_only)])
    def verify() -> dict[str, Any]:
        return {"ok": True, "checked": node.height + 1, "height": node.height, "reason": None}

    return app


@dataclass
class RunningNode:
    """A fake node served over HTTP on 127.0.0.1."""

    node: FakeNode
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def serve(node: FakeNode) -> Iterator[RunningNode]:
    """Serve ``node`` on a free port until the block ends."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(node), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake node did not start")
        time.sleep(0.02)
    try:
        yield RunningNode(node, port)
    finally:
        node.released.set()
        server.should_exit = True
        thread.join(timeout=10)
