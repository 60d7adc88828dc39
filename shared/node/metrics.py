"""Prometheus metrics of a node (one registry per process, served at /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge


class NodeMetrics:
    """Gauges read live from the node plus counters of updates accepted and refused."""

    def __init__(self, role: str) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "fedchain_updates_total", "Updates received by this SN", ["outcome"], registry=self.registry
        )
        self.decisions = Counter(
            "fedchain_aggregator_decisions_total",
            "Updates the aggregator rejected, clipped or down-weighted (entry), per edge node",
            ["node", "action"],
            registry=self.registry,
        )
        self.role = role

    def count_decisions(self, decisions: Iterable[tuple[str, str]]) -> None:
        """Count a round's aggregator decisions, given as (node id, action) pairs."""
        for node, action in decisions:
            self.decisions.labels(node=node, action=action).inc()

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read when /metrics is scraped."""
        g = Gauge(name, doc, registry=self.registry)
        g.set_function(lambda: float(read()))
