"""The HTTP API of an EN: /health, /status and /metrics only (control goes through an SN)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fedchain.services.en.edge import EdgeNode
from fedchain.shared.control_api import Health, NodeStatus
from fedchain.shared.net.http_docs import METRICS_RESPONSES, documented_app
from fedchain.shared.node.metrics import NodeMetrics

NOT_ON_EN = "this is an edge node (EN): point the console or API client at a super node (SN) instead"


def build_app(en: EdgeNode, metrics: NodeMetrics) -> FastAPI:
    """The FastAPI app of an EN."""
    app = documented_app("fedchain edge node", "An EN answers /health, /status and /metrics only.")

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(role="EN", node_id=en.node_id, entry=False)

    @app.get("/status", response_model=NodeStatus)
    def status() -> NodeStatus:
        return en.status()

    @app.get("/metrics", response_class=Response, responses=METRICS_RESPONSES)
    def prom() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.api_route("/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
    def other(rest: str) -> JSONResponse:
        return JSONResponse({"detail": NOT_ON_EN}, status_code=404)

    return app
