"""Booking in real Chromium (issue 17): a customer books on the public page on a phone (fi) and
sees the code; the confirmation arrives at a real SMTP server (aiosmtpd) and a local HTTP SMS
gateway; the customer opens the join link from the mail (device check, in the mail's language)
and the manage link from the mail, moves the booking and cancels it (a "moved" and a
"cancelled" mail with their .ics); the service secretary books at her console and her customer
gets the mail. axe-clean in every state reached."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from signaling.booking import booking
from signaling.db import utcnow
from signaling.store.flow_models import Appointment
from signaling.store.remote_models import JoinToken
from tests.expert_console.people import _open, open_console
from tests.support.browser import screenshot
from tests.support.mail import Messaging, body_of, calendar_of, ics_fields, messaging, wait_until  # noqa: F401
from tests.support.service import LiveService, make_live_service
from tests.support.ui import (
    VIEWPORTS,
    assert_axe_clean,
    page_overflows_horizontally,
    strings_of,
    texts_in_language,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BOOK_STRINGS = Path(__file__).resolve().parents[2] / "signaling" / "static" / "book" / "strings.js"


async def _availability(live: LiveService) -> None:
    async with live.services.sessions() as session:
        expert = await booking.find_expert(session, "kela")
        kela = await booking.find_authority(session, "kela")
        await booking.set_availability(session, expert, kela, ["mon-sun 00:00-24:00"], utcnow())
        await session.commit()


CUSTOMER_EMAIL = "asiakas@example.fi"
CLERK_EMAIL = "kassan.asiakas@example.fi"


async def _to_the_day_of(live: LiveService, code: str) -> None:
    """Travel to the day of the booking: it and its join links' window move to start in five
    minutes. (The service's clock is the wall clock, and the test may run on any day, e.g. a
    public holiday on which no expert is available; the links themselves stay as mailed.)"""
    async with live.services.sessions() as session:
        row = (
            await session.execute(select(Appointment).where(Appointment.code == code))
        ).scalar_one()
        shift = utcnow() + timedelta(minutes=5) - row.starts_at
        row.starts_at += shift
        if row.ends_at is not None:
            row.ends_at += shift
        tokens = await session.execute(select(JoinToken).where(JoinToken.appointment_id == row.id))
        for token in tokens.scalars():
            token.valid_from += shift
            token.valid_until += shift
        await session.commit()


async def _booked(live: LiveService, code: str) -> Appointment:
    async with live.services.sessions() as session:
        found = await session.execute(select(Appointment).where(Appointment.code == code))
        return found.scalar_one()


def _link(body: str, label: str) -> str:
    """The address after `label: ` in a mail body."""
    found = re.search(rf"^{re.escape(label)}: (\S+)", body, re.MULTILINE)
    assert found, f"no {label!r} link in:\n{body}"
    return found.group(1)


async def test_customer_books_on_a_phone_and_the_secretary_at_her_console(
    browser: Any,
    tmp_path: Path,
    messaging: Messaging,  # noqa: F811
) -> None:
    """End to end through the real SMTP server and SMS gateway: the manage link and the join
    link are taken from the mail the customer received."""
    box, sms = messaging.box, messaging.sms
    async with make_live_service(
        tmp_path,
        **messaging.settings,
        booking_min_lead_minutes=0,
        booking_sweep_seconds=0.5,
        smtp_from="ajanvaraus@example.fi",
    ) as live:
        await _availability(live)
        customer = await _open(browser, f"{live.base_url}/book", VIEWPORTS["390x844"], axe=True)
        page = customer.page
        await page.wait_for_selector("body[data-ready='1']")
        assert await page.get_attribute("html", "lang") == "fi"
        await page.select_option("#book-authority", "kela")
        await page.wait_for_function(
            "() => document.querySelectorAll('#book-slot option').length > 2"
        )
        await page.select_option("#book-interpreting", "fse")
        await page.check("input[name=place][value=remote]")
        chosen = await page.eval_on_selector(
            "#book-slot", "s => { s.selectedIndex = 2; return s.value; }"
        )
        await assert_axe_clean(page, "book: form (fi, phone)")
        assert not await page_overflows_horizontally(page)
        await screenshot(page, "book-form-phone-fi")
        # Without a contact: told in words, nothing booked.
        await page.click("#book-submit")
        await page.wait_for_selector("#book-error:not([hidden])")
        assert "sähköposti" in (await page.text_content("#book-error") or "").lower()
        await page.fill("#book-email", CUSTOMER_EMAIL)
        await page.fill("#book-phone", "040 123 4567")
        await page.click("#book-submit")
        await page.wait_for_selector("#booking:not([hidden])")
        code = (await page.text_content("#booking-code") or "").strip()
        assert len(code) == 6
        assert await page.text_content("#booking-title") == "Aika on varattu"
        # Large: the code is the biggest text on the page.
        size = await page.eval_on_selector(
            "#booking-code", "e => parseFloat(getComputedStyle(e).fontSize)"
        )
        assert size >= 36
        await assert_axe_clean(page, "book: booked (fi, phone)")
        await screenshot(page, "book-booked-phone-fi")
        row = await _booked(live, code)
        assert row.remote is True and row.interpreting == "fse"
        assert row.starts_at.isoformat() == chosen.replace("Z", "+00:00")

        # The confirmation arrives at the SMTP server (Finnish, the page's language) and at the
        # SMS gateway; both carry the code and the join link of the "from home" booking.
        await wait_until(lambda: box.to(CUSTOMER_EMAIL) and sms.to("+358401234567"))
        (mail,) = box.to(CUSTOMER_EMAIL)
        assert str(mail["Subject"]).startswith("Ajanvaraus vahvistettu: Kela")
        body = body_of(mail)
        assert code in body and "Kotoa videolla" in body and "Tulkki varattu: fse" in body
        join_url = _link(body, "Liity videotapaamiseen")
        manage_url = _link(body, "Peru tai siirrä aika")
        assert re.fullmatch(
            rf"{re.escape(live.base_url)}/join/[A-Za-z0-9_-]{{32,}}\?lang=fi", join_url
        ), join_url
        assert re.fullmatch(
            rf"{re.escape(live.base_url)}/booking/[A-Za-z0-9_-]{{16,64}}", manage_url
        ), manage_url
        booked = ics_fields(calendar_of(mail))
        assert booked["DTSTART"] == datetime.fromisoformat(chosen).strftime("%Y%m%dT%H%M%SZ")
        assert booked["LOCATION"] == "Kotoa videolla" and code in booked["UID"]
        (text,) = sms.to("+358401234567")
        assert code in text["text"] and "/join/" in text["text"], text

        # The join link from the mail, on the day of the appointment, opened on another device
        # whose browser is in English: the device check, in the language of the mail.
        await _to_the_day_of(live, code)
        device = await browser.new_context(
            viewport=VIEWPORTS["390x844"], locale="en-GB", bypass_csp=True
        )
        join = await device.new_page()
        join_errors: list[str] = []
        join.on("pageerror", lambda exc: join_errors.append(str(exc)))
        response = await join.goto(join_url)
        assert response is not None
        assert response.status == 200, await join.inner_text("body")
        await join.wait_for_selector("#view-check:not([hidden])")
        assert await join.get_attribute("html", "lang") == "fi"
        await join.wait_for_function(
            "() => document.getElementById('check-title').textContent === 'Laitteiden tarkistus'"
        )
        await screenshot(join, "book-join-check-phone-fi")
        assert join_errors == []
        await device.close()

        # Swedish on the booked screen: no Finnish text left.
        await page.click("#language-switcher button[data-lang=sv]")
        assert await texts_in_language(page, strings_of(BOOK_STRINGS), "fi") == []

        # The manage link from the mail, opened in the phone's browser: move, then cancel.
        await page.goto(manage_url)
        await page.wait_for_selector("#booking:not([hidden])")
        assert (await page.text_content("#booking-code") or "").strip() == code
        await page.click("#booking-rebook")
        await page.wait_for_function(
            "() => document.querySelectorAll('#rebook-slot option').length > 2"
        )
        moved_to = await page.eval_on_selector(
            "#rebook-slot", "s => { s.selectedIndex = 2; return s.value; }"
        )
        assert moved_to != chosen
        await page.click("#rebook-form button[type=submit]")
        await page.wait_for_function(
            "() => document.getElementById('booking-title').textContent === 'Tiden har flyttats'"
        )
        # The "moved" mail: in the booking's language, the new time, a higher SEQUENCE.
        await wait_until(lambda: len(box.to(CUSTOMER_EMAIL)) >= 2)
        moved = box.to(CUSTOMER_EMAIL)[1]
        assert str(moved["Subject"]).startswith("Ajanvaraus siirretty: Kela")
        moved_event = ics_fields(calendar_of(moved))
        assert moved_event["UID"] == booked["UID"]
        assert int(moved_event["SEQUENCE"]) > int(booked.get("SEQUENCE", "0"))
        assert moved_event["DTSTART"] == datetime.fromisoformat(moved_to).strftime("%Y%m%dT%H%M%SZ")
        assert "/join/" in body_of(moved)

        await page.click("#booking-cancel")
        await page.click("#booking-cancel")  # asked twice
        await page.wait_for_function(
            "() => document.getElementById('booking-title').textContent === 'Bokningen är avbokad'"
        )
        assert await page.is_hidden("#booking-actions")
        await assert_axe_clean(page, "book: cancelled (sv, phone)")
        await wait_until(lambda: len(box.to(CUSTOMER_EMAIL)) >= 3)
        cancelled = box.to(CUSTOMER_EMAIL)[2]
        assert str(cancelled["Subject"]).startswith("Ajanvaraus peruttu: Kela")
        calendar = calendar_of(cancelled)
        assert b"METHOD:CANCEL" in calendar and b"STATUS:CANCELLED" in calendar
        assert ics_fields(calendar)["UID"] == booked["UID"]
        assert "/join/" not in body_of(cancelled)
        await wait_until(lambda: len(sms.to("+358401234567")) >= 3)
        customer.assert_no_errors()
        await customer.close()

        # The secretary books at her console; the code is shown large, and the confirmation
        # goes to the contact she typed.
        clerk = await open_console(browser, live, "/expert", "sihteeri", axe=True)
        cp = clerk.page
        await cp.wait_for_function(
            "() => document.querySelectorAll('#clerk-book-slot option').length > 0"
        )
        await cp.select_option("#clerk-book-authority", "kela")
        await cp.wait_for_function(
            "() => document.querySelectorAll('#clerk-book-slot option').length > 3"
        )
        await cp.eval_on_selector("#clerk-book-slot", "s => { s.selectedIndex = 3; }")
        await cp.fill("#clerk-book-email", CLERK_EMAIL)
        await cp.fill("#clerk-book-phone", "040 765 4321")
        await cp.click("#clerk-book-form button[type=submit]")
        await cp.wait_for_selector("#clerk-book-result[data-code]")
        clerk_code = await cp.get_attribute("#clerk-book-result", "data-code")
        assert clerk_code and len(clerk_code) == 6
        await cp.locator("#clerk-booking").scroll_into_view_if_needed()
        await assert_axe_clean(cp, "console: secretary booked")
        await screenshot(cp, "clerk-booking")
        row = await _booked(live, clerk_code)
        assert row.booked_via == "secretary" and row.contact_phone == "+358407654321"
        assert row.office_id == live.demo.office_id
        await wait_until(lambda: box.to(CLERK_EMAIL) and sms.to("+358407654321"))
        (clerk_mail,) = box.to(CLERK_EMAIL)
        assert str(clerk_mail["Subject"]).startswith("Ajanvaraus vahvistettu: Kela")
        clerk_body = body_of(clerk_mail)
        assert clerk_code in clerk_body and "Kirjasto Kallio" in clerk_body
        assert "/booking/" in _link(clerk_body, "Peru tai siirrä aika")
        assert clerk_code in sms.to("+358407654321")[0]["text"]
        clerk.assert_no_errors()
        await clerk.close()
