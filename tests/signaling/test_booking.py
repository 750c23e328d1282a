"""Booking (issue 17): free slots, no double booking under concurrency (SQLite and PostgreSQL),
confirmations by e-mail (real aiosmtpd server, .ics parsed) and SMS (a local HTTP gateway),
reminders sent once by two "processes", cancel and rebook by link and by code, the secretary's
and the experts' events, and bad input everywhere."""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from signaling.booking import booking, booking_outbox
from signaling.booking.booking import BookingRequest, BookingRules
from signaling.booking.notifications import ics
from signaling.directory.service_hours import HELSINKI, ServiceHours, parse_weekly
from signaling.flow.flow_common import FlowError
from signaling.flow.free_slots import Booked, free_slots
from signaling.store.booking_models import BookingMessage
from signaling.store.flow_models import Appointment
from signaling.store.models import Office
from tests.support.databases import database_url, fresh_postgres_url, postgres_url  # noqa: F401
from tests.support.mail import Messaging, body_of, calendar_of, ics_fields, messaging, wait_until  # noqa: F401
from tests.support.service import LiveService, make_live_service

ALWAYS = ["mon-sun 00:00-24:00"]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- slots, pure ------------------------------------------------------------------------------


def test_slots_are_availability_within_hours_minus_bookings() -> None:
    expert_a = ServiceHours(weekly=parse_weekly(["mon-fri 08:00-12:00"]))
    expert_b = ServiceHours(weekly=parse_weekly(["tue 10:00-11:00"]))
    office = ServiceHours(weekly=parse_weekly(["mon-thu 09:00-15:00"]))
    # Tuesday 15 December 2026 (EET, +02:00); a holiday follows on no day of these.
    start = datetime(2026, 12, 15, tzinfo=HELSINKI)
    booked = [Booked(1, _utc("2026-12-15T09:30:00+02:00"), _utc("2026-12-15T10:00:00+02:00"))]
    slots = free_slots(
        {1: expert_a, 2: expert_b},
        office,
        booked,
        timedelta(minutes=30),
        start,
        start + timedelta(days=1),
    )
    local = [(s.starts_at.astimezone(HELSINKI).strftime("%H:%M"), s.experts) for s in slots]
    # 08:00-09:00 is outside the office's hours, 09:30 is booked for the only expert then,
    # 10:00-11:00 has both experts (the one with fewer bookings first).
    assert local == [
        ("09:00", (1,)),
        ("10:00", (2, 1)),
        ("10:30", (2, 1)),
        ("11:00", (1,)),
        ("11:30", (1,)),
    ]
    # Closed on Independence Day (Sunday 6 Dec) and Christmas Eve: no slots on 24 December.
    eve = datetime(2026, 12, 24, tzinfo=HELSINKI)
    assert (
        free_slots({1: expert_a}, None, [], timedelta(minutes=30), eve, eve + timedelta(days=1))
        == []
    )


def test_slots_across_the_spring_dst_change_are_real_minutes() -> None:
    # 29 March 2026: at 03:00 EET the clocks go to 04:00 EEST. 02:00-05:00 local is 2 real hours.
    night = ServiceHours(weekly=parse_weekly(["sun 02:00-05:00"]), public_holidays=False)
    start = datetime(2026, 3, 29, tzinfo=HELSINKI)
    slots = free_slots(
        {7: night}, None, [], timedelta(minutes=30), start, start + timedelta(days=1)
    )
    assert [s.starts_at.isoformat() for s in slots] == [
        "2026-03-29T00:00:00+00:00",
        "2026-03-29T00:30:00+00:00",
        "2026-03-29T01:00:00+00:00",
        "2026-03-29T01:30:00+00:00",
    ]
    assert [s.starts_at.astimezone(HELSINKI).strftime("%H:%M") for s in slots] == [
        "02:00", "02:30", "04:00", "04:30",
    ]  # fmt: skip
    # Autumn (25 October): 09:00 local is 07:00Z before and 06:00Z... the day after: +02:00.
    day = ServiceHours(weekly=parse_weekly(["mon 09:00-09:30"]))
    monday = datetime(2026, 10, 26, tzinfo=HELSINKI)
    (slot,) = free_slots(
        {1: day}, None, [], timedelta(minutes=30), monday, monday + timedelta(days=1)
    )
    assert slot.starts_at == datetime(2026, 10, 26, 7, 0, tzinfo=UTC)


