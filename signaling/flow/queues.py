"""Walk-in queues: one line per authority and service language, in the database.

Order in line is `(queue_key, id)`: a walk-in's key is its arrival, a checked-in
appointment's its booked time (signaling/flow/appointments.py), a transferred customer keeps his
key. Taking a ticket is a conditional UPDATE (`... WHERE status = 'waiting'`): on SQLite the
second writer waits for the first's lock and then matches no row, on PostgreSQL it waits for
the row lock and re-checks the condition — either way exactly one expert wins.

When a call ends because its expert did not come back (`expert_lost`, signaling/flow/call_watch.py)
the kiosk may take, once and within `requeue_window_seconds`, a new ticket in the same line
that keeps the original ticket's `queued_at` and `queue_key` (`ticket:requeue`): the customer
is at the head of the line again, ahead of everyone who came after him.

The wait a kiosk is told (`estimated_wait_seconds` and `estimate_reason` of its ticket) counts
only the experts who can serve that very line: online, not away, of the line's authority and
speaking its language (a booked appointment: only its expert). With one of them free and the
customer among the first that many in line it is 0 (`soon`); with nobody online who can serve
the line there is no estimate (`no_expert_for_language` when the authority's experts are online
but none speaks the language, `no_expert_online` otherwise); else `queue`: rounds of the mean
recent call duration, the customers ahead of him shared among the experts who can serve him.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from signaling.db import DbId, utcnow
from signaling.directory.principals import Principal, Role
from signaling.flow.calls import (
    active_call_of_endpoint,
    active_call_of_user,
    announce_call,
    create_call,
    end_call,
    finish_call,
    place_relay,
    requeue_expiry,
    requeue_offer,
)
from signaling.flow.flow_common import (
    LANGUAGE_PATTERN,
    FlowError,
    authority_code,
    authority_view,
    call_view,
    clerks_room,
    conflict,
    enabled_authorities,
    forbidden,
    iso,
    not_found,
    office_name,
    seconds_between,
    ticket_number,
    ticket_view,
)
from signaling.flow.flow_metrics import flow_metrics
from signaling.flow.office_offer import (
    Routing,
    check_transfer,
    check_walk_in,
    enter_municipal_rooms,
    kiosk_authorities,
    municipal_room,
    municipality_key,
    routing,
)
from signaling.store.flow_models import (
    Call,
    CallStatus,
    EndReason,
    Ticket,
    TicketKind,
    TicketStatus,
)
from signaling.store.models import (
    Authority,
    Office,
    User,
    UserPresence,
    UserRole,
    expert_authorities,
)
from signaling.transport import rooms
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.transport.services import Services

log = logging.getLogger(__name__)

# Picks the relay node of a new call from the office's site label (calls.place_relay).
Placement = Callable[[str | None], str]

MEAN_OVER_CALLS = 20
MEAN_OVER_DAYS = 30
TAKE_ATTEMPTS = 5


# --- domain -----------------------------------------------------------------------------------


async def find_authority(session: AsyncSession, code: str) -> Authority:
    row = await session.execute(
        select(Authority).where(Authority.code == code, Authority.enabled.is_(True))
    )
    authority = row.scalars().first()
    if authority is None:
        raise not_found(f"no authority with code {code!r}", "authority_unknown")
    return authority


async def waiting_ticket_of_endpoint(session: AsyncSession, endpoint_id: int) -> Ticket | None:
    row = await session.execute(
        select(Ticket)
        .where(Ticket.endpoint_id == endpoint_id, Ticket.status == TicketStatus.WAITING)
        .order_by(Ticket.id.desc())
        .limit(1)
    )
    return row.scalars().first()


async def check_endpoint_free(session: AsyncSession, endpoint_id: int) -> None:
    if await waiting_ticket_of_endpoint(session, endpoint_id) is not None:
        raise conflict("this kiosk already has a customer in line", "already_queued")
    if await active_call_of_endpoint(session, endpoint_id) is not None:
        raise conflict("this kiosk is in a call", "in_call")


async def take_walk_in_ticket(
    session: AsyncSession,
    kiosk: Principal,
    authority_code: str,
    language: str,
    now: datetime,
    hours_now: datetime | None = None,
    interpreting: str | None = None,
) -> Ticket:
    """A kiosk's customer joins the authority's line (the caller commits). Refused when the
    office does not offer the authority (or language) or it is outside its service hours at
    `hours_now` (default `now`): signaling/flow/office_offer.py. `interpreting`: the customer's
    interpreting need (signaling/flow/interpreters.py)."""
    from signaling.flow.interpreters import check_interpreting

    authority = await find_authority(session, authority_code)
    if kiosk.office_id is None:
        raise forbidden("this endpoint belongs to no office")
    interpreting = await check_interpreting(session, interpreting)
    await check_walk_in(session, kiosk.office_id, authority, language, hours_now or now)
    await check_endpoint_free(session, kiosk.id)
    ticket = Ticket(
        authority_id=authority.id,
        office_id=kiosk.office_id,
        endpoint_id=kiosk.id,
        language=language,
        kind=TicketKind.WALK_IN.value,
        status=TicketStatus.WAITING.value,
        queued_at=now,
        queue_key=now,
        created_at=now,
        interpreting=interpreting,
    )
    session.add(ticket)
    await session.flush()
    return ticket


async def cancel_ticket(
    session: AsyncSession, endpoint_id: int, ticket_id: int, now: datetime
) -> Ticket:
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        raise not_found(f"no ticket {ticket_id}")
    if ticket.endpoint_id != endpoint_id:
        raise forbidden("this is another kiosk's ticket")
    result = await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.status == TicketStatus.WAITING)
        .values(status=TicketStatus.CANCELLED.value, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        raise conflict(f"ticket {ticket_id} is not waiting", "not_waiting")
    await session.refresh(ticket)
    return ticket


async def waiting_tickets(
    session: AsyncSession, authority_ids: Iterable[int] | None = None, language: str | None = None
) -> list[Ticket]:
    query = select(Ticket).where(Ticket.status == TicketStatus.WAITING)
    if authority_ids is not None:
        query = query.where(Ticket.authority_id.in_(list(authority_ids)))
    if language is not None:
        query = query.where(Ticket.language == language)
    rows = await session.execute(
        query.order_by(Ticket.queue_key, Ticket.id).execution_options(populate_existing=True)
    )
    return list(rows.scalars())


def positions(tickets: Iterable[Ticket], routes: Routing | None = None) -> dict[int, int]:
    """Position in its own line (authority, language; a municipal authority's line also per
    municipality, given `routes`) of each waiting ticket; 1 is next."""
    counters: dict[tuple[int, str, str | None], int] = {}
    result: dict[int, int] = {}
    for ticket in sorted(tickets, key=lambda t: (t.queue_key, t.id)):
        local = routes.line_key(ticket.authority_id, ticket.office_id) if routes else None
        line = (ticket.authority_id, ticket.language, local)
        counters[line] = counters.get(line, 0) + 1
        result[ticket.id] = counters[line]
    return result


async def mean_service_seconds(
    session: AsyncSession, authority_id: int, now: datetime, default_seconds: int
) -> int:
    """Mean duration of the authority's recent calls; `default_seconds` when there are none."""
    rows = await session.execute(
        select(Call.started_at, Call.ended_at)
        .where(
            Call.authority_id == authority_id,
            Call.status == CallStatus.ENDED,
            Call.ended_at >= now - timedelta(days=MEAN_OVER_DAYS),
        )
        .order_by(Call.ended_at.desc())
        .limit(MEAN_OVER_CALLS)
    )
    durations = [seconds_between(start, end) for start, end in rows if end is not None]
    if not durations:
        return default_seconds
    return max(1, round(sum(durations) / len(durations)))


