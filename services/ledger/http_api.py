"""The ledger's HTTP API (FastAPI; OpenAPI at ``/docs``).

``GET /health``, ``/tip``, ``/blocks?from=&limit=``, ``/blocks/{height}``,
``/blobs/{digest}``, ``/verify``, ``/head`` (the entry's latest signed tree head),
``/consistency?from=&to=`` (RFC 6962 proof between two tree sizes), ``/metrics``.
Errors are ``{"detail": "<one line>"}``;
bad input is 4xx.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from fedchain.services.ledger.metrics import LedgerMetrics
from fedchain.services.ledger.store import Ledger
from fedchain.shared.ledger.contract import MAX_HEIGHT, MAX_RANGE
from fedchain.shared.ledger.errors import LedgerCorrupt, LedgerRejected, LedgerUnavailable, NotFound


def create_app(ledger: Ledger, metrics: LedgerMetrics) -> FastAPI:
    """A FastAPI app serving ``ledger`` read-only over HTTP."""
    app = FastAPI(
        title="fedchain ledger",
        description="Tamper-evident chain of federated-learning blocks and the model blob store.",
        version="1",
    )

    @app.exception_handler(LedgerRejected)
    async def _rejected(_: Request, exc: LedgerRejected) -> JSONResponse:
        metrics.rejections.labels(type(exc).__name__).inc()
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)

    @app.exception_handler(LedgerCorrupt)
    @app.exception_handler(LedgerUnavailable)
    async def _server_side(_: Request, exc: LedgerCorrupt | LedgerUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
        return JSONResponse(
            {"detail": f"invalid {where or 'request'}: {err.get('msg', 'bad value')}"},
            status_code=400,
        )

    @app.get("/health", summary="Liveness and the tip height")
    def health() -> dict[str, Any]:
        height = ledger.height()
        metrics.height.set(height)
        return {"status": "ok", "height": height}

    @app.get("/tip", summary="The last block")
    def tip() -> dict[str, Any]:
        block = ledger.tip()
        if block is None:
            raise NotFound("the chain is empty")
        return block.to_json()

    @app.get("/blocks", summary="Consecutive blocks (default: the last 10)")
    def blocks(
        start: int | None = Query(
            None, alias="from", ge=0, le=MAX_HEIGHT, description="first height (default: last `limit`)"
        ),
        limit: int = Query(10, ge=1, le=MAX_RANGE),
    ) -> list[dict[str, Any]]:
        if start is None:
            start = max(0, ledger.height() - limit + 1)
        return [b.to_json() for b in ledger.range(start, limit)]

    @app.get("/blocks/{height}", summary="One block by height")
    def block(height: int) -> dict[str, Any]:
        if height < 0 or height > MAX_HEIGHT:
            raise NotFound(f"no block at height {height}")
        found = ledger.get(height)
        if found is None:
            raise NotFound(f"no block at height {height}")
        return found.to_json()

    @app.get("/blobs/{digest}", summary="A blob (safetensors) by SHA-256, digest re-checked")
    def blob(digest: str) -> Response:
        data = ledger.get_blob(digest)
        return Response(data, media_type="application/octet-stream", headers={"X-Blob-Digest": digest})

    @app.get("/verify", summary="Verify the whole chain")
    def verify() -> dict[str, Any]:
        start = time.perf_counter()
        report = ledger.verify()
        metrics.verify_seconds.observe(time.perf_counter() - start)
        if not report.ok:
            metrics.verify_failures.inc()
        return report.to_json()

    @app.get("/head", summary="The entry's latest signed tree head over the block hashes")
    def head() -> dict[str, Any]:
        found = ledger.tree_head()
        if found is None:
            raise NotFound("no signed tree head yet")
        return found.to_json()

    @app.get("/consistency", summary="RFC 6962 consistency proof between two tree sizes")
    def consistency(
        start: int = Query(..., alias="from", ge=0, le=MAX_HEIGHT, description="older size"),
        to: int | None = Query(None, ge=0, le=MAX_HEIGHT, description="newer size (default: the latest head's)"),
    ) -> dict[str, Any]:
        if to is None:
            latest = ledger.tree_head()
            if latest is None:
                raise NotFound("no signed tree head yet: give `to`")
            to = latest.size
        proof = ledger.consistency(start, to)
        return {"from": start, "to": to, "proof": [p.hex() for p in proof]}

    @app.get("/metrics", summary="Prometheus metrics")
    def prometheus() -> Response:
        metrics.height.set(ledger.height())
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