def test_ics_is_folded_escaped_and_in_utc() -> None:
    data = ics.calendar(
        uid="appointment-1-ACDEFH@etapalvelu",
        starts_at=_utc("2026-12-15T10:00:00+02:00"),
        ends_at=_utc("2026-12-15T10:30:00+02:00"),
        summary="Kela: Etuushakemus; lomake, liite",
        location="Kirjasto Kallio, Helsinki " + "ä" * 80,
        stamp=_utc("2026-12-01T00:00:00+00:00"),
    )
    text = data.decode("utf-8")
    assert all(line.endswith("\r") or not line for line in text.split("\n")[:-1])
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))
    fields = ics_fields(data)
    assert fields["DTSTART"] == "20261215T080000Z" and fields["DTEND"] == "20261215T083000Z"
    assert fields["SUMMARY"] == "Kela: Etuushakemus\\; lomake\\, liite"
    assert fields["LOCATION"].endswith("ä" * 80)


# --- no double booking -----------------------------------------------------------------------


async def _seeded(url: str) -> tuple[Any, Any, Any]:
    from signaling.db import create_engine, migrate, session_factory
    from signaling.server.demo import seed_demo

    engine = create_engine(url)
    await migrate(engine)
    sessions = session_factory(engine)
    demo = await seed_demo(sessions)
    return engine, sessions, demo


async def _add_expert(sessions: Any, username: str) -> int:
    from signaling.store.models import Authority, User

    async with sessions() as session:
        kela = (
            await session.execute(select(Authority).where(Authority.code == "kela"))
        ).scalar_one()
        user = User(
            username=username,
            display_name=username,
            role="expert",
            password_hash="!",  # never logs in
            authorities=[kela],
        )
        session.add(user)
        await session.commit()
        return user.id


async def _set_availability(sessions: Any, username: str, weekly: list[str]) -> None:
    from signaling.db import utcnow

    async with sessions() as session:
        expert = await booking.find_expert(session, username)
        kela = await booking.find_authority(session, "kela")
        await booking.set_availability(session, expert, kela, weekly, utcnow())
        await session.commit()


def kela_request(office_id: int, starts_at: datetime, **details: Any) -> BookingRequest:
    """A booking of Kela's general advice in Finnish (`details`: contacts, interpreting...)."""
    return BookingRequest(
        office_id=office_id,
        authority="kela",
        service_type="general_advice",
        language="fin",
        starts_at=starts_at,
        **details,
    )


async def test_concurrent_bookings_of_the_last_slots(database_url: str) -> None:  # noqa: F811
    engine, sessions, demo = await _seeded(database_url)
    try:
        await _add_expert(sessions, "kela2")
        # Both experts take bookings on Tuesday 15 December 2026, 10:00-10:30 only: one slot,
        # two experts, so two bookings fit and the rest must be told "slot_taken".
        for name in ("kela", "kela2"):
            await _set_availability(sessions, name, ["tue 10:00-10:30"])
        now = _utc("2026-12-14T08:00:00+02:00")
        slot = _utc("2026-12-15T10:00:00+02:00")
        rules = BookingRules(slot_minutes=30, min_lead_minutes=0, days_ahead=28)

        async def one(n: int) -> str:
            async with sessions() as session:
                try:
                    made = await booking.book_slot(
                        session,
                        kela_request(demo.office_id, slot, contact_email=f"asiakas{n}@example.fi"),
                        now,
                        rules,
                    )
                except FlowError as exc:
                    return exc.reason or exc.message
                return f"booked:{made.appointment.expert_id}"

        outcomes = await asyncio.gather(*(one(n) for n in range(24)))
        booked = sorted(o for o in outcomes if o.startswith("booked:"))
        assert len(booked) == 2, outcomes
        assert len(set(booked)) == 2  # one appointment per expert
        assert sorted(set(outcomes) - set(booked)) == ["slot_taken"]
        async with sessions() as session:
            live = await session.execute(
                select(func.count()).select_from(Appointment).where(Appointment.starts_at == slot)
            )
            assert live.scalar_one() == 2
            # Nothing is free any more at that time.
            office = await session.get(Office, demo.office_id)
            assert office is not None
            kela = await booking.find_authority(session, "kela")
            assert (
                await booking.slots_for(
                    session, office, kela, "fin", now, now + timedelta(days=2), now, rules
                )
                == []
            )
    finally:
        await engine.dispose()


