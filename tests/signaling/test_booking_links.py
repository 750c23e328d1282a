"""Every booking message carries a working manage link (issue 17): the confirmation and the
reminder that reach a real SMTP server (aiosmtpd) and the local SMS gateway each have a
`/booking/<token>` link of their own (a fresh token per message, made when it is sent, only its
SHA-256 kept: signaling/booking/booking_links.py), so no table ever holds a plaintext token,
not even while the confirmation waits in the outbox; the links open the booking, and the
confirmation's link opens the manage page in Chromium and cancels the booking; the cancel frees
the booking's interpreter at once."""

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
    _api,
    _first_slot,
    _manage_token,
    _messaging_service,
    _rows_holding,
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


async def test_every_messages_manage_link_opens_the_booking_and_none_is_stored(
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
        await booking_outbox.enqueue_and_commit(services, appointment, "confirmation")
        # Queued, the confirmation holds no token: nothing in the database opens the booking.
        assert await _rows_holding(live, made.token) == []
        await booking_outbox.deliver_due(services)
        confirmation = _link(body_of(box.to(EMAIL)[0]), "Peru tai siirrä aika")
        mail_token = _manage_token(confirmation)
        assert confirmation == f"{live.base_url}/booking/{mail_token}"
        sms_confirmation = _manage_token(sms.to(PHONE)[0]["text"])
        assert len({made.token, mail_token, sms_confirmation}) == 3

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
        assert len({token, sms_token, made.token, mail_token, sms_confirmation}) == 5
        # The database keeps hashes only: nothing in it opens the booking.
        tokens = (made.token, mail_token, sms_confirmation, token, sms_token)
        assert await _rows_holding(live, *tokens) == []
        for each in tokens:  # ... and each link opens it
            status, seen = await _api(live, "POST", "/api/public/booking/lookup", {"token": each})
            assert status == 200 and seen["booking"]["code"] == appointment.code, each
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
            assert hashes == {_sha256(t) for t in tokens[1:]}
            kept = (await session.execute(select(BookingMessage.link_token))).scalars()
            assert set(kept) == {None}

        # The confirmation's link in Chromium: the booking, then cancelled (asked twice).
        context = await browser.new_context(locale="fi-FI")
        try:
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(confirmation)
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
