"""Every booking message after the confirmation carries a working manage link (issue 17):
the reminder that reaches a real SMTP server (aiosmtpd) and the local SMS gateway has a
`/booking/<token>` link of its own (a fresh token per message, only its SHA-256 kept:
signaling/booking/booking_links.py), which opens the manage page in Chromium and cancels the
booking;
the cancel frees the booking's interpreter at once."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from signaling.booking import booking, booking_outbox
from signaling.booking.booking import BookingRules
from signaling.store.booking_models import BookingLink, BookingMessage
from signaling.store.flow_models import Appointment
from tests.signaling.test_booking import (
    ALWAYS,
    _first_slot,
    _messaging_service,
    _set_availability,
    kela_request,
)
from tests.signaling.test_interpreter_reservations import _assert_released
from tests.support.mail import Messaging, body_of, messaging  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

EMAIL = "muistutettava@example.fi"
PHONE = "+358501234567"


def _link(body: str, label: str) -> str:
    found = re.search(rf"^{re.escape(label)}: (\S+)", body, re.MULTILINE)
    assert found, f"no {label!r} link in:\n{body}"
    return found.group(1)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_the_reminders_manage_link_opens_the_booking_and_cancels_it(
    tmp_path: Path,
    browser: Any,
    messaging: Messaging,  # noqa: F811
) -> None:
    box, sms = messaging.box, messaging.sms
    async with _messaging_service(tmp_path, messaging, smtp_from="ajanvaraus@example.fi") as live:
        services = live.services
        await _set_availability(services.sessions, "kela", ALWAYS)
        now = datetime.now(UTC)
        async with services.sessions() as session:
            made = await booking.book_slot(
                session,
                kela_request(
                    live.demo.office_id,
                    await _first_slot(live, now + timedelta(days=2)),
                    contact_email=EMAIL,
                    contact_phone=PHONE,
                    message_language="fi",
                    interpreting="ara",
                ),
                now - timedelta(days=1),  # booked yesterday: the reminders are due later
                BookingRules(30, 0, 28),
            )
        appointment = made.appointment
        await booking_outbox.enqueue_and_commit(services, appointment, "confirmation", made.token)
        await booking_outbox.deliver_due(services)
        confirmation = _link(body_of(box.to(EMAIL)[0]), "Peru tai siirrä aika")
        assert confirmation == f"{live.base_url}/booking/{made.token}"

        # The 24 h reminder, by e-mail and by SMS: each with a manage link of its own.
        await booking_outbox.sweep(services, appointment.starts_at - timedelta(hours=23))
        reminder = box.to(EMAIL)[-1]
        assert str(reminder["Subject"]).startswith("Muistutus: Kela")
        body = body_of(reminder)
        assert appointment.code in body
        url = _link(body, "Peru tai siirrä aika")
        found = re.fullmatch(rf"{re.escape(live.base_url)}/booking/([A-Za-z0-9_-]{{32}})", url)
        assert found, url
        token = found.group(1)
        text = sms.to(PHONE)[-1]["text"]
        assert text.startswith("Muistutus varatusta ajastasi.") and appointment.code in text
        sms_token = re.findall(r"/booking/([A-Za-z0-9_-]+)", text)[-1]
        assert len({token, sms_token, made.token}) == 3
        # The database keeps hashes only: nothing in it opens the booking.
        async with services.sessions() as session:
            hashes = set(
                (
                    await session.execute(
                        select(BookingLink.token_hash).where(
                            BookingLink.appointment_id == appointment.id
                        )
                    )
                ).scalars()
            )
            assert hashes == {_sha256(token), _sha256(sms_token)}
            kept = (await session.execute(select(BookingMessage.link_token))).scalars()
            assert set(kept) == {None}

        # The reminder's link in Chromium: the booking, then cancelled (asked twice).
        context = await browser.new_context(locale="fi-FI")
        try:
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url)
            await page.wait_for_selector("#booking:not([hidden])")
            assert (await page.text_content("#booking-code") or "").strip() == appointment.code
            assert await page.text_content("#booking-title") == "Varauksesi"
            await page.click("#booking-cancel")
            await page.click("#booking-cancel")
            await page.wait_for_function(
                "() => document.getElementById('booking-title').textContent === 'Varaus on peruttu'"
            )
            assert errors == []
        finally:
            await context.close()
        async with services.sessions() as session:
            row = await session.get(Appointment, appointment.id)
            assert row is not None and row.status == "cancelled"
            await _assert_released(session, appointment.id)
