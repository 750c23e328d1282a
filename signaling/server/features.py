"""Which modules plug into the signaling server.

`create_app` imports every module in `FEATURE_MODULES`: importing one makes its `@on_event`
declarations live socket.io events, and its optional `setup(app, services)` (sync or async)
adds HTTP routes and startup/cleanup hooks. A module that does not exist yet is skipped, so
features can land one by one. `etapalvelu admin` imports every module in
`ADMIN_COMMAND_MODULES` and calls its `register_admin(admin_subparsers)`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FEATURE_MODULES: list[str] = [
    "signaling.transport.session_events",
    "signaling.flow.presence",
    "signaling.flow.queues",
    "signaling.flow.appointments",
    "signaling.flow.calls",
    "signaling.flow.call_watch",
    "signaling.flow.relay_failover",
    "signaling.in_call.still_requests",
    "signaling.in_call.stitch_requests",
    "signaling.in_call.document_view",
    "signaling.in_call.document_camera_notices",
    "signaling.in_call.call_preview",
    "signaling.flow.interpreters",
    "signaling.flow.interpreter_reservations",
    "signaling.records.service_log",
    "signaling.records.statistics",
    "signaling.in_call.documents",
    "signaling.in_call.chat",
    "signaling.flow.kiosk_health",
    "signaling.flow.office_offer",
    "signaling.records.desk_services",
    "signaling.records.receipts",
    "signaling.records.feedback",
    "signaling.booking.booking_api",
    "signaling.flow.remote_customer",
]

ADMIN_COMMAND_MODULES: list[str] = [
    "signaling.cli.service_log_commands",
    "signaling.cli.office_offer_commands",
    "signaling.cli.receipt_commands",
    "signaling.cli.booking_commands",
]


def import_optional(name: str) -> ModuleType | None:
    """Import a module that may not exist yet; errors inside an existing module propagate."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
