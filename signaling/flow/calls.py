"""Calls: a kiosk, an expert and maybe interpreters in one relay room.

A call is created when an expert takes a ticket (`signaling.flow.queues`). Its participants are
rows of `call_participants`: who may join is decided there, never by the client. Joining asks
the relay (`services.relay`, the LocalRelay control API) for an offer; the relay's later offers
come back through `CallRelayListener.on_offer` and go to the one socket that holds that
participant's relay session (`CallSessions`). A participant joining again — reload, reconnect,
second tab — replaces his previous relay session and socket.

When a participant goes away — the relay reports his connection gone, he leaves, or the socket
that held his relay session disconnects (`socket_lost`; not a socket replaced by a newer
one) — his row gets `connected = False`, `disconnected_at` and `gone_reason`, and the call's
room is told (`call:participants`). Joining again clears them. Calls whose expert does not
come back, or that nobody is connected to, are ended by the watchdog in
`signaling.flow.call_watch`. Every way of ending a call goes through `end_call` (a conditional
UPDATE on `status = 'active'`, so two enders never both win) and then `finish_call`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import Field
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from signaling.db import DbId, utcnow
from signaling.directory.principals import Principal, Role
from signaling.flow import secretary
from signaling.flow.flow_common import (
    FlowError,
    authority_code,
    call_id_of_room,
    call_room,
    call_view,
    conflict,
    forbidden,
    invalid,
    iso,
    not_found,
    participant_id_for,
    participants_of,
    relay_room_id,
)
from signaling.store.flow_models import (
    Appointment,
    AppointmentStatus,
    Call,
    CallParticipant,
    CallStatus,
    EndReason,
    GoneReason,
    InterpreterRequest,
    ParticipantRole,
    RequestStatus,
    Ticket,
    TicketKind,
    TicketStatus,
)
from signaling.store.models import Endpoint, User
from signaling.transport import rooms
from signaling.transport.protocol import ErrorCode, EventContext, EventModel, on_event
from signaling.transport.relay_placement import RelayRouter, RelayUnavailable, router_of
from signaling.transport.services import Services

log = logging.getLogger(__name__)

# The relay's reasons for a departure (media_relay/room.py); anything else is reported as a
# closed connection, so that clients only ever see the documented values.
RELAY_GONE_REASONS = frozenset(
    {GoneReason.TIMEOUT, GoneReason.ICE_FAILED, GoneReason.CONNECTION_CLOSED}
)

# What each kind of participant sends when it joins; more sources come with `call:publish`.
PUBLISH_ON_JOIN: dict[str, list[str]] = {
    ParticipantRole.CUSTOMER: ["audio", "camera"],
    ParticipantRole.EXPERT: ["audio", "camera"],
    ParticipantRole.INTERPRETER: ["audio", "camera"],
    ParticipantRole.DOCUMENT_CAMERA: ["document"],
}
# Who is sent the others' media: a document camera publishes only (relay.join subscribe=False).
SUBSCRIBES: dict[str, bool] = {
    ParticipantRole.CUSTOMER: True,
    ParticipantRole.EXPERT: True,
    ParticipantRole.INTERPRETER: True,
    ParticipantRole.DOCUMENT_CAMERA: False,
}
PUBLISHABLE: dict[str, frozenset[str]] = {
    ParticipantRole.CUSTOMER: frozenset({"document", "screen"}),
    ParticipantRole.EXPERT: frozenset({"document", "screen"}),
    ParticipantRole.INTERPRETER: frozenset(),
    ParticipantRole.DOCUMENT_CAMERA: frozenset({"document"}),
}


# --- domain -----------------------------------------------------------------------------------


async def active_call_of_user(session: AsyncSession, user_id: int) -> Call | None:
    """The active call the person is in as expert, or as an interpreter who has not left."""
    row = await session.execute(
        select(Call)
        .join(CallParticipant, CallParticipant.call_id == Call.id)
        .where(
            Call.status == CallStatus.ACTIVE,
            CallParticipant.kind == "user",
            CallParticipant.principal_id == user_id,
            CallParticipant.left_at.is_(None),
        )
        .order_by(Call.id.desc())
        .limit(1)
    )
    return row.scalars().first()


async def active_call_of_endpoint(session: AsyncSession, endpoint_id: int) -> Call | None:
    row = await session.execute(
        select(Call)
        .where(Call.status == CallStatus.ACTIVE, Call.endpoint_id == endpoint_id)
        .order_by(Call.id.desc())
        .limit(1)
    )
    return row.scalars().first()


@dataclass(frozen=True)
class HomeCustomer:
    """The customer at home an expert admits to a call of his remote appointment
    (signaling/flow/remote_customer.py): his guest id, the name his participant row shows, and
    since when he waited."""

    guest_id: int
    name: str
    waiting_since: datetime


async def create_call(
    session: AsyncSession,
    source: Ticket | Appointment,
    expert: User,
    now: datetime,
    relay_node: str = "local",
    *,
    home: HomeCustomer | None = None,
) -> Call:
    """The call for a ticket the expert has just claimed, or for the remote appointment whose
    customer at home (`home`) he admits; the caller commits. Placed on `relay_node`
    (signaling/transport/relay_placement.py). Its participants are the expert and the customer (the
    ticket's kiosk, or the customer at home); the appointment, if any, is served."""
    # (kind, principal id, role, name) of each participant row
    people: list[tuple[str, int, ParticipantRole, str]] = []
    if isinstance(source, Ticket):
        ticket: Ticket | None = source
        appointment_id, kind, queued_at = source.appointment_id, source.kind, source.queued_at
        if source.endpoint_id is not None:
            endpoint = await session.get(Endpoint, source.endpoint_id)
            name = endpoint.name if endpoint else ""
            people.append(("endpoint", source.endpoint_id, ParticipantRole.CUSTOMER, name))
    else:
        if home is None:
            raise ValueError(f"appointment {source.id}: a call needs its customer at home")
        ticket = None
        appointment_id, kind = source.id, TicketKind.APPOINTMENT.value
        queued_at = home.waiting_since
        people.append(("guest", home.guest_id, ParticipantRole.CUSTOMER, home.name))
    people.append(("user", expert.id, ParticipantRole.EXPERT, expert.display_name))
    call = Call(
        room_id="",
        relay_node=relay_node,
        relay_epoch=0,
        status=CallStatus.ACTIVE.value,
        authority_id=source.authority_id,
        office_id=source.office_id,
        endpoint_id=ticket.endpoint_id if ticket is not None else None,
        expert_id=expert.id,
        ticket_id=ticket.id if ticket is not None else None,
        appointment_id=appointment_id,
        kind=kind,
        language=source.language,
        queued_at=queued_at,
        started_at=now,
    )
    session.add(call)
    await session.flush()
    call.room_id = relay_room_id(call.id)
    if ticket is not None:
        ticket.call_id = call.id
    for who, ident, role, name in people:
        session.add(
            CallParticipant(
                call_id=call.id,
                participant_id=participant_id_for(who, ident, role),
                kind=who,
                principal_id=ident,
                role=role.value,
                name=name,
                added_at=now,
            )
        )
    if appointment_id is not None:
        appointment = await session.get(Appointment, appointment_id)
        if appointment is not None:
            appointment.status = AppointmentStatus.SERVED.value
    await session.flush()
    return call


async def end_call(
    session: AsyncSession, call: Call, now: datetime, reason: str = EndReason.ENDED.value
) -> list[InterpreterRequest]:
    """Mark the call ended; returns the ringing interpreter requests it withdrew.

    The caller has checked that the call is active and commits. The end itself is a
    conditional UPDATE (`... WHERE status = 'active'`): when someone else (another process,
    the watchdog, the expert at the same moment) ended it first, this raises `conflict`
    reason `call_ended` and the caller's transaction must be rolled back.
    """
    result = await session.execute(
        update(Call)
        .where(Call.id == call.id, Call.status == CallStatus.ACTIVE)
        .values(status=CallStatus.ENDED.value, ended_at=now, end_reason=str(reason))
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        raise conflict(f"call {call.id} has already ended", "call_ended")
    set_committed_value(call, "status", CallStatus.ENDED.value)
    set_committed_value(call, "ended_at", now)
    set_committed_value(call, "end_reason", str(reason))
    if call.ticket_id is not None:
        ticket = await session.get(Ticket, call.ticket_id)
        if ticket is not None and ticket.status == TicketStatus.SERVING:
            ticket.status = TicketStatus.DONE.value
            ticket.finished_at = now
    for participant in await participants_of(session, call.id):
        if participant.connected:
            participant.connected = False
            participant.disconnected_at = now
    ringing = list(
        (
            await session.execute(
                select(InterpreterRequest).where(
                    InterpreterRequest.call_id == call.id,
                    InterpreterRequest.status == RequestStatus.RINGING,
                )
            )
        ).scalars()
    )
    for request in ringing:
        request.status = RequestStatus.CANCELLED.value
        request.closed_at = now
    await session.flush()
    return ringing


async def load_call(session: AsyncSession, call_id: int) -> Call:
    call = await session.get(Call, call_id, populate_existing=True)
    if call is None:
        raise not_found(f"no call {call_id}")
    return call


async def participant_for(
    session: AsyncSession,
    call: Call,
    principal: Principal,
    device: str = "kiosk",
    *,
    create: bool = False,
) -> CallParticipant:
    """The participant row this principal may use in the call; refuses everyone else.

    A document camera is a device of the call's kiosk: only the endpoint that IS the call's
    customer (the agent logs in with the kiosk's own credential) may use device
    "document_camera", never another kiosk of the office. Its row is made on its first
    `call:join` (`create=True`); documents and leave only find an existing one.
    """
    if principal.kind == "endpoint" and device == "document_camera":
        if not await _is_the_calls_kiosk(session, call, principal.id):
            raise forbidden(
                "only the call's own kiosk has a document camera in it", "not_participant"
            )
        pid = participant_id_for("endpoint", principal.id, ParticipantRole.DOCUMENT_CAMERA)
        row = await participant_row(session, call.id, pid)
        if row is None:
            if not create:
                raise forbidden("the document camera has not joined the call", "not_joined")
            row = CallParticipant(
                call_id=call.id,
                participant_id=pid,
                kind="endpoint",
                principal_id=principal.id,
                role=ParticipantRole.DOCUMENT_CAMERA.value,
                name=f"{principal.name} (document camera)",
                added_at=utcnow(),
            )
            session.add(row)
            await session.flush()
        return row
    pid = participant_id_for(principal.kind, principal.id, "")
    row = await participant_row(session, call.id, pid)
    if row is None:
        raise forbidden(f"you are not a participant of call {call.id}", "not_participant")
    if row.left_at is not None:
        # An interpreter back needs a new request; a customer at home back in the waiting
        # room, the expert's admission (signaling/flow/remote_customer.py).
        if row.kind == "guest":
            raise conflict("you are in the waiting room; the expert lets you in again", "left")
        raise conflict("you left this call; a new interpreter request is needed", "left")
    return row


async def _is_the_calls_kiosk(session: AsyncSession, call: Call, endpoint_id: int) -> bool:
    """Whether this endpoint is the call's kiosk: the call's endpoint and its customer row."""
    if call.endpoint_id is None or call.endpoint_id != endpoint_id:
        return False
    pid = participant_id_for("endpoint", endpoint_id, "")
    customer = await participant_row(session, call.id, pid)
    return customer is not None and customer.role == ParticipantRole.CUSTOMER


async def participant_row(session: AsyncSession, call_id: int, pid: str) -> CallParticipant | None:
    """The participant row `pid` of the call, fresh from the database, or None."""
    row = await session.execute(
        select(CallParticipant)
        .where(CallParticipant.call_id == call_id, CallParticipant.participant_id == pid)
        .execution_options(populate_existing=True)
    )
    return row.scalars().first()


async def mark_gone(
    session: AsyncSession, call_id: int, pid: str, reason: str, now: datetime
) -> bool:
    """The participant is not connected any more (the caller commits); False when he was not
    connected anyway (then the first reason and time stand)."""
    result = await session.execute(
        update(CallParticipant)
        .where(
            CallParticipant.call_id == call_id,
            CallParticipant.participant_id == pid,
            CallParticipant.connected.is_(True),
        )
        .values(connected=False, disconnected_at=now, gone_reason=str(reason))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def requeue_expiry(call: Call, window_seconds: float) -> datetime | None:
    """Until when the kiosk of a call that ended with `expert_lost` may take a new ticket at
    the head of the line (None for other calls)."""
    if call.end_reason != EndReason.EXPERT_LOST or call.ended_at is None:
        return None
    return call.ended_at + timedelta(seconds=window_seconds)


async def requeue_offer(
    session: AsyncSession, call: Call, window_seconds: float
) -> dict[str, Any] | None:
    """`{authority_code, language, expires_at}` of an `expert_lost` call, else None."""
    expires = requeue_expiry(call, window_seconds)
    if expires is None:
        return None
    return {
        "authority_code": await authority_code(session, call.authority_id),
        "language": call.language,
        "expires_at": iso(expires),
    }


# --- relay sessions of this process -----------------------------------------------------------


@dataclass
class CallSessions:
    """Which socket holds the relay session of each (call, participant) in this process, and
    the joins in progress here."""

    by_participant: dict[tuple[int, str], str] = field(default_factory=dict)
    # (call, participant) -> joins in flight on this process
    joining: dict[tuple[int, str], int] = field(default_factory=dict)

    def begin_join(self, call_id: int, pid: str) -> None:
        key = (call_id, pid)
        self.joining[key] = self.joining.get(key, 0) + 1

    def end_join(self, call_id: int, pid: str) -> None:
        key = (call_id, pid)
        left = self.joining.get(key, 0) - 1
        if left > 0:
            self.joining[key] = left
        else:
            self.joining.pop(key, None)

    def replacing(self, call_id: int, pid: str) -> bool:
        """Whether a relay "gone" for this participant is about the session that a join in
        flight on this process is replacing, not the new one.

        A rejoin (after a socket reconnect; the pages close their old connection first) races
        the relay noticing the old connection's end: the relay sends "gone" while the old
        session is still the current one, before it handles the join (when the process that
        owned the session is dead, to every process), so it reaches this process while the
        join waits for its offer, after the join's bind. Taken as the new session's end, it
        would unbind the new socket (its `call:answer` then refused with `not_joined`, the
        media never set up until the page's own retry ~30 s later) and mark a participant
        gone who is joining. A "gone" about the new session can only be sent after the relay
        answered the join."""
        return bool(self.joining.get((call_id, pid)))

    def sid_of(self, call_id: int, pid: str) -> str | None:
        return self.by_participant.get((call_id, pid))

    def bind(self, call_id: int, pid: str, sid: str) -> str | None:
        old = self.by_participant.get((call_id, pid))
        self.by_participant[(call_id, pid)] = sid
        return old if old != sid else None

    def unbind(self, call_id: int, pid: str, sid: str | None = None) -> None:
        if sid is None or self.by_participant.get((call_id, pid)) == sid:
            self.by_participant.pop((call_id, pid), None)

    def drop_call(self, call_id: int) -> list[str]:
        keys = [k for k in self.by_participant if k[0] == call_id]
        return [self.by_participant.pop(k) for k in keys]

    def of_sid(self, sid: str) -> list[tuple[int, str]]:
        return [k for k, v in self.by_participant.items() if v == sid]


def call_sessions(services: Services) -> CallSessions:
    found = services.extras.get("call_sessions")
    if not isinstance(found, CallSessions):
        found = CallSessions()
        services.extras["call_sessions"] = found
    return found


class CallRelayListener:
    """Hears the relay: offers go to the participant's socket; departures update the call."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def _stale_node(self, call_id: int, node_id: str | None) -> bool:
        """Whether an event comes from a node the call has moved off (drain, failover)."""
        if node_id is None:
            return False
        async with self.services.sessions() as session:
            current = await session.scalar(select(Call.relay_node).where(Call.id == call_id))
        return current is not None and current != node_id

    async def on_offer(
        self, room_id: str, participant_id: str, offer: dict[str, Any],
        node_id: str | None = None,
    ) -> None:
        call_id = call_id_of_room(room_id)
        if call_id is None:
            return
        if await self._stale_node(call_id, node_id):
            log.info("offer for %s/%s from node %s dropped: the call has moved",
                     room_id, participant_id, node_id)
            return
        sid = call_sessions(self.services).sid_of(call_id, participant_id)
        if sid is None:
            log.info("offer for %s/%s dropped: no socket", room_id, participant_id)
            return
        await self.services.sio.emit("call:offer", {"call_id": call_id, "offer": offer}, to=sid)

    async def on_participant_gone(
        self, room_id: str, participant_id: str, reason: str, node_id: str | None = None
    ) -> None:
        call_id = call_id_of_room(room_id)
        if call_id is None:
            return
        if await self._stale_node(call_id, node_id):
            log.info("participant %s of %s: gone (%s) on node %s ignored: the call has moved",
                     participant_id, room_id, reason, node_id)
            return
        sessions = call_sessions(self.services)
        if sessions.replacing(call_id, participant_id):
            log.info(
                "participant %s of %s: relay gone (%s) ignored: a join here replaced that session",
                participant_id,
                room_id,
                reason,
            )
            return
        if sessions.sid_of(call_id, participant_id) is None:
            # No socket of this process holds his session. With several processes the relay
            # tells every process when the one that owned the session died; the process he
            # has since rejoined through decides (a late "gone" committed here would undo that
            # rejoin), and the lease sweeper marks him gone if he never comes back.
            log.info("participant %s of %s: relay gone (%s) ignored: no session of his here",
                     participant_id, room_id, reason)
            return
        sessions.unbind(call_id, participant_id)
        gone = reason if reason in RELAY_GONE_REASONS else GoneReason.CONNECTION_CLOSED.value
        async with self.services.sessions() as session:
            changed = await mark_gone(session, call_id, participant_id, gone, utcnow())
            await session.commit()
        if not changed:
            return
        log.info("participant %s of %s gone: %s", participant_id, room_id, reason)
        await push_participants(self.services, call_id)

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        call_id = call_id_of_room(room_id)
        if call_id is None:
            return
        await self.services.sio.emit(
            "call:active_speaker",
            {"call_id": call_id, "participant_id": participant_id},
            room=call_room(call_id),
        )


def _router(services: Services) -> RelayRouter:
    """The relay router with our listener attached, or `unavailable`."""
    router = router_of(services)
    if router is None:
        raise relay_unavailable()
    listener = services.extras.get("call_relay_listener")
    if not isinstance(listener, CallRelayListener):
        listener = CallRelayListener(services)
        services.extras["call_relay_listener"] = listener
    if router.listener is not listener:
        router.set_listener(listener)
    return router


async def relay_for(services: Services, call: Call) -> Any:
    """The control client of the relay node the call is placed on, or `unavailable`."""
    try:
        return await _router(services).client(call.relay_node)
    except RelayUnavailable as exc:
        raise relay_unavailable(str(exc)) from exc


def place_relay(services: Services) -> Callable[[str | None], str]:
    """The placement function `queues.take_*` use inside their transaction."""

    def choose(site: str | None) -> str:
        try:
            return _router(services).choose(site)
        except RelayUnavailable as exc:
            raise relay_unavailable(str(exc)) from exc

    return choose


def relay_unavailable(message: str = "the media relay is not running") -> FlowError:
    return FlowError(ErrorCode.UNAVAILABLE, message, "relay_down")


def ice_servers_for(services: Services, principal: Principal) -> list[dict[str, Any]]:
    """RTCIceServer dicts for this participant: TURN credentials when turn_config has them."""
    try:
        from turn_config import credentials
    except ImportError:
        credentials = None  # type: ignore[assignment]
    if credentials is not None:
        try:
            label = f"{principal.kind}-{principal.id}"
            return list(credentials.ice_servers_for(services.settings, label))
        except Exception:
            log.exception("TURN credentials could not be made; handing out STUN only")
    urls = list(services.settings.stun_urls)
    return [{"urls": urls}] if urls else []


async def _count_active(session: AsyncSession) -> int:
    found = await session.execute(
        select(func.count()).select_from(Call).where(Call.status == CallStatus.ACTIVE)
    )
    return int(found.scalar_one())


# --- pushes -----------------------------------------------------------------------------------


async def push_participants(services: Services, call_id: int) -> None:
    async with services.sessions() as session:
        call = await session.get(Call, call_id)
        if call is None:
            return
        view = await call_view(session, call)
    await services.sio.emit(
        "call:participants",
        {"call_id": call_id, "participants": view["participants"]},
        room=call_room(call_id),
    )


async def announce_call(services: Services, call_id: int) -> dict[str, Any]:
    """Create the relay room and tell the kiosk and the expert; returns the call view."""
    from signaling.flow.flow_metrics import flow_metrics

    metrics = flow_metrics(services)
    async with services.sessions() as session:
        call = await load_call(session, call_id)
        view = await call_view(session, call)
        active = await _count_active(session)
    if metrics is not None:
        metrics.calls.labels(call.kind).inc()
        metrics.active_calls.set(active)
    try:
        relay = await relay_for(services, call)
        await relay.create_room(call.room_id)
    except Exception as exc:
        # The room is created again on the first join; the call itself stands.
        log.warning("relay %s could not create room %s: %s", call.relay_node, call.room_id, exc)
    if call.endpoint_id is not None:
        await services.sio.emit(
            "call:started", {"call": view}, room=rooms.endpoint(call.endpoint_id)
        )
    if call.expert_id is not None:
        await services.sio.emit("call:started", {"call": view}, room=rooms.user(call.expert_id))
    return view


async def finish_call(
    services: Services, call_id: int, withdrawn: list[int], reason: str
) -> dict[str, Any]:
    """After `end_call` committed: close the relay room, tell everyone, free the sockets."""
    from signaling.flow.flow_metrics import flow_metrics

    async with services.sessions() as session:
        call = await load_call(session, call_id)
        view = await call_view(session, call)
        active = await _count_active(session)
        requeue = await requeue_offer(session, call, services.settings.requeue_window_seconds)
    metrics = flow_metrics(services)
    if metrics is not None:
        metrics.active_calls.set(active)
    ended_counter = services.extras.get("calls_ended_total")
    if isinstance(ended_counter, Counter):
        ended_counter.labels(str(reason)).inc()
    await close_relay_room(services, call.relay_node, call.room_id)
    call_sessions(services).drop_call(call_id)
    payload: dict[str, Any] = {"call_id": call_id, "reason": str(reason), "call": view}
    if requeue is not None and reason == EndReason.EXPERT_LOST:
        payload["requeue"] = requeue
    sio = services.sio
    targets = [call_room(call_id)]
    if call.endpoint_id is not None:
        targets.append(rooms.endpoint(call.endpoint_id))
    if call.expert_id is not None:
        targets.append(rooms.user(call.expert_id))
    # A customer at home back in the waiting room is not in the call's room any more.
    targets += [rooms.guest(p["id"]) for p in view["participants"] if p["kind"] == "guest"]
    await sio.emit("call:ended", payload, room=targets)
    if withdrawn:
        from signaling.flow.interpreters import push_withdrawn

        async with services.sessions() as session:
            for request_id in withdrawn:
                request = await session.get(InterpreterRequest, request_id)
                if request is not None:
                    await push_withdrawn(services, request, "call_ended")
    await sio.close_room(call_room(call_id))
    from signaling.flow.queues import publish_queue_change

    await publish_queue_change(services, call.authority_id)
    return view


async def close_relay_room(services: Services, node_id: str, room_id: str) -> None:
    """Close a call's room on its node (a node that is gone took its rooms with it)."""
    router = router_of(services)
    if router is None:
        return
    relay = router.known_client(node_id)
    if relay is None and router.alive(node_id):
        with contextlib.suppress(RelayUnavailable):
            relay = await router.client(node_id)
    if relay is None:
        return
    try:
        await relay.close_room(room_id)
    except Exception as exc:
        log.warning("relay %s could not close room %s: %s", node_id, room_id, exc)


# --- events -----------------------------------------------------------------------------------


class CallRef(EventModel):
    call_id: DbId


class JoinPayload(EventModel):
    call_id: DbId
    device: Literal["kiosk", "document_camera"] = "kiosk"


class AnswerPayload(EventModel):
    call_id: DbId
    sdp: str = Field(min_length=1, max_length=60000)


class PublishPayload(EventModel):
    call_id: DbId
    source: Literal["document", "screen"]


# Role.CUSTOMER: the customer at home, a participant of his own call only (remote_customer.py).
PARTICIPANT_ROLES = {Role.ENDPOINT, Role.EXPERT, Role.INTERPRETER, Role.CUSTOMER}


@on_event("call:join", JoinPayload, roles=PARTICIPANT_ROLES)
async def join_call(ctx: EventContext, data: JoinPayload) -> dict[str, Any]:
    services = ctx.services
    device = data.device if ctx.principal.kind == "endpoint" else "kiosk"
    async with services.sessions() as session:
        call = await load_call(session, data.call_id)
        if call.status != CallStatus.ACTIVE:
            raise conflict(f"call {call.id} has ended", "call_ended")
        participant = await participant_for(session, call, ctx.principal, device, create=True)
        pid = participant.participant_id
        publish = PUBLISH_ON_JOIN[participant.role]
        subscribe = SUBSCRIBES[participant.role]
        room_id = call.room_id
        await session.commit()
    relay = await relay_for(services, call)
    sessions = call_sessions(services)
    previous = sessions.bind(call.id, pid, ctx.sid)
    sessions.begin_join(call.id, pid)
    try:
        offer = await relay.join(room_id, pid, publish=publish, subscribe=subscribe)
    except Exception as exc:
        sessions.unbind(call.id, pid, ctx.sid)
        if previous is not None:
            sessions.bind(call.id, pid, previous)
        log.warning("relay join %s/%s failed: %s", room_id, pid, exc)
        raise relay_unavailable() from exc
    finally:
        sessions.end_join(call.id, pid)
    if previous is not None:
        await services.sio.emit("call:replaced", {"call_id": call.id}, to=previous)
        await services.sio.leave_room(previous, call_room(call.id))
    async with services.sessions() as session:
        current = await load_call(session, call.id)
        still_active = current.status == CallStatus.ACTIVE
        if still_active:
            row = await participant_row(session, call.id, pid)
            if row is not None:
                row.connected = True
                row.disconnected_at = None
                row.gone_reason = None
                if row.joined_at is None:
                    row.joined_at = utcnow()
            await session.commit()
            view = await call_view(session, current)
    if not still_active:
        # Ended (e.g. by the watchdog) while the relay was making the offer: the join must
        # not leave him alone in a relay room that finish_call has already closed.
        sessions.unbind(call.id, pid, ctx.sid)
        try:
            await relay.close_room(room_id)
        except Exception:
            log.exception("relay could not close room %s", room_id)
        raise conflict(f"call {call.id} has ended", "call_ended")
    await services.sio.enter_room(ctx.sid, call_room(call.id))
    await push_participants(services, call.id)
    return {
        "call": view,
        "participant_id": pid,
        "offer": offer,
        "ice_servers": ice_servers_for(services, ctx.principal),
        "relay_epoch": call.relay_epoch,
    }


async def _joined(ctx: EventContext, call_id: int) -> tuple[Call, CallParticipant]:
    """The call and this socket's participant, refusing if the socket has not joined."""
    async with ctx.services.sessions() as session:
        call = await load_call(session, call_id)
        if call.status != CallStatus.ACTIVE:
            raise conflict(f"call {call.id} has ended", "call_ended")
        sessions = call_sessions(ctx.services)
        for (cid, pid), sid in sessions.by_participant.items():
            if cid == call.id and sid == ctx.sid:
                row = await participant_row(session, call.id, pid)
                if row is not None:
                    return call, row
        raise conflict("join the call first (call:join)", "not_joined")


@on_event("call:answer", AnswerPayload, roles=PARTICIPANT_ROLES)
async def answer_call(ctx: EventContext, data: AnswerPayload) -> dict[str, Any]:
    call, participant = await _joined(ctx, data.call_id)
    relay = await relay_for(ctx.services, call)
    try:
        await relay.answer(call.room_id, participant.participant_id, data.sdp)
    except Exception as exc:
        code = getattr(exc, "code", "")
        message = getattr(exc, "message", str(exc))
        raise invalid(f"the relay refused the answer: {message}", str(code) or None) from exc
    return {}


@on_event("call:publish", PublishPayload, roles=PARTICIPANT_ROLES)
async def publish_source(ctx: EventContext, data: PublishPayload) -> dict[str, Any]:
    return await _change_source(ctx, data, publish=True)


@on_event("call:unpublish", PublishPayload, roles=PARTICIPANT_ROLES)
async def unpublish_source(ctx: EventContext, data: PublishPayload) -> dict[str, Any]:
    """Stop publishing a source published with `call:publish` (the expert stops sharing his
    screen)."""
    return await _change_source(ctx, data, publish=False)


async def _change_source(
    ctx: EventContext, data: PublishPayload, *, publish: bool
) -> dict[str, Any]:
    """Publish or unpublish a source of this socket's participant; the relay renegotiates him
    and everyone who is sent it."""
    call, participant = await _joined(ctx, data.call_id)
    if data.source not in PUBLISHABLE[participant.role]:
        raise forbidden(f"a {participant.role} may not publish {data.source!r}", "source")
    relay = await relay_for(ctx.services, call)
    change = relay.publish if publish else relay.unpublish
    try:
        await change(call.room_id, participant.participant_id, data.source)
    except Exception as exc:
        raise invalid(f"the relay refused: {getattr(exc, 'message', exc)}") from exc
    return {}


@on_event("call:leave", CallRef, roles=PARTICIPANT_ROLES)
async def leave_call(ctx: EventContext, data: CallRef) -> dict[str, Any]:
    services = ctx.services
    async with services.sessions() as session:
        call = await load_call(session, data.call_id)
        if call.status != CallStatus.ACTIVE:
            raise conflict(f"call {call.id} has ended", "call_ended")
        device = "kiosk"
        if ctx.principal.kind == "endpoint":
            bound = [
                pid for (cid, pid) in call_sessions(services).of_sid(ctx.sid) if cid == call.id
            ]
            device = "document_camera" if bound and bound[0].startswith("doccam-") else "kiosk"
        participant = await participant_for(session, call, ctx.principal, device)
        pid = participant.participant_id
        now = utcnow()
        if participant.connected or participant.role == ParticipantRole.INTERPRETER:
            participant.connected = False
            participant.disconnected_at = now
            participant.gone_reason = GoneReason.LEFT.value
        if participant.role == ParticipantRole.INTERPRETER:
            participant.left_at = now
        await session.commit()
    call_sessions(services).unbind(call.id, pid)
    await services.sio.leave_room(ctx.sid, call_room(call.id))
    try:
        relay = await relay_for(services, call)
        await relay.leave(call.room_id, pid)
    except Exception as exc:
        log.warning("relay leave %s/%s failed: %s", call.room_id, pid, exc)
    await push_participants(services, call.id)
    return {}


@on_event("call:end", CallRef, roles={Role.EXPERT, Role.ADMIN, Role.ENDPOINT})
async def end_call_event(ctx: EventContext, data: CallRef) -> dict[str, Any]:
    """The expert ends his call; the call's own kiosk too (the customer's "End call", always
    on the call screen); an administrator may end any (a call left open by a crashed console
    would otherwise stay "active" in the live view)."""
    services = ctx.services
    principal = ctx.principal
    if principal.role == Role.ADMIN:
        reason = EndReason.ENDED_BY_ADMIN.value
    elif principal.role == Role.ENDPOINT:
        reason = EndReason.ENDED_BY_CUSTOMER.value
    else:
        reason = EndReason.ENDED.value
    async with services.sessions() as session:
        call = await load_call(session, data.call_id)
        if principal.role == Role.EXPERT and call.expert_id != principal.id:
            raise forbidden(f"call {call.id} is not yours", "not_your_call")
        if principal.role == Role.ENDPOINT and call.endpoint_id != principal.id:
            raise forbidden(f"call {call.id} is not this kiosk's", "not_your_call")
        if call.status != CallStatus.ACTIVE:
            raise conflict(f"call {call.id} has already ended", "call_ended")
        withdrawn = await end_call(session, call, utcnow(), reason)
        ids = [r.id for r in withdrawn]
        await session.commit()
    log.info("call %s ended by %s %s: %s", call.id, principal.kind, principal.id, reason)
    view = await finish_call(services, call.id, ids, reason)
    return {"call": view}


async def _forget_socket(services: Services, sid: str, _principal: Principal) -> None:
    """The socket holding a participant's relay session went away: he is gone
    (`socket_lost`) until he joins again. A socket whose session was taken over by a newer
    one holds nothing any more (`CallSessions.bind`), so a replaced tab closing changes
    nothing. The relay session itself is left to the relay (it notices a dead peer
    connection by itself, and a rejoin replaces it)."""
    sessions = call_sessions(services)
    held = sessions.of_sid(sid)
    for call_id, pid in held:
        sessions.unbind(call_id, pid, sid)
    changed: list[tuple[int, str]] = []
    if held:
        now = utcnow()
        async with services.sessions() as session:
            for call_id, pid in held:
                if await mark_gone(session, call_id, pid, GoneReason.SOCKET_LOST, now):
                    changed.append((call_id, pid))
            await session.commit()
    for call_id, pid in changed:
        log.info("participant %s of call %s gone: socket_lost", pid, call_id)
        await push_participants(services, call_id)


async def _principal_lost(services: Services, kind: str, ident: int) -> None:
    """Another process died holding this person's (or kiosk's) last socket
    (signaling/flow/leases.py): his relay sessions in active calls count as `socket_lost`, as if
    that process had seen the socket close, so the call watchdog counts from now."""
    now = utcnow()
    changed: list[int] = []
    async with services.sessions() as session:
        found = await session.execute(
            select(CallParticipant.call_id, CallParticipant.participant_id)
            .join(Call, Call.id == CallParticipant.call_id)
            .where(
                Call.status == CallStatus.ACTIVE,
                CallParticipant.kind == kind,
                CallParticipant.principal_id == ident,
                CallParticipant.connected.is_(True),
            )
        )
        for call_id, pid in found.all():
            if await mark_gone(session, call_id, pid, GoneReason.SOCKET_LOST, now):
                changed.append(call_id)
        await session.commit()
    for call_id in changed:
        log.info("%s %s of call %s gone: socket_lost (its process died)", kind, ident, call_id)
        await push_participants(services, call_id)


def setup(_app: Any, services: Services) -> None:
    services.extras["calls_ended_total"] = Counter(
        "etapalvelu_calls_ended_total",
        "Calls ended, by end reason",
        ["reason"],
        registry=services.metrics.registry,
    )
    services.connections.on_disconnect(_forget_socket)
    router = router_of(services)
    if router is not None:
        listener = CallRelayListener(services)
        services.extras["call_relay_listener"] = listener
        router.set_listener(listener)
    from signaling.flow.leases import leases_of

    found_leases = leases_of(services)
    if found_leases is not None:
        found_leases.on_lost(_principal_lost)
    secretary.install(services)