# --- messages through a live service ------------------------------------------------------------


async def _api(
    live: LiveService, method: str, path: str, body: Any = None, *, raw: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            live.base_url + path,
            json=body if raw is None else None,
            data=raw,
            headers={"Content-Type": "application/json"} if raw is not None else None,
        ) as response,
    ):
        return response.status, await response.json()


async def _count(live: LiveService) -> int:
    async with live.services.sessions() as session:
        found = await session.execute(select(func.count()).select_from(Appointment))
        return int(found.scalar_one())


async def _rows_holding(live: LiveService, *tokens: str) -> list[str]:
    """`table: row` of every row of every table (the outbox and the link tables among them) in
    which one of `tokens` appears in plain text."""
    from signaling.db import Base

    found = []
    async with live.services.sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in await session.execute(select(table)):
                text = " ".join(str(value) for value in row)
                if any(token in text for token in tokens):
                    found.append(f"{table.name}: {text}")
    return found


def _manage_token(text: str) -> str:
    """The token of the one manage link `/booking/<token>` in a message."""
    (token,) = set(re.findall(r"/booking/([A-Za-z0-9_-]{32})\b", text))
    return token


def _messaging_service(
    tmp_path: Path, via: Messaging, **settings: Any
) -> AbstractAsyncContextManager[LiveService]:
    """The service sending its booking messages to the test's mail server and SMS gateway; any
    free time is bookable and the periodic sweep stays away (the test sweeps itself)."""
    return make_live_service(
        tmp_path,
        **via.settings,
        booking_min_lead_minutes=0,
        booking_sweep_seconds=3600,
        **settings,
    )


