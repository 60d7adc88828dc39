"""The nodes' API documentation: Swagger UI at ``/docs`` and ReDoc at ``/redoc`` served
from the package (``fastapi-offline`` ships their assets; no CDN, so they render with no
internet), a bearer security scheme (the Authorize button) and the declared media types
of the endpoints that do not answer JSON."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST

BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="apiToken",
    description="FEDCHAIN_API_TOKEN (fedchain init-env writes it to .env; fedchain up to STATE_DIR/tokens.env)",
)
"""The bearer scheme of the mutating endpoints (each route still checks the token itself)."""

PROMETHEUS_TEXT: str = CONTENT_TYPE_LATEST
"""The Prometheus text exposition media type /metrics answers with."""

METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format",
        "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}},
    }
}
"""``GET /metrics``: Prometheus text, not JSON."""


def documented_app(title: str, description: str) -> FastAPI:
    """A FastAPI app whose ``/docs`` and ``/redoc`` work offline."""
    return FastAPIOffline(
        title=title,
        version="1",
        description=description,
        static_url="/docs-static",
        swagger_ui_parameters={"persistAuthorization": False},
    )
