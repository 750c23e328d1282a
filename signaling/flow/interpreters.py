"""The interpreting ring: alert every available interpreter of a language; first to accept wins.

Accepting is a conditional UPDATE on `status = 'ringing'`, so of two interpreters pressing
at once exactly one joins the call; the other gets `conflict` and everyone else's alert is
withdrawn. An interpreter who leaves (`call:leave`) does not end the call.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from signaling.db import DbId, utcnow
from signaling.directory.principals import Principal, Role
from signaling.flow.calls import active_call_of_user, load_call, push_participants
from signaling.flow.flow_common import (
    LANGUAGE_PATTERN,
    call_room,
    call_view,
    conflict,
    dump_ids,
    forbidden,
    invalid,
    load_ids,
    not_found,
    participant_id_for,
    request_view,
)
from signaling.store.flow_models import (
    Call,
    CallParticipant,
    CallStatus,
    InterpreterRequest,
    ParticipantRole,
    RequestStatus,
    Ticket,
)
from signaling.store.models import User, UserLanguage, UserPresence, UserRole
from signaling.transport import rooms
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.transport.services import Services

# --- domain -----------------------------------------------------------------------------------


async def available_interpreters(
    session: AsyncSession, language: str, online_ids: set[int] | None = None
) -> list[User]:
    """Interpreters of `language` who said they are available, are online and not in a call.

    `online_ids` adds people connected to this process (the presence flag in the database
    may lag behind a fresh connection).
    """
    rows = await session.execute(
        select(User)
        .join(UserLanguage, UserLanguage.user_id == User.id)
        .where(
            User.role == UserRole.INTERPRETER,
            User.enabled.is_(True),
            User.presence == UserPresence.AVAILABLE,
            UserLanguage.code == language,
        )
        .options(selectinload(User.languages))
        .order_by(User.id)
    )
    result = []
    for user in rows.scalars().unique():
        if not (user.online or (online_ids is not None and user.id in online_ids)):
            continue
        if await active_call_of_user(session, user.id) is not None:
            continue
        result.append(user)
    return result


def _may_request(principal: Principal, call: Call) -> None:
    if principal.role == Role.EXPERT and call.expert_id == principal.id:
        return
    if principal.role == Role.CLERK and principal.office_id == call.office_id:
        return
    raise forbidden("only the call's expert or a clerk of its office may ask for an interpreter")


async def request_interpreter(
    session: AsyncSession,
    principal: Principal,
    call_id: int,
    language: str,
    now: datetime,
    online_ids: set[int] | None = None,
) -> tuple[InterpreterRequest, list[int]]:
    """Open a ring for `language`; returns the request and the alerted interpreters' ids."""
    call = await load_call(session, call_id)
    _may_request(principal, call)
    if call.status != CallStatus.ACTIVE:
        raise conflict(f"call {call.id} has ended", "call_ended")
    ringing = (
        await session.execute(
            select(InterpreterRequest.id).where(
                InterpreterRequest.call_id == call.id,
                InterpreterRequest.language == language,
                InterpreterRequest.status == RequestStatus.RINGING,
            )
        )
    ).first()
    if ringing is not None:
        raise conflict(f"an interpreter of {language} is already being called", "already_ringing")
    alerted = [u.id for u in await available_interpreters(session, language, online_ids)]
    request = InterpreterRequest(
        call_id=call.id,
        language=language,
        status=RequestStatus.RINGING.value,
        requested_at=now,
        requested_by_kind=principal.kind,
        requested_by_id=principal.id,
        requested_by_name=principal.name,
        alerted=dump_ids(alerted),
        declined="[]",
    )
    session.add(request)
    await session.commit()
    return request, alerted


