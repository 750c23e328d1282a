"""What an office offers (issue 17): its catalogue, the service hours, municipal routing.

- **Catalogue.** The administrator lists the authorities an office offers (and optionally the
  service languages of each). An office without a list offers every enabled authority in every
  language, as before. The kiosk shows only what is offered; `ticket:take` refuses the rest
  (`forbidden`, reason `not_offered` / `language_not_offered`).
- **Service hours** (rules in signaling/directory/service_hours.py) per authority per office.
Without
  hours the authority is open at all times (as before). Outside them `ticket:take` answers
  `{ok: false, error: {code: "closed", message, opens_at}}`. Closing is gentle: only new
  tickets are refused; customers already waiting are served, and appointments check in
  whatever the hours (their booked time is the booking's concern).
- **Municipal routing.** The lines of the municipal authorities (`MUNICIPAL_AUTHORITIES`) are
  local: an office's customers go only to experts of that office's municipality
  (`users.municipality`, compared case-insensitively). Such an expert without a municipality
  sees none of them; a booked appointment goes to its expert whatever his municipality.

"Now" for the hours is `services.clock()`, so tests set the time instead of waiting for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.db import utcnow
from signaling.directory.principals import Principal, Role
from signaling.directory.service_hours import (
    ALWAYS_OPEN_VIEW,
    HELSINKI,
    Day,
    HoursError,
    ServiceHours,
    format_day,
    format_weekly,
    parse_closed,
    parse_exception,
    parse_intervals,
    parse_weekly,
)
from signaling.flow.flow_common import FlowError, authority_view, forbidden
from signaling.store.models import LANGUAGE_CODE, Authority, Office, User, UserRole
from signaling.store.offer_models import OfficeCatalogueEntry, ServiceHoursDate, ServiceHoursRule
from signaling.transport import rooms
from signaling.transport.http import (
    ApiError,
    json_ok,
    path_id,
    read_json,
    require_principal,
    services_of,
)
from signaling.transport.protocol import ErrorCode
from signaling.transport.services import Services

log = logging.getLogger(__name__)

# The municipality's own lines: served by the office's municipality only.
MUNICIPAL_AUTHORITIES = frozenset({"kunta", "rakennusvalvonta"})
MAX_MUNICIPALITY = 100


class ClosedError(FlowError):
    """`ticket:take` outside the service hours; `opens_at` ISO 8601 with the Helsinki offset,
    or None when the line does not open within service_hours.HORIZON_DAYS."""

    def __init__(self, message: str, opens_at: datetime | None, reason: str | None = None) -> None:
        super().__init__(ErrorCode.CLOSED, message, reason)
        self.opens_at = opens_at

    def to_ack(self) -> dict[str, Any]:
        ack = super().to_ack()
        ack["error"]["opens_at"] = (
            self.opens_at.astimezone(HELSINKI).isoformat() if self.opens_at else None
        )
        return ack


def municipality_key(name: str | None) -> str | None:
    """How two spellings of one municipality compare ("Helsinki", " helsinki ")."""
    if name is None or not name.strip():
        return None
    return " ".join(name.split()).casefold()


# --- reading ------------------------------------------------------------------------------------


def hours_of(rule: ServiceHoursRule, dates: Iterable[ServiceHoursDate]) -> ServiceHours:
    return ServiceHours(
        weekly=parse_weekly(json.loads(rule.weekly or "[]")),
        dates={
            date.fromisoformat(d.day): parse_intervals(d.intervals) if d.intervals else ()
            for d in dates
        },
        public_holidays=rule.public_holidays,
    )


async def office_hours(session: AsyncSession, office_id: int) -> dict[int, ServiceHours]:
    """The hours of each authority that has some at this office (others: always open)."""
    rules = (
        await session.execute(
            select(ServiceHoursRule).where(ServiceHoursRule.office_id == office_id)
        )
    ).scalars()
    dates = (
        await session.execute(
            select(ServiceHoursDate).where(ServiceHoursDate.office_id == office_id)
        )
    ).scalars()
    per_authority: dict[int, list[ServiceHoursDate]] = {}
    for row in dates:
        per_authority.setdefault(row.authority_id, []).append(row)
    return {r.authority_id: hours_of(r, per_authority.get(r.authority_id, [])) for r in rules}


async def catalogue_of(session: AsyncSession, office_id: int) -> dict[int, frozenset[str]] | None:
    """authority id → offered languages (empty: any) of the office, or None: all offered."""
    rows = (
        await session.execute(
            select(OfficeCatalogueEntry).where(OfficeCatalogueEntry.office_id == office_id)
        )
    ).scalars()
    entries = {
        r.authority_id: frozenset(code for code in r.languages.split(",") if code) for r in rows
    }
    return entries or None


async def check_walk_in(
    session: AsyncSession, office_id: int, authority: Authority, language: str, now: datetime
) -> None:
    """Refuse a new ticket the office does not offer, or outside the hours."""
    catalogue = await catalogue_of(session, office_id)
    if catalogue is not None:
        if authority.id not in catalogue:
            raise forbidden(f"this office does not offer {authority.code}", "not_offered")
        languages = catalogue[authority.id]
        if languages and language not in languages:
            raise forbidden(
                f"this office offers {authority.code} in {', '.join(sorted(languages))}",
                "language_not_offered",
            )
    hours = (await office_hours(session, office_id)).get(authority.id)
    if hours is not None and not hours.is_open(now):
        opens = hours.opens_at(now)
        when = opens.strftime("%Y-%m-%d %H:%M") if opens else "not within the coming weeks"
        raise ClosedError(
            f"{authority.name_en} is not served at this office now; it opens {when}", opens
        )


async def check_transfer(
    session: AsyncSession, office_id: int, target: Authority, language: str, now: datetime
) -> None:
    """An expert sends a customer to `target`'s line: the customer's office must offer it (in
    `language`) and it must be open there now, as for a new ticket. Reasons `target_not_offered`,
    `target_language_not_offered` (forbidden) and `target_closed` (closed, with `opens_at`)."""
    try:
        await check_walk_in(session, office_id, target, language, now)
    except ClosedError as exc:
        raise ClosedError(
            f"cannot transfer: {exc.message}", exc.opens_at, "target_closed"
        ) from None
    except FlowError as exc:
        raise forbidden(
            f"cannot transfer: the customer's office does not offer {target.code}"
            + (f" in {language}" if exc.reason == "language_not_offered" else ""),
            f"target_{exc.reason}",
        ) from None


async def check_appointment_offered(
    session: AsyncSession, office_id: int, authority_id: int
) -> None:
    """Check-in of a booked appointment: refused (`forbidden`, `not_offered`) when the office no
    longer offers its authority. The hours do not matter (the booking chose the time)."""
    catalogue = await catalogue_of(session, office_id)
    if catalogue is not None and authority_id not in catalogue:
        raise forbidden(
            "this office no longer offers the authority of this appointment", "not_offered"
        )


async def kiosk_authorities(
    session: AsyncSession, office_id: int | None, authorities: list[Authority], now: datetime
) -> list[dict[str, Any]]:
    """The kiosk's tiles: offered authorities with their languages and hours."""
    catalogue = await catalogue_of(session, office_id) if office_id is not None else None
    hours = await office_hours(session, office_id) if office_id is not None else {}
    views = []
    for authority in authorities:
        if catalogue is not None and authority.id not in catalogue:
            continue
        view = authority_view(authority)
        languages = catalogue.get(authority.id) if catalogue is not None else None
        view["languages"] = sorted(languages) if languages else None
        rules = hours.get(authority.id)
        view["hours"] = rules.view(now) if rules is not None else dict(ALWAYS_OPEN_VIEW)
        views.append(view)
    return views


