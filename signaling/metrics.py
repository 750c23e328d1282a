"""Prometheus metrics of one signaling server, in a registry of its own (one per app).

Features may add their own collectors to `services.metrics.registry`.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
)


class SignalingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Process CPU/memory and garbage-collector counts, as prometheus_client's default
        # registry would have them.
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.sockets = Gauge(
            "etapalvelu_sockets", "Authenticated socket.io connections", registry=self.registry
        )
        self.connects_refused = Counter(
            "etapalvelu_connects_refused_total",
            "socket.io connections refused at authentication",
            registry=self.registry,
        )
        self.events = Counter(
            "etapalvelu_events_total",
            "socket.io events by name and result (ok or error code)",
            ["event", "result"],
            registry=self.registry,
        )
        self.event_seconds = Histogram(
            "etapalvelu_event_seconds",
            "Time from receiving an event to its ack",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.logins = Counter(
            "etapalvelu_logins_total",
            "Password logins by result",
            ["result"],
            registry=self.registry,
        )
