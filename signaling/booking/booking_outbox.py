"""Confirmations and reminders of bookings: an outbox in the database (`booking_messages`).

A booking, a move or a cancellation queues one row per channel the customer gave (e-mail,
SMS); the sweep of every signaling process queues the reminders (`booking_reminder_hours`
before the booked time; the unique key (appointment, kind, channel, booked time) makes each
one once however many processes sweep) and sends what is due. A process claims a row with a
conditional UPDATE (`pending` → `sending`) before sending, so two processes never send one
row. A failed send is logged and tried again later (1, 2, 4 … minutes), at most
`booking_send_attempts` times; a booking never fails because of its messages.

Every message but the cancellation carries a manage link `/booking/<token>` and the booking
code. A row holds no token: the link's token is made when the message is sent, with a fresh
token per message of which only the hash is kept (signaling/booking/booking_links.py), so the
database never holds a token that opens a booking, not even while a message waits. The
booking's own token goes only into the answer to the booking request (the page shows it);
the appointment keeps its hash. A remote booking's `/join/<token>` link is made the same way
at send time (signaling/flow/join_tokens.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.booking import booking_links
from signaling.booking.notifications import ics, texts
from signaling.booking.notifications.mailer import SmtpMailer
from signaling.booking.notifications.sms import HttpSmsGateway, SendError, SmsGateway
from signaling.db import utcnow
from signaling.flow.flow_common import service_types_for
from signaling.store.booking_models import BookingMessage
from signaling.store.flow_models import Appointment, AppointmentStatus
from signaling.store.models import Authority, Office
from signaling.transport.services import Services

log = logging.getLogger(__name__)

SENDERS_KEY = "booking_senders"
# A row left in `sending` this long (its process died mid-send) is tried again.
STALE_CLAIM = timedelta(minutes=5)
BATCH = 50


@dataclass
class Senders:
    mailer: SmtpMailer | None
    sms: SmsGateway | None


def senders_from(services: Services) -> Senders:
    existing = services.extras.get(SENDERS_KEY)
    if isinstance(existing, Senders):
        return existing
    s = services.settings
    mailer = (
        SmtpMailer(
            host=s.smtp_host,
            port=s.smtp_port,
            sender=s.smtp_from,
            tls=s.smtp_tls,
            username=s.smtp_username,
            password=s.smtp_password,
            timeout=s.smtp_timeout,
        )
        if s.smtp_host
        else None
    )
    sms = (
        HttpSmsGateway(s.sms_gateway_url, s.sms_gateway_token, s.sms_sender)
        if s.sms_gateway_url
        else None
    )
    senders = Senders(mailer, sms)
    services.extras[SENDERS_KEY] = senders
    return senders


def channels_of(appointment: Appointment) -> list[str]:
    result = []
    if appointment.contact_email:
        result.append("email")
    if appointment.contact_phone:
        result.append("sms")
    return result


async def enqueue(
    session: AsyncSession,
    appointment: Appointment,
    kind: str,
    now: datetime,
) -> int:
    """Queue `kind` for each of the booking's channels (the caller commits); returns how many
    were new."""
    added = 0
    for channel in channels_of(appointment):
        try:
            async with session.begin_nested():
                session.add(
                    BookingMessage(
                        appointment_id=appointment.id,
                        kind=kind,
                        channel=channel,
                        starts_at=appointment.starts_at,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
            added += 1
        except IntegrityError:
            continue  # already queued (another process, or a retry of this one)
    return added


async def enqueue_and_commit(services: Services, appointment: Appointment, kind: str) -> int:
    async with services.sessions() as session:
        added = await enqueue(session, appointment, kind, utcnow())
        await session.commit()
    return added


async def queue_reminders(session: AsyncSession, now: datetime, hours: list[float]) -> int:
    """Queue each due reminder once: booked appointments starting within `h` hours that were
    booked (or moved) earlier than `h` hours before their time."""
    added = 0
    for h in sorted(set(hours)):
        ahead = timedelta(hours=h)
        rows = await session.execute(
            select(Appointment).where(
                Appointment.status == AppointmentStatus.BOOKED,
                Appointment.starts_at > now,
                Appointment.starts_at <= now + ahead,
                (Appointment.contact_email.is_not(None)) | (Appointment.contact_phone.is_not(None)),
            )
        )
        for appointment in rows.scalars():
            if appointment.created_at > appointment.starts_at - ahead:
                continue  # booked inside the reminder's window: the confirmation is enough
            added += await enqueue(session, appointment, reminder_kind(h), now)
    await session.commit()
    return added


def reminder_kind(hours: float) -> str:
    return f"reminder_{hours:g}h"


async def _claim(session: AsyncSession, message_id: int, now: datetime) -> bool:
    result = await session.execute(
        update(BookingMessage)
        .where(
            BookingMessage.id == message_id,
            (
                (BookingMessage.status == "pending") & (BookingMessage.next_attempt_at <= now)
                | (BookingMessage.status == "sending")
                & (BookingMessage.claimed_at < now - STALE_CLAIM)
            ),
        )
        .values(status="sending", claimed_at=now, attempts=BookingMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def join_link(
    services: Services, session: AsyncSession, appointment: Appointment
) -> str | None:
    """The home customer's `/join/<token>` link of a remote appointment (issue 18): a new link
    per message (older ones stay valid until one is spent; signaling/flow/join_tokens.py)."""
    if not appointment.remote:
        return None
    # JOIN-LINK: the join page's tokens come from signaling/flow/join_tokens.py.
    from signaling.flow.join_tokens import issue_join_link

    path = await issue_join_link(session, appointment, utcnow())
    await session.commit()
    # The page in the message's language, whatever the browser's (remote_customer.py: ?lang=).
    language = appointment.message_language
    language = language if language in texts.MESSAGE_LANGUAGES else "fi"
    return f"{services.settings.base_url}{path}?lang={language}"


async def manage_link(
    services: Services, session: AsyncSession, appointment: Appointment, kind: str
) -> str | None:
    """The message's `/booking/<token>` link: a fresh token (signaling/booking/booking_links.py)
    in every message but the cancellation, the confirmation too."""
    if kind == "cancelled" or appointment.status != AppointmentStatus.BOOKED:
        return None
    token = await booking_links.issue(session, appointment.id, utcnow())
    await session.commit()  # the link works before the message arrives
    return f"{services.settings.base_url}/booking/{token}"


async def _compose(
    services: Services, session: AsyncSession, message: BookingMessage, appointment: Appointment
) -> tuple[texts.Message, bytes]:
    authority = await session.get(Authority, appointment.authority_id)
    office = await session.get(Office, appointment.office_id)
    language = appointment.message_language or "fi"
    authority_name = getattr(authority, f"name_{language}", "") if authority else ""
    service = next(
        (
            getattr(t, language)
            for t in service_types_for(authority.code if authority else "")
            if t.code == appointment.service_type
        ),
        appointment.service_type,
    )
    base = services.settings.base_url
    kind = "reminder" if message.kind.startswith("reminder") else message.kind
    manage_url = await manage_link(services, session, appointment, kind)
    join_url = await join_link(services, session, appointment) if kind != "cancelled" else None
    office_name = office.name if office else ""
    rendered = texts.render(
        kind,
        language,
        authority=authority_name,
        office=office_name,
        service=service,
        starts_at=message.starts_at,
        code=appointment.code,
        remote=appointment.remote,
        interpreting=appointment.interpreting,
        manage_url=manage_url,
        book_url=f"{base}/book",
        join_url=join_url,
    )
    length = (appointment.ends_at - appointment.starts_at) if appointment.ends_at else None
    calendar = ics.calendar(
        uid=f"appointment-{appointment.id}-{appointment.code}@etapalvelu",
        starts_at=message.starts_at,
        ends_at=message.starts_at + (length or timedelta(minutes=30)),
        summary=f"{authority_name}: {service}",
        location=rendered_location(appointment, office_name, language),
        description=rendered.body,
        url=join_url or manage_url,
        sequence=appointment.sequence,
        cancelled=kind == "cancelled",
    )
    return rendered, calendar


def rendered_location(appointment: Appointment, office_name: str, language: str) -> str:
    if appointment.remote:
        return {"fi": "Kotoa videolla", "sv": "Hemifrån med video", "en": "From home by video"}[
            language if language in ("fi", "sv", "en") else "fi"
        ]
    return office_name


async def _send_one(services: Services, message_id: int, now: datetime) -> str:
    """Send one due row if this process claims it; returns its new status (or "skipped")."""
    senders = senders_from(services)
    attempts_allowed = services.settings.booking_send_attempts
    async with services.sessions() as session:
        if not await _claim(session, message_id, now):
            return "skipped"
        message = await session.get(BookingMessage, message_id)
        assert message is not None
        await session.refresh(message)
        appointment = await session.get(Appointment, message.appointment_id)
        error: str | None = None
        try:
            if appointment is None:
                raise SendError("the appointment is gone")
            rendered, calendar = await _compose(services, session, message, appointment)
            if message.channel == "email":
                if senders.mailer is None or not appointment.contact_email:
                    raise SendError("e-mail is not configured (smtp_host)")
                await senders.mailer.send(
                    appointment.contact_email,
                    rendered.subject,
                    rendered.body,
                    calendar,
                    "CANCEL" if message.kind == "cancelled" else "PUBLISH",
                )
            else:
                if senders.sms is None or not appointment.contact_phone:
                    raise SendError("SMS is not configured (sms_gateway_url)")
                await senders.sms.send(appointment.contact_phone, rendered.sms)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        # `link_token` is erased for a row queued by a process of an older release (before
        # migration 0019_outbox_tokens) during a rolling upgrade; this release never writes it.
        if error is None:
            values: dict[str, Any] = {"status": "sent", "sent_at": utcnow(), "link_token": None}
        elif message.attempts >= attempts_allowed:
            log.warning(
                "booking message %s (%s by %s) given up after %d attempts: %s",
                message.id, message.kind, message.channel, message.attempts, error,
            )  # fmt: skip
            values = {"status": "failed", "last_error": error, "link_token": None}
        else:
            delay = timedelta(minutes=2 ** (message.attempts - 1))
            log.warning(
                "booking message %s (%s by %s) failed, attempt %d, again in %s: %s",
                message.id, message.kind, message.channel, message.attempts, delay, error,
            )  # fmt: skip
            values = {"status": "pending", "last_error": error, "next_attempt_at": now + delay}
        await session.execute(
            update(BookingMessage)
            .where(BookingMessage.id == message_id, BookingMessage.status == "sending")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        return str(values["status"])


async def deliver_due(services: Services, now: datetime | None = None) -> dict[str, int]:
    """Send every due row this process can claim; counts per outcome."""
    now = now or utcnow()
    async with services.sessions() as session:
        rows = await session.execute(
            select(BookingMessage.id)
            .where(
                (BookingMessage.status == "pending") & (BookingMessage.next_attempt_at <= now)
                | (BookingMessage.status == "sending")
                & (BookingMessage.claimed_at < now - STALE_CLAIM)
            )
            .order_by(BookingMessage.id)
            .limit(BATCH)
        )
        due = list(rows.scalars())
    counts: dict[str, int] = {}
    for message_id in due:
        status = await _send_one(services, message_id, now)
        counts[status] = counts.get(status, 0) + 1
    return counts


async def sweep(services: Services, now: datetime | None = None) -> dict[str, int]:
    """One round of the sweeper: queue due reminders, then send what is due."""
    now = now or utcnow()
    async with services.sessions() as session:
        queued = await queue_reminders(session, now, services.settings.booking_reminder_hours)
    counts = await deliver_due(services, now)
    counts["reminders_queued"] = queued
    return counts


def kick(services: Services) -> None:
    """Send what was just queued without waiting for the next sweep (errors are logged)."""

    async def run() -> None:
        try:
            await deliver_due(services)
        except Exception:
            log.exception("sending booking messages failed")

    task = asyncio.ensure_future(run())
    pending: set[asyncio.Task[None]] = services.extras.setdefault("booking_kicks", set())
    pending.add(task)
    task.add_done_callback(pending.discard)


def setup_sweeper(app: Any, services: Services) -> None:
    async def sweeper(_app: Any) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(services.settings.booking_sweep_seconds)
                try:
                    await sweep(services)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("booking message sweep failed")

        task = asyncio.ensure_future(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for kicked in list(services.extras.get("booking_kicks", ())):
            kicked.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await kicked

    app.cleanup_ctx.append(sweeper)


__all__ = ["Senders", "deliver_due", "enqueue", "kick", "queue_reminders", "sweep"]
