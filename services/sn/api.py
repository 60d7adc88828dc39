"""The HTTP control API of an SN (docs/control-api.md). The entry answers everything itself;
any other SN forwards what only the entry can do."""

from __future__ import annotations

import hmac
from typing import Any, Literal

import httpx
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from fedchain.services.sn.entry import Busy, EntryRole
from fedchain.services.sn.supernode import SuperNode
from fedchain.shared.ledger.errors import LedgerUnavailable
from fedchain.shared.node.metrics import NodeMetrics

FORWARD_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=5.0)
MAX_INT64 = 2**63 - 1
"""Largest height/version a query accepts (the ledger stores heights as signed 64-bit)."""


class TrainBody(BaseModel):
    rounds: int = Field(ge=1, le=100_000)
    algorithm: Literal["fedper", "fedavg"] | None = None


class TrainFLBody(BaseModel):
    rounds: int = Field(ge=1, le=100_000)


class SaveBody(BaseModel):
    path: str | None = None


def _one_line(exc: RequestValidationError) -> str:
    errs = exc.errors()
    if not errs:
        return "invalid request"
    e = errs[0]
    loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
    return f"invalid {loc}: {e.get('msg')}"


def build_app(sn: SuperNode, entry: EntryRole | None, metrics: NodeMetrics, api_token: str) -> FastAPI:
    """The FastAPI app of an SN (the entry when ``entry`` is given)."""
    app = FastAPI(title="fedchain super node", version="1", description="Control API of a fedchain SN.")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    @app.exception_handler(LedgerUnavailable)
    async def _ledger_down(_: Request, exc: LedgerUnavailable) -> JSONResponse:
        first = (str(exc).splitlines() or ["unreachable"])[0]
        return JSONResponse({"detail": f"the ledger is unavailable: {first}"}, status_code=503)

    def require_token(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer $FEDCHAIN_API_TOKEN'")
        if not hmac.compare_digest(token.encode(), api_token.encode()):
            raise HTTPException(401, "wrong API token (FEDCHAIN_API_TOKEN)")

    async def forward(request: Request) -> Response:
        target = sn.entry_http_address
        if not target:
            raise HTTPException(503, "this SN does not know the entry's HTTP address yet; try again shortly")
        url = f"http://{target}{request.url.path}"
        headers = {k: v for k, v in request.headers.items() if k.lower() in {"authorization", "content-type"}}
        try:
            async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT) as client:
                r = await client.request(
                    request.method, url, params=request.query_params, content=await request.body(), headers=headers
                )
        except httpx.HTTPError as exc:
            raise HTTPException(503, f"the entry super node at {target} is unreachable: {type(exc).__name__}") from None
        keep = {k: v for k, v in r.headers.items() if k.lower().startswith("x-model-")}
        return Response(r.content, status_code=r.status_code, media_type=r.headers.get("content-type"), headers=keep)

    def need_entry() -> EntryRole:
        assert entry is not None
        return entry

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "role": "SN", "node_id": sn.node_id, "entry": entry is not None}

    @app.get("/status")
    async def status(request: Request) -> Any:
        if entry is not None:
            return entry.status()
        local = {
            "node_id": sn.node_id, "role": "SN", "entry": False, "state": sn.state, "algorithm": sn.settings.algorithm,
            "round": sn.last_round, "target_round": sn.last_round, "model_version": sn.last_round, "height": -1,
            "ens": len(sn.edges.alive()), "sns": 0,
        }
        try:
            r = await forward(request)
            if r.status_code == 200:
                import json

                merged = json.loads(bytes(r.body))
                # "ens"/"sns" stay the federation's live counts (as the entry sees them); this SN's own ENs apart
                merged.update(node_id=sn.node_id, entry=False, local_ens=len(sn.edges.alive()))
                return merged
        except HTTPException:
            pass
        return local

    @app.get("/metrics")
    def prom() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if entry is None:
        for path in ("/train", "/pause", "/save", "/eval", "/train-fl"):
            app.add_api_route(path, forward, methods=["POST"], dependencies=[Depends(require_token)])
        for path in ("/sn", "/model", "/rounds", "/blocks", "/verify"):
            app.add_api_route(path, forward, methods=["GET"])
        return app

    @app.post("/train", status_code=202, dependencies=[Depends(require_token)])
    def train(body: TrainBody) -> dict[str, Any]:
        try:
            return need_entry().start_training(body.rounds, body.algorithm)
        except Busy as exc:
            raise HTTPException(409, str(exc)) from None

    @app.post("/train-fl", status_code=202, dependencies=[Depends(require_token)])
    def train_fl(body: TrainFLBody) -> dict[str, Any]:
        try:
            return need_entry().start_training(body.rounds, "fedavg")
        except Busy as exc:
            raise HTTPException(409, str(exc)) from None

    @app.post("/pause", dependencies=[Depends(require_token)])
    def pause() -> dict[str, Any]:
        return need_entry().pause()

    @app.post("/save", dependencies=[Depends(require_token)])
    def save(body: SaveBody | None = None) -> dict[str, Any]:
        try:
            return need_entry().save(body.path if body else None)
        except OSError as exc:
            raise HTTPException(400, f"cannot write the model file: {exc.strerror or exc}") from None

    @app.post("/eval", dependencies=[Depends(require_token)])
    def evaluate() -> dict[str, Any]:
        reply = need_entry().evaluate_all()
        clients = [
            {
                "node_id": c.node_id, "sn": c.sn, "accuracy": (c.correct / c.total) if c.total else 0.0,
                "correct": c.correct, "total": c.total, "loss": c.loss,
            }
            for c in sorted(reply.clients, key=lambda c: c.partition_index)
        ]
        correct = sum(c["correct"] for c in clients)
        total = sum(c["total"] for c in clients)
        return {
            "clients": clients,
            "pooled": {"accuracy": correct / total if total else 0.0, "correct": correct, "total": total},
            "failed": [{"node_id": f.node_id, "reason": f.reason} for f in reply.failed],
        }

    @app.get("/sn")
    def sns() -> list[dict[str, Any]]:
        e = need_entry()
        out = []
        for m in sorted(e.registry.members("SN"), key=lambda m: (not m.entry, m.node_id)):
            out.append(
                {
                    "node_id": m.node_id, "address": m.address, "http_address": m.http_address,
                    "ens": len(e.registry.edges_of(m.node_id)),
                    "status": "alive" if e.registry.is_alive(m.node_id) else "dead", "entry": m.entry,
                }
            )
        return out

    @app.get("/model")
    def model(version: int | None = Query(None, ge=0, le=MAX_INT64)) -> Response:
        e = need_entry()
        v = e.model.version if version is None else version
        d = e.chain.model_digest(v) if v != e.model.version else e.model.digest
        if d is None:
            raise HTTPException(404, f"unknown model version {v} (latest is {e.model.version})")
        data = e.model_bytes(v, d)
        return Response(
            data, media_type="application/octet-stream",
            headers={"X-Model-Version": str(v), "X-Model-Digest": d,
                     "Content-Disposition": f'attachment; filename="model-v{v}.safetensors"'},
        )

    @app.get("/rounds")
    def rounds() -> list[dict[str, Any]]:
        out = []
        for b in need_entry().chain.blocks(kind="round"):
            p = b.payload
            m = dict(p.metrics)
            out.append(
                {
                    "round": p.round, "algorithm": p.algorithm, "model_version": p.model_version,
                    "accuracy": m.get("accuracy"), "loss": m.get("loss"), "participants": list(p.participants),
                    "rejected": [{"node_id": n, "reason": r} for n, r in p.rejected],
                    "height": b.height, "seconds": m.get("seconds"),
                }
            )
        return out

    @app.get("/blocks")
    def blocks(
        start: int | None = Query(None, alias="from", ge=0, le=MAX_INT64), limit: int = Query(10, ge=1, le=1000)
    ) -> list[dict[str, Any]]:
        e = need_entry()
        top = e.chain.height()
        if top < 0:
            return []
        first = max(0, top - limit + 1) if start is None else start
        return [_block_json(b) for b in e.chain.ledger.range(first, limit)]

    @app.get("/verify")
    def verify() -> dict[str, Any]:
        report = need_entry().chain.ledger.verify()
        return {"ok": report.ok, "checked": report.checked, "height": report.height, "reason": report.reason}

    return app


def _block_json(block: Any) -> dict[str, Any]:
    data = block.to_json()
    return {
        "height": data["height"], "kind": str(data["kind"]), "hash": data["hash"], "prev_hash": data["prev_hash"],
        "producer": data["producer"], "timestamp_ms": data["timestamp_ms"], "payload": data["payload"],
    }