# `estimate_reason` of a waiting ticket (the kiosk's texts say them in fi/sv/en).
ESTIMATE_SOON = "soon"  # an expert who can serve him is free: ~0
ESTIMATE_QUEUE = "queue"  # an estimate from the line and the recent call durations
NO_EXPERT_FOR_LANGUAGE = "no_expert_for_language"  # the authority's experts online lack it
NO_EXPERT_ONLINE = "no_expert_online"  # nobody of the authority is online (or all away)


@dataclass(frozen=True)
class LineStaff:
    """Who can serve one line (authority, language) right now."""

    working: frozenset[int]  # online, not away, of the authority, speaking the language
    free: frozenset[int]  # of those: available and in no call
    authority_online: int  # the authority's experts online and not away, any language


async def line_staff(
    session: AsyncSession, authority_id: int, language: str, municipality: str | None = None
) -> LineStaff:
    """`municipality` (a municipality_key): the line is a municipality's own, only its
    experts serve it."""
    rows = await session.execute(
        select(User)
        .join(expert_authorities, expert_authorities.c.user_id == User.id)
        .where(
            expert_authorities.c.authority_id == authority_id,
            User.role == UserRole.EXPERT.value,
            User.enabled.is_(True),
            User.online.is_(True),
            User.presence.in_([UserPresence.AVAILABLE.value, UserPresence.BUSY.value]),
        )
        .options(selectinload(User.languages))
        .execution_options(populate_existing=True)
    )
    experts = list(rows.scalars().unique())
    if municipality is not None:
        experts = [u for u in experts if municipality_key(u.municipality) == municipality]
    working = [u for u in experts if language in u.language_codes]
    in_call: set[int] = set()
    if working:
        calls = await session.execute(
            select(Call.expert_id).where(
                Call.status == CallStatus.ACTIVE,
                Call.expert_id.in_([u.id for u in working]),
            )
        )
        in_call = {expert_id for (expert_id,) in calls if expert_id is not None}
    free = [
        u.id for u in working if u.presence == UserPresence.AVAILABLE.value and u.id not in in_call
    ]
    return LineStaff(frozenset(u.id for u in working), frozenset(free), len(experts))


