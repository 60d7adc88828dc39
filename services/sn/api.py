"""The HTTP control API of an SN (docs/control-api.md). The entry answers everything itself;
any other SN forwards what only the entry can do."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, ValidationError

from fedchain.services.sn.dashboard import mount_dashboard
from fedchain.services.sn.entry import AlgorithmRefused, Busy, EntryRole
from fedchain.services.sn.round_routes import add_round_routes
from fedchain.services.sn.status import RelayLog, sn_status
from fedchain.services.sn.supernode import SuperNode
from fedchain.shared.control_api import (
    ERROR_RESPONSES,
    BlockInfo,
    ClientEval,
    ErrorDetail,
    EvalResult,
    Health,
    NodeStatus,
    PauseResult,
    PooledEval,
    Rejection,
    RoundSummary,
    SaveRequest,
    SaveResult,
    SuperNodeInfo,
    TrainStarted,
    VerifyResult,
)
from fedchain.shared.ledger.errors import LedgerUnavailable
from fedchain.shared.limits import MAX_HEIGHT
from fedchain.shared.net.http_docs import BEARER, METRICS_RESPONSES, documented_app
from fedchain.shared.net.http_server import RequestGuard, bearer_problem
from fedchain.shared.net.https import HttpClientTls
from fedchain.shared.node.metrics import NodeMetrics
from fedchain.shared.rpc import node_pb2 as pb

FORWARD_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=5.0)


class TrainBody(BaseModel):
    rounds: int = Field(ge=1, le=100_000)
    algorithm: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="fedper, fedavg or the federation's own strategy (as genesis records it); "
        "default: the federation's",
    )


class TrainFLBody(BaseModel):
    rounds: int = Field(ge=1, le=100_000)


def _one_line(exc: RequestValidationError) -> str:
    errs = exc.errors()
    if not errs:
        return "invalid request"
    e = errs[0]
    loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
    return f"invalid {loc}: {e.get('msg')}"


def build_app(
    sn: SuperNode,
    entry: EntryRole | None,
    metrics: NodeMetrics,
    api_token: str,
    relayed: RelayLog | None = None,
    peer_http: HttpClientTls | None = None,
) -> FastAPI:
    """The FastAPI app of an SN (the entry when ``entry`` is given).

    ``relayed`` is what the SN's servicer records of the rounds it relays (its /status);
    ``peer_http`` how it reaches the entry's API when it forwards (HTTPS and its CA).
    """
    relayed = relayed if relayed is not None else RelayLog()
    peer_http = peer_http if peer_http is not None else HttpClientTls()
    forward_verify = peer_http.verify()
    app = documented_app("fedchain super node", "Control API of a fedchain SN (docs/control-api.md).")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    @app.exception_handler(LedgerUnavailable)
    async def _ledger_down(_: Request, exc: LedgerUnavailable) -> JSONResponse:
        first = (str(exc).splitlines() or ["unreachable"])[0]
        return JSONResponse({"detail": f"the ledger is unavailable: {first}"}, status_code=503)

    # The token is checked before a body is read (RequestGuard), and again per route.
    app.add_middleware(
        RequestGuard, token=api_token, protected=lambda method, path: method == "POST" and path in POST_ROUTES
    )

    def require_token(request: Request, _: HTTPAuthorizationCredentials | None = Security(BEARER)) -> None:
        problem = bearer_problem(request.headers.get("authorization", ""), api_token)
        if problem is not None:
            raise HTTPException(401, problem)

    async def forward(request: Request) -> Response:
        target = sn.entry_http_address
        if not target:
            raise HTTPException(503, "this SN does not know the entry's HTTP address yet; try again shortly")
        url = f"{peer_http.url(target)}{request.url.path}"
        headers = {k: v for k, v in request.headers.items() if k.lower() in {"authorization", "content-type"}}
        try:
            async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT, verify=forward_verify) as client:
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

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(role="SN", node_id=sn.node_id, entry=entry is not None)

    @app.get("/status", response_model=NodeStatus)
    async def status(request: Request) -> NodeStatus:
        if entry is not None:
            return entry.status()
        federation: NodeStatus | None = None
        try:
            r = await forward(request)
            if r.status_code == 200:
                federation = NodeStatus.model_validate_json(bytes(r.body))
        except (HTTPException, ValidationError):
            federation = None
        return sn_status(sn, relayed, federation)

    @app.get("/metrics", response_class=Response, responses=METRICS_RESPONSES)
    def prom() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    add_round_routes(app, entry, forward)
    if entry is None:
        for path, answer in POST_ROUTES.items():
            app.add_api_route(
                path, forward, methods=["POST"], dependencies=[Depends(require_token)],
                response_model=answer, responses=ERROR_RESPONSES,
                status_code=202 if path in ("/train", "/train-fl") else 200,
            )
        for path, answer in GET_ROUTES.items():
            if answer is None:  # /model: bytes
                app.add_api_route(path, forward, methods=["GET"], response_class=Response, responses=MODEL_RESPONSES)
            else:
                app.add_api_route(path, forward, methods=["GET"], response_model=answer, responses=ERROR_RESPONSES)
        return app

    @app.post("/train", status_code=202, dependencies=[Depends(require_token)],
              response_model=TrainStarted, responses=ERROR_RESPONSES)
    def train(body: TrainBody) -> TrainStarted:
        try:
            return need_entry().start_training(body.rounds, body.algorithm)
        except Busy as exc:
            raise HTTPException(409, str(exc)) from None
        except AlgorithmRefused as exc:
            raise HTTPException(422, str(exc)) from None

    @app.post("/train-fl", status_code=202, dependencies=[Depends(require_token)],
              response_model=TrainStarted, responses=ERROR_RESPONSES)
    def train_fl(body: TrainFLBody) -> TrainStarted:
        try:
            return need_entry().start_training(body.rounds, "fedavg")
        except Busy as exc:
            raise HTTPException(409, str(exc)) from None

    @app.post("/pause", dependencies=[Depends(require_token)], response_model=PauseResult,
              responses=ERROR_RESPONSES)
    def pause() -> PauseResult:
        return need_entry().pause()

    @app.post("/save", dependencies=[Depends(require_token)], response_model=SaveResult,
              responses=ERROR_RESPONSES)
    def save(body: SaveRequest | None = None) -> SaveResult:
        try:
            return need_entry().save(body.name if body else None)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        except OSError as exc:
            raise HTTPException(400, f"cannot write the model file: {exc.strerror or exc}") from None

    @app.post("/eval", dependencies=[Depends(require_token)], response_model=EvalResult,
              responses=ERROR_RESPONSES)
    def evaluate() -> EvalResult:
        return eval_result(need_entry().evaluate_all())

    @app.get("/sn", response_model=list[SuperNodeInfo])
    def sns() -> list[SuperNodeInfo]:
        e = need_entry()
        return [
            SuperNodeInfo(
                node_id=m.node_id, address=m.address, http_address=m.http_address,
                ens=len(e.registry.edges_of(m.node_id)),
                status="alive" if e.registry.is_alive(m.node_id) else "dead", entry=m.entry,
            )
            for m in sorted(e.registry.members("SN"), key=lambda m: (not m.entry, m.node_id))
        ]

    @app.get("/model", response_class=Response, responses=MODEL_RESPONSES)
    def model(version: int | None = Query(None, ge=0, le=MAX_HEIGHT)) -> Response:
        e = need_entry()
        ref = e.model.ref
        v = ref.version if version is None else version
        d = e.chain.model_digest(v) if v != ref.version else ref.digest
        if d is None:
            raise HTTPException(404, f"unknown model version {v} (latest is {ref.version})")
        data = e.model_bytes(v, d)
        return Response(
            data, media_type="application/octet-stream",
            headers={"X-Model-Version": str(v), "X-Model-Digest": d,
                     "Content-Disposition": f'attachment; filename="model-v{v}.safetensors"'},
        )

    @app.get("/rounds", response_model=list[RoundSummary], responses=ERROR_RESPONSES)
    def rounds() -> list[RoundSummary]:
        return [round_summary(b) for b in need_entry().chain.blocks(kind="round")]

    @app.get("/blocks", response_model=list[BlockInfo], responses=ERROR_RESPONSES)
    def blocks(
        start: int | None = Query(None, alias="from", ge=0, le=MAX_HEIGHT), limit: int = Query(10, ge=1, le=1000)
    ) -> list[BlockInfo]:
        e = need_entry()
        top = e.chain.height()
        if top < 0:
            return []
        first = max(0, top - limit + 1) if start is None else start
        return [_block_info(b) for b in e.chain.ledger.range(first, limit)]

    @app.get("/verify", response_model=VerifyResult, responses=ERROR_RESPONSES)
    def verify() -> VerifyResult:
        report = need_entry().chain.ledger.verify()
        return VerifyResult(ok=report.ok, checked=report.checked, height=report.height, reason=report.reason)

    mount_dashboard(app, need_entry(), block_info=_block_info, round_summary=round_summary)
    return app


def eval_result(reply: pb.EvaluateReply) -> EvalResult:
    """The /eval answer: each EN's personal accuracy (by partition), pooled, and who failed."""
    clients = [
        ClientEval(
            node_id=c.node_id, sn=c.sn, accuracy=(c.correct / c.total) if c.total else 0.0,
            correct=c.correct, total=c.total, loss=c.loss,
        )
        for c in sorted(reply.clients, key=lambda c: c.partition_index)
    ]
    correct = sum(c.correct for c in clients)
    total = sum(c.total for c in clients)
    return EvalResult(
        clients=clients,
        pooled=PooledEval(accuracy=correct / total if total else 0.0, correct=correct, total=total),
        failed=[Rejection(node_id=f.node_id, reason=f.reason) for f in reply.failed],
    )


