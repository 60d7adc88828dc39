"""Fixtures of the console tests: a fake node serving the control API over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_control_node import FakeNode, RunningNode, serve


@pytest.fixture
def fake_node() -> Iterator[RunningNode]:
    """A fresh fake super node on a free port for one test."""
    with serve(FakeNode()) as running:
        yield running
