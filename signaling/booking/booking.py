"""Booking (issue 17): the experts' availability, free slots, booking by the service secretary
and by the customer, cancelling and moving a booking.

- **Availability.** An expert takes booked appointments of an authority at the weekly hours the
  administrator (or he himself) sets (`expert_availability`, service-hours syntax). The slots
  are that ∩ the office's service hours for the authority, cut to the authority's slot length
  (`booking_slot_lengths`, default `booking_slot_minutes`), minus live appointments
  (signaling/flow/free_slots.py). Only experts who serve the language (when they list
  languages) and, for the municipal lines, the office's municipality count.
- **Booking.** `book_slot` picks the least booked free expert of the slot and inserts the
  appointment. Two bookings of the last free slot race in the database: the partial unique
  index `uq_appointments_expert_live_slot` (expert, start; live statuses) lets one insert win,
  the other tries the next free expert of the slot and, when none is left, gets `conflict`
  reason `slot_taken`. Works the same with one process on SQLite and with many on PostgreSQL.
- **Managing.** The customer's messages carry a link `/booking/<token>` (only its SHA-256 is
  stored) and the booking code; the code together with the booking's e-mail address or phone
  number works too. Cancel frees the slot; rebook moves the same appointment (same code) to
  another free slot, guarded by the same index.

Messages (confirmation, reminders, cancellation) go through signaling/booking/booking_outbox.py; a
failure there never fails a booking.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from signaling.db import parse_db_id
from signaling.directory.service_hours import (
    HELSINKI,
    HoursError,
    ServiceHours,
    format_weekly,
    parse_weekly,
)
from signaling.flow import interpreter_reservations as reservations
from signaling.flow.appointments import is_slot_clash, leave_booked, new_code, normalize_code
from signaling.flow.flow_common import (
    SIGN_LANGUAGES,
    FlowError,
    conflict,
    forbidden,
    invalid,
    iso,
    not_found,
    service_types_for,
)
from signaling.flow.free_slots import Booked, Slot, free_slots
from signaling.flow.office_offer import (
    MUNICIPAL_AUTHORITIES,
    catalogue_of,
    municipality_key,
    office_hours,
)
from signaling.store.booking_models import BookingSlotLength, ExpertAvailability
from signaling.store.flow_models import Appointment, AppointmentStatus
from signaling.store.models import Authority, Office, User, UserLanguage, UserRole

LIVE_STATUSES = (AppointmentStatus.BOOKED.value, AppointmentStatus.CHECKED_IN.value)
SERVICE_LANGUAGES = ("fin", "swe", "eng")
# Always offered for interpreting: Finnish and Finland-Swedish Sign Language.
BASE_INTERPRETING = ("fse", "fss")
MESSAGE_LANGUAGES = ("fi", "sv", "en")
MAX_SLOT_DAYS = 14
EMAIL_RE = re.compile(
    r"^[^@\s<>(),;:\"\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,250})\.[A-Za-z]{2,}$"
)
PHONE_RE = re.compile(r"^\+[1-9]\d{6,14}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_manage_token() -> str:
    return secrets.token_urlsafe(24)


# --- contacts -----------------------------------------------------------------------------------


def normalize_email(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    value = text.strip()
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise invalid(f"{value[:60]!r} is not an e-mail address", "bad_email")
    return value


def normalize_phone(text: str | None) -> str | None:
    """A mobile number in international form: "040 123 4567" → "+358401234567"."""
    if text is None or not text.strip():
        return None
    value = re.sub(r"[\s\-().]", "", text.strip())
    if value.startswith("00"):
        value = "+" + value[2:]
    elif value.startswith("0"):
        value = "+358" + value[1:]
    if not PHONE_RE.match(value):
        raise invalid(f"{text.strip()[:40]!r} is not a phone number", "bad_phone")
    return value


# --- availability and slot length (the caller commits) ------------------------------------------


async def find_expert(session: AsyncSession, ref: str | int) -> User:
    if isinstance(ref, int) or str(ref).isdigit():
        # An id beyond the database's integer (or "²") names nobody; PostgreSQL would fail.
        ident = parse_db_id(str(ref))
        user = await session.get(User, ident) if ident is not None else None
    else:
        user = (
            (await session.execute(select(User).where(User.username == str(ref)))).scalars().first()
        )
    if user is None or user.role != UserRole.EXPERT.value:
        raise not_found(f"no expert {ref!r}")
    return user


async def find_authority(session: AsyncSession, ref: str | int) -> Authority:
    if isinstance(ref, int) or str(ref).isdigit():
        ident = parse_db_id(str(ref))  # as in find_expert
        authority = await session.get(Authority, ident) if ident is not None else None
    else:
        authority = (
            (await session.execute(select(Authority).where(Authority.code == str(ref).strip())))
            .scalars()
            .first()
        )
    if authority is None or not authority.enabled:
        raise not_found(f"no authority {ref!r}")
    return authority


async def set_availability(
    session: AsyncSession, expert: User, authority: Authority, weekly: list[str], now: datetime
) -> list[str]:
    """Replace the expert's weekly availability for the authority; returns the normalised
    specs. An empty list removes it."""
    await session.refresh(expert, ["authorities"])
    if authority.id not in {a.id for a in expert.authorities}:
        raise invalid(
            f"{expert.username} is not an expert of {authority.code}", "expert_not_of_authority"
        )
    try:
        pattern = parse_weekly(weekly)
    except HoursError as exc:
        raise invalid(str(exc), "bad_hours") from None
    specs = format_weekly(pattern)
    await session.execute(
        delete(ExpertAvailability).where(
            ExpertAvailability.user_id == expert.id,
            ExpertAvailability.authority_id == authority.id,
        )
    )
    if specs:
        session.add(
            ExpertAvailability(
                user_id=expert.id,
                authority_id=authority.id,
                weekly=json.dumps(specs),
                updated_at=now,
            )
        )
    await session.flush()
    return specs


async def availability_of(
    session: AsyncSession, *, user_id: int | None = None, authority_id: int | None = None
) -> list[dict[str, Any]]:
    query = (
        select(ExpertAvailability, User, Authority)
        .join(User, User.id == ExpertAvailability.user_id)
        .join(Authority, Authority.id == ExpertAvailability.authority_id)
    )
    if user_id is not None:
        query = query.where(ExpertAvailability.user_id == user_id)
    if authority_id is not None:
        query = query.where(ExpertAvailability.authority_id == authority_id)
    rows = await session.execute(query.order_by(User.id, Authority.id))
    return [
        {
            "user_id": user.id,
            "username": user.username,
            "name": user.display_name,
            "authority": authority.code,
            "weekly": json.loads(row.weekly or "[]"),
        }
        for row, user, authority in rows
    ]


async def slot_minutes(session: AsyncSession, authority_id: int, default: int) -> int:
    row = await session.get(BookingSlotLength, authority_id)
    return row.minutes if row is not None else default


async def set_slot_minutes(
    session: AsyncSession, authority: Authority, minutes: int | None
) -> None:
    await session.execute(
        delete(BookingSlotLength).where(BookingSlotLength.authority_id == authority.id)
    )
    if minutes is not None:
        if not 5 <= minutes <= 480:
            raise invalid("a slot is 5 to 480 minutes long", "bad_slot_length")
        session.add(BookingSlotLength(authority_id=authority.id, minutes=minutes))
    await session.flush()


# --- what can be booked -------------------------------------------------------------------------


@dataclass(frozen=True)
class BookingRules:
    """Settings the booking rules need (from Settings; tests make their own)."""

    slot_minutes: int = 30
    min_lead_minutes: int = 60
    days_ahead: int = 28


async def interpreting_languages(session: AsyncSession) -> list[str]:
    """Sign languages fse/fss and the languages the network's interpreters cover."""
    rows = await session.execute(
        select(UserLanguage.code)
        .join(User, User.id == UserLanguage.user_id)
        .where(User.role == UserRole.INTERPRETER.value, User.enabled.is_(True))
        .distinct()
    )
    covered = {code for code in rows.scalars() if code not in ("fin", "swe")}
    signs = [code for code in BASE_INTERPRETING]
    others = sorted(covered - set(signs))
    return (
        signs
        + [c for c in others if c in SIGN_LANGUAGES]
        + [c for c in others if c not in SIGN_LANGUAGES]
    )


