"""Prometheus counters of the collector (served as text at GET /metrics)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Event names come from clients; past this many distinct names the rest share one label so a
# buggy or hostile sender cannot grow the metrics without bound.
MAX_EVENT_LABELS = 500
OTHER = "__other__"


class CollectorMetrics:
    """One registry per app, so several apps (tests) never share counters."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "trackplan_collector_"
        self.requests = Counter(p + "requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.request_bytes = Counter(p + "request_bytes", "Request body bytes received (as on the wire)", registry=r)
        self.events = Counter(p + "events", "Messages written to the landing zone", ["source"], registry=r)
        self.event_names = Counter(p + "event_names", "Well-formed messages by event name", ["event"], registry=r)
        self.invalid = Counter(p + "messages_invalid", "Messages landed for quarantine", ["reason"], registry=r)
        self.rejected_bodies = Counter(
            p + "rejected_bodies", "Bodies saved to _rejected/ (400)", ["reason"], registry=r
        )
        self.rejected_bytes = Counter(p + "rejected_bytes", "Bytes of bodies kept in _rejected/", registry=r)
        self.rejected_not_kept = Counter(
            p + "rejected_not_kept",
            "Bodies answered 400 but not kept: a cap of _rejected/ was reached",
            ["cause"],
            registry=r,
        )
        self.rejected_dir_bytes = Gauge(
            p + "rejected_dir_bytes", "Bytes in _rejected/ (by this run's count)", registry=r
        )
        self.unauthenticated = Counter(
            p + "unauthenticated", "Requests answered 401 before anything was stored", registry=r
        )
        self.validation_errors = Counter(
            p + "plan_validation_errors",
            "Edge validation calls that failed (their events are not counted)",
            ["error"],
            registry=r,
        )
        self.validation_skipped = Counter(
            p + "plan_unchecked_events", "Events not checked at the edge (validator backlog full or failed)", registry=r
        )
        self.backpressure = Counter(p + "backpressure_rejections", "503s from the in-flight byte budget", registry=r)
        self.violations = Counter(
            p + "plan_violations", "Tracking-plan violations seen at the edge", ["event", "rule"], registry=r
        )
        self.checked = Counter(p + "plan_checked_events", "Events checked against the plan", ["event"], registry=r)
        self.inflight = Gauge(p + "inflight_bytes", "Bytes of request bodies held in memory", registry=r)
        self.latency = Histogram(
            p + "request_seconds",
            "Request handling time",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self._names: set[str] = set()

    def name_label(self, name: str) -> str:
        """Bounded label for a client-supplied event name."""
        if name in self._names:
            return name
        if len(self._names) < MAX_EVENT_LABELS:
            self._names.add(name)
            return name
        return OTHER

    def render(self) -> bytes:
        return generate_latest(self.registry)