async def test_public_booking_messages_cancel_and_rebook(
    tmp_path: Path,
    messaging: Messaging,  # noqa: F811
) -> None:
    box, sms = messaging.box, messaging.sms
    async with _messaging_service(
        tmp_path, messaging, smtp_from="ajanvaraus@example.fi", booking_rate_per_minute=1000
    ) as live:
        await _set_availability(live.services.sessions, "kela", ALWAYS)
        office = live.demo.office_id
        status, offices = await _api(live, "GET", "/api/public/booking/offices")
        assert status == 200 and office in [o["id"] for o in offices["offices"]]
        status, offer = await _api(live, "GET", f"/api/public/booking/offer?office={office}")
        assert status == 200
        assert "kela" in [a["code"] for a in offer["authorities"]]
        assert offer["interpreting"][:2] == ["fse", "fss"] and "ara" in offer["interpreting"]
        status, found = await _api(
            live,
            "GET",
            f"/api/public/booking/slots?office={office}&authority=kela&language=fin&days=2",
        )
        assert status == 200 and len(found["slots"]) > 4
        first, second = found["slots"][1]["starts_at"], found["slots"][3]["starts_at"]

        request = {
            "office_id": office,
            "authority": "kela",
            "service_type": "general_advice",
            "language": "fin",
            "starts_at": first,
            "email": "Asiakas@Example.fi",
            "phone": "040 123 4567",
            "message_language": "fi",
            "interpreting": "fse",
        }
        before = await _count(live)
        # Bad input: nothing is booked, each gets a clear 400.
        bad_bodies: list[Any] = [
            {**request, "email": None, "phone": None},
            {**request, "email": "not-an-address", "phone": None},
            {**request, "phone": "12", "email": None},
            {**request, "starts_at": "tomorrow"},
            {**request, "starts_at": "2026-12-15T10:00:00"},  # no offset
            {**request, "authority": "KELA'; drop"},
            {**request, "office_id": -1},
            {**request, "interpreting": "klingon"},
            {**request, "message_language": "de"},
            {**request, "extra": 1},
            {**request, "service_type": "nothing_like_it"},
        ]
        for bad in bad_bodies:
            status, answer = await _api(live, "POST", "/api/public/booking", bad)
            assert status in (400, 404), (bad, answer)
            assert answer["ok"] is False and answer["error"]["message"]
        for raw in (b"", b"[]", b"{", b"\xff\xfe", b'{"office_id": 1'):
            status, answer = await _api(live, "POST", "/api/public/booking", raw=raw)
            assert status == 400, raw
        assert await _count(live) == before

        status, made = await _api(live, "POST", "/api/public/booking", request)
        assert status == 200, made
        code = made["booking"]["code"]
        assert made["booking"]["interpreting"] == "fse" and made["booking"]["remote"] is False
        token = made["manage_path"].rsplit("/", 1)[1]
        # The link's token is not stored, only its hash: neither in the appointment nor in the
        # queued confirmation (its token is made when it is sent).
        assert await _rows_holding(live, token) == []
        async with live.services.sessions() as session:
            row = (
                await session.execute(select(Appointment).where(Appointment.code == code))
            ).scalar_one()
            assert row.manage_token_hash == booking.token_hash(token) and token not in json.dumps(
                {c.name: str(getattr(row, c.name)) for c in Appointment.__table__.columns}
            )
            assert row.contact_phone == "+358401234567" and row.booked_via == "customer"
        # The same slot again: taken (one expert).
        status, answer = await _api(live, "POST", "/api/public/booking", request)
        assert status == 409 and answer["error"]["reason"] == "slot_taken"

        # The confirmation arrives by e-mail with the .ics, and by SMS.
        await wait_until(lambda: len(box.messages) >= 1 and len(sms.messages) >= 1)
        mail = box.messages[0]
        assert mail["To"] == "Asiakas@Example.fi"
        assert str(mail["Subject"]).startswith("Ajanvaraus vahvistettu")
        body = body_of(mail)
        assert code in body and "Tulkki varattu: fse" in body
        # The confirmation's manage link has a token of its own (not the page's), and so has the
        # SMS; the database holds none of them in plain text, only their hashes.
        mail_token, sms_token = _manage_token(body), _manage_token(sms.messages[0]["text"])
        assert len({token, mail_token, sms_token}) == 3
        assert await _rows_holding(live, token, mail_token, sms_token) == []
        event = ics_fields(calendar_of(mail))
        starts = _utc(first)
        assert event["DTSTART"] == starts.strftime("%Y%m%dT%H%M%SZ")
        assert event["DTEND"] == (starts + timedelta(minutes=30)).strftime("%Y%m%dT%H%M%SZ")
        assert event["UID"].startswith("appointment-") and code in event["UID"]
        assert event["LOCATION"] == "Kirjasto Kallio\\, Helsinki"
        assert event["SUMMARY"].startswith("Kela")
        assert sms.messages[0]["to"] == "+358401234567" and code in sms.messages[0]["text"]

        # Look up by link (the page's and the confirmation's) and by code + contact (case and
        # phone spelling do not matter).
        for link_token in (token, mail_token):
            status, seen = await _api(
                live, "POST", "/api/public/booking/lookup", {"token": link_token}
            )
            assert status == 200 and seen["booking"]["code"] == code
        status, seen = await _api(
            live,
            "POST",
            "/api/public/booking/lookup",
            {"code": code.lower(), "contact": "+358 40 1234567"},
        )
        assert status == 200 and seen["booking"]["code"] == code
        for wrong in (
            {"code": code, "contact": "someone@else.fi"},
            {"code": "ZZZZZZ", "contact": "asiakas@example.fi"},
            {"token": "x" * 32},
            {"code": code},
            {"token": token, "code": code, "contact": "x@y.fi"},
        ):
            status, answer = await _api(live, "POST", "/api/public/booking/lookup", wrong)
            assert status in (400, 404), wrong

        # Rebook by link: same code, new time, a "moved" message with SEQUENCE 1.
        status, moved = await _api(
            live, "POST", "/api/public/booking/rebook", {"token": token, "starts_at": second}
        )
        assert status == 200, moved
        assert moved["booking"]["code"] == code and moved["booking"]["starts_at"] == second
        await wait_until(lambda: any("siirretty" in s for s in box.subjects()))
        moved_mail = next(m for m in box.messages if "siirretty" in str(m["Subject"]))
        assert ics_fields(calendar_of(moved_mail))["SEQUENCE"] == "1"
        # The old time is free again, the new one is not.
        status, found = await _api(
            live,
            "GET",
            f"/api/public/booking/slots?office={office}&authority=kela&language=fin&days=2",
        )
        times = [s["starts_at"] for s in found["slots"]]
        assert first in times and second not in times

        # Cancel by the confirmation's link (still valid after the move): the slot is free, a
        # cancellation (METHOD:CANCEL) is sent; the page's link and the code + e-mail then find
        # a booking that is no longer booked.
        status, gone = await _api(live, "POST", "/api/public/booking/cancel", {"token": mail_token})
        assert status == 200 and gone["booking"]["status"] == "cancelled"
        await wait_until(lambda: any("peruttu" in s for s in box.subjects()))
        cancelled = calendar_of(next(m for m in box.messages if "peruttu" in str(m["Subject"])))
        assert b"METHOD:CANCEL" in cancelled and b"STATUS:CANCELLED" in cancelled
        for again in ({"token": token}, {"code": code, "contact": "asiakas@example.fi"}):
            status, answer = await _api(live, "POST", "/api/public/booking/cancel", again)
            assert status == 409 and answer["error"]["reason"] == "not_booked", again

        # Bad query strings on the read endpoints.
        for path in (
            "/api/public/booking/offer",
            "/api/public/booking/offer?office=abc",
            "/api/public/booking/offer?office=999999",
            f"/api/public/booking/slots?office={office}&authority=kela&language=FIN",
            f"/api/public/booking/slots?office={office}&authority=kela&language=fin&days=99",
            f"/api/public/booking/slots?office={office}&authority=kela&language=fin&from=2026-13-01",
            f"/api/public/booking/slots?office={office}&authority=nobody&language=fin",
        ):
            status, answer = await _api(live, "GET", path)
            assert status in (400, 404) and answer["ok"] is False, path

        # The pages are served.
        async with aiohttp.ClientSession() as http:
            for path in ("/book", f"/booking/{token}", "/static/book/book.js"):
                async with http.get(live.base_url + path) as response:
                    assert response.status == 200, path


