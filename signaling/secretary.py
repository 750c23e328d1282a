"""The kiosk's "call the service secretary" button and the clerk's acknowledgement.

Alerts are short-lived (a person standing at the kiosk now), so they live in this process's
memory, not in the database; a restart drops open alerts and the customer presses again.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from signaling import rooms
from signaling.db import utcnow
from signaling.flow_common import clerks_room, conflict, endpoint_name, forbidden, iso, not_found
from signaling.protocol import EventContext, EventModel, Principal, Role, on_event
from signaling.services import Services

# Answered alerts are kept this long (so a second clerk hears "already answered"), then dropped.
KEEP_ANSWERED = timedelta(minutes=10)


@dataclass
class SecretaryAlerts:
    alerts: dict[int, dict[str, Any]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def prune(self, now: datetime) -> None:
        cutoff = iso(now - KEEP_ANSWERED) or ""
        for alert_id, alert in list(self.alerts.items()):
            answered = alert["acknowledged_at"]
            if answered is not None and answered < cutoff:
                del self.alerts[alert_id]


def alerts_store(services: Services) -> SecretaryAlerts:
    store = services.extras.get("secretary_alerts")
    if not isinstance(store, SecretaryAlerts):
        store = SecretaryAlerts()
        services.extras["secretary_alerts"] = store
    return store


def open_alert_of_endpoint(services: Services, endpoint_id: int) -> dict[str, Any] | None:
    for alert in alerts_store(services).alerts.values():
        if alert["endpoint_id"] == endpoint_id and alert["acknowledged_by"] is None:
            return alert
    return None


def alerts_of_office(services: Services, office_id: int | None) -> list[dict[str, Any]]:
    return [
        a
        for a in alerts_store(services).alerts.values()
        if a["office_id"] == office_id and a["acknowledged_by"] is None
    ]


class Empty(EventModel):
    pass


class AlertRef(EventModel):
    alert_id: int = Field(gt=0)


@on_event("secretary:call", Empty, roles={Role.ENDPOINT})
async def call_secretary(ctx: EventContext, _data: Empty) -> dict[str, Any]:
    services, kiosk = ctx.services, ctx.principal
    if kiosk.office_id is None:
        raise forbidden("this endpoint belongs to no office")
    existing = open_alert_of_endpoint(services, kiosk.id)
    if existing is not None:
        return {"alert": existing}
    async with services.sessions() as session:
        name = await endpoint_name(session, kiosk.id)
    store = alerts_store(services)
    store.prune(utcnow())
    alert_id = next(store.ids)
    alert: dict[str, Any] = {
        "id": alert_id,
        "office_id": kiosk.office_id,
        "endpoint_id": kiosk.id,
        "endpoint_name": name,
        "raised_at": iso(utcnow()),
        "acknowledged_by": None,
        "acknowledged_at": None,
    }
    store.alerts[alert_id] = alert
    await services.sio.enter_room(ctx.sid, rooms.endpoint(kiosk.id))
    await services.sio.emit("secretary:alert", {"alert": alert}, room=clerks_room(kiosk.office_id))
    return {"alert": alert}


@on_event("secretary:acknowledge", AlertRef, roles={Role.CLERK})
async def acknowledge(ctx: EventContext, data: AlertRef) -> dict[str, Any]:
    services, clerk = ctx.services, ctx.principal
    alert = alerts_store(services).alerts.get(data.alert_id)
    if alert is None:
        raise not_found(f"no alert {data.alert_id}")
    if alert["office_id"] != clerk.office_id:
        raise forbidden("this alert is from another office")
    if alert["acknowledged_by"] is not None:
        raise conflict("another clerk already answered", "already_acknowledged")
    alert["acknowledged_by"] = {"id": clerk.id, "name": clerk.name}
    alert["acknowledged_at"] = iso(utcnow())
    await services.sio.emit(
        "secretary:acknowledged",
        {"alert": alert},
        room=[clerks_room(alert["office_id"]), rooms.endpoint(alert["endpoint_id"])],
    )
    return {"alert": alert}


async def _enter_clerk_room(services: Services, sid: str, principal: Principal) -> None:
    if principal.role == Role.CLERK and principal.office_id is not None:
        await services.sio.enter_room(sid, clerks_room(principal.office_id))


def install(services: Services) -> None:
    services.connections.on_connect(_enter_clerk_room)