async def offered(
    session: AsyncSession, office: Office, authority: Authority, language: str
) -> None:
    """Refuse an authority or language the office's catalogue leaves out."""
    catalogue = await catalogue_of(session, office.id)
    if catalogue is None:
        return
    if authority.id not in catalogue:
        raise forbidden(f"this office does not offer {authority.code}", "not_offered")
    languages = catalogue[authority.id]
    if languages and language not in languages:
        raise forbidden(
            f"{authority.code} is not offered in {language} here", "language_not_offered"
        )


async def bookable_experts(
    session: AsyncSession, office: Office, authority: Authority, language: str
) -> dict[int, ServiceHours]:
    """Expert id → his availability for the authority, for experts who may serve this booking."""
    rows = await session.execute(
        select(ExpertAvailability, User)
        .join(User, User.id == ExpertAvailability.user_id)
        .where(
            ExpertAvailability.authority_id == authority.id,
            User.enabled.is_(True),
            User.role == UserRole.EXPERT.value,
        )
        .options(selectinload(User.languages), selectinload(User.authorities))
    )
    municipal = authority.code in MUNICIPAL_AUTHORITIES
    office_key = municipality_key(office.municipality)
    result: dict[int, ServiceHours] = {}
    for availability, user in rows:
        if authority.id not in {a.id for a in user.authorities}:
            continue
        spoken = {lang.code for lang in user.languages}
        if spoken and language not in spoken:
            continue
        if municipal and (office_key is None or municipality_key(user.municipality) != office_key):
            continue
        weekly = parse_weekly(json.loads(availability.weekly or "[]"))
        result[user.id] = ServiceHours(weekly=weekly)
    return result


