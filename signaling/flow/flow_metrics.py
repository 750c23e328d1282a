"""Prometheus collectors of the service flow (waiting customers, calls, records), kept in the
server's own registry and served at /metrics.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from signaling.transport.services import Services


class FlowMetrics:
    """Service-flow collectors in the server's own registry (served at /metrics)."""

    def __init__(self, services: Services) -> None:
        registry = services.metrics.registry
        self.waiting = Gauge(
            "etapalvelu_waiting_customers",
            "Customers waiting in line, per authority",
            ["authority"],
            registry=registry,
        )
        self.active_calls = Gauge("etapalvelu_active_calls", "Calls in progress", registry=registry)
        self.calls = Counter(
            "etapalvelu_calls_total",
            "Calls started, by kind (walk_in, appointment)",
            ["kind"],
            registry=registry,
        )
        self.records = Counter(
            "etapalvelu_service_records_total", "Service records filed", registry=registry
        )

def flow_metrics(services: Services) -> FlowMetrics | None:
    found = services.extras.get("flow_metrics")
    return found if isinstance(found, FlowMetrics) else None