# --- municipal routing ------------------------------------------------------------------------


async def municipal_authority_ids(session: AsyncSession) -> frozenset[int]:
    rows = await session.execute(
        select(Authority.id).where(Authority.code.in_(sorted(MUNICIPAL_AUTHORITIES)))
    )
    return frozenset(rows.scalars())


async def office_municipalities(session: AsyncSession) -> dict[int, str | None]:
    rows = await session.execute(select(Office.id, Office.municipality))
    return {ident: municipality_key(name) for ident, name in rows}


class Routing:
    """Who may see and take which waiting ticket, by municipality (loaded once per question)."""

    def __init__(self, municipal: frozenset[int], offices: dict[int, str | None]) -> None:
        self.municipal = municipal
        self.offices = offices

    def line_key(self, authority_id: int, office_id: int) -> str | None:
        """The municipality whose line the ticket is in; None for a national line."""
        if authority_id not in self.municipal:
            return None
        return self.offices.get(office_id) or ""

    def visible_to(
        self, authority_id: int, office_id: int, booked_expert: int | None, expert: Principal
    ) -> bool:
        if authority_id not in self.municipal or booked_expert == expert.id:
            return True
        mine = municipality_key(expert.municipality)
        return mine is not None and self.offices.get(office_id) == mine

    def offices_of(self, municipality: str | None) -> list[int]:
        key = municipality_key(municipality)
        if key is None:
            return []
        return sorted(o for o, m in self.offices.items() if m == key)