def wait_estimate(
    position: int, staff: LineStaff, mean_seconds: int, booked_expert: int | None = None
) -> tuple[int | None, str]:
    """(estimated wait in seconds or None, estimate_reason) of the `position`-th in line."""
    working, free = staff.working, staff.free
    if booked_expert is not None:
        working, free = working & {booked_expert}, free & {booked_expert}
    if not working:
        if booked_expert is None and staff.authority_online:
            return None, NO_EXPERT_FOR_LANGUAGE
        return None, NO_EXPERT_ONLINE
    if position <= len(free):
        return 0, ESTIMATE_SOON
    rounds = math.ceil((position - len(free)) / len(working))
    return rounds * mean_seconds, ESTIMATE_QUEUE


async def waiting_ticket_view(
    session: AsyncSession,
    ticket: Ticket,
    position: int | None,
    mean_seconds: int,
    staff: LineStaff,
) -> dict[str, Any]:
    """The Ticket view of a waiting ticket with its estimate and `estimate_reason`."""
    if position is None:
        view = await ticket_view(session, ticket, None, None)
        view["estimate_reason"] = None
        return view
    estimate, reason = wait_estimate(position, staff, mean_seconds, ticket.expert_id)
    view = await ticket_view(session, ticket, position, estimate)
    view["estimate_reason"] = reason
    return view


async def ticket_state(
    session: AsyncSession, ticket: Ticket, now: datetime, default_seconds: int
) -> dict[str, Any]:
    """The Ticket view with position and estimated wait when it is waiting."""
    if ticket.status != TicketStatus.WAITING:
        return await ticket_view(session, ticket)
    line = await waiting_tickets(session, [ticket.authority_id], ticket.language)
    routes = await routing(session)
    position = positions(line, routes).get(ticket.id)
    mean = await mean_service_seconds(session, ticket.authority_id, now, default_seconds)
    local = routes.line_key(ticket.authority_id, ticket.office_id)
    staff = await line_staff(session, ticket.authority_id, ticket.language, local)
    return await waiting_ticket_view(session, ticket, position, mean, staff)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def claim(session: AsyncSession, ticket_id: int, expert_id: int, now: datetime) -> bool:
    """Mark a waiting ticket as being served by the expert; False if someone was faster."""
    try:
        result = await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.status == TicketStatus.WAITING)
            .values(status=TicketStatus.SERVING.value, taken_by=expert_id, taken_at=now)
            .execution_options(synchronize_session=False)
        )
    except OperationalError as exc:
        # SQLite: the other writer held the lock longer than the busy timeout.
        log.warning("claim of ticket %s failed on the lock: %s", ticket_id, exc)
        await session.rollback()
        return False
    return _rowcount(result) == 1


async def _expert(session: AsyncSession, principal: Principal) -> User:
    user = await session.get(User, principal.id)
    if user is None or not user.enabled:
        raise forbidden("unknown or disabled user")
    return user


async def take_ticket(
    session: AsyncSession,
    expert: Principal,
    ticket_id: int,
    now: datetime,
    place: Placement | None = None,
) -> tuple[Ticket, Call]:
    """The expert takes this ticket: claim it and create the call (committed here)."""
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        raise not_found(f"no ticket {ticket_id}")
    if ticket.authority_id not in expert.authority_ids:
        raise forbidden("this ticket is in another authority's line", "other_authority")
    if ticket.expert_id is not None and ticket.expert_id != expert.id:
        raise forbidden("this appointment is booked for another expert", "other_expert")
    routes = await routing(session)
    if not routes.visible_to(ticket.authority_id, ticket.office_id, ticket.expert_id, expert):
        raise forbidden("this customer is another municipality's", "other_municipality")
    if ticket.status != TicketStatus.WAITING:
        raise conflict(f"ticket {ticket_id} was already taken", "taken")
    if await active_call_of_user(session, expert.id) is not None:
        raise conflict("you are already in a call", "in_call")
    user = await _expert(session, expert)
    if not await claim(session, ticket_id, expert.id, now):
        await session.rollback()
        raise conflict(f"ticket {ticket_id} was already taken", "taken")
    return await _start_call(session, ticket_id, user, now, place)


async def _start_call(
    session: AsyncSession,
    ticket_id: int,
    user: User,
    now: datetime,
    place: Placement | None,
) -> tuple[Ticket, Call]:
    ticket = await session.get(Ticket, ticket_id, populate_existing=True)
    assert ticket is not None
    node = "local"
    if place is not None:
        office = await session.get(Office, ticket.office_id)
        try:
            node = place(office.relay_site if office is not None else None)
        except Exception:
            # No relay can take the call: the customer stays in line, unclaimed.
            await session.rollback()
            raise
    # The call and its relay node are written in the one transaction that claims the ticket.
    call = await create_call(session, ticket, user, now, relay_node=node)
    await session.commit()
    return ticket, call