async def test_reminders_are_sent_once_and_failures_retried(
    tmp_path: Path,
    messaging: Messaging,  # noqa: F811
) -> None:
    from signaling.db import create_engine, session_factory
    from signaling.transport.services import Services

    box, sms = messaging.box, messaging.sms
    async with _messaging_service(tmp_path, messaging, booking_send_attempts=3) as live:
        services = live.services
        await _set_availability(services.sessions, "kela", ALWAYS)
        now = datetime.now(UTC)
        async with services.sessions() as session:
            made = await booking.book_slot(
                session,
                kela_request(
                    live.demo.office_id,
                    await _first_slot(live, now + timedelta(days=2)),
                    contact_email="muistutus@example.fi",
                    contact_phone="+358501112222",
                    message_language="sv",
                    remote=True,
                ),
                now - timedelta(days=1),  # booked yesterday: both reminders are due later
                BookingRules(30, 0, 28),
            )
        appointment = made.appointment
        sms.fail = 1  # the gateway is down for the first try
        await booking_outbox.enqueue_and_commit(services, appointment, "confirmation")
        await booking_outbox.deliver_due(services)
        assert box.subjects() and box.subjects()[0].startswith("Tidsbokning bekräftad")
        assert "Hemifrån med video" in body_of(box.messages[0])
        # A remote booking's messages carry the customer's join link
        # (signaling/flow/join_tokens.py).
        joined = re.search(
            r"Anslut till videomötet: http://\S+/join/([A-Za-z0-9_-]{32,})\?",
            body_of(box.messages[0]),
        )
        assert joined
        # Its token, like the manage link's, is made at send time and stored only as a hash.
        assert await _rows_holding(live, joined.group(1)) == []
        assert sms.refused == 1 and sms.messages == []
        async with services.sessions() as session:
            failed = (
                await session.execute(select(BookingMessage).where(BookingMessage.channel == "sms"))
            ).scalar_one()
            assert failed.status == "pending" and failed.attempts == 1 and failed.last_error
        # Retried after its back-off.
        await booking_outbox.deliver_due(services, datetime.now(UTC) + timedelta(minutes=2))
        assert len(sms.messages) == 1

        # Two "processes" (two engines on one database) sweep at the same moment, 23 hours
        # before the booked time: the 24 h reminder goes once by each channel.
        other_engine = create_engine(live.settings.sqlalchemy_url)
        other = Services(
            settings=live.settings,
            engine=other_engine,
            sessions=session_factory(other_engine),
            sio=services.sio,
        )
        try:
            at = appointment.starts_at - timedelta(hours=23)
            mails, texts = len(box.messages), len(sms.messages)
            await asyncio.gather(
                booking_outbox.sweep(services, at), booking_outbox.sweep(other, at)
            )
            assert len(box.messages) == mails + 1 and len(sms.messages) == texts + 1
            assert box.subjects()[-1].startswith("Påminnelse")
            await asyncio.gather(
                booking_outbox.sweep(services, at), booking_outbox.sweep(other, at)
            )
            assert len(box.messages) == mails + 1 and len(sms.messages) == texts + 1
            # The 2 h reminder, once.
            at = appointment.starts_at - timedelta(hours=1)
            await asyncio.gather(
                booking_outbox.sweep(services, at), booking_outbox.sweep(other, at)
            )
            await booking_outbox.sweep(services, at)
            assert len(box.messages) == mails + 2 and len(sms.messages) == texts + 2
        finally:
            await other_engine.dispose()

        # A gateway that stays down: given up after booking_send_attempts, logged, no raise.
        sms.fail = 100
        await booking_outbox.enqueue_and_commit(services, appointment, "rebooked")
        later = datetime.now(UTC)
        for step in range(4):
            await booking_outbox.deliver_due(services, later + timedelta(minutes=10 * step))
        async with services.sessions() as session:
            given_up = (
                await session.execute(
                    select(BookingMessage).where(
                        BookingMessage.channel == "sms", BookingMessage.kind == "rebooked"
                    )
                )
            ).scalar_one()
            assert given_up.status == "failed" and given_up.attempts == 3
            assert given_up.link_token is None