async def routing(session: AsyncSession) -> Routing:
    return Routing(await municipal_authority_ids(session), await office_municipalities(session))


def municipal_room(authority_id: int, municipality: str) -> str:
    """Experts of a municipal authority working for `municipality` (a municipality_key)."""
    return f"authority:{authority_id}:municipality:{municipality}"


async def enter_municipal_rooms(services: Services, sid: str, principal: Principal) -> None:
    if principal.role != Role.EXPERT:
        return
    key = municipality_key(principal.municipality)
    if key is None:
        return
    async with services.sessions() as session:
        municipal = await municipal_authority_ids(session)
    for authority_id in sorted(principal.authority_ids & municipal):
        await services.sio.enter_room(sid, municipal_room(authority_id, key))


# --- changing (the caller commits) --------------------------------------------------------------


class OfferError(ValueError):
    """Bad input for the catalogue, hours or a municipality; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def find_authority_code(session: AsyncSession, code: str) -> Authority:
    authority = (
        await session.execute(select(Authority).where(Authority.code == code.strip()))
    ).scalar_one_or_none()
    if authority is None:
        raise OfferError("not_found", f"no authority with code {code!r}")
    return authority


async def find_office_id(session: AsyncSession, office_id: int) -> Office:
    office = await session.get(Office, office_id)
    if office is None:
        raise OfferError("not_found", f"no office {office_id}")
    return office


def _hours_error(exc: HoursError) -> OfferError:
    return OfferError("invalid", str(exc))


def parse_rules(
    weekly: list[str], exceptions: list[str], closed: list[str], public_holidays: bool
) -> tuple[ServiceHours, list[str]]:
    """Read the written rules (all of them, before anything is stored); OfferError when bad.
    Returns the rules and the normalised weekly specs."""
    if not weekly and not exceptions:
        raise OfferError(
            "invalid", "give weekly hours or an exception (clear the hours to be open always)"
        )
    try:
        pattern = parse_weekly(weekly)
        dates: dict[date, Day] = {}
        for text in exceptions:
            day, intervals = parse_exception(text)
            if day in dates:
                raise HoursError(f"{day.isoformat()} is given twice")
            dates[day] = intervals
        for text in closed:
            for day in parse_closed(text):
                if dates.get(day):
                    raise HoursError(f"{day.isoformat()} is both closed and an exception")
                dates[day] = ()
    except HoursError as exc:
        raise _hours_error(exc) from None
    return ServiceHours(pattern, dates, public_holidays), format_weekly(pattern)


async def set_hours(
    session: AsyncSession,
    office: Office,
    authority: Authority,
    hours: ServiceHours,
    now: datetime,
) -> None:
    """Replace the authority's hours at the office with `hours`."""
    await clear_hours(session, office.id, authority.id)
    session.add(
        ServiceHoursRule(
            office_id=office.id,
            authority_id=authority.id,
            weekly=json.dumps(format_weekly(hours.weekly)),
            public_holidays=hours.public_holidays,
            updated_at=now,
        )
    )
    for day, intervals in sorted(hours.dates.items()):
        session.add(
            ServiceHoursDate(
                office_id=office.id,
                authority_id=authority.id,
                day=day.isoformat(),
                intervals=format_day(intervals),
            )
        )
    await session.flush()


