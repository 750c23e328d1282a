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
    "signaling.session_events",
    "signaling.presence",
    "signaling.queues",
    "signaling.appointments",
    "signaling.calls",
    "signaling.call_watch",
    "signaling.relay_failover",
    "signaling.still_requests",
    "signaling.stitch_requests",
    "signaling.document_view",
    "signaling.document_camera_notices",
    "signaling.call_preview",
    "signaling.interpreters",
    "signaling.interpreter_reservations",
    "signaling.service_log",
    "signaling.statistics",
    "signaling.documents",
    "signaling.chat",
    "signaling.kiosk_health",
    "signaling.office_offer",
    "signaling.desk_services",
    "signaling.receipts",
    "signaling.feedback",
    "signaling.booking_api",
    "signaling.remote_customer",
]

ADMIN_COMMAND_MODULES: list[str] = [
    "signaling.service_log_commands",
    "signaling.office_offer_commands",
    "signaling.receipts",
    "signaling.booking_commands",
]


def import_optional(name: str) -> ModuleType | None:
    """Import a module that may not exist yet; errors inside an existing module propagate."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