async def live_bookings(
    session: AsyncSession, expert_ids: list[int], start: datetime, end: datetime, default: timedelta
) -> list[Booked]:
    if not expert_ids:
        return []
    rows = await session.execute(
        select(Appointment).where(
            Appointment.expert_id.in_(expert_ids),
            Appointment.status.in_(LIVE_STATUSES),
            Appointment.starts_at < end,
            Appointment.starts_at > start - timedelta(hours=12),
        )
    )
    result = []
    for a in rows.scalars():
        assert a.expert_id is not None
        result.append(Booked(a.expert_id, a.starts_at, a.ends_at or a.starts_at + default))
    return result


async def slots_for(
    session: AsyncSession,
    office: Office,
    authority: Authority,
    language: str,
    start: datetime,
    end: datetime,
    now: datetime,
    rules: BookingRules,
    interpreting: str | None = None,
) -> list[Slot]:
    """The free slots of an authority at an office in a language, within [start, end) and the
    booking window (from now + lead to now + days ahead); with an interpreting need, only those
    at which an interpreter of it is free (signaling/flow/interpreter_reservations.py)."""
    start = max(start, now + timedelta(minutes=rules.min_lead_minutes))
    end = min(end, now + timedelta(days=rules.days_ahead))
    if end <= start:
        return []
    # Slots are cut from local midnight on, so they stay on the grid (09:00, 09:30, …).
    local = start.astimezone(HELSINKI).date()
    grid = datetime(local.year, local.month, local.day, tzinfo=HELSINKI)
    experts = await bookable_experts(session, office, authority, language)
    length = timedelta(minutes=await slot_minutes(session, authority.id, rules.slot_minutes))
    hours = (await office_hours(session, office.id)).get(authority.id)
    booked = await live_bookings(session, sorted(experts), grid, end, length)
    slots = free_slots(experts, hours, booked, length, grid, end, not_before=start)
    if interpreting is not None:
        slots = await reservations.slots_with_interpreter(session, slots, interpreting)
    return slots


def slot_view(slot: Slot) -> dict[str, Any]:
    return {
        "starts_at": iso(slot.starts_at),
        "ends_at": iso(slot.ends_at),
        "local": slot.starts_at.astimezone(HELSINKI).isoformat(),
    }


# --- booking ------------------------------------------------------------------------------------


@dataclass
class BookingRequest:
    office_id: int
    authority: str | int
    service_type: str
    language: str
    starts_at: datetime
    contact_email: str | None = None
    contact_phone: str | None = None
    message_language: str = "fi"
    remote: bool = False
    interpreting: str | None = None
    via: str = "customer"
    booked_by: int | None = None


@dataclass
class Booking:
    appointment: Appointment
    # The manage link's token: only here and in the answer to the booking (never stored).
    token: str


async def _checked_request(
    session: AsyncSession, request: BookingRequest
) -> tuple[Office, Authority]:
    office = await session.get(Office, request.office_id)
    if office is None or not office.enabled:
        raise not_found(f"no office {request.office_id}", "no_office")
    authority = await find_authority(session, request.authority)
    if request.service_type not in {t.code for t in service_types_for(authority.code)}:
        raise invalid(
            f"{request.service_type!r} is not a service of {authority.code}",
            "unknown_service_type",
        )
    if request.message_language not in MESSAGE_LANGUAGES:
        raise invalid("messages are written in fi, sv or en", "bad_message_language")
    if request.interpreting is not None:
        if request.interpreting not in await interpreting_languages(session):
            raise invalid(
                f"no interpreting in {request.interpreting!r}", "interpreting_not_offered"
            )
    await offered(session, office, authority, request.language)
    return office, authority