async def clear_hours(session: AsyncSession, office_id: int, authority_id: int) -> bool:
    """Back to open at all times; False when there were no hours."""
    had = await session.get(ServiceHoursRule, (office_id, authority_id)) is not None
    for table in (ServiceHoursDate, ServiceHoursRule):
        await session.execute(
            delete(table).where(table.office_id == office_id, table.authority_id == authority_id)
        )
    return had


def rules_dict(authority: Authority, hours: ServiceHours | None, now: datetime) -> dict[str, Any]:
    """An authority's hours as the CLI and the HTTP API show them."""
    if hours is None:
        return {"authority": authority.code, "always_open": True, "open_now": True}
    opens = hours.opens_at(now)
    return {
        "authority": authority.code,
        "always_open": False,
        "weekly": format_weekly(hours.weekly),
        "exceptions": [
            f"{d.isoformat()} {format_day(i)}" for d, i in sorted(hours.dates.items()) if i
        ],
        "closed": [d.isoformat() for d, i in sorted(hours.dates.items()) if not i],
        "public_holidays": hours.public_holidays,
        "open_now": hours.is_open(now),
        "opens_at": opens.isoformat() if opens else None,
    }


def parse_languages(codes: Iterable[str]) -> list[str]:
    result = sorted({c.strip() for c in codes if c.strip()})
    for code in result:
        if not LANGUAGE_CODE.match(code):
            raise OfferError("invalid", f"{code!r} is not an ISO 639-3 language code")
    return result


async def set_catalogue(
    session: AsyncSession,
    office: Office,
    authority_codes: Iterable[str],
    languages: dict[str, list[str]] | None = None,
) -> list[Authority]:
    """The office offers exactly these authorities (`languages`: code → offered languages,
    missing = any)."""
    codes = sorted({c.strip() for c in authority_codes if c.strip()})
    if not codes:
        raise OfferError(
            "invalid", "name at least one authority (clear the catalogue to offer all)"
        )
    languages = languages or {}
    unknown = sorted(set(languages) - set(codes))
    if unknown:
        raise OfferError("invalid", f"languages given for authorities not offered: {unknown}")
    authorities = [await find_authority_code(session, code) for code in codes]
    checked = {code: parse_languages(langs) for code, langs in languages.items()}
    await session.execute(
        delete(OfficeCatalogueEntry).where(OfficeCatalogueEntry.office_id == office.id)
    )
    for authority in authorities:
        session.add(
            OfficeCatalogueEntry(
                office_id=office.id,
                authority_id=authority.id,
                languages=",".join(checked.get(authority.code, [])),
            )
        )
    await session.flush()
    return authorities


async def clear_catalogue(session: AsyncSession, office_id: int) -> None:
    await session.execute(
        delete(OfficeCatalogueEntry).where(OfficeCatalogueEntry.office_id == office_id)
    )


async def catalogue_dict(session: AsyncSession, office: Office) -> dict[str, Any]:
    catalogue = await catalogue_of(session, office.id)
    authorities = (await session.execute(select(Authority).order_by(Authority.id))).scalars()
    return {
        "office_id": office.id,
        "all_offered": catalogue is None,
        "authorities": [
            {
                "code": a.code,
                "offered": catalogue is None or a.id in catalogue,
                "languages": sorted(catalogue.get(a.id, ())) if catalogue else [],
            }
            for a in authorities
        ],
    }


def check_municipality(name: str | None) -> str | None:
    if name is None or not name.strip():
        return None
    name = " ".join(name.split())
    if len(name) > MAX_MUNICIPALITY:
        raise OfferError("invalid", f"a municipality has at most {MAX_MUNICIPALITY} characters")
    return name


async def set_user_municipality(session: AsyncSession, user_id: int, name: str | None) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise OfferError("not_found", f"no user {user_id}")
    if user.role != UserRole.EXPERT.value and name:
        raise OfferError("invalid", "only experts have a municipality")
    user.municipality = check_municipality(name)
    return user