async def _first_slot(live: LiveService, after: datetime) -> datetime:
    async with live.services.sessions() as session:
        office = await session.get(Office, live.demo.office_id)
        assert office is not None
        kela = await booking.find_authority(session, "kela")
        slots = await booking.slots_for(
            session,
            office,
            kela,
            "fin",
            after,
            after + timedelta(days=1),
            after,
            BookingRules(30, 0, 28),
        )
    return slots[0].starts_at


async def test_secretary_and_expert_events(live_service: LiveService) -> None:
    live = live_service
    await _set_availability(live.services.sessions, "kela", ALWAYS)
    clerk = await live.connect_user("sihteeri")
    office = live.demo.office_id
    offer = await clerk.call("booking:offer", {})
    assert offer["ok"] and [o["id"] for o in offer["offices"]] == [office]
    found = await clerk.call(
        "booking:slots", {"office_id": office, "authority": "kela", "language": "fin", "days": 2}
    )
    assert found["ok"] and found["slots"], found
    starts = found["slots"][-1]["starts_at"]
    made = await clerk.call(
        "booking:book",
        {
            "office_id": office,
            "authority": "kela",
            "service_type": "general_advice",
            "language": "fin",
            "starts_at": starts,
            "contact_phone": "0401234567",
        },
    )
    assert made["ok"], made
    assert (
        made["appointment"]["code"]
        and made["appointment"]["booked_by"] == live.demo.user_ids["sihteeri"]
    )
    # Another office is not hers; the same slot again is taken; garbage is refused.
    for event, payload, code in (
        (
            "booking:slots",
            {"office_id": office + 1, "authority": "kela", "language": "fin"},
            "forbidden",
        ),
        ("booking:book", {**_staff(office, starts), "office_id": office + 1}, "forbidden"),
        ("booking:book", _staff(office, starts), "conflict"),
        ("booking:book", {**_staff(office, starts), "starts_at": "nope"}, "invalid"),
        ("booking:book", {**_staff(office, starts), "contact_email": "x"}, "invalid"),
        # Ids beyond the database's integer are refused before any query (PostgreSQL errs).
        ("booking:book", {**_staff(office, starts), "office_id": 2**31}, "invalid"),
        (
            "booking:slots",
            {"office_id": office, "authority": "kela", "language": "fin", "days": 0},
            "invalid",
        ),
        ("booking:slots", {"office_id": office, "authority": "kela"}, "invalid"),
        ("booking:offer", {"office_id": "x"}, "invalid"),
        ("availability:set", {"authority": "kela", "weekly": []}, "forbidden"),
        ("appointment:book", {**_old(office + 1)}, "forbidden"),
    ):
        ack = await clerk.call(event, payload)
        assert not ack["ok"] and ack["error"]["code"] == code, (event, payload, ack)
    # The clerk may use the old booking event for her own office too.
    ack = await clerk.call("appointment:book", _old(office))
    assert ack["ok"], ack

    expert = await live.connect_user("kela")
    ack = await expert.call("availability:set", {"authority": "kela", "weekly": ["mon-fri 9-12"]})
    assert ack["ok"] and ack["item"]["weekly"] == ["mon-fri 09:00-12:00"]
    for payload in (
        {"authority": "kela", "weekly": ["mon-fri 12-9"]},
        {"authority": "kela", "weekly": ["someday 9-12"]},
        {"authority": "vero", "weekly": ["mon 9-12"]},
        {"authority": "kela", "weekly": ["mon 9-12"], "user_id": live.demo.user_ids["rakennus"]},
        {"authority": "kela", "weekly": "mon 9-12"},
    ):
        ack = await expert.call("availability:set", payload)
        assert not ack["ok"], payload
    ack = await expert.call("availability:get", {})
    assert ack["ok"] and ack["items"][0]["weekly"] == ["mon-fri 09:00-12:00"]
    # An expert's office id goes to the database as given: one beyond its integer is refused
    # first (on PostgreSQL it would fail there).
    for event, payload in (
        ("booking:book", {**_staff(office, starts), "office_id": 2**31}),
        ("booking:slots", {"office_id": 2**31, "authority": "kela", "language": "fin"}),
        ("booking:offer", {"office_id": 2**63}),
        ("availability:get", {"user_id": 2**31}),
    ):
        ack = await expert.call(event, payload)
        assert not ack["ok"] and ack["error"]["code"] == "invalid", (event, payload, ack)


