"""The kiosk's "call the service secretary" button and the clerk's acknowledgement.

Alerts are rows of `secretary_alerts` (signaling/store/flow_models.py `SecretaryAlert`), so every
signaling process sharing the database sees the same alerts and an open alert survives a
restart; the pushes go through socket.io rooms, which the Redis manager carries to the other
processes. One open alert per kiosk is the partial unique index of the table, not a check in
this process: two presses at once (on one process or two) insert one row, and the loser
returns the winner's alert. Acknowledging is a conditional UPDATE: one clerk wins, the others
get `conflict` reason `already_acknowledged`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.db import DbId, utcnow
from signaling.directory.principals import Principal, Role
from signaling.flow.flow_common import (
    clerks_room,
    conflict,
    endpoint_name,
    forbidden,
    iso,
    not_found,
)
from signaling.store.flow_models import SecretaryAlert
from signaling.transport import rooms
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.transport.services import Services

# Answered alerts are kept this long (so a second clerk hears "already answered"), then dropped.
KEEP_ANSWERED = timedelta(minutes=10)

# A press that lost the insert race looks the winner's alert up again; if that one was answered
# in between, it presses again (a new customer is standing there). Bounded so a database that
# keeps refusing the insert (e.g. the kiosk was just removed) ends in an error, not a loop.
RAISE_ATTEMPTS = 3


def alert_view(alert: SecretaryAlert) -> dict[str, Any]:
    """The `SecretaryAlert` shape of docs/signaling-events.md."""
    answered = alert.acknowledged_at is not None
    return {
        "id": alert.id,
        "office_id": alert.office_id,
        "endpoint_id": alert.endpoint_id,
        "endpoint_name": alert.endpoint_name,
        "raised_at": iso(alert.raised_at),
        "acknowledged_by": (
            {"id": alert.acknowledged_by, "name": alert.acknowledged_by_name or ""}
            if answered
            else None
        ),
        "acknowledged_at": iso(alert.acknowledged_at),
    }


async def _open_alert(session: AsyncSession, endpoint_id: int) -> SecretaryAlert | None:
    found = await session.execute(
        select(SecretaryAlert).where(
            SecretaryAlert.endpoint_id == endpoint_id, SecretaryAlert.acknowledged_at.is_(None)
        )
    )
    return found.scalars().first()


async def open_alert_of_endpoint(session: AsyncSession, endpoint_id: int) -> dict[str, Any] | None:
    alert = await _open_alert(session, endpoint_id)
    return alert_view(alert) if alert is not None else None


async def alerts_of_office(session: AsyncSession, office_id: int | None) -> list[dict[str, Any]]:
    """The office's open alerts, oldest first."""
    if office_id is None:
        return []
    found = await session.execute(
        select(SecretaryAlert)
        .where(SecretaryAlert.office_id == office_id, SecretaryAlert.acknowledged_at.is_(None))
        .order_by(SecretaryAlert.id)
    )
    return [alert_view(a) for a in found.scalars()]


async def prune_answered(session: AsyncSession, now: datetime) -> None:
    """Delete alerts answered more than KEEP_ANSWERED ago (the caller commits)."""
    await session.execute(
        delete(SecretaryAlert)
        .where(
            SecretaryAlert.acknowledged_at.is_not(None),
            SecretaryAlert.acknowledged_at < now - KEEP_ANSWERED,
        )
        .execution_options(synchronize_session=False)
    )


async def raise_alert(
    services: Services, endpoint_id: int, office_id: int
) -> tuple[dict[str, Any], bool]:
    """The kiosk's open alert, inserted if it has none; returns (alert, created)."""
    for _ in range(RAISE_ATTEMPTS):
        async with services.sessions() as session:
            existing = await _open_alert(session, endpoint_id)
            if existing is not None:
                return alert_view(existing), False
            name = await endpoint_name(session, endpoint_id)
            now = utcnow()
            await prune_answered(session, now)
            alert = SecretaryAlert(
                office_id=office_id, endpoint_id=endpoint_id, endpoint_name=name, raised_at=now
            )
            session.add(alert)
            try:
                await session.commit()
            except IntegrityError:
                # Another press (here or on another process) inserted the open alert first.
                await session.rollback()
                continue
            return alert_view(alert), True
    raise conflict("could not raise the alert; press again", "alert_not_raised")


class Empty(EventModel):
    pass


class AlertRef(EventModel):
    alert_id: DbId


@on_event("secretary:call", Empty, roles={Role.ENDPOINT})
async def call_secretary(ctx: EventContext, _data: Empty) -> dict[str, Any]:
    services, kiosk = ctx.services, ctx.principal
    if kiosk.office_id is None:
        raise forbidden("this endpoint belongs to no office")
    alert, created = await raise_alert(services, kiosk.id, kiosk.office_id)
    if not created:
        return {"alert": alert}
    await services.sio.enter_room(ctx.sid, rooms.endpoint(kiosk.id))
    await services.sio.emit("secretary:alert", {"alert": alert}, room=clerks_room(kiosk.office_id))
    return {"alert": alert}


@on_event("secretary:acknowledge", AlertRef, roles={Role.CLERK})
async def acknowledge(ctx: EventContext, data: AlertRef) -> dict[str, Any]:
    services, clerk = ctx.services, ctx.principal
    async with services.sessions() as session:
        alert = await session.get(SecretaryAlert, data.alert_id)
        if alert is None:
            raise not_found(f"no alert {data.alert_id}")
        if alert.office_id != clerk.office_id:
            raise forbidden("this alert is from another office")
        now = utcnow()
        # Conditional: of two clerks (on any processes) answering at once, one updates the row.
        result = await session.execute(
            update(SecretaryAlert)
            .where(SecretaryAlert.id == alert.id, SecretaryAlert.acknowledged_at.is_(None))
            .values(acknowledged_at=now, acknowledged_by=clerk.id, acknowledged_by_name=clerk.name)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            await session.rollback()
            raise conflict("another clerk already answered", "already_acknowledged")
        await session.commit()
        view = alert_view(alert)
    view["acknowledged_at"] = iso(now)
    view["acknowledged_by"] = {"id": clerk.id, "name": clerk.name}
    await services.sio.emit(
        "secretary:acknowledged",
        {"alert": view},
        room=[clerks_room(view["office_id"]), rooms.endpoint(view["endpoint_id"])],
    )
    return {"alert": view}


async def _enter_clerk_room(services: Services, sid: str, principal: Principal) -> None:
    if principal.role == Role.CLERK and principal.office_id is not None:
        await services.sio.enter_room(sid, clerks_room(principal.office_id))


def install(services: Services) -> None:
    services.connections.on_connect(_enter_clerk_room)