async def set_office_municipality(session: AsyncSession, office: Office, name: str) -> Office:
    checked = check_municipality(name)
    if checked is None:
        raise OfferError("invalid", "an office's municipality cannot be empty")
    office.municipality = checked
    return office


# --- pushes -------------------------------------------------------------------------------------


async def announce_offer(services: Services, office_id: int | None) -> None:
    """Tell kiosks (of one office, or all) that what they offer changed: they sync again."""
    room = rooms.office(office_id) if office_id is not None else rooms.role(Role.ENDPOINT)
    await services.sio.emit("office:offer_changed", {"office_id": office_id}, room=room)


# --- HTTP API (administrators) ----------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HoursBody(_Body):
    weekly: list[str] = Field(default_factory=list, max_length=14)
    exceptions: list[str] = Field(default_factory=list, max_length=100)
    closed: list[str] = Field(default_factory=list, max_length=100)
    public_holidays: bool = True


class CatalogueBody(_Body):
    # Empty list: back to offering every authority.
    authorities: list[str] = Field(default_factory=list, max_length=64)
    languages: dict[str, list[str]] = Field(default_factory=dict)


class MunicipalityBody(_Body):
    municipality: str | None = Field(default=None, max_length=MAX_MUNICIPALITY)


class DeskServicesBody(_Body):
    # Empty list: back to the global list (signaling/records/desk_services.py DESK_SERVICES).
    services: list[str] = Field(default_factory=list, max_length=32)


async def desk_services_dict(session: AsyncSession, office_id: int) -> dict[str, Any]:
    """The office's desk-service list as the admin page, the API and the CLI show it."""
    from signaling.flow.desk_catalogue import DESK_SERVICE_CODES, DESK_SERVICES, office_desk_list

    own = await office_desk_list(session, office_id)
    return {
        "office_id": office_id,
        "default": own is None,
        "services": own if own is not None else list(DESK_SERVICE_CODES),
        # Every desk service there is, with its names (fi/sv/en).
        "all": [s.view() for s in DESK_SERVICES],
    }


async def set_desk_services(session: AsyncSession, office: Office, codes: list[str]) -> None:
    """Replace the office's desk-service list (empty: the global list); OfferError when bad."""
    from signaling.flow.desk_catalogue import set_office_desk_list

    try:
        await set_office_desk_list(session, office.id, [c.strip() for c in codes])
    except ValueError as exc:
        raise OfferError("invalid", str(exc)) from None


def _api_error(exc: OfferError) -> web.HTTPException:
    return ApiError(ErrorCode(exc.code), exc.message)


def _office_id(request: web.Request) -> int:
    return path_id(request, "id", "office")


BodyT = TypeVar("BodyT", bound=_Body)


async def _put_office(
    request: web.Request,
    schema: type[BodyT],
    change: Callable[[AsyncSession, Office, BodyT], Awaitable[dict[str, Any]]],
    announce: bool,
) -> web.Response:
    """An administrator's PUT on the office `{id}`: `change` makes it, commits and gives the
    new state (`item`). `announce`: what the office's kiosks offer changed, they sync again."""
    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    body = await read_json(request, schema)
    try:
        async with services.sessions() as session:
            office = await find_office_id(session, _office_id(request))
            item = await change(session, office, body)
    except OfferError as exc:
        raise _api_error(exc) from None
    if announce:
        await announce_offer(services, office.id)
    return json_ok(item=item)


async def api_office_offer(request: web.Request) -> web.Response:
    """GET: the office's catalogue and every authority's hours there."""
    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    now = services.clock()
    try:
        async with services.sessions() as session:
            office = await find_office_id(session, _office_id(request))
            hours = await office_hours(session, office.id)
            authorities = (
                await session.execute(select(Authority).order_by(Authority.id))
            ).scalars()
            return json_ok(
                office_id=office.id,
                municipality=office.municipality,
                catalogue=await catalogue_dict(session, office),
                hours=[rules_dict(a, hours.get(a.id), now) for a in authorities],
                desk_services=await desk_services_dict(session, office.id),
                now=now.astimezone(HELSINKI).isoformat(),
            )
    except OfferError as exc:
        raise _api_error(exc) from None


