"""Links for the customer at home: `/join/<token>` of a remote appointment (issue 18).

    path = await issue_join_link(session, appointment, now)   # "/join/<token>", caller commits

The token is 256 random bits (URL-safe); only its SHA-256 is stored
(signaling/store/remote_models.py),
so the database holds no usable link. A link opens the appointment's page from `EARLY` before
its start until its end (`starts_at + LENGTH`) plus `GRACE`; it is spent when the customer
enters the waiting room (`consume`), after which only the browser that spent it (its HttpOnly
session cookie) gets in. Issuing a new link for the same appointment (a resent e-mail) leaves
the older ones valid until one of them is spent: an appointment has one customer at home.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.directory.identity import new_secret, sha256_hex
from signaling.store.flow_models import Appointment, AppointmentStatus
from signaling.store.remote_models import JoinToken, RemoteGuest

EARLY = timedelta(minutes=15)  # the link opens this long before the booked time
LENGTH = timedelta(minutes=30)  # an appointment's length when it does not say its own
GRACE = timedelta(minutes=15)  # ... and stays open this long after its end
# A browser that entered keeps its session this long after the link's end (a long call).
SESSION_EXTRA = timedelta(hours=2)
TOKEN_MIN, TOKEN_MAX = 32, 64  # length of a token as the URL carries it (base64url of 32 bytes)


class Refusal(StrEnum):
    """Why a link does not open (the 410 page says it to the customer)."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"
    TOO_EARLY = "too_early"
    USED = "used"
    CANCELLED = "cancelled"


class JoinRefused(Exception):
    def __init__(self, reason: Refusal, opens_at: datetime | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.opens_at = opens_at


def appointment_end(appointment: Appointment) -> datetime:
    ends_at = getattr(appointment, "ends_at", None)
    if isinstance(ends_at, datetime):
        return ends_at
    minutes = getattr(appointment, "duration_minutes", None)
    if isinstance(minutes, int) and minutes > 0:
        return appointment.starts_at + timedelta(minutes=minutes)
    return appointment.starts_at + LENGTH


def window(appointment: Appointment) -> tuple[datetime, datetime]:
    """When a link of this appointment is valid: [from, until)."""
    return appointment.starts_at - EARLY, appointment_end(appointment) + GRACE


async def issue_join_link(session: AsyncSession, appointment: Appointment, now: datetime) -> str:
    """A new single-use link `/join/<token>` for `appointment` (added to `session`; the caller
    commits, e.g. with the booking). The appointment must be saved (have an id)."""
    if appointment.id is None:
        await session.flush()
    if getattr(appointment, "remote", True) is False:
        raise ValueError(f"appointment {appointment.id} is not a remote one")
    token = new_secret()
    valid_from, valid_until = window(appointment)
    session.add(
        JoinToken(
            appointment_id=appointment.id,
            token_hash=sha256_hex(token),
            valid_from=valid_from,
            valid_until=valid_until,
            created_at=now,
        )
    )
    await session.flush()
    return f"/join/{token}"


def plausible_token(token: str) -> bool:
    return TOKEN_MIN <= len(token) <= TOKEN_MAX and all(
        ch.isascii() and (ch.isalnum() or ch in "-_") for ch in token
    )


@dataclass(frozen=True)
class Opened:
    token: JoinToken
    appointment: Appointment
    guest: RemoteGuest | None  # set when this browser already spent the token


async def open_link(
    session: AsyncSession, token: str, now: datetime, session_secret: str | None
) -> Opened:
    """What `/join/<token>` shows to a browser with this session cookie (or none).

    Raises JoinRefused. A browser holding the session of the token's guest gets in even after
    the link's end, while its session lasts."""
    if not plausible_token(token):
        raise JoinRefused(Refusal.UNKNOWN)
    row = (
        await session.execute(select(JoinToken).where(JoinToken.token_hash == sha256_hex(token)))
    ).scalar_one_or_none()
    if row is None:
        raise JoinRefused(Refusal.UNKNOWN)
    appointment = await session.get(Appointment, row.appointment_id)
    if appointment is None:
        raise JoinRefused(Refusal.UNKNOWN)
    guest = (
        await session.execute(
            select(RemoteGuest).where(RemoteGuest.appointment_id == appointment.id)
        )
    ).scalar_one_or_none()
    if guest is not None:
        if (
            session_secret
            and guest.session_hash == sha256_hex(session_secret)
            and guest.token_id == row.id
            and now < guest.expires_at
            and appointment.status != AppointmentStatus.CANCELLED
        ):
            return Opened(row, appointment, guest)
        raise JoinRefused(Refusal.USED)
    if row.used_at is not None:
        raise JoinRefused(Refusal.USED)
    if appointment.status == AppointmentStatus.CANCELLED:
        raise JoinRefused(Refusal.CANCELLED)
    if appointment.status != AppointmentStatus.BOOKED or now >= row.valid_until:
        raise JoinRefused(Refusal.EXPIRED)
    if now < row.valid_from:
        raise JoinRefused(Refusal.TOO_EARLY, opens_at=row.valid_from)
    return Opened(row, appointment, None)


async def consume(
    session: AsyncSession,
    token: str,
    now: datetime,
    *,
    identity_provider: str = "",
    identity_subject: str | None = None,
) -> tuple[RemoteGuest, str]:
    """Spend the token: the customer enters the waiting room. Returns his guest row and the
    secret of his new browser session (set as an HttpOnly cookie). Committed here.

    Raises JoinRefused; of two browsers racing with one link (or two links of one
    appointment), exactly one gets in."""
    opened = await open_link(session, token, now, None)
    row = opened.token
    result = await session.execute(
        update(JoinToken)
        .where(JoinToken.id == row.id, JoinToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        await session.rollback()
        raise JoinRefused(Refusal.USED)
    secret = new_secret()
    guest = RemoteGuest(
        appointment_id=opened.appointment.id,
        token_id=row.id,
        session_hash=sha256_hex(secret),
        expires_at=row.valid_until + SESSION_EXTRA,
        entered_at=now,
        identity_provider=identity_provider,
        identity_subject=identity_subject,
    )
    try:
        async with session.begin_nested():
            session.add(guest)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise JoinRefused(Refusal.USED) from None
    return guest, secret


async def guest_for_session(
    session: AsyncSession, session_secret: str, now: datetime
) -> RemoteGuest | None:
    """The live guest behind a browser session cookie, or None."""
    if not plausible_token(session_secret):
        return None
    guest = (
        await session.execute(
            select(RemoteGuest).where(RemoteGuest.session_hash == sha256_hex(session_secret))
        )
    ).scalar_one_or_none()
    if guest is None or guest.expires_at <= now:
        return None
    return guest