def round_summary(block: Any) -> RoundSummary:
    """One /rounds row from a round block."""
    p = block.payload
    m = dict(p.metrics)
    return RoundSummary(
        round=p.round, algorithm=p.algorithm, model_version=p.model_version, model_digest=p.model_digest,
        accuracy=m.get("accuracy"), loss=m.get("loss"), participants=p.participant_ids,
        rejected=[Rejection(node_id=n, reason=r) for n, r in p.rejected],
        height=block.height, seconds=m.get("seconds"),
    )


def _block_info(block: Any) -> BlockInfo:
    data = block.to_json()
    data.pop("signature", None)
    return BlockInfo.model_validate(data)


MODEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
          "description": "the model as safetensors bytes; headers X-Model-Version, X-Model-Digest"},
    404: {"model": ErrorDetail, "description": "unknown model version"},
    503: ERROR_RESPONSES[503],
}
"""``GET /model``: safetensors bytes, not JSON."""

POST_ROUTES: dict[str, Any] = {
    "/train": TrainStarted, "/pause": PauseResult, "/save": SaveResult, "/eval": EvalResult,
    "/train-fl": TrainStarted,
}
"""What a plain SN forwards to the entry by POST, with the answer's model."""
GET_ROUTES: dict[str, Any] = {
    "/sn": list[SuperNodeInfo], "/model": None, "/rounds": list[RoundSummary],
    "/blocks": list[BlockInfo], "/verify": VerifyResult,
}
"""What a plain SN forwards to the entry by GET (``/model``: safetensors bytes)."""