async def api_put_hours(request: web.Request) -> web.Response:
    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    body = await read_json(request, HoursBody)
    now = services.clock()
    try:
        hours, _ = parse_rules(body.weekly, body.exceptions, body.closed, body.public_holidays)
        async with services.sessions() as session:
            office = await find_office_id(session, _office_id(request))
            authority = await find_authority_code(session, request.match_info["authority"])
            await set_hours(session, office, authority, hours, utcnow())
            await session.commit()
            item = rules_dict(authority, hours, now)
    except OfferError as exc:
        raise _api_error(exc) from None
    await announce_offer(services, office.id)
    return json_ok(item=item)


async def api_delete_hours(request: web.Request) -> web.Response:
    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    try:
        async with services.sessions() as session:
            office = await find_office_id(session, _office_id(request))
            authority = await find_authority_code(session, request.match_info["authority"])
            cleared = await clear_hours(session, office.id, authority.id)
            await session.commit()
    except OfferError as exc:
        raise _api_error(exc) from None
    await announce_offer(services, office.id)
    return json_ok(cleared=cleared)


async def api_put_catalogue(request: web.Request) -> web.Response:
    async def change(session: AsyncSession, office: Office, body: CatalogueBody) -> dict[str, Any]:
        if body.authorities:
            await set_catalogue(session, office, body.authorities, body.languages)
        else:
            if body.languages:
                raise OfferError("invalid", "languages need the authorities they are for")
            await clear_catalogue(session, office.id)
        await session.commit()
        return await catalogue_dict(session, office)

    return await _put_office(request, CatalogueBody, change, announce=True)


async def api_put_office_municipality(request: web.Request) -> web.Response:
    from signaling.directory import directory

    async def change(
        session: AsyncSession, office: Office, body: MunicipalityBody
    ) -> dict[str, Any]:
        await set_office_municipality(session, office, body.municipality or "")
        await session.commit()
        return directory.office_dict(office)

    return await _put_office(request, MunicipalityBody, change, announce=False)


async def api_put_desk_services(request: web.Request) -> web.Response:
    """PUT: the desk services the office's clerks may record (`services: []` = global list)."""

    async def change(
        session: AsyncSession, office: Office, body: DeskServicesBody
    ) -> dict[str, Any]:
        await set_desk_services(session, office, body.services)
        await session.commit()
        return await desk_services_dict(session, office.id)

    return await _put_office(request, DeskServicesBody, change, announce=False)


async def api_put_user_municipality(request: web.Request) -> web.Response:
    """An expert's municipality; his open sockets pick it up at their next connect (the
    revocation sweep or a reload), so he is disconnected now to take it at once."""
    from signaling.directory import directory
    from signaling.transport.connections import disconnect_principal

    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    body = await read_json(request, MunicipalityBody)
    user_id = path_id(request, "id", "user")
    try:
        async with services.sessions() as session:
            user = await set_user_municipality(session, user_id, body.municipality)
            await session.commit()
            await session.refresh(user, ["authorities", "languages"])
            item = directory.user_dict(user)
    except OfferError as exc:
        raise _api_error(exc) from None
    disconnected = await disconnect_principal(services, "user", item["id"])
    return json_ok(item=item, disconnected=disconnected)


def setup(app: web.Application, _services: Services) -> None:
    app.router.add_get("/api/admin/offices/{id}/offer", api_office_offer)
    app.router.add_put("/api/admin/offices/{id}/hours/{authority}", api_put_hours)
    app.router.add_delete("/api/admin/offices/{id}/hours/{authority}", api_delete_hours)
    app.router.add_put("/api/admin/offices/{id}/catalogue", api_put_catalogue)
    app.router.add_put("/api/admin/offices/{id}/municipality", api_put_office_municipality)
    app.router.add_put("/api/admin/offices/{id}/desk-services", api_put_desk_services)
    app.router.add_put("/api/admin/users/{id}/municipality", api_put_user_municipality)


__all__ = [
    "MUNICIPAL_AUTHORITIES",
    "ClosedError",
    "Routing",
    "check_walk_in",
    "kiosk_authorities",
    "routing",
]
