"""Server-sent events of the entry: status, node tree, new blocks and rounds, pushed.

``EventHub`` keeps a bounded set of subscribers, each an ``asyncio.Queue``. One watcher
task per hub (running while anyone listens) looks at the entry's in-memory state (status,
registry, cached chain height: no ledger call) once a ``WATCH_S`` and publishes what
changed; new blocks are read from the ledger once and pushed as ``block`` events (plus a ``round`` event for a round
block). A subscriber gets the current status and tree first. The browser never polls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fedchain.services.sn.dashboard.models import DashboardEvent, NodeTree
from fedchain.shared.control_api import BlockInfo, NodeStatus, RoundSummary
from fedchain.shared.ledger.errors import LedgerError

log = logging.getLogger("fedchain.dashboard")

MAX_SUBSCRIBERS = 16
"""Open event streams the entry serves at once; one more is answered 429."""
QUEUE_EVENTS = 256
"""Events kept for a slow subscriber; a subscriber that falls further behind is dropped."""
WATCH_S = 1.0
"""Seconds between looks at the entry's state when no block arrives."""
KEEPALIVE_S = 15.0
"""Seconds of silence after which a comment line keeps the stream open through proxies."""
BLOCKS_PER_LOOK = 50


class TooManySubscribers(Exception):
    """Every event-stream slot is taken."""


@dataclass(frozen=True)
class EntrySource:
    """What the hub reads: the entry's status and tree, and the blocks from a height."""

    status: Callable[[], NodeStatus]
    tree: Callable[[], NodeTree]
    blocks: Callable[[int, int], list[Any]]
    block_info: Callable[[Any], BlockInfo]
    round_summary: Callable[[Any], RoundSummary]


def sse(event: DashboardEvent) -> str:
    """One event in the text/event-stream wire form."""
    return f"event: {event.kind}\ndata: {event.model_dump_json(exclude_none=True)}\n\n"


class EventHub:
    """Fan-out of the entry's changes to at most ``max_subscribers`` event streams."""

    def __init__(self, source: EntrySource, *, max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self.source = source
        self.max_subscribers = max_subscribers
        self._queues: set[asyncio.Queue[DashboardEvent]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._status: NodeStatus | None = None
        self._tree: NodeTree | None = None
        self._height = -1

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    async def subscribe(self) -> AsyncIterator[DashboardEvent | None]:
        """The events for one stream, the current status and tree first; None after
        ``KEEPALIVE_S`` without one (the stream sends a comment line then).

        Raises TooManySubscribers before yielding anything when every slot is taken.
        """
        if len(self._queues) >= self.max_subscribers:
            raise TooManySubscribers(
                f"{self.max_subscribers} event streams are open already; close a dashboard tab"
            )
        queue: asyncio.Queue[DashboardEvent] = asyncio.Queue(QUEUE_EVENTS)
        self._queues.add(queue)
        self._ensure_watcher()
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[DashboardEvent]) -> AsyncIterator[DashboardEvent | None]:
        try:
            status, tree = await asyncio.to_thread(self._snapshot)
            yield DashboardEvent(kind="status", status=status)
            yield DashboardEvent(kind="tree", tree=tree)
            while queue in self._queues:
                try:
                    yield await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield None
        finally:
            self._queues.discard(queue)

    def _snapshot(self) -> tuple[NodeStatus, NodeTree]:
        return self.source.status(), self.source.tree()

    def _ensure_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._height = -1  # the page read the chain so far itself; push what comes next
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def publish(self, event: DashboardEvent) -> None:
        """Queue ``event`` for every subscriber; one that is full is dropped (it reconnects)."""
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._queues.discard(queue)
                log.info("dropped a dashboard event stream that fell %d events behind", QUEUE_EVENTS)

    async def _watch(self) -> None:
        while self._queues:
            await self.look()
            await asyncio.sleep(WATCH_S)

    async def look(self) -> None:
        """Publish what changed since the last look."""
        status, tree = await asyncio.to_thread(self._snapshot)
        if self._height < 0:
            self._height = status.height
        if status.height > self._height:
            try:
                blocks = await asyncio.to_thread(
                    self.source.blocks, self._height + 1, min(BLOCKS_PER_LOOK, status.height - self._height)
                )
            except LedgerError as exc:
                log.info("dashboard: new blocks not read yet: %s", exc)
                blocks = []
            for b in blocks:
                self.publish(DashboardEvent(kind="block", block=self.source.block_info(b)))
                if str(getattr(b.kind, "value", b.kind)) == "round":
                    self.publish(DashboardEvent(kind="round", round=self.source.round_summary(b)))
                self._height = max(self._height, b.height)
        if status != self._status:
            self._status = status
            self.publish(DashboardEvent(kind="status", status=status))
        if tree != self._tree:
            self._tree = tree
            self.publish(DashboardEvent(kind="tree", tree=tree))
