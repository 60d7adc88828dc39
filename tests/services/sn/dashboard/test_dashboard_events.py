"""The entry's event hub: what a dashboard is pushed, and the bound on open streams."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from fedchain.services.sn.dashboard.events import EntrySource, EventHub, TooManySubscribers, sse
from fedchain.services.sn.dashboard.models import DashboardEvent, NodeTree
from fedchain.shared.control_api import BlockInfo, RoundSummary, node_status


class Entry:
    """What the hub reads of an entry, changed by the test."""

    def __init__(self) -> None:
        self.height = 0
        self.state = "idle"
        self.chain: list[Any] = [self._block(0, "genesis")]

    @staticmethod
    def _block(height: int, kind: str) -> Any:
        return SimpleNamespace(height=height, kind=kind)

    def append_round(self) -> None:
        self.height += 1
        self.chain.append(self._block(self.height, "round"))

    def source(self) -> EntrySource:
        return EntrySource(
            status=lambda: node_status(
                node_id="e", role="SN", entry=True, state=self.state, algorithm="fedper",
                round=self.height, model_version=self.height, height=self.height,
            ),
            tree=lambda: NodeTree(entry="e", sns=[]),
            blocks=lambda start, limit: self.chain[start : start + limit],
            block_info=lambda b: BlockInfo(
                height=b.height, kind=b.kind, hash="h", prev_hash="p", producer="e", timestamp_ms=0, payload={}
            ),
            round_summary=lambda b: RoundSummary(
                round=b.height, algorithm="fedper", model_version=b.height, participants=["en1"], height=b.height
            ),
        )


async def _next(stream: Any, kinds: set[str]) -> DashboardEvent:
    while True:
        event = await asyncio.wait_for(stream.__anext__(), 10)
        if event is not None and event.kind in kinds:
            return event


def test_a_subscriber_gets_the_state_then_each_new_block_and_round() -> None:
    async def run() -> None:
        entry = Entry()
        hub = EventHub(entry.source())
        stream = await hub.subscribe()
        first = await _next(stream, {"status", "tree"})
        assert first.kind == "status" and first.status is not None and first.status.height == 0
        assert (await _next(stream, {"tree"})).tree == NodeTree(entry="e", sns=[])
        await asyncio.sleep(1.2)  # the watcher has seen height 0
        entry.append_round()
        block = await _next(stream, {"block"})
        assert block.block is not None and block.block.height == 1
        rnd = await _next(stream, {"round"})
        assert rnd.round is not None and rnd.round.round == 1 and rnd.round.participants == ["en1"]
        status = await _next(stream, {"status"})
        assert status.status is not None and status.status.round == 1
        text = sse(rnd)
        assert text.startswith("event: round\ndata: {") and text.endswith("\n\n")
        await stream.aclose()
        assert hub.subscribers == 0

    asyncio.run(run())


def test_event_streams_are_bounded() -> None:
    async def run() -> None:
        hub = EventHub(Entry().source(), max_subscribers=2)
        streams = [await hub.subscribe(), await hub.subscribe()]
        for s in streams:
            await _next(s, {"status"})
        with pytest.raises(TooManySubscribers, match="2 event streams are open"):
            await hub.subscribe()
        await streams[0].aclose()  # a closed tab frees its slot
        again = await hub.subscribe()
        await _next(again, {"status"})
        for s in (streams[1], again):
            await s.aclose()
        assert hub.subscribers == 0

    asyncio.run(run())