def _staff(office: int, starts: str) -> dict[str, Any]:
    return {
        "office_id": office,
        "authority": "kela",
        "service_type": "general_advice",
        "language": "fin",
        "starts_at": starts,
    }


def _old(office: int) -> dict[str, Any]:
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    return {
        "authority_id": 1,
        "office_id": office,
        "starts_at": later,
        "language": "fin",
        "service_type": "general_advice",
    }


def test_public_limiter_counts_per_address() -> None:
    from signaling.booking.booking_api import PublicLimiter
    from signaling.transport.http import ApiError

    clock = [0.0]
    limiter = PublicLimiter(20, clock=lambda: clock[0])
    for _ in range(20):
        limiter.admit_here("192.0.2.1", write=False)
    with pytest.raises(ApiError):
        limiter.admit_here("192.0.2.1", write=False)
    limiter.admit_here("192.0.2.2", write=False)  # another address is not affected
    limiter.admit_here("192.0.2.2", write=True)
    limiter.admit_here("192.0.2.2", write=True)
    with pytest.raises(ApiError):
        limiter.admit_here("192.0.2.2", write=True)  # bookings: a tenth
    clock[0] = 61.0
    limiter.admit_here("192.0.2.1", write=False)  # the window moved on
    for _ in range(10):
        limiter.lookup_failed_here("192.0.2.3")
    with pytest.raises(ApiError):
        limiter.admit_here("192.0.2.3", write=False)  # guessing codes blocks the address


def test_contacts_are_normalised_or_refused() -> None:
    assert booking.normalize_phone("040 123 4567") == "+358401234567"
    assert booking.normalize_phone("00358-40-1234567") == "+358401234567"
    assert booking.normalize_email(" a.b@example.fi ") == "a.b@example.fi"
    for bad in ("12", "+0123", "phone", "+358 40 12a"):
        with pytest.raises(FlowError):
            booking.normalize_phone(bad)
    for bad in ("a@b", "@example.fi", "a b@example.fi", "a@example.fi>", "x" * 300 + "@e.fi"):
        with pytest.raises(FlowError):
            booking.normalize_email(bad)
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", booking.new_manage_token())