async def take_next(
    session: AsyncSession,
    expert: Principal,
    authority_id: int | None,
    language: str | None,
    now: datetime,
    place: Placement | None = None,
) -> tuple[Ticket, Call]:
    """The expert takes the first customer in his lines (committed here)."""
    if authority_id is not None and authority_id not in expert.authority_ids:
        raise forbidden("that is another authority's line", "other_authority")
    authority_ids = [authority_id] if authority_id is not None else sorted(expert.authority_ids)
    if not authority_ids:
        raise not_found("you serve no authority", "queue_empty")
    if await active_call_of_user(session, expert.id) is not None:
        raise conflict("you are already in a call", "in_call")
    user = await _expert(session, expert)
    routes = await routing(session)
    municipal = sorted(routes.municipal & set(authority_ids))
    for attempt in range(TAKE_ATTEMPTS):
        query = select(Ticket.id).where(
            Ticket.status == TicketStatus.WAITING,
            Ticket.authority_id.in_(authority_ids),
            (Ticket.expert_id.is_(None)) | (Ticket.expert_id == expert.id),
        )
        if municipal:
            # A municipal line: only his municipality's offices (or his own appointment).
            query = query.where(
                Ticket.authority_id.notin_(municipal)
                | Ticket.office_id.in_(routes.offices_of(expert.municipality))
                | (Ticket.expert_id == expert.id)
            )
        if language is not None:
            query = query.where(Ticket.language == language)
        first = (
            await session.execute(query.order_by(Ticket.queue_key, Ticket.id).limit(1))
        ).scalar_one_or_none()
        if first is None:
            if attempt == 0:
                raise not_found("nobody is waiting in your lines", "queue_empty")
            break
        if await claim(session, first, expert.id, now):
            return await _start_call(session, first, user, now, place)
        await session.rollback()
    raise conflict("other experts took the waiting customers at the same moment", "taken")


async def transfer_ticket(
    session: AsyncSession,
    expert: Principal,
    ticket_id: int,
    authority_id: int,
    language: str | None,
    now: datetime,
    hours_now: datetime | None = None,
) -> tuple[Ticket, Ticket, int | None, list[int]]:
    """Move the customer to another authority's line keeping his place in time.

    Returns (old ticket, new ticket, id of the call that ended or None, withdrawn interpreter
    request ids). Committed here.
    """
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        raise not_found(f"no ticket {ticket_id}")
    target = await session.get(Authority, authority_id)
    if target is None or not target.enabled:
        raise not_found(f"no authority {authority_id}", "authority_unknown")
    if target.id == ticket.authority_id:
        raise conflict("the customer is already in that authority's line", "same_authority")
    # The customer's office must offer the target, open now (signaling/flow/office_offer.py).
    await check_transfer(
        session, ticket.office_id, target, language or ticket.language, hours_now or now
    )
    call: Call | None = None
    if ticket.status == TicketStatus.WAITING:
        if ticket.authority_id not in expert.authority_ids:
            raise forbidden("this ticket is in another authority's line", "other_authority")
    elif ticket.status == TicketStatus.SERVING and ticket.call_id is not None:
        call = await session.get(Call, ticket.call_id)
        if call is None or call.expert_id != expert.id:
            raise forbidden("this customer is not in your call", "not_your_call")
        if call.status != CallStatus.ACTIVE:
            raise conflict("the call has ended", "not_waiting")
    else:
        raise conflict(f"ticket {ticket_id} is not waiting", "not_waiting")
    withdrawn: list[int] = []
    if call is not None:
        withdrawn = [r.id for r in await end_call(session, call, now, "transferred")]
        ticket.status = TicketStatus.TRANSFERRED.value
        ticket.finished_at = now
    else:
        result = await session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.status == TicketStatus.WAITING)
            .values(status=TicketStatus.TRANSFERRED.value, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) != 1:
            await session.rollback()
            raise conflict(f"ticket {ticket_id} was taken meanwhile", "not_waiting")
    new = Ticket(
        authority_id=target.id,
        office_id=ticket.office_id,
        endpoint_id=ticket.endpoint_id,
        language=language or ticket.language,
        kind=ticket.kind,
        appointment_id=ticket.appointment_id,
        expert_id=None,  # a booked expert belongs to the old authority
        status=TicketStatus.WAITING.value,
        queued_at=ticket.queued_at,
        queue_key=ticket.queue_key,
        created_at=now,
        transferred_from_id=ticket.id,
        interpreting=ticket.interpreting,
    )
    session.add(new)
    await session.flush()
    old = await session.get(Ticket, ticket_id, populate_existing=True)
    assert old is not None
    old.transferred_to_id = new.id
    await session.commit()
    return old, new, call.id if call is not None else None, withdrawn


