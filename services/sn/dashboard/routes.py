"""The dashboard's HTTP side on the entry: the page at ``/``, its static files, the node
tree and the event stream (``GET /events``, text/event-stream).

Like every read endpoint they need no token; the page asks for the API token only to send
``POST /train`` and ``/pause`` (and ``/eval``) with it as a bearer header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from fedchain.services.sn.dashboard.events import (
    EntrySource,
    EventHub,
    TooManySubscribers,
    sse,
)
from fedchain.services.sn.dashboard.models import DashboardEvent, NodeTree
from fedchain.services.sn.dashboard.tree import node_tree
from fedchain.services.sn.entry import EntryRole
from fedchain.shared.control_api import BlockInfo, ErrorDetail, RoundSummary

STATIC = Path(__file__).parent / "static"
"""index.html, dashboard.js and dashboard.css (shipped in the wheel as package data)."""

EVENTS_DOC = (
    "Server-sent events (text/event-stream): `status` (NodeStatus), `tree` (NodeTree), "
    "`block` (BlockInfo) and `round` (RoundSummary) as they change; each `data:` line is a "
    "DashboardEvent. The current status and tree come first."
)


def mount_dashboard(
    app: FastAPI,
    entry: EntryRole,
    *,
    block_info: Callable[[Any], BlockInfo],
    round_summary: Callable[[Any], RoundSummary],
) -> EventHub:
    """Add the dashboard to the entry's app; returns its hub (``notify`` it on a new block)."""
    hub = EventHub(
        EntrySource(
            status=entry.status,
            tree=lambda: node_tree(entry.node_id, entry.registry),
            blocks=lambda start, limit: list(entry.chain.ledger.range(start, limit)),
            block_info=block_info,
            round_summary=round_summary,
        )
    )
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/dashboard/tree", response_model=NodeTree, tags=["dashboard"])
    def tree() -> NodeTree:
        """The federation: the entry and every SN with its ENs, alive or dead."""
        return node_tree(entry.node_id, entry.registry)

    @app.get(
        "/events", tags=["dashboard"], response_class=StreamingResponse, description=EVENTS_DOC,
        responses={
            200: {"content": {"text/event-stream": {"schema": DashboardEvent.model_json_schema()}},
                  "description": "an endless event stream"},
            429: {"model": ErrorDetail, "description": "every event-stream slot is taken"},
        },
    )
    async def events() -> StreamingResponse:
        try:
            stream = await hub.subscribe()
        except TooManySubscribers as exc:
            raise HTTPException(429, str(exc)) from None
        return StreamingResponse(
            _wire(stream), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return hub


async def _wire(stream: AsyncIterator[DashboardEvent | None]) -> AsyncIterator[str]:
    """The events as text; a comment line where the hub had nothing for a while."""
    yield "retry: 2000\n\n"
    async for event in stream:
        yield ": keepalive\n\n" if event is None else sse(event)