async def _free_experts_at(
    session: AsyncSession,
    office: Office,
    authority: Authority,
    language: str,
    starts_at: datetime,
    now: datetime,
    rules: BookingRules,
) -> Slot:
    slots = await slots_for(
        session,
        office,
        authority,
        language,
        starts_at,
        starts_at + timedelta(minutes=480),
        now,
        rules,
    )
    for slot in slots:
        if slot.starts_at == starts_at:
            return slot
        if slot.starts_at > starts_at:
            break
    raise conflict("this time is not free; choose another", "slot_taken")


async def book_slot(
    session: AsyncSession, request: BookingRequest, now: datetime, rules: BookingRules
) -> Booking:
    """Book a free slot with an expert chosen here (committed); `conflict` `slot_taken` when the
    slot was or became taken."""
    office, authority = await _checked_request(session, request)
    email = normalize_email(request.contact_email)
    phone = normalize_phone(request.contact_phone)
    if request.via == "customer" and email is None and phone is None:
        raise invalid("give an e-mail address or a mobile number", "no_contact")
    starts_at = request.starts_at
    slot = await _free_experts_at(
        session, office, authority, request.language, starts_at, now, rules
    )
    if request.interpreting is not None and not await reservations.free_interpreters(
        session, request.interpreting, slot.starts_at, slot.ends_at
    ):
        raise _no_interpreter(request.interpreting)
    token = new_manage_token()
    for expert_id in slot.experts:
        for _attempt in range(4):
            appointment = Appointment(
                code=new_code(),
                authority_id=authority.id,
                office_id=office.id,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                language=request.language,
                service_type=request.service_type,
                expert_id=expert_id,
                status=AppointmentStatus.BOOKED.value,
                booked_by=request.booked_by,
                booked_via=request.via,
                created_at=now,
                contact_email=email,
                contact_phone=phone,
                message_language=request.message_language,
                remote=request.remote,
                interpreting=request.interpreting,
                manage_token_hash=token_hash(token),
                sequence=0,
            )
            try:
                async with session.begin_nested():
                    session.add(appointment)
                    if request.interpreting is not None:
                        # In the same savepoint (on SQLite releasing the first savepoint
                        # commits): no interpreter, no booking.
                        await session.flush()
                        await reservations.reserve(session, appointment, request.interpreting, now)
                await session.commit()
                return Booking(appointment, token)
            except FlowError:
                await session.rollback()
                raise
            except IntegrityError as exc:
                if is_slot_clash(exc) or await _taken(session, expert_id, slot.starts_at):
                    break  # this expert went to someone else at this moment: try the next
                continue  # a booking code collision: draw another
    raise conflict("this time was just taken; choose another", "slot_taken")


def _no_interpreter(language: str) -> FlowError:
    return conflict(
        f"no interpreter of {language} is free at this time; choose another time",
        "no_interpreter",
    )


async def _taken(session: AsyncSession, expert_id: int, starts_at: datetime) -> bool:
    found = await session.execute(
        select(func.count())
        .select_from(Appointment)
        .where(
            Appointment.expert_id == expert_id,
            Appointment.starts_at == starts_at,
            Appointment.status.in_(LIVE_STATUSES),
        )
    )
    return int(found.scalar_one()) > 0


# --- finding and managing a booking ------------------------------------------------------------


async def by_token(session: AsyncSession, token: str) -> Appointment:
    found = (
        (
            await session.execute(
                select(Appointment).where(Appointment.manage_token_hash == token_hash(token))
            )
        )
        .scalars()
        .first()
    )
    if found is None:
        # A later message's link (a reminder, a move): signaling/booking/booking_links.py.
        from signaling.booking.booking_links import appointment_for

        found = await appointment_for(session, token)
    if found is None:
        raise not_found("no booking for this link", "booking_unknown")
    return found