async def requeue_ticket(
    session: AsyncSession, kiosk: Principal, call_id: int, now: datetime, window_seconds: float
) -> Ticket:
    """After its expert was lost, the call's kiosk takes a new ticket in the same line with the
    original ticket's `queued_at` and `queue_key` (committed here). At most once per call:
    `calls.requeue_ticket_id` is claimed with a conditional UPDATE."""
    call = await session.get(Call, call_id)
    if call is None:
        raise not_found(f"no call {call_id}")
    if call.endpoint_id is None or call.endpoint_id != kiosk.id:
        raise forbidden(f"call {call_id} is not this kiosk's", "not_your_call")
    original = await session.get(Ticket, call.ticket_id) if call.ticket_id is not None else None
    expires = requeue_expiry(call, window_seconds)
    if call.status != CallStatus.ENDED or expires is None or original is None:
        raise conflict(f"call {call_id} did not end by losing its expert", "not_requeueable")
    if call.requeue_ticket_id is not None:
        raise conflict(f"call {call_id} was already requeued", "already_requeued")
    if now > expires:
        raise conflict("the time to take a new ticket for this call has passed", "expired")
    authority = await session.get(Authority, original.authority_id)
    if authority is None or not authority.enabled:
        raise conflict("that line is closed", "not_requeueable")
    try:
        await check_endpoint_free(session, kiosk.id)
    except FlowError as exc:
        raise conflict("this kiosk already has a ticket or a call", "has_ticket") from exc
    ticket = Ticket(
        authority_id=original.authority_id,
        office_id=original.office_id,
        endpoint_id=kiosk.id,
        language=original.language,
        kind=original.kind,
        appointment_id=original.appointment_id,
        # Anyone of the authority may serve him now: the booked expert is the one who was lost.
        expert_id=None,
        status=TicketStatus.WAITING.value,
        queued_at=original.queued_at,
        queue_key=original.queue_key,
        created_at=now,
        interpreting=original.interpreting,
    )
    session.add(ticket)
    await session.flush()
    claimed = await session.execute(
        update(Call)
        .where(Call.id == call_id, Call.requeue_ticket_id.is_(None))
        .values(requeue_ticket_id=ticket.id)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(claimed) != 1:
        await session.rollback()
        raise conflict(f"call {call_id} was already requeued", "already_requeued")
    await session.commit()
    return ticket


async def requeue_offer_of_endpoint(
    session: AsyncSession, endpoint_id: int, now: datetime, window_seconds: float
) -> dict[str, Any] | None:
    """The open `ticket:requeue` offer of this kiosk (its last call lost its expert, the
    window is open, it was not requeued, the kiosk has no ticket or call now), or None."""
    last = (
        await session.execute(
            select(Call)
            .where(Call.endpoint_id == endpoint_id, Call.status == CallStatus.ENDED)
            .order_by(Call.ended_at.desc(), Call.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if last is None or last.end_reason != EndReason.EXPERT_LOST:
        return None
    expires = requeue_expiry(last, window_seconds)
    if last.requeue_ticket_id is not None or expires is None or now > expires:
        return None
    if await waiting_ticket_of_endpoint(session, endpoint_id) is not None:
        return None
    if await active_call_of_endpoint(session, endpoint_id) is not None:
        return None
    offer = await requeue_offer(session, last, window_seconds)
    return {"call_id": last.id, **offer} if offer is not None else None


async def queue_views(
    session: AsyncSession,
    authority_ids: Iterable[int] | None,
    office_id: int | None,
    now: datetime,
    viewer: Principal | None = None,
    municipality: str | None = None,
) -> list[dict[str, Any]]:
    """QueueView per (authority, language) line that has someone waiting. An expert `viewer`
    sees of a municipal line only his municipality's customers; `municipality` (a
    municipality_key) keeps of the municipal lines only that municipality's."""
    tickets = await waiting_tickets(session, authority_ids)
    routes = await routing(session)
    places = positions(tickets, routes)
    lines: dict[tuple[int, str], dict[str, Any]] = {}
    codes: dict[int, str] = {}
    for ticket in tickets:
        if office_id is not None and ticket.office_id != office_id:
            continue
        if viewer is not None and not routes.visible_to(
            ticket.authority_id, ticket.office_id, ticket.expert_id, viewer
        ):
            continue
        local = routes.line_key(ticket.authority_id, ticket.office_id)
        if municipality is not None and local is not None and local != municipality:
            continue
        if ticket.authority_id not in codes:
            authority = await session.get(Authority, ticket.authority_id)
            codes[ticket.authority_id] = authority.code if authority else ""
        key = (ticket.authority_id, ticket.language)
        line = lines.setdefault(
            key,
            {
                "authority_id": ticket.authority_id,
                "authority_code": codes[ticket.authority_id],
                "language": ticket.language,
                "tickets": [],
            },
        )
        line["tickets"].append(
            {
                "ticket_id": ticket.id,
                "number": ticket_number(codes[ticket.authority_id], ticket.id),
                "office_id": ticket.office_id,
                "office_name": await office_name(session, ticket.office_id),
                "language": ticket.language,
                "interpreting": ticket.interpreting,
                "kind": ticket.kind,
                "expert_id": ticket.expert_id,
                "queued_at": ticket.queued_at.isoformat(),
                "queue_key": ticket.queue_key.isoformat(),
                "waiting_seconds": seconds_between(ticket.queued_at, now),
                "position": places[ticket.id],
            }
        )
    return [lines[key] for key in sorted(lines)]


# --- pushes -----------------------------------------------------------------------------------


def default_seconds(services: Services) -> int:
    return int(services.settings.default_service_minutes) * 60


async def push_ticket(services: Services, ticket_id: int) -> None:
    async with services.sessions() as session:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None or ticket.endpoint_id is None:
            return
        view = await ticket_state(session, ticket, utcnow(), default_seconds(services))
    await services.sio.emit(
        "ticket:update", {"ticket": view}, room=rooms.endpoint(view["endpoint_id"])
    )


async def publish_queue_change(
    services: Services, authority_id: int, offices: Iterable[int] = ()
) -> None:
    """Tell the kiosks in this authority's lines their new places, and the staff the lines."""
    now = utcnow()
    async with services.sessions() as session:
        tickets = await waiting_tickets(session, [authority_id])
        routes = await routing(session)
        places = positions(tickets, routes)
        mean = await mean_service_seconds(session, authority_id, now, default_seconds(services))
        staff: dict[tuple[str, str | None], LineStaff] = {}
        updates = []
        for t in tickets:
            if t.endpoint_id is None:
                continue
            line = (t.language, routes.line_key(authority_id, t.office_id))
            if line not in staff:
                staff[line] = await line_staff(session, authority_id, *line)
            view = await waiting_ticket_view(session, t, places[t.id], mean, staff[line])
            updates.append((t.endpoint_id, view))
        views = await queue_views(session, [authority_id], None, now)
        code = await authority_code(session, authority_id)
        office_ids = sorted({t.office_id for t in tickets} | set(offices))
        per_office = [(o, await queue_views(session, [authority_id], o, now)) for o in office_ids]
        # A municipal line goes to each municipality's experts separately, never to all.
        per_municipality: list[tuple[str, list[dict[str, Any]]]] = []
        if authority_id in routes.municipal:
            keys = {routes.offices.get(o) for o in office_ids} - {None, ""}
            for key in sorted(k for k in keys if k):
                local_views = await queue_views(session, [authority_id], None, now, None, key)
                per_municipality.append((key, local_views))
    metrics = flow_metrics(services)
    if metrics is not None:
        metrics.waiting.labels(code).set(len(tickets))
    sio = services.sio
    for endpoint_id, view in updates:
        await sio.emit("ticket:update", {"ticket": view}, room=rooms.endpoint(endpoint_id))
    payload = {"authority_id": authority_id, "queues": views}
    if authority_id in routes.municipal:
        await sio.emit("queue:update", payload, room=rooms.role(Role.ADMIN))
        for key, local_views in per_municipality:
            await sio.emit(
                "queue:update",
                {"authority_id": authority_id, "queues": local_views},
                room=municipal_room(authority_id, key),
            )
    else:
        await sio.emit(
            "queue:update", payload, room=[rooms.authority(authority_id), rooms.role(Role.ADMIN)]
        )
    # A clerk sees the lines as far as his own office's customers are concerned.
    for office_id, office_views in per_office:
        await sio.emit(
            "queue:update",
            {"authority_id": authority_id, "queues": office_views},
            room=clerks_room(office_id),
        )


async def publish_expert_change(services: Services, user_id: int) -> None:
    """An expert came online, went offline or changed status: the waiting customers of his
    authorities get their estimates again (who can serve them changed). For
    signaling/flow/presence.py to call after recording the change."""
    async with services.sessions() as session:
        user = await session.get(User, user_id, options=[selectinload(User.authorities)])
        if user is None or user.role != UserRole.EXPERT.value:
            return
        authority_ids = sorted(a.id for a in user.authorities)
    for authority_id in authority_ids:
        await publish_queue_change(services, authority_id)


# --- events -----------------------------------------------------------------------------------


class TicketTake(EventModel):
    authority: str = Field(min_length=1, max_length=32)
    language: str = Field(pattern=LANGUAGE_PATTERN)
    # The interpreting need chosen at the kiosk (fse, fss, ara, ...;
    # signaling/flow/interpreters.py).
    interpreting: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)


class TicketRef(EventModel):
    ticket_id: DbId


class QueueList(EventModel):
    authority_id: DbId | None = None


class TakeNext(EventModel):
    authority_id: DbId | None = None
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)


class Transfer(EventModel):
    ticket_id: DbId
    authority_id: DbId
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)


class CallRef(EventModel):
    call_id: DbId


class Empty(EventModel):
    pass


@on_event("ticket:take", TicketTake, roles={Role.ENDPOINT})
async def ticket_take(ctx: EventContext, data: TicketTake) -> dict[str, Any]:
    services = ctx.services
    async with services.sessions() as session:
        ticket = await take_walk_in_ticket(
            session,
            ctx.principal,
            data.authority,
            data.language,
            utcnow(),
            services.clock(),
            interpreting=data.interpreting,
        )
        await session.commit()
        ticket_id, authority_id = ticket.id, ticket.authority_id
    await services.sio.enter_room(ctx.sid, rooms.endpoint(ctx.principal.id))
    await publish_queue_change(services, authority_id)
    async with services.sessions() as session:
        fresh = await session.get(Ticket, ticket_id)
        assert fresh is not None
        view = await ticket_state(session, fresh, utcnow(), default_seconds(services))
    return {"ticket": view}


@on_event("ticket:cancel", TicketRef, roles={Role.ENDPOINT})
async def ticket_cancel(ctx: EventContext, data: TicketRef) -> dict[str, Any]:
    services = ctx.services
    async with services.sessions() as session:
        ticket = await cancel_ticket(session, ctx.principal.id, data.ticket_id, utcnow())
        await session.commit()
        view = await ticket_view(session, ticket)
    await publish_queue_change(services, ticket.authority_id, [ticket.office_id])
    return {"ticket": view}


@on_event("ticket:requeue", CallRef, roles={Role.ENDPOINT})
async def ticket_requeue(ctx: EventContext, data: CallRef) -> dict[str, Any]:
    """The kiosk's "new ticket" after a call ended with `expert_lost`: the customer keeps his
    place at the head of the same line."""
    services = ctx.services
    window = services.settings.requeue_window_seconds
    async with services.sessions() as session:
        ticket = await requeue_ticket(session, ctx.principal, data.call_id, utcnow(), window)
        ticket_id, authority_id, office_id = ticket.id, ticket.authority_id, ticket.office_id
    log.info("call %s requeued as ticket %s", data.call_id, ticket_id)
    await services.sio.enter_room(ctx.sid, rooms.endpoint(ctx.principal.id))
    await publish_queue_change(services, authority_id, [office_id])
    async with services.sessions() as session:
        fresh = await session.get(Ticket, ticket_id)
        assert fresh is not None
        view = await ticket_state(session, fresh, utcnow(), default_seconds(services))
    return {"ticket": view}


def visible_authorities(principal: Principal, asked: int | None) -> list[int] | None:
    """Which lines this person may see: an expert his authorities, others all (None)."""
    if principal.role == Role.EXPERT:
        if asked is not None and asked not in principal.authority_ids:
            raise forbidden("that is another authority's line", "other_authority")
        return [asked] if asked is not None else sorted(principal.authority_ids)
    return [asked] if asked is not None else None


@on_event("queue:list", QueueList, roles={Role.EXPERT, Role.CLERK, Role.ADMIN})
async def queue_list(ctx: EventContext, data: QueueList) -> dict[str, Any]:
    authority_ids = visible_authorities(ctx.principal, data.authority_id)
    office_id = ctx.principal.office_id if ctx.principal.role == Role.CLERK else None
    if ctx.principal.role == Role.CLERK and office_id is None:
        raise forbidden("you are not a clerk of any office")
    viewer = ctx.principal if ctx.principal.role == Role.EXPERT else None
    async with ctx.services.sessions() as session:
        views = await queue_views(session, authority_ids, office_id, utcnow(), viewer)
    return {"queues": views}


async def _after_take(services: Services, ticket: Ticket, call: Call) -> dict[str, Any]:
    from signaling.flow.interpreters import announce_needed_ring, open_needed_ring

    await push_ticket(services, ticket.id)
    # The customer's interpreting need: the ring starts with the call (issue 17).
    ring = await open_needed_ring(services, call.id)
    view = await announce_call(services, call.id)
    await announce_needed_ring(services, ring)
    await publish_queue_change(services, ticket.authority_id, [ticket.office_id])
    async with services.sessions() as session:
        fresh = await session.get(Ticket, ticket.id)
        assert fresh is not None
        ticket_data = await ticket_view(session, fresh)
    return {"ticket": ticket_data, "call": view}


@on_event("queue:take_next", TakeNext, roles={Role.EXPERT})
async def queue_take_next(ctx: EventContext, data: TakeNext) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        ticket, call = await take_next(
            session,
            ctx.principal,
            data.authority_id,
            data.language,
            utcnow(),
            place_relay(ctx.services),
        )
    return await _after_take(ctx.services, ticket, call)


@on_event("queue:take", TicketRef, roles={Role.EXPERT})
async def queue_take(ctx: EventContext, data: TicketRef) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        ticket, call = await take_ticket(
            session, ctx.principal, data.ticket_id, utcnow(), place_relay(ctx.services)
        )
    return await _after_take(ctx.services, ticket, call)


@on_event("queue:transfer", Transfer, roles={Role.EXPERT})
async def queue_transfer(ctx: EventContext, data: Transfer) -> dict[str, Any]:
    services = ctx.services
    async with services.sessions() as session:
        old, new, ended_call, withdrawn = await transfer_ticket(
            session,
            ctx.principal,
            data.ticket_id,
            data.authority_id,
            data.language,
            utcnow(),
            services.clock(),
        )
    await push_ticket(services, old.id)
    if ended_call is not None:
        await finish_call(services, ended_call, withdrawn, "transferred")
    else:
        await publish_queue_change(services, old.authority_id, [old.office_id])
    await publish_queue_change(services, new.authority_id, [new.office_id])
    async with services.sessions() as session:
        fresh = await session.get(Ticket, new.id)
        assert fresh is not None
        view = await ticket_state(session, fresh, utcnow(), default_seconds(services))
    return {"ticket": view}


# --- flow:sync --------------------------------------------------------------------------------


async def enter_flow_rooms(services: Services, sid: str, principal: Principal) -> None:
    """The rooms of rooms.rooms_for plus this feature's own; idempotent."""
    for room in rooms.rooms_for(principal):
        await services.sio.enter_room(sid, room)
    if principal.role == Role.CLERK and principal.office_id is not None:
        await services.sio.enter_room(sid, clerks_room(principal.office_id))
    await enter_municipal_rooms(services, sid, principal)


# Not the customer at home: his own state is `remote:state` (signaling/flow/remote_customer.py).
@on_event("flow:sync", Empty, roles=set(Role) - {Role.CUSTOMER})
async def flow_sync(ctx: EventContext, _data: Empty) -> dict[str, Any]:
    from signaling.flow.interpreters import interpreting_languages, ringing_for_interpreter
    from signaling.flow.secretary import alerts_of_office, open_alert_of_endpoint

    services, principal = ctx.services, ctx.principal
    await enter_flow_rooms(services, ctx.sid, principal)
    now = utcnow()
    async with services.sessions() as session:
        authorities = await enabled_authorities(session)
        if principal.role == Role.ENDPOINT:
            from signaling.store.models import Office

            office = await session.get(Office, principal.office_id) if principal.office_id else None
            ticket = await waiting_ticket_of_endpoint(session, principal.id)
            call = await active_call_of_endpoint(session, principal.id)
            return {
                "endpoint_id": principal.id,
                "office_id": principal.office_id,
                "office_name": office.name if office else "",
                # The kiosk starts each customer in the office's UI language (fi/sv/en).
                "default_language": office.default_language if office else "fi",
                "ticket": await ticket_state(session, ticket, now, default_seconds(services))
                if ticket
                else None,
                "call": await call_view(session, call) if call else None,
                # What this office offers: its catalogue, each with its service hours now
                # (signaling/flow/office_offer.py); `server_time` is the "now" they were told at.
                "authorities": await kiosk_authorities(
                    session, principal.office_id, authorities, services.clock()
                ),
                "server_time": iso(services.clock()),
                # The language step's interpreting tiles (signaling/flow/interpreters.py).
                "interpreting_languages": await interpreting_languages(session),
                "secretary_alert": await open_alert_of_endpoint(session, principal.id),
                # The `ticket:requeue` still open to this kiosk (its expert was lost).
                "requeue": await requeue_offer_of_endpoint(
                    session, principal.id, now, services.settings.requeue_window_seconds
                ),
            }
        user_call = await active_call_of_user(session, principal.id)
        call_data = await call_view(session, user_call) if user_call else None
        if principal.role == Role.EXPERT:
            mine = [a for a in authorities if a.id in principal.authority_ids]
            unfiled = (
                await session.execute(
                    select(Call)
                    .where(
                        Call.expert_id == principal.id,
                        Call.status == CallStatus.ENDED,
                        Call.record_seq.is_(None),
                    )
                    .order_by(Call.id)
                )
            ).scalars()
            return {
                "user_id": principal.id,
                "authorities": [authority_view(a) for a in mine],
                # Transfer targets: a customer may be sent to any enabled authority's line.
                "all_authorities": [authority_view(a) for a in authorities],
                "queues": await queue_views(
                    session, sorted(principal.authority_ids), None, now, principal
                ),
                "call": call_data,
                "unfiled_calls": [await call_view(session, c) for c in unfiled],
            }
        if principal.role == Role.INTERPRETER:
            return {
                "user_id": principal.id,
                "languages": sorted(principal.languages),
                # Names for the authority codes of alerts and calls.
                "authorities": [authority_view(a) for a in authorities],
                "alerts": await ringing_for_interpreter(session, principal),
                "call": call_data,
            }
        active = select(Call).where(Call.status == CallStatus.ACTIVE).order_by(Call.id)
        if principal.role == Role.CLERK:
            calls = (
                await session.execute(active.where(Call.office_id == principal.office_id))
            ).scalars()
            return {
                "user_id": principal.id,
                "office_id": principal.office_id,
                "authorities": [authority_view(a) for a in authorities],
                "secretary_alerts": await alerts_of_office(session, principal.office_id),
                "calls": [await call_view(session, c) for c in calls],
                "queues": await queue_views(session, None, principal.office_id, now),
            }
        calls = (await session.execute(active)).scalars()
        return {
            "user_id": principal.id,
            "authorities": [authority_view(a) for a in authorities],
            "queues": await queue_views(session, None, None, now),
            "calls": [await call_view(session, c) for c in calls],
        }
