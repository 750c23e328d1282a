"""Booking over the wire (issue 17): the public pages `/book` and `/booking/<token>` with their
JSON API (no account; rate-limited per address), the service secretary's and the experts'
socket events, and the administrators' availability API. Rules: signaling/booking/booking.py.

Public API (every body validated; errors `{ok: false, error: {code, message, reason?}}`):

    GET  /api/public/booking/offices
    GET  /api/public/booking/offer?office=ID
    GET  /api/public/booking/slots?office=ID&authority=kela&language=fin[&from=YYYY-MM-DD][&days=7]
                                             [&interpreting=ara]  (times an interpreter is free)
    POST /api/public/booking                 {office_id, authority, service_type, language, ...}
    POST /api/public/booking/lookup          {token} | {code, contact}
    POST /api/public/booking/cancel          {token} | {code, contact}
    POST /api/public/booking/rebook          {token} | {code, contact}, starts_at

Administrators: GET /api/booking/availability[?user=ID], PUT /api/booking/availability/{user}/
{authority} {weekly}, GET /api/booking/slot-lengths, PUT /api/booking/slot-lengths/{authority}
{minutes} (null: the default).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select

from signaling.booking import booking, booking_outbox
from signaling.booking.booking import BookingRequest, BookingRules
from signaling.db import DB_INT_MAX, DbId, utcnow
from signaling.directory.login_guard import (
    FailureCounter,
    RedisFallbackLog,
    RedisWindows,
    Window,
)
from signaling.directory.principals import Principal, Role
from signaling.directory.service_hours import HELSINKI
from signaling.flow.appointments import push_appointment
from signaling.flow.flow_common import (
    LANGUAGE_PATTERN,
    FlowError,
    authority_view,
    enabled_authorities,
    forbidden,
    invalid,
    parse_time,
)
from signaling.flow.interpreter_reservations import push_changed, reservation_of
from signaling.flow.office_offer import catalogue_of
from signaling.store.models import Office
from signaling.transport import pages
from signaling.transport.http import (
    ApiError,
    client_address,
    json_ok,
    path_id,
    read_json,
    require_principal,
    services_of,
)
from signaling.transport.protocol import ErrorCode, EventContext, EventModel, on_event
from signaling.transport.services import Services

BOOK_DIR = pages.ROOT / "signaling" / "static" / "book"
# Failed look-ups (wrong code or contact, unknown link) per address per window: guessing.
LOOKUP_FAILURES = 10
LOOKUP_WINDOW = 900.0


def rules_of(services: Services) -> BookingRules:
    s = services.settings
    return BookingRules(s.booking_slot_minutes, s.booking_min_lead_minutes, s.booking_days_ahead)


# --- shared views ---------------------------------------------------------------------------


async def offer_view(session: Any, office: Office) -> dict[str, Any]:
    """What can be booked at an office: authorities with services and languages."""
    catalogue = await catalogue_of(session, office.id)
    authorities = []
    for authority in await enabled_authorities(session):
        if catalogue is not None and authority.id not in catalogue:
            continue
        view = authority_view(authority)
        languages = catalogue.get(authority.id) if catalogue is not None else None
        view["languages"] = sorted(languages) if languages else list(booking.SERVICE_LANGUAGES)
        authorities.append(view)
    return {
        "office": {"id": office.id, "name": office.name, "municipality": office.municipality},
        "authorities": authorities,
        "interpreting": await booking.interpreting_languages(session),
        "message_languages": list(booking.MESSAGE_LANGUAGES),
    }


async def slots_answer(
    services: Services,
    office_id: int,
    authority: str,
    language: str,
    first_day: date | None,
    days: int,
    interpreting: str | None = None,
) -> dict[str, Any]:
    now = utcnow()
    today = now.astimezone(HELSINKI).date()
    first = max(first_day or today, today)
    start = datetime(first.year, first.month, first.day, tzinfo=HELSINKI)
    end = start + timedelta(days=days)
    async with services.sessions() as session:
        office = await session.get(Office, office_id)
        if office is None or not office.enabled:
            raise FlowError(ErrorCode.NOT_FOUND, f"no office {office_id}")
        found = await booking.find_authority(session, authority)
        await booking.offered(session, office, found, language)
        if interpreting is not None and interpreting not in (
            await booking.interpreting_languages(session)
        ):
            raise FlowError(
                ErrorCode.INVALID,
                f"no interpreting in {interpreting!r}",
                "interpreting_not_offered",
            )
        slots = await booking.slots_for(
            session, office, found, language, start, end, now, rules_of(services), interpreting
        )
    return {"slots": [booking.slot_view(s) for s in slots], "from": first.isoformat(), "days": days}


async def after_booking(services: Services, appointment_id: int, kind: str) -> dict[str, Any]:
    """Queue the messages of a new, moved or cancelled booking, push it to the consoles and
    send the messages now (in the background; failures are retried by the sweep)."""
    from signaling.flow.appointments import appointment_view
    from signaling.store.flow_models import Appointment

    async with services.sessions() as session:
        appointment = await session.get(Appointment, appointment_id)
        assert appointment is not None
        await booking_outbox.enqueue(session, appointment, kind, utcnow())
        await session.commit()
        staff_view = await appointment_view(session, appointment)
        customer_view = await booking.booking_view(session, appointment)
        reserved = await reservation_of(session, appointment_id)
    await push_appointment(services, staff_view)
    # The reserved interpreter's console lists his reservations (issue 17).
    await push_changed(services, [reserved.interpreter_id if reserved else None])
    booking_outbox.kick(services)
    return {"staff": staff_view, "customer": customer_view}


# --- rate limits -------------------------------------------------------------------------------


class PublicLimiter:
    """Requests per address per minute (bookings and changes: a tenth of that), and failed
    look-ups per address (guessing codes blocks every request of the address).

    One process (no Redis): the in-memory counters of signaling/directory/login_guard.py decide
    (`admit_here`, `lookup_failed_here`). Several processes: `use_redis` (signaling/flow/leases.py
    calls it at start) makes the counters `RedisWindows` under `<prefix>:booking:…`, one budget
    over every process behind the load balancer, checked and counted in one atomic step. If
    Redis does not answer, this process's own counters decide (logged), as for logins."""

    def __init__(self, per_minute: int, clock: Any = time.monotonic) -> None:
        self.read_window = Window(per_minute, 60.0)
        self.write_window = Window(max(1, per_minute // 10), 60.0)
        self.lookup_window = Window(LOOKUP_FAILURES, LOOKUP_WINDOW)
        self.reads = FailureCounter(per_minute, 60.0, 100_000, clock)
        self.writes = FailureCounter(self.write_window.limit, 60.0, 100_000, clock)
        self.lookups = FailureCounter(LOOKUP_FAILURES, LOOKUP_WINDOW, 100_000, clock)
        self.shared: RedisWindows | None = None
        self._warn = RedisFallbackLog("booking limits")

    def use_redis(self, client: Any, prefix: str) -> None:
        self.shared = RedisWindows(client, prefix)

    def use_memory(self) -> None:
        self.shared = None

    @staticmethod
    def _refuse() -> Exception:
        return ApiError(ErrorCode.RATE_LIMITED, "too many requests; try again in a minute", 60)

    async def admit(self, address: str, write: bool) -> None:
        """Count one request of `address`; raises the HTTP 429 error past a limit (over every
        process when the counters are in Redis)."""
        shared = self.shared
        if shared is not None:
            kind, window = ("writes", self.write_window) if write else ("reads", self.read_window)
            counters = [
                (shared.key(f"booking:{kind}", address), window),
                (shared.key("booking:lookups", address), self.lookup_window),
            ]
            try:
                reached = await shared.hit(counters, check=2, add=1)
            except Exception as exc:
                self._warn(exc)
            else:
                if reached:
                    raise self._refuse()
                # Counted here as well: these decide when Redis stops answering.
                (self.writes if write else self.reads).add(address)
                return
        self.admit_here(address, write)

    async def lookup_failed(self, address: str) -> None:
        """A wrong code or contact, or an unknown link, from `address`."""
        self.lookup_failed_here(address)
        if self.shared is not None:
            key = self.shared.key("booking:lookups", address)
            try:
                await self.shared.hit([(key, self.lookup_window)], check=0, add=1)
            except Exception as exc:
                self._warn(exc)

    def admit_here(self, address: str, write: bool) -> None:
        """`admit` with this process's counters only."""
        counter = self.writes if write else self.reads
        if counter.exceeded(address) or self.lookups.exceeded(address):
            raise self._refuse()
        counter.add(address)

    def lookup_failed_here(self, address: str) -> None:
        self.lookups.add(address)


LIMITER_KEY = web.AppKey("booking_limiter", PublicLimiter)


def _limiter(request: web.Request) -> PublicLimiter:
    return request.app[LIMITER_KEY]


def _address(request: web.Request) -> str:
    return client_address(request, services_of(request.app).settings.trusted_proxies)


def _api_error(exc: FlowError) -> web.HTTPException:
    error = ApiError(exc.code, exc.message)
    detail: dict[str, Any] = {"code": str(exc.code), "message": exc.message}
    if exc.reason is not None:
        detail["reason"] = exc.reason
    error.text = json.dumps({"ok": False, "error": detail})
    return error


# --- public bodies -----------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _check_time(value: str) -> str:
    parse_time(value)
    return value


class BookingForm(BaseModel):
    """A new booking's fields: the customer's `POST /api/public/booking` (PublicBooking) and
    the staff's `booking:book` (StaffBooking) send the same form."""

    office_id: DbId
    authority: str = Field(min_length=1, max_length=32)
    service_type: str = Field(min_length=1, max_length=64)
    language: str = Field(pattern=LANGUAGE_PATTERN)
    starts_at: str = Field(min_length=10, max_length=40)
    contact_email: str | None = Field(default=None, max_length=254)
    contact_phone: str | None = Field(default=None, max_length=32)
    message_language: str = Field(default="fi", pattern=r"^(fi|sv|en)$")
    remote: bool = False
    interpreting: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)

    _time = field_validator("starts_at")(_check_time)

    def request(
        self, office_id: int, authority: str | int, via: str, booked_by: int | None = None
    ) -> BookingRequest:
        """The form as booking.book_slot takes it, at the office and authority the caller
        settled on."""
        return BookingRequest(
            office_id=office_id,
            authority=authority,
            service_type=self.service_type,
            language=self.language,
            starts_at=parse_time(self.starts_at),
            contact_email=self.contact_email,
            contact_phone=self.contact_phone,
            message_language=self.message_language,
            remote=self.remote,
            interpreting=self.interpreting,
            via=via,
            booked_by=booked_by,
        )


class PublicBooking(BookingForm, _Body):
    # Narrower than the staff's form: lower-case codes.
    authority: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")
    # The public body's names for the contact fields.
    contact_email: str | None = Field(default=None, max_length=254, alias="email")
    contact_phone: str | None = Field(default=None, max_length=32, alias="phone")

    @model_validator(mode="after")
    def _contact(self) -> PublicBooking:
        if not (self.contact_email or "").strip() and not (self.contact_phone or "").strip():
            raise ValueError("give an e-mail address or a mobile number")
        return self


class Credentials(_Body):
    token: str | None = Field(
        default=None, min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"
    )
    code: str | None = Field(default=None, min_length=1, max_length=20)
    contact: str | None = Field(default=None, min_length=3, max_length=254)

    @model_validator(mode="after")
    def _one_way(self) -> Credentials:
        if self.token is None and (self.code is None or self.contact is None):
            raise ValueError("give the link's token, or the booking code and its e-mail or phone")
        if self.token is not None and (self.code is not None or self.contact is not None):
            raise ValueError("give either the token or the code and contact, not both")
        return self


class Rebook(Credentials):
    starts_at: str = Field(min_length=10, max_length=40)

    _time = field_validator("starts_at")(_check_time)


# --- public handlers ---------------------------------------------------------------------------


def _query_int(
    request: web.Request, name: str, low: int, high: int, default: int | None = None
) -> int:
    raw = request.query.get(name)
    if raw is None and default is not None:
        return default
    try:
        value = int(raw or "")
    except ValueError:
        raise ApiError(ErrorCode.INVALID, f"{name}: a whole number") from None
    if not low <= value <= high:
        raise ApiError(ErrorCode.INVALID, f"{name}: from {low} to {high}")
    return value


async def api_offices(request: web.Request) -> web.Response:
    await _limiter(request).admit(_address(request), write=False)
    async with services_of(request.app).sessions() as session:
        rows = await session.execute(
            select(Office).where(Office.enabled.is_(True)).order_by(Office.name, Office.id)
        )
        offices = [
            {"id": o.id, "name": o.name, "municipality": o.municipality} for o in rows.scalars()
        ]
    return json_ok(offices=offices)


async def api_offer(request: web.Request) -> web.Response:
    await _limiter(request).admit(_address(request), write=False)
    office_id = _query_int(request, "office", 1, DB_INT_MAX)
    async with services_of(request.app).sessions() as session:
        office = await session.get(Office, office_id)
        if office is None or not office.enabled:
            raise ApiError(ErrorCode.NOT_FOUND, f"no office {office_id}")
        return json_ok(**await offer_view(session, office))


async def api_slots(request: web.Request) -> web.Response:
    await _limiter(request).admit(_address(request), write=False)
    office_id = _query_int(request, "office", 1, DB_INT_MAX)
    days = _query_int(request, "days", 1, booking.MAX_SLOT_DAYS, 7)
    authority = request.query.get("authority", "")
    language = request.query.get("language", "")
    if not (0 < len(authority) <= 32 and authority.replace("_", "").isalnum()):
        raise ApiError(ErrorCode.INVALID, "authority: an authority code")
    if len(language) != 3 or not language.isalpha() or not language.islower():
        raise ApiError(ErrorCode.INVALID, "language: an ISO 639-3 code")
    interpreting = request.query.get("interpreting") or None
    if interpreting is not None and (
        len(interpreting) != 3 or not interpreting.isalpha() or not interpreting.islower()
    ):
        raise ApiError(ErrorCode.INVALID, "interpreting: an ISO 639-3 code")
    first: date | None = None
    if "from" in request.query:
        try:
            first = date.fromisoformat(request.query["from"][:10])
        except ValueError:
            raise ApiError(ErrorCode.INVALID, "from: a date YYYY-MM-DD") from None
    try:
        answer = await slots_answer(
            services_of(request.app), office_id, authority, language, first, days, interpreting
        )
    except FlowError as exc:
        raise _api_error(exc) from None
    return json_ok(**answer)


async def api_book(request: web.Request) -> web.Response:
    await _limiter(request).admit(_address(request), write=True)
    body = await read_json(request, PublicBooking)
    services = services_of(request.app)
    try:
        async with services.sessions() as session:
            made = await booking.book_slot(
                session,
                body.request(body.office_id, body.authority, via="customer"),
                utcnow(),
                rules_of(services),
            )
    except FlowError as exc:
        raise _api_error(exc) from None
    views = await after_booking(services, made.appointment.id, "confirmation")
    # The booking's own token leaves the server only here (the page shows its link); the
    # confirmation carries a token of its own, made when it is sent (booking_outbox.py).
    return json_ok(booking=views["customer"], manage_path=f"/booking/{made.token}")


async def _find(request: web.Request, body: Credentials) -> Any:
    services = services_of(request.app)
    async with services.sessions() as session:
        try:
            if body.token is not None:
                return await booking.by_token(session, body.token)
            assert body.code is not None and body.contact is not None
            return await booking.by_code(session, body.code, body.contact)
        except FlowError as exc:
            await _limiter(request).lookup_failed(_address(request))
            raise _api_error(exc) from None


async def api_lookup(request: web.Request) -> web.Response:
    await _limiter(request).admit(_address(request), write=False)
    body = await read_json(request, Credentials)
    appointment = await _find(request, body)
    async with services_of(request.app).sessions() as session:
        return json_ok(booking=await booking.booking_view(session, appointment))


async def _change_booking(
    request: web.Request,
    body: Credentials,
    change: Callable[[Any, Any], Awaitable[None]],
    kind: str,
) -> web.Response:
    """Cancel or move the booking the body's link or code finds: `change(session, appointment)`
    does it; then the customer's `kind` message and the consoles' update (after_booking)."""
    appointment = await _find(request, body)
    services = services_of(request.app)
    try:
        async with services.sessions() as session:
            appointment = await session.merge(appointment)
            await change(session, appointment)
    except FlowError as exc:
        raise _api_error(exc) from None
    views = await after_booking(services, appointment.id, kind)
    return json_ok(booking=views["customer"])


async def api_cancel(request: web.Request) -> web.Response:
    await _limiter(request).admit(_address(request), write=True)
    body = await read_json(request, Credentials)

    async def cancel(session: Any, appointment: Any) -> None:
        await booking.cancel_booking(session, appointment, utcnow())

    return await _change_booking(request, body, cancel, "cancelled")


async def api_rebook(request: web.Request) -> web.Response:
    await _limiter(request).admit(_address(request), write=True)
    body = await read_json(request, Rebook)
    rules = rules_of(services_of(request.app))

    async def move(session: Any, appointment: Any) -> None:
        await booking.rebook(session, appointment, parse_time(body.starts_at), utcnow(), rules)

    return await _change_booking(request, body, move, "rebooked")


async def book_page(_request: web.Request) -> web.StreamResponse:
    found = pages.safe_join(BOOK_DIR, "index.html")
    if found is None:
        raise web.HTTPNotFound()
    response = pages.file_response(found)
    return response


async def book_static(request: web.Request) -> web.StreamResponse:
    found = pages.safe_join(BOOK_DIR, request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound()
    return pages.file_response(found)


# --- administrators: availability over HTTP ---------------------------------------------------


class AvailabilityBody(_Body):
    weekly: list[str] = Field(default_factory=list, max_length=14)


async def api_admin_availability(request: web.Request) -> web.Response:
    await require_principal(request, {Role.ADMIN})
    user_id = _query_int(request, "user", 1, DB_INT_MAX) if "user" in request.query else None
    async with services_of(request.app).sessions() as session:
        return json_ok(items=await booking.availability_of(session, user_id=user_id))


async def api_admin_put_availability(request: web.Request) -> web.Response:

    await require_principal(request, {Role.ADMIN})
    body = await read_json(request, AvailabilityBody)
    user_id = path_id(request, "user", "user")
    try:
        async with services_of(request.app).sessions() as session:
            expert = await booking.find_expert(session, user_id)
            authority = await booking.find_authority(session, request.match_info["authority"])
            specs = await booking.set_availability(
                session, expert, authority, body.weekly, utcnow()
            )
            await session.commit()
    except FlowError as exc:
        raise _api_error(exc) from None
    return json_ok(item={"user_id": user_id, "authority": authority.code, "weekly": specs})


class SlotLengthBody(_Body):
    # None: back to the default (`booking_slot_minutes`).
    minutes: int | None = Field(default=None, ge=5, le=480)


async def api_admin_slot_lengths(request: web.Request) -> web.Response:
    """Every enabled authority's slot length (`custom`: set here, not the default)."""
    await require_principal(request, {Role.ADMIN})
    services = services_of(request.app)
    default = services.settings.booking_slot_minutes
    async with services.sessions() as session:
        items = []
        for authority in await enabled_authorities(session):
            minutes = await booking.slot_minutes(session, authority.id, 0)
            items.append(
                {
                    "authority": authority.code,
                    "minutes": minutes or default,
                    "custom": bool(minutes),
                    "default": default,
                }
            )
    return json_ok(items=items)


async def api_admin_put_slot_length(request: web.Request) -> web.Response:
    await require_principal(request, {Role.ADMIN})
    body = await read_json(request, SlotLengthBody)
    services = services_of(request.app)
    try:
        async with services.sessions() as session:
            authority = await booking.find_authority(session, request.match_info["authority"])
            await booking.set_slot_minutes(session, authority, body.minutes)
            await session.commit()
    except FlowError as exc:
        raise _api_error(exc) from None
    minutes = body.minutes or services.settings.booking_slot_minutes
    return json_ok(
        item={"authority": authority.code, "minutes": minutes, "custom": body.minutes is not None}
    )


# --- socket events: the service secretary, experts, administrators ------------------------------


class OfferPayload(EventModel):
    office_id: DbId | None = None


class SlotsPayload(EventModel):
    office_id: DbId
    authority: str = Field(min_length=1, max_length=32)
    language: str = Field(pattern=LANGUAGE_PATTERN)
    # A local date (YYYY-MM-DD) to start from; today when missing.
    from_: str | None = Field(default=None, alias="from", pattern=r"^\d{4}-\d{2}-\d{2}$")
    days: int = Field(default=7, ge=1, le=booking.MAX_SLOT_DAYS)
    # Only the times an interpreter of this language is free (issue 17).
    interpreting: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)


class StaffBooking(BookingForm, EventModel):
    """`booking:book`: the form of BookingForm, under the event payloads' rules."""


class AvailabilityPayload(EventModel):
    authority: str = Field(min_length=1, max_length=32)
    weekly: list[str] = Field(default_factory=list, max_length=14)
    # An administrator names the expert; an expert sets his own.
    user_id: DbId | None = None


class AvailabilityGet(EventModel):
    user_id: DbId | None = None


def _own_office(principal: Principal, office_id: int | None) -> int | None:
    """A clerk books for her own office only."""
    if principal.role == Role.CLERK:
        if principal.office_id is None:
            raise forbidden("you have no office", "no_office")
        if office_id is not None and office_id != principal.office_id:
            raise forbidden("you may book only for your own office", "other_office")
        return principal.office_id
    return office_id


@on_event("booking:offer", OfferPayload, roles={Role.CLERK, Role.EXPERT, Role.ADMIN})
async def booking_offer(ctx: EventContext, data: OfferPayload) -> dict[str, Any]:
    office_id = _own_office(ctx.principal, data.office_id)
    async with ctx.services.sessions() as session:
        rows = await session.execute(
            select(Office).where(Office.enabled.is_(True)).order_by(Office.name, Office.id)
        )
        offices = [
            {"id": o.id, "name": o.name}
            for o in rows.scalars()
            if ctx.principal.role != Role.CLERK or o.id == office_id
        ]
        office = await session.get(Office, office_id) if office_id else None
        if office_id and (office is None or not office.enabled):
            raise FlowError(ErrorCode.NOT_FOUND, f"no office {office_id}")
        offer = await offer_view(session, office) if office is not None else None
    return {"offices": offices, "offer": offer}


@on_event("booking:slots", SlotsPayload, roles={Role.CLERK, Role.EXPERT, Role.ADMIN})
async def booking_slots(ctx: EventContext, data: SlotsPayload) -> dict[str, Any]:
    office_id = _own_office(ctx.principal, data.office_id)
    assert office_id is not None
    first = date.fromisoformat(data.from_) if data.from_ else None
    return await slots_answer(
        ctx.services, office_id, data.authority, data.language, first, data.days, data.interpreting
    )


@on_event("booking:book", StaffBooking, roles={Role.CLERK, Role.EXPERT, Role.ADMIN})
async def booking_book(ctx: EventContext, data: StaffBooking) -> dict[str, Any]:
    principal = ctx.principal
    office_id = _own_office(principal, data.office_id)
    assert office_id is not None
    services = ctx.services
    async with services.sessions() as session:
        authority = await booking.find_authority(session, data.authority)
        if principal.role == Role.EXPERT and authority.id not in principal.authority_ids:
            raise forbidden("you may book only for your own authority", "other_authority")
        via = {Role.CLERK: "secretary", Role.EXPERT: "expert"}.get(principal.role, "admin")
        made = await booking.book_slot(
            session,
            data.request(office_id, authority.id, via, booked_by=principal.id),
            utcnow(),
            rules_of(services),
        )
    views = await after_booking(services, made.appointment.id, "confirmation")
    return {"appointment": views["staff"], "booking": views["customer"]}


@on_event("availability:get", AvailabilityGet, roles={Role.EXPERT, Role.ADMIN})
async def availability_get(ctx: EventContext, data: AvailabilityGet) -> dict[str, Any]:
    user_id = ctx.principal.id if ctx.principal.role == Role.EXPERT else data.user_id
    async with ctx.services.sessions() as session:
        return {"items": await booking.availability_of(session, user_id=user_id)}


@on_event("availability:set", AvailabilityPayload, roles={Role.EXPERT, Role.ADMIN})
async def availability_set(ctx: EventContext, data: AvailabilityPayload) -> dict[str, Any]:
    principal = ctx.principal
    if principal.role == Role.EXPERT:
        if data.user_id not in (None, principal.id):
            raise forbidden("you may set only your own availability", "other_user")
        user_id = principal.id
    else:
        if data.user_id is None:
            raise invalid("name the expert (user_id)", "no_user")
        user_id = data.user_id
    async with ctx.services.sessions() as session:
        expert = await booking.find_expert(session, user_id)
        authority = await booking.find_authority(session, data.authority)
        specs = await booking.set_availability(session, expert, authority, data.weekly, utcnow())
        await session.commit()
    return {"item": {"user_id": user_id, "authority": authority.code, "weekly": specs}}


def setup(app: web.Application, services: Services) -> None:
    limiter = PublicLimiter(services.settings.booking_rate_per_minute)
    app[LIMITER_KEY] = limiter
    # signaling/flow/leases.py moves the counters to Redis when it starts (several processes).
    services.extras["booking_limiter"] = limiter
    app.router.add_get("/book", book_page)
    app.router.add_get("/booking/{token}", book_page)
    app.router.add_get("/static/book/{path:.+}", book_static)
    app.router.add_get("/api/public/booking/offices", api_offices)
    app.router.add_get("/api/public/booking/offer", api_offer)
    app.router.add_get("/api/public/booking/slots", api_slots)
    app.router.add_post("/api/public/booking", api_book)
    app.router.add_post("/api/public/booking/lookup", api_lookup)
    app.router.add_post("/api/public/booking/cancel", api_cancel)
    app.router.add_post("/api/public/booking/rebook", api_rebook)
    app.router.add_get("/api/booking/availability", api_admin_availability)
    app.router.add_put("/api/booking/availability/{user}/{authority}", api_admin_put_availability)
    app.router.add_get("/api/booking/slot-lengths", api_admin_slot_lengths)
    app.router.add_put("/api/booking/slot-lengths/{authority}", api_admin_put_slot_length)
    booking_outbox.setup_sweeper(app, services)


__all__ = ["PublicLimiter", "after_booking", "offer_view", "setup"]