async def by_code(session: AsyncSession, code_text: str, contact: str) -> Appointment:
    """The booking with this code whose e-mail or phone is `contact` (compared without case
    and in the phone's international form); one answer for every mismatch."""
    code = normalize_code(code_text)
    unknown = not_found("no booking with this code and contact", "booking_unknown")
    if code is None or not contact.strip():
        raise unknown
    found = (
        (await session.execute(select(Appointment).where(Appointment.code == code)))
        .scalars()
        .first()
    )
    if found is None:
        raise unknown
    given = contact.strip()
    candidates = []
    if found.contact_email:
        candidates.append((found.contact_email.casefold(), given.casefold()))
    if found.contact_phone:
        try:
            phone = normalize_phone(given) or ""
        except Exception:
            phone = ""
        candidates.append((found.contact_phone, phone))
    if not any(hmac.compare_digest(a.encode(), b.encode()) for a, b in candidates):
        raise unknown
    return found


def _open_for_change(appointment: Appointment, now: datetime) -> None:
    if appointment.status != AppointmentStatus.BOOKED.value:
        raise conflict("this booking can no longer be changed", "not_booked")
    if appointment.starts_at <= now:
        raise conflict("the booked time has passed", "in_past")


async def cancel_booking(session: AsyncSession, appointment: Appointment, now: datetime) -> None:
    _open_for_change(appointment, now)
    # leave_booked releases the interpreter reservation too (every cancel path does).
    if not await leave_booked(session, appointment.id, AppointmentStatus.CANCELLED, now):
        await session.rollback()
        raise conflict("this booking can no longer be changed", "not_booked")
    await session.commit()
    await session.refresh(appointment)


async def rebook(
    session: AsyncSession,
    appointment: Appointment,
    starts_at: datetime,
    now: datetime,
    rules: BookingRules,
) -> None:
    """Move the booking (same code, same link) to another free slot (committed)."""
    _open_for_change(appointment, now)
    office = await session.get(Office, appointment.office_id)
    authority = await session.get(Authority, appointment.authority_id)
    if office is None or authority is None:
        raise not_found("the booking's office or authority is gone", "booking_unknown")
    slot = await _free_experts_at(
        session, office, authority, appointment.language, starts_at, now, rules
    )
    need = appointment.interpreting
    before = await reservations.reserved_interpreter(session, appointment.id)
    if need is not None and not await reservations.free_interpreters(
        session, need, slot.starts_at, slot.ends_at, except_appointment=appointment.id
    ):
        raise _no_interpreter(need)
    for expert_id in slot.experts:
        try:
            async with session.begin_nested():
                result = await session.execute(
                    update(Appointment)
                    .where(
                        Appointment.id == appointment.id,
                        Appointment.status == AppointmentStatus.BOOKED,
                    )
                    .values(
                        starts_at=slot.starts_at,
                        ends_at=slot.ends_at,
                        expert_id=expert_id,
                        sequence=Appointment.sequence + 1,
                    )
                    .execution_options(synchronize_session=False)
                )
                if int(getattr(result, "rowcount", 0) or 0) != 1:
                    raise conflict("this booking can no longer be changed", "not_booked")
                if need is not None:
                    # Move the interpreter's reservation too (him again when he is free
                    # then), in the same savepoint as the move.
                    await session.refresh(appointment)
                    await reservations.reserve(session, appointment, need, now, prefer=before)
            await session.commit()
            await session.refresh(appointment)
            return
        except IntegrityError:
            continue
    await session.rollback()
    raise conflict("this time was just taken; choose another", "slot_taken")


async def booking_view(session: AsyncSession, appointment: Appointment) -> dict[str, Any]:
    """What the customer sees of his booking (no expert, no internal ids but the code)."""
    authority = await session.get(Authority, appointment.authority_id)
    office = await session.get(Office, appointment.office_id)
    service = next(
        (
            t
            for t in service_types_for(authority.code if authority else "")
            if t.code == appointment.service_type
        ),
        None,
    )
    return {
        "code": appointment.code,
        "status": appointment.status,
        "office_id": appointment.office_id,
        "office_name": office.name if office else "",
        "authority": authority.code if authority else "",
        "authority_name": (
            {"fi": authority.name_fi, "sv": authority.name_sv, "en": authority.name_en}
            if authority
            else {}
        ),
        "service_type": appointment.service_type,
        "service_name": service.view()["name"] if service else {},
        "language": appointment.language,
        "starts_at": iso(appointment.starts_at),
        "ends_at": iso(appointment.ends_at),
        "remote": appointment.remote,
        "interpreting": appointment.interpreting,
        "message_language": appointment.message_language,
        "has_email": bool(appointment.contact_email),
        "has_phone": bool(appointment.contact_phone),
    }


__all__ = [
    "Booking",
    "BookingRequest",
    "BookingRules",
    "book_slot",
    "by_code",
    "by_token",
    "cancel_booking",
    "rebook",
    "set_availability",
    "slots_for",
]
