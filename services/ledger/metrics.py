"""Prometheus metrics of one ledger service (own registry, so several can live in a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class LedgerMetrics:
    """Counters and gauges the ledger exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.appends = Counter(
            "fedchain_ledger_appends_total",
            "Blocks appended (idempotent repeats excluded)",
            registry=self.registry,
        )
        self.rejections = Counter(
            "fedchain_ledger_rejections_total",
            "Refused requests by error class",
            ["error"],
            registry=self.registry,
        )
        self.height = Gauge(
            "fedchain_ledger_height", "Height of the tip (-1 when empty)", registry=self.registry
        )
        self.blob_bytes = Counter(
            "fedchain_ledger_blob_bytes_stored_total",
            "Bytes received in stored blobs",
            registry=self.registry,
        )
        self.verify_seconds = Histogram(
            "fedchain_ledger_verify_seconds",
            "Time to verify the whole chain",
            registry=self.registry,
        )
        self.verify_failures = Counter(
            "fedchain_ledger_verify_failures_total",
            "Verifications that found a bad height",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)
