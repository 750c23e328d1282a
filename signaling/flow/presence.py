"""Presence: experts and interpreters available / busy / away, kiosks online / offline.

Stored in the database, so a restart loses nothing: a person's chosen status stays as it was
and is shown again as soon as they reconnect. `online` says whether any socket of theirs is
connected. Staff sockets that call `presence:get` then receive `presence:changed` pushes
(clerks only about their own office's kiosks; see `signaling.transport.rooms`):

    {"kind": "user", "id", "role", "status", "online"}
    {"kind": "endpoint", "id", "office_id", "presence"}

Other features use `set_user_status` (e.g. busy during a call) and `presence_snapshot`.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from signaling.db import utcnow
from signaling.directory.principals import Principal, Role
from signaling.flow.leases import leases_of
from signaling.flow.queues import publish_expert_change
from signaling.store.models import Endpoint, EndpointPresence, User, UserPresence, UserRole
from signaling.transport import rooms
from signaling.transport.protocol import (
    ErrorCode,
    EventContext,
    EventModel,
    ProtocolError,
    on_event,
)
from signaling.transport.services import Services

STAFF = {Role.EXPERT, Role.INTERPRETER, Role.CLERK, Role.ADMIN}
PRESENCE_ROLES = (UserRole.EXPERT.value, UserRole.INTERPRETER.value)


class SetPresence(EventModel):
    status: Literal["available", "busy", "away"]


class GetPresence(EventModel):
    pass


def user_entry(user: User) -> dict[str, Any]:
    return {
        "kind": "user",
        "id": user.id,
        "role": user.role,
        "name": user.display_name,
        "status": user.presence,
        "online": user.online,
        "authority_ids": sorted(a.id for a in user.authorities),
        "languages": user.language_codes,
    }


def endpoint_entry(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "kind": "endpoint",
        "id": endpoint.id,
        "office_id": endpoint.office_id,
        "name": endpoint.name,
        "presence": endpoint.presence,
    }


async def presence_snapshot(services: Services, office_id: int | None = None) -> dict[str, Any]:
    """Experts' and interpreters' status, and kiosks (of one office, if given)."""
    async with services.sessions() as session:
        users = (
            await session.execute(
                select(User)
                .where(User.role.in_(PRESENCE_ROLES), User.enabled.is_(True))
                .order_by(User.id)
                .options(selectinload(User.authorities), selectinload(User.languages))
            )
        ).scalars()
        query = select(Endpoint).where(Endpoint.enabled.is_(True)).order_by(Endpoint.id)
        if office_id is not None:
            query = query.where(Endpoint.office_id == office_id)
        endpoints = (await session.execute(query)).scalars()
        return {
            "users": [user_entry(u) for u in users],
            "endpoints": [endpoint_entry(e) for e in endpoints],
        }


async def _push(services: Services, entry: dict[str, Any]) -> None:
    if entry["kind"] == "endpoint":
        audience = [rooms.PRESENCE, rooms.presence_office(entry["office_id"])]
    else:
        audience = [rooms.PRESENCE, rooms.PRESENCE_CLERKS]
    await services.sio.emit("presence:changed", entry, room=audience)


async def set_user_status(services: Services, user_id: int, status: UserPresence | str) -> None:
    """Record a person's status and tell the presence room."""
    status = UserPresence(status).value
    async with services.sessions() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no user {user_id}")
        user.presence = status
        user.presence_changed_at = utcnow()
        await session.commit()
        entry = {
            "kind": "user",
            "id": user.id,
            "role": user.role,
            "status": user.presence,
            "online": user.online,
        }
    await _push(services, entry)
    await _tell_waiting_customers(services, entry)


async def _tell_waiting_customers(services: Services, entry: dict[str, Any]) -> None:
    """An expert came, left or changed status: who can serve the waiting customers changed,
    and so did their estimates (signaling/flow/queues.py pushes them again)."""
    if entry["kind"] == "user" and entry["role"] == UserRole.EXPERT.value:
        await publish_expert_change(services, entry["id"])


async def _set_online(services: Services, principal: Principal, online: bool) -> None:
    if principal.kind not in ("user", "endpoint"):
        return  # the customer at home has no presence (signaling/flow/remote_customer.py)
    now = utcnow()
    async with services.sessions() as session:
        if principal.kind == "endpoint":
            presence = EndpointPresence.ONLINE if online else EndpointPresence.OFFLINE
            await session.execute(
                update(Endpoint)
                .where(Endpoint.id == principal.id)
                .values(presence=presence.value, presence_changed_at=now)
            )
            await session.commit()
            entry: dict[str, Any] = {
                "kind": "endpoint",
                "id": principal.id,
                "office_id": principal.office_id,
                "presence": presence.value,
            }
        else:
            user = await session.get(User, principal.id)
            if user is None:
                return
            user.online = online
            if online and user.presence == UserPresence.OFFLINE.value:
                # Coming online means ready to serve, unless the person said otherwise
                # before (busy/away survive reconnects and restarts).
                user.presence = UserPresence.AVAILABLE.value
                user.presence_changed_at = now
            await session.commit()
            if user.role not in PRESENCE_ROLES:
                return
            entry = {
                "kind": "user",
                "id": user.id,
                "role": user.role,
                "status": user.presence,
                "online": online,
            }
    await _push(services, entry)
    await _tell_waiting_customers(services, entry)


async def _on_connect(services: Services, sid: str, principal: Principal) -> None:
    # Only the first socket of a person or kiosk changes anything.
    if len(services.connections.sids_of(principal.kind, principal.id)) == 1:
        await _set_online(services, principal, True)


async def _on_disconnect(services: Services, sid: str, principal: Principal) -> None:
    if services.connections.is_online(principal):
        return
    leases = leases_of(services)
    if leases is None:
        await _set_online(services, principal, False)
        return
    # Several processes: online while a socket of his is open on any of them.
    if await leases.held_anywhere(principal):
        return
    await _set_online(services, principal, False)
    if await leases.held_anywhere(principal):
        # He connected to another process meanwhile; our "offline" may have landed last.
        await _set_online(services, principal, True)


async def set_online(services: Services, principal: Principal, online: bool) -> None:
    """Record and push that a person or kiosk is (not) connected; signaling/flow/leases.py uses it
    for the people of a dead process."""
    await _set_online(services, principal, online)


@on_event("presence:set", SetPresence, roles={Role.EXPERT, Role.INTERPRETER})
async def presence_set(ctx: EventContext, payload: SetPresence) -> dict[str, Any]:
    await set_user_status(ctx.services, ctx.principal.id, payload.status)
    return {"status": payload.status}


@on_event("presence:get", GetPresence, roles=STAFF)
async def presence_get(ctx: EventContext, _payload: GetPresence) -> dict[str, Any]:
    """The current presence; the socket then receives `presence:changed` pushes."""
    office_id = ctx.principal.office_id if ctx.principal.role == Role.CLERK else None
    snapshot = await presence_snapshot(ctx.services, office_id)
    if ctx.principal.role == Role.CLERK and office_id is not None:
        await ctx.services.sio.enter_room(ctx.sid, rooms.PRESENCE_CLERKS)
        await ctx.services.sio.enter_room(ctx.sid, rooms.presence_office(office_id))
    else:
        await ctx.services.sio.enter_room(ctx.sid, rooms.PRESENCE)
    return snapshot


def setup(app: web.Application, services: Services) -> None:
    services.connections.on_connect(_on_connect)
    services.connections.on_disconnect(_on_disconnect)
