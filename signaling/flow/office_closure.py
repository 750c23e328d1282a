"""What disabling an office does to the work in progress there.

An office is disabled when it closes for good or is taken out of service (a break-in, a
stolen kiosk). Its kiosks and its service secretaries work only for it, so they lose access
at once (`signaling.directory.identity.office_allows` refuses their logins and sockets; the
dispatcher's
sweep disconnects what is still connected). What was open there is closed too, so that nobody
waits for a customer who cannot be served:

- waiting tickets are cancelled (the experts' lines drop them);
- booked and checked-in appointments are cancelled (the administrator is told how many, to
  contact the customers; booking at a disabled office is already refused) and their
  interpreter reservations released;
- active calls at the office end with the reason `office_disabled`, which the expert's
  console shows like any other end of call.

`close_office_records` is the database part (the CLI runs it; the serving processes then
disconnect the office's sockets within `revocation_check_seconds`); `close_office` also ends
the calls' media and tells everyone at once, in the process that received the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.db import utcnow
from signaling.store.flow_models import (
    Appointment,
    AppointmentStatus,
    Call,
    CallStatus,
    Ticket,
    TicketStatus,
)
from signaling.transport.services import Services

END_REASON = "office_disabled"


@dataclass
class OfficeClosure:
    office_id: int
    cancelled_tickets: list[int] = field(default_factory=list)
    cancelled_appointments: list[int] = field(default_factory=list)
    ended_calls: list[int] = field(default_factory=list)
    # ringing interpreter requests withdrawn, per ended call
    withdrawn: dict[int, list[int]] = field(default_factory=dict)
    # interpreters whose reservations for the cancelled appointments were released
    released_interpreters: set[int] = field(default_factory=set)
    authorities: set[int] = field(default_factory=set)

    def summary(self) -> dict[str, int]:
        return {
            "cancelled_tickets": len(self.cancelled_tickets),
            "cancelled_appointments": len(self.cancelled_appointments),
            "ended_calls": len(self.ended_calls),
        }


async def close_office_records(
    session: AsyncSession, office_id: int, now: datetime | None = None
) -> OfficeClosure:
    """Cancel the office's open tickets and appointments and end its calls (caller commits)."""
    from signaling.flow.calls import end_call

    now = now or utcnow()
    closure = OfficeClosure(office_id)
    tickets = (
        await session.execute(
            select(Ticket.id, Ticket.authority_id).where(
                Ticket.office_id == office_id, Ticket.status == TicketStatus.WAITING
            )
        )
    ).all()
    if tickets:
        closure.cancelled_tickets = [row.id for row in tickets]
        closure.authorities.update(row.authority_id for row in tickets)
        await session.execute(
            update(Ticket)
            .where(Ticket.id.in_(closure.cancelled_tickets), Ticket.status == TicketStatus.WAITING)
            .values(status=TicketStatus.CANCELLED.value, finished_at=now)
            .execution_options(synchronize_session=False)
        )
    open_states = (AppointmentStatus.BOOKED.value, AppointmentStatus.CHECKED_IN.value)
    appointments = (
        await session.execute(
            select(Appointment.id).where(
                Appointment.office_id == office_id, Appointment.status.in_(open_states)
            )
        )
    ).scalars()
    closure.cancelled_appointments = list(appointments)
    if closure.cancelled_appointments:
        await session.execute(
            update(Appointment)
            .where(
                Appointment.id.in_(closure.cancelled_appointments),
                Appointment.status.in_(open_states),
            )
            .values(status=AppointmentStatus.CANCELLED.value, released_at=now)
            .execution_options(synchronize_session=False)
        )
        # As every other cancel (appointments.leave_booked, which covers only BOOKED ones):
        # the interpreters reserved for them are free at once.
        from signaling.flow.interpreter_reservations import release

        for appointment_id in closure.cancelled_appointments:
            interpreter_id = await release(session, appointment_id, now)
            if interpreter_id is not None:
                closure.released_interpreters.add(interpreter_id)
    calls = (
        await session.execute(
            select(Call).where(Call.office_id == office_id, Call.status == CallStatus.ACTIVE)
        )
    ).scalars()
    for call in list(calls):
        withdrawn = await end_call(session, call, now, END_REASON)
        closure.ended_calls.append(call.id)
        closure.withdrawn[call.id] = [request.id for request in withdrawn]
        closure.authorities.add(call.authority_id)
    await session.flush()
    return closure


async def close_office(services: Services, office_id: int) -> tuple[OfficeClosure, int]:
    """After the office row was disabled and committed: close its work (committed here), end
    the calls' media, update the lines, and disconnect the office's kiosks and clerks in this
    process. Returns the closure and how many sockets were disconnected."""
    from signaling.flow.calls import finish_call
    from signaling.flow.queues import publish_queue_change
    from signaling.transport.connections import disconnect_office

    async with services.sessions() as session:
        closure = await close_office_records(session, office_id)
        await session.commit()
    disconnected = await disconnect_office(services, office_id)
    for call_id in closure.ended_calls:
        await finish_call(services, call_id, closure.withdrawn[call_id], END_REASON)
    for authority_id in closure.authorities:
        await publish_queue_change(services, authority_id)
    from signaling.flow.interpreter_reservations import push_changed

    await push_changed(services, closure.released_interpreters)
    return closure, disconnected


__all__ = ["END_REASON", "OfficeClosure", "close_office", "close_office_records"]