async def accept_request(
    session: AsyncSession, interpreter: Principal, request_id: int, now: datetime
) -> tuple[InterpreterRequest, Call]:
    """The interpreter takes the request and becomes a participant (committed here)."""
    request = await session.get(InterpreterRequest, request_id)
    if request is None:
        raise not_found(f"no interpreter request {request_id}")
    if request.language not in interpreter.languages:
        raise forbidden(f"you do not interpret {request.language}", "language")
    if request.status == RequestStatus.ACCEPTED:
        raise conflict("another interpreter already accepted", "taken")
    if request.status == RequestStatus.CANCELLED:
        raise conflict("the request was withdrawn", "cancelled")
    call = await load_call(session, request.call_id)
    if call.status != CallStatus.ACTIVE:
        raise conflict(f"call {call.id} has ended", "call_ended")
    current = await active_call_of_user(session, interpreter.id)
    if current is not None and current.id != call.id:
        raise conflict("you are in another call", "in_call")
    result = await session.execute(
        update(InterpreterRequest)
        .where(
            InterpreterRequest.id == request_id,
            InterpreterRequest.status == RequestStatus.RINGING,
        )
        .values(
            status=RequestStatus.ACCEPTED.value,
            accepted_by=interpreter.id,
            accepted_by_name=interpreter.name,
            accepted_at=now,
            closed_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        await session.rollback()
        raise conflict("another interpreter already accepted", "taken")
    pid = participant_id_for("user", interpreter.id, ParticipantRole.INTERPRETER)
    existing = (
        (
            await session.execute(
                select(CallParticipant).where(
                    CallParticipant.call_id == call.id, CallParticipant.participant_id == pid
                )
            )
        )
        .scalars()
        .first()
    )
    if existing is None:
        session.add(
            CallParticipant(
                call_id=call.id,
                participant_id=pid,
                kind="user",
                principal_id=interpreter.id,
                role=ParticipantRole.INTERPRETER.value,
                name=interpreter.name,
                language=request.language,
                added_at=now,
            )
        )
    else:
        existing.left_at = None
        existing.connected = False
        # back in the call: no longer "left" (the watchdog counts from his join, not before)
        existing.gone_reason = None
        existing.disconnected_at = None
        existing.language = request.language
    await session.commit()
    fresh = await session.get(InterpreterRequest, request_id, populate_existing=True)
    assert fresh is not None
    return fresh, call


async def cancel_request(
    session: AsyncSession, principal: Principal, request_id: int, now: datetime
) -> InterpreterRequest:
    request = await session.get(InterpreterRequest, request_id)
    if request is None:
        raise not_found(f"no interpreter request {request_id}")
    call = await load_call(session, request.call_id)
    _may_request(principal, call)
    result = await session.execute(
        update(InterpreterRequest)
        .where(
            InterpreterRequest.id == request_id,
            InterpreterRequest.status == RequestStatus.RINGING,
        )
        .values(status=RequestStatus.CANCELLED.value, closed_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        await session.rollback()
        raise conflict("the request is not ringing any more", "not_ringing")
    await session.commit()
    fresh = await session.get(InterpreterRequest, request_id, populate_existing=True)
    assert fresh is not None
    return fresh


async def ringing_for_interpreter(
    session: AsyncSession, interpreter: Principal
) -> list[dict[str, Any]]:
    """Ringing requests of his languages that he has not declined (for `flow:sync`)."""
    if not interpreter.languages:
        return []
    rows = await session.execute(
        select(InterpreterRequest)
        .join(Call, Call.id == InterpreterRequest.call_id)
        .where(
            InterpreterRequest.status == RequestStatus.RINGING,
            InterpreterRequest.language.in_(sorted(interpreter.languages)),
            Call.status == CallStatus.ACTIVE,
        )
        .order_by(InterpreterRequest.requested_at)
    )
    return [
        await request_view(session, r)
        for r in rows.scalars()
        if interpreter.id not in load_ids(r.declined)
    ]


# --- the customer's interpreting need (issue 17) ----------------------------------------------

# The service languages the expert speaks himself: never an interpreting need.
SERVICE_LANGUAGES = frozenset({"fin", "swe", "eng"})
# Offered at every kiosk whether or not an interpreter of them is on the network.
KIOSK_SIGN_LANGUAGES = ("fse", "fss")

# A language's own name (endonym) for the kiosk's tile, the BCP 47 tag of that name's text,
# and a short sample of its script for the tile's speech bubble. A language missing here is
# shown by its name in the kiosk's UI language.
ENDONYMS: dict[str, tuple[str, str, str]] = {
    "fse": ("suomalainen viittomakieli", "fi", ""),
    "fss": ("finlandssvenskt teckenspråk", "sv", ""),
    "ara": ("العربية", "ar", "ع"),
    "rus": ("Русский", "ru", "Я"),
    "ukr": ("Українська", "uk", "Ї"),
    "est": ("Eesti", "et", "Õ"),
    "som": ("Soomaali", "so", "Aa"),
    "fas": ("فارسی", "fa", "ف"),
    "prs": ("دری", "prs", "د"),
    "pus": ("پښتو", "ps", "ښ"),
    "ckb": ("کوردی", "ckb", "ک"),
    "kmr": ("Kurmancî", "kmr", "Aa"),
    "tur": ("Türkçe", "tr", "Ğ"),
    "vie": ("Tiếng Việt", "vi", "Ư"),
    "tha": ("ไทย", "th", "ก"),
    "zho": ("中文", "zh", "中"),
    "cmn": ("中文", "zh", "中"),
    "sqi": ("Shqip", "sq", "Ë"),
    "pol": ("Polski", "pl", "Ł"),
    "deu": ("Deutsch", "de", "ß"),
    "fra": ("Français", "fr", "Ç"),
    "spa": ("Español", "es", "Ñ"),
    "por": ("Português", "pt", "Ã"),
    "tir": ("ትግርኛ", "ti", "ት"),
    "amh": ("አማርኛ", "am", "አ"),
    "ben": ("বাংলা", "bn", "ব"),
    "hin": ("हिन्दी", "hi", "ह"),
    "urd": ("اردو", "ur", "ا"),
    "nep": ("नेपाली", "ne", "न"),
    "swa": ("Kiswahili", "sw", "Aa"),
    "tgl": ("Tagalog", "tl", "Aa"),
    "bul": ("Български", "bg", "Б"),
    "srp": ("Српски", "sr", "Ђ"),
    "hrv": ("Hrvatski", "hr", "Č"),
    "bos": ("Bosanski", "bs", "Č"),
    "ron": ("Română", "ro", "Ă"),
    "hun": ("Magyar", "hu", "Ő"),
    "lit": ("Lietuvių", "lt", "Ė"),
    "lav": ("Latviešu", "lv", "Ā"),
    "ita": ("Italiano", "it", "Aa"),
    "jpn": ("日本語", "ja", "あ"),
    "kor": ("한국어", "ko", "한"),
    "sme": ("davvisámegiella", "se", "Á"),
    "smn": ("anarâškielâ", "smn", "Â"),
    "sms": ("sääʹmǩiõll", "sms", "Ǩ"),
    "rmf": ("kaalengo tšimb", "rmf", "Š"),
}
RTL_LANGUAGES = frozenset({"ara", "fas", "prs", "pus", "ckb", "urd"})


def interpreting_view(code: str) -> dict[str, Any]:
    """A kiosk tile: the language's own name (None when unknown: the kiosk names it)."""
    from signaling.flow.flow_common import SIGN_LANGUAGES

    name, tag, sample = ENDONYMS.get(code, (None, code, ""))
    return {
        "code": code,
        "own_name": name,
        "lang": tag,
        "dir": "rtl" if code in RTL_LANGUAGES else "ltr",
        "sample": sample,
        "sign_language": code in SIGN_LANGUAGES,
    }


async def interpreting_codes(session: AsyncSession) -> list[str]:
    """fse and fss, then the other languages enabled interpreters cover (not fin/swe/eng)."""
    rows = await session.execute(
        select(UserLanguage.code)
        .join(User, User.id == UserLanguage.user_id)
        .where(User.role == UserRole.INTERPRETER, User.enabled.is_(True))
        .distinct()
    )
    covered = set(rows.scalars()) - SERVICE_LANGUAGES - set(KIOSK_SIGN_LANGUAGES)
    from signaling.flow.flow_common import SIGN_LANGUAGES

    # Other sign languages first, then the spoken ones, each by code.
    ordered = sorted(covered, key=lambda c: (c not in SIGN_LANGUAGES, c))
    return [*KIOSK_SIGN_LANGUAGES, *ordered]


async def interpreting_languages(session: AsyncSession) -> list[dict[str, Any]]:
    """The kiosk's interpreting tiles (`flow:sync` of a kiosk: `interpreting_languages`)."""
    return [interpreting_view(code) for code in await interpreting_codes(session)]


async def check_interpreting(session: AsyncSession, code: str | None) -> str | None:
    """The need a kiosk asked for, if the network interprets it; `invalid` otherwise."""
    if code is None:
        return None
    if code not in await interpreting_codes(session):
        raise invalid(
            f"no interpreting in {code!r}: choose one of the kiosk's interpreting languages",
            "interpreting_unknown",
        )
    return code


async def open_needed_ring(services: Services, call_id: int) -> tuple[int, list[int]] | None:
    """The call's ticket asks for an interpreter: open the ring in the expert's name, as if
    he had pressed "Call an interpreter" (committed; before `call:started`, so every view of
    the new call shows it ringing). Returns (request id, alerted ids) or None."""
    now = utcnow()
    async with services.sessions() as session:
        call = await session.get(Call, call_id)
        if call is None or call.ticket_id is None or call.expert_id is None:
            return None
        ticket = await session.get(Ticket, call.ticket_id)
        need = ticket.interpreting if ticket is not None else None
        if not need or call.status != CallStatus.ACTIVE:
            return None
        existing = (
            await session.execute(
                select(InterpreterRequest.id).where(
                    InterpreterRequest.call_id == call.id,
                    InterpreterRequest.language == need,
                    InterpreterRequest.status != RequestStatus.CANCELLED,
                )
            )
        ).first()
        if existing is not None:
            return None
        expert = await session.get(User, call.expert_id)
        alerted = [
            u.id for u in await available_interpreters(session, need, _online_users(services))
        ]
        # A booked interpreter (signaling/flow/interpreter_reservations.py) is alerted first, alone;
        # the others when he declines or after RESERVED_FIRST_SECONDS.
        from signaling.flow import interpreter_reservations as reservations

        reserved = await reservations.reserved_interpreter(
            session, ticket.appointment_id if ticket is not None else None
        )
        reserved_first = False
        if reserved is not None and reserved in alerted and len(alerted) > 1:
            reserved_first = True
            alerted = [reserved]
        request = InterpreterRequest(
            call_id=call.id,
            language=need,
            status=RequestStatus.RINGING.value,
            requested_at=now,
            requested_by_kind="user",
            requested_by_id=call.expert_id,
            requested_by_name=expert.display_name if expert is not None else "",
            alerted=dump_ids(alerted),
            declined="[]",
            # The deadline is kept with the ring: any process's sweep widens it if this
            # process's timer never fires.
            widen_at=(
                now + timedelta(seconds=reservations.RESERVED_FIRST_SECONDS)
                if reserved_first
                else None
            ),
        )
        session.add(request)
        await session.commit()
        if reserved_first:
            reservations.widen_later(services, request.id)
        return request.id, alerted


async def announce_needed_ring(services: Services, ring: tuple[int, list[int]] | None) -> None:
    """After `call:started`: alert the interpreters and tell the expert how many were reached
    (`interpreter:update` with `alerted`; 0 makes his console say nobody is free)."""
    if ring is None:
        return
    request_id, alerted = ring
    async with services.sessions() as session:
        request = await session.get(InterpreterRequest, request_id)
        if request is None:
            return
        view = await request_view(session, request)
    if alerted:
        await services.sio.emit(
            "interpreter:alert", {"request": view}, room=[rooms.user(u) for u in alerted]
        )
    await push_request_update(services, request_id, alerted=len(alerted), automatic=True)


# --- pushes -----------------------------------------------------------------------------------

# To the winner's own other consoles: drop the ring he took, quietly (not "someone else took it").
ACCEPTED_ELSEWHERE_PUSH = "interpreter:accepted_elsewhere"


async def push_withdrawn(
    services: Services, request: InterpreterRequest, reason: str, except_user: int | None = None
) -> None:
    """`interpreter:withdrawn` to the alerted interpreters and to every interpreter of the
    language (those who saw the ring through `flow:sync` drop it too), `except_user` left out.

    The winner of a ring is left out as a person: the push goes to the `user:<id>` rooms of the
    others, which reach their sockets on every process, rather than to `language:<code>`
    minus his sockets (`skip_sid` names sockets of this process only, so his consoles on other
    processes would hear "taken" for the ring he took). He hears "accepted" from his ack, his
    other consoles `interpreter:accepted_elsewhere`."""
    async with services.sessions() as session:
        speakers = await session.scalars(
            select(UserLanguage.user_id)
            .join(User, User.id == UserLanguage.user_id)
            .where(UserLanguage.code == request.language, User.role == UserRole.INTERPRETER)
        )
        people = set(load_ids(request.alerted)) | set(speakers)
    if except_user is not None:
        people.discard(except_user)
    if not people:
        return
    payload = {"request_id": request.id, "reason": reason}
    targets = [rooms.user(u) for u in sorted(people)]
    await services.sio.emit("interpreter:withdrawn", payload, room=targets)


async def push_accepted_elsewhere(
    services: Services, request_id: int, winner: int, accepting_sid: str
) -> None:
    """`interpreter:accepted_elsewhere` to the winner's other sockets (another tab or device,
    on any process): their alert goes without waiting for their next `flow:sync`. The socket
    that accepted is skipped (the pub/sub manager carries `skip_sid` to every process): it is
    entering the call and has its ack."""
    await services.sio.emit(
        ACCEPTED_ELSEWHERE_PUSH,
        {"request_id": request_id},
        room=rooms.user(winner),
        skip_sid=accepting_sid,
    )


async def push_request_update(services: Services, request_id: int, **extra: Any) -> None:
    """`interpreter:update` to the call, its expert and the requester (`extra` fields added)."""
    async with services.sessions() as session:
        request = await session.get(InterpreterRequest, request_id)
        if request is None:
            return
        view = await request_view(session, request)
    call = await _call_of(services, view["call_id"])
    targets = [call_room(view["call_id"])]
    if call is not None and call.expert_id is not None:
        targets.append(rooms.user(call.expert_id))
    if view["requested_by"]["kind"] == "user":
        targets.append(rooms.user(view["requested_by"]["id"]))
    await services.sio.emit("interpreter:update", {"request": view, **extra}, room=targets)


async def _call_of(services: Services, call_id: int) -> Call | None:
    async with services.sessions() as session:
        return await session.get(Call, call_id)


# --- events -----------------------------------------------------------------------------------


class RequestPayload(EventModel):
    call_id: DbId
    language: str = Field(pattern=LANGUAGE_PATTERN)


class RequestRef(EventModel):
    request_id: DbId


def _online_users(services: Services) -> set[int]:
    return {ident for (kind, ident) in services.connections.by_principal if kind == "user"}


@on_event("interpreter:request", RequestPayload, roles={Role.EXPERT, Role.CLERK})
async def interpreter_request(ctx: EventContext, data: RequestPayload) -> dict[str, Any]:
    services = ctx.services
    async with services.sessions() as session:
        request, alerted = await request_interpreter(
            session,
            ctx.principal,
            data.call_id,
            data.language,
            utcnow(),
            _online_users(services),
        )
        view = await request_view(session, request)
    if alerted:
        await services.sio.emit(
            "interpreter:alert", {"request": view}, room=[rooms.user(u) for u in alerted]
        )
    await push_request_update(services, request.id)
    return {"request": view, "alerted": len(alerted)}


@on_event("interpreter:accept", RequestRef, roles={Role.INTERPRETER})
async def interpreter_accept(ctx: EventContext, data: RequestRef) -> dict[str, Any]:
    services = ctx.services
    async with services.sessions() as session:
        request, call = await accept_request(session, ctx.principal, data.request_id, utcnow())
        view = await request_view(session, request)
        call_data = await call_view(session, await load_call(session, call.id))
    await push_withdrawn(services, request, "taken", except_user=ctx.principal.id)
    await push_accepted_elsewhere(services, request.id, ctx.principal.id, ctx.sid)
    await push_request_update(services, request.id)
    await push_participants(services, call.id)
    return {"request": view, "call": call_data}


@on_event("interpreter:decline", RequestRef, roles={Role.INTERPRETER})
async def interpreter_decline(ctx: EventContext, data: RequestRef) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        request = await session.get(InterpreterRequest, data.request_id)
        if request is None:
            raise not_found(f"no interpreter request {data.request_id}")
        declined = load_ids(request.declined)
        if ctx.principal.id not in declined:
            request.declined = dump_ids([*declined, ctx.principal.id])
            await session.commit()
        everyone_declined = request.status == RequestStatus.RINGING and set(
            load_ids(request.alerted)
        ) <= set(load_ids(request.declined))
    if everyone_declined:
        # The reserved interpreter alone was alerted and said no: ring the others now.
        from signaling.flow.interpreter_reservations import widen_ring

        await widen_ring(ctx.services, data.request_id)
    return {}


@on_event("interpreter:cancel", RequestRef, roles={Role.EXPERT, Role.CLERK})
async def interpreter_cancel(ctx: EventContext, data: RequestRef) -> dict[str, Any]:
    services = ctx.services
    async with services.sessions() as session:
        request = await cancel_request(session, ctx.principal, data.request_id, utcnow())
        view = await request_view(session, request)
    await push_withdrawn(services, request, "cancelled")
    await push_request_update(services, request.id)
    return {"request": view}


# --- a dead process's interpreters --------------------------------------------------------------


async def interpreter_lost(services: Services, kind: str, ident: int) -> None:
    """The lease sweeper (signaling/flow/leases.py) found this person's last socket on a dead
    process: he no longer counts as alerted in the rings of active calls (he stays free to
    accept after reconnecting: `flow:sync` still lists the ring), and the call's expert and
    requester get `interpreter:update` with how many interpreters are still alerted."""
    if kind != "user":
        return
    changed: list[tuple[int, int]] = []
    async with services.sessions() as session:
        user = await session.get(User, ident)
        if user is None or user.role != UserRole.INTERPRETER:
            return
        rows = await session.execute(
            select(InterpreterRequest)
            .join(Call, Call.id == InterpreterRequest.call_id)
            .where(
                InterpreterRequest.status == RequestStatus.RINGING,
                Call.status == CallStatus.ACTIVE,
            )
        )
        for request in rows.scalars():
            alerted = load_ids(request.alerted)
            if ident in alerted:
                left = [u for u in alerted if u != ident]
                request.alerted = dump_ids(left)
                declined = set(load_ids(request.declined))
                changed.append((request.id, len([u for u in left if u not in declined])))
        await session.commit()
    for request_id, still_alerted in changed:
        await push_request_update(services, request_id, alerted=still_alerted)


def setup(_app: Any, services: Services) -> None:
    from signaling.flow.leases import leases_of

    found = leases_of(services)
    if found is not None:
        found.on_lost(interpreter_lost)
