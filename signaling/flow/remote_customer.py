"""The customer at home (issue 18): `/join/<token>`, the waiting room and admission.

A remote appointment's customer gets a link `/join/<token>` (signaling/flow/join_tokens.py). The
page it opens (signaling/static/join/) runs in a phone or laptop browser:

1. **device and network check**: camera preview, microphone level, a speaker test sound, and a
   short connection to the relay (`POST /join/<token>/probe`: a throw-away relay room, the ICE
   servers the service hands out, TURN among them when configured) that must reach
   "connected" with a candidate pair that succeeded;
2. **identity step** (signaling/directory/join_identity.py): none by default, or OpenID Connect;
3. **waiting room**: entering spends the token (`POST /join/<token>/enter`, or the identity
   callback) and gives this browser an HttpOnly session cookie; a reload keeps working,
   another browser gets HTTP 410. The page shows the expert's name and the booked time; the
   socket authenticates with the cookie (`auth: {guest: true}`) as a principal of kind "guest",
   role `customer`, with rights only in his own call;
4. **admission**: the expert sees him in his console (`remote:list`, pushes `remote:waiting`)
   and admits him (`remote:admit`): a call is made with the expert and this customer, the
   expert gets `call:started`, the customer `remote:admitted`. Who waits is in the database;
   whether his page is open (`online`) is the process leases' socket registry in Redis
   (`guest_online`), so an expert on any signaling process sees the same;
5. **the call**: `call:join` etc. as the kiosk's, documents both ways and chat. The browser
   tab in the call holds its seat ("The seat" below): a reconnect or a reload of it goes on in
   the call (`remote:state`, his `flow:sync`); when he drops out (the tab closed, the call
   left, his media gone), the link opened again brings him back to the waiting room, the
   expert sees him waiting again (`returning`) and lets him into the same call.

An unknown, expired, too early or already used link answers HTTP 410 with a page in the
customer's language (`?lang=fi|sv|en`, else Accept-Language) saying why and what to do.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
from datetime import datetime, timedelta
from enum import StrEnum
from http.cookies import CookieError, SimpleCookie
from typing import Any, Literal, Self

from aiohttp import web
from pydantic import Field, model_validator
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from signaling.db import DbId, utcnow
from signaling.directory.identity import AuthenticationError, SocketIdentity, new_secret, sha256_hex
from signaling.directory.join_identity import (
    IdentityError,
    decode_pending,
    encode_pending,
    identity_provider,
)
from signaling.directory.principals import Principal, Role
from signaling.directory.service_hours import HELSINKI
from signaling.flow import relay_probes
from signaling.flow.flow_common import (
    FlowError,
    call_room,
    call_view,
    conflict,
    forbidden,
    iso,
    not_found,
    participant_id_for,
    user_name,
)
from signaling.flow.join_tokens import (
    JoinRefused,
    Opened,
    Refusal,
    appointment_end,
    consume,
    guest_for_session,
    open_link,
    plausible_token,
)
from signaling.flow.leases import leases_of
from signaling.store.flow_models import (
    Appointment,
    AppointmentStatus,
    Call,
    CallParticipant,
    CallStatus,
    GoneReason,
    ParticipantRole,
)
from signaling.store.models import Authority, Office, User
from signaling.store.remote_models import JoinToken, RemoteGuest
from signaling.transport import rooms
from signaling.transport.http import services_of
from signaling.transport.pages import ROOT, safe_join
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.transport.services import Services

log = logging.getLogger(__name__)

COOKIE = "etapalvelu_join"
PENDING_COOKIE = "etapalvelu_join_identity"
PAGE = ROOT / "signaling" / "static" / "join" / "index.html"
LANGUAGES = ("fi", "sv", "en")
GUEST_NAME = "Etäasiakas"  # the participant's name when the identity step gave none
NO_STORE = {"Cache-Control": "no-store"}

# --- the language of the customer's pages ----------------------------------------------------


def pick_language(request: web.Request, fallback: str = "fi") -> str:
    """`?lang=` first, then the best of Accept-Language, then `fallback`."""
    asked = request.query.get("lang", "")
    if asked in LANGUAGES:
        return asked
    best: tuple[float, str] | None = None
    for part in request.headers.get("Accept-Language", "")[:500].split(","):
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower()[:2]
        if code not in LANGUAGES:
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if best is None or quality > best[0]:
            best = (quality, code)
    return best[1] if best else fallback


REFUSED_TEXT: dict[str, dict[str, str]] = {
    "fi": {
        "title": "Linkki ei avaudu",
        "unknown": "Tätä linkkiä ei tunneta. Tarkista, että kopioit sen kokonaan.",
        "expired": "Linkki on vanhentunut: ajanvarauksen aika on jo mennyt.",
        "too_early": "On vielä liian aikaista. Linkki avautuu {when}.",
        "used": "Linkillä on jo tultu sisään toisesta selaimesta tai laitteesta. "
        "Linkki toimii vain kerran.",
        "cancelled": "Tämä ajanvaraus on peruttu.",
        "what": "Mitä voit tehdä",
        "call": "Soita asiointipisteeseen tai viranomaiselle, jonka ajan varasit "
        "(numero on varausvahvistuksessa).",
        "book": "Varaa uusi aika.",
        "back": "Palaa tälle sivulle silloin uudelleen samalla linkillä.",
    },
    "sv": {
        "title": "Länken öppnas inte",
        "unknown": "Den här länken känns inte igen. Kontrollera att du kopierade hela länken.",
        "expired": "Länken har gått ut: tiden för bokningen har redan passerat.",
        "too_early": "Det är ännu för tidigt. Länken öppnas {when}.",
        "used": "Någon har redan gått in med länken från en annan webbläsare eller enhet. "
        "Länken fungerar bara en gång.",
        "cancelled": "Bokningen har avbokats.",
        "what": "Vad du kan göra",
        "call": "Ring servicepunkten eller myndigheten du bokade tid hos "
        "(numret finns i bokningsbekräftelsen).",
        "book": "Boka en ny tid.",
        "back": "Kom tillbaka till den här sidan då med samma länk.",
    },
    "en": {
        "title": "The link does not open",
        "unknown": "This link is not known. Check that you copied all of it.",
        "expired": "The link has expired: the time of the appointment has passed.",
        "too_early": "It is too early. The link opens {when}.",
        "used": "Someone has already entered with this link from another browser or device. "
        "The link works only once.",
        "cancelled": "This appointment has been cancelled.",
        "what": "What you can do",
        "call": "Call the service point or the authority you booked with "
        "(the number is in your booking confirmation).",
        "book": "Book a new time.",
        "back": "Come back to this page then with the same link.",
    },
}
WHEN_FORMAT = {"fi": "%d.%m.%Y klo %H.%M", "sv": "%d.%m.%Y kl. %H.%M", "en": "%d/%m/%Y at %H:%M"}


def refused_page(refusal: JoinRefused, lang: str, path: str) -> web.Response:
    text = REFUSED_TEXT[lang]
    reason = refusal.reason.value
    when = ""
    if refusal.opens_at is not None:
        when = refusal.opens_at.astimezone(HELSINKI).strftime(WHEN_FORMAT[lang])
    why = text[reason].format(when=html.escape(when))
    steps = [text["back"]] if refusal.reason == Refusal.TOO_EARLY else [text["call"], text["book"]]
    switch = " · ".join(
        f'<a href="{html.escape(path)}?lang={code}" lang="{code}" hreflang="{code}">{name}</a>'
        for code, name in (("fi", "Suomeksi"), ("sv", "På svenska"), ("en", "In English"))
        if code != lang
    )
    body = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{html.escape(text["title"])} – Etäpalvelu</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/common/join/join.css">
</head><body class="refused"><main>
<h1>{html.escape(text["title"])}</h1>
<p class="why" data-reason="{reason}">{why}</p>
<h2>{html.escape(text["what"])}</h2>
<ul class="steps">{"".join(f"<li>{html.escape(s)}</li>" for s in steps)}</ul>
<nav class="lang-links" aria-label="Kieli · Språk · Language">{switch}</nav>
</main></body></html>
"""
    return web.Response(status=410, text=body, content_type="text/html", headers=NO_STORE)


# --- cookies -----------------------------------------------------------------------------------


def cookie_value(header: str, name: str) -> str | None:
    if not header or len(header) > 8192:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _secure(request: web.Request) -> bool:
    public = services_of(request.app).settings.public_url
    return request.secure or public.startswith("https://")


def _set_session_cookie(
    request: web.Request, response: web.StreamResponse, secret: str, expires_at: datetime
) -> None:
    # Path "/": the socket.io handshake (/socket.io/) must carry it too. Lax: it survives the
    # identity provider's redirect back to us, and is not sent with other sites' sub-requests.
    response.set_cookie(
        COOKIE,
        secret,
        max_age=max(60, int((expires_at - utcnow()).total_seconds())),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=_secure(request),
    )


# --- socket authentication -----------------------------------------------------------------


async def authenticate_guest(
    sessions: async_sessionmaker[AsyncSession], environ: dict[str, Any]
) -> SocketIdentity:
    """The socket of a customer at home: his session cookie (dispatch, `auth: {guest: true}`).
    Raises AuthenticationError."""
    secret = cookie_value(str(environ.get("HTTP_COOKIE", "")), COOKIE)
    if not secret:
        raise AuthenticationError("no session of a customer at home; open your link again")
    async with sessions() as session:
        guest = await guest_for_session(session, secret, utcnow())
        if guest is None:
            raise AuthenticationError("this session has ended; open your link again")
        appointment = await session.get(Appointment, guest.appointment_id)
        if appointment is None or appointment.status == AppointmentStatus.CANCELLED:
            raise AuthenticationError("this appointment has been cancelled")
        principal = Principal(
            kind="guest",
            id=guest.id,
            role=Role.CUSTOMER,
            name=GUEST_NAME,
            languages=frozenset({appointment.language}),
        )
        return SocketIdentity(principal, guest.expires_at, None)


# --- views ---------------------------------------------------------------------------------


async def _authority_names(session: AsyncSession, authority_id: int) -> dict[str, str]:
    authority = await session.get(Authority, authority_id)
    if authority is None:
        return {"fi": "", "sv": "", "en": "", "code": ""}
    return {
        "fi": authority.name_fi,
        "sv": authority.name_sv,
        "en": authority.name_en,
        "code": authority.code,
    }


async def appointment_for_customer(
    session: AsyncSession, appointment: Appointment
) -> dict[str, Any]:
    """What the customer's page shows: never the booking code or who booked."""
    office = await session.get(Office, appointment.office_id)
    return {
        "starts_at": iso(appointment.starts_at),
        "ends_at": iso(appointment_end(appointment)),
        "language": appointment.language,
        "service_type": appointment.service_type,
        "authority": await _authority_names(session, appointment.authority_id),
        "expert_name": await user_name(session, appointment.expert_id) or None,
        "office_name": office.name if office else "",
    }


async def guest_state(session: AsyncSession, guest: RemoteGuest) -> dict[str, Any]:
    """Where the customer is: "waiting" (also `returning`: he dropped out of his call, which
    goes on, and waits to be let in again), "call" (admitted), or "ended"."""
    appointment = await session.get(Appointment, guest.appointment_id)
    assert appointment is not None
    call = await session.get(Call, guest.call_id) if guest.call_id else None
    phase = "waiting"
    if call is not None and call.status != CallStatus.ACTIVE:
        phase = "ended"
    elif call is not None and guest.admitted_at is not None:
        phase = "call"
    return {
        "phase": phase,
        "appointment": await appointment_for_customer(session, appointment),
        "call": await call_view(session, call) if call is not None else None,
        "identified": bool(guest.identity_subject),
        "returning": call is not None and phase == "waiting",
    }


async def guest_online(services: Services, guest_id: int) -> bool:
    """Whether the customer at home has his page open (a socket) on any signaling process: the
    process leases' registry in Redis (signaling/flow/leases.py), which forgets a dead process's
    sockets with its lease; this process's sockets alone without Redis (one process)."""
    if services.connections.sids_of("guest", guest_id):
        return True
    leases = leases_of(services)
    if leases is None:
        return False
    principal = Principal(kind="guest", id=guest_id, role=Role.CUSTOMER, name="")
    return await leases.held_anywhere(principal)


def waiting_view(
    services: Services,
    guest: RemoteGuest,
    appointment: Appointment,
    expert_name: str | None,
    online: bool,
) -> dict[str, Any]:
    return {
        "guest_id": guest.id,
        "appointment_id": appointment.id,
        "authority_id": appointment.authority_id,
        "office_id": appointment.office_id,
        "starts_at": iso(appointment.starts_at),
        "language": appointment.language,
        "service_type": appointment.service_type,
        "expert_id": appointment.expert_id,
        "expert_name": expert_name,
        "entered_at": iso(guest.entered_at),
        "identity_provider": guest.identity_provider,
        "identified": bool(guest.identity_subject),
        "online": online,
        "admitted": guest.admitted_at is not None,
        "check": join_check_of(guest),
        # He dropped out of his call (which goes on) and waits to be let in again.
        "returning": guest.call_id is not None and guest.admitted_at is None,
        "call_id": guest.call_id,
    }


def join_check_of(guest: RemoteGuest) -> dict[str, Any] | None:
    """The last device check his page reported (`remote:check`), with when; None if none."""
    if not guest.join_check:
        return None
    try:
        found = JoinCheckPayload.model_validate_json(guest.join_check)
    except ValueError:  # written by an older version: not worth failing the list over
        return None
    return {**found.model_dump(), "at": iso(guest.join_check_at) if guest.join_check_at else None}


async def push_waiting(services: Services, guest_id: int) -> None:
    """Tell the experts who may admit him (the appointment's expert, else the authority's;
    back from his call, its expert)."""
    async with services.sessions() as session:
        guest = await session.get(RemoteGuest, guest_id, populate_existing=True)
        if guest is None:
            return
        appointment = await session.get(Appointment, guest.appointment_id)
        if appointment is None:
            return
        name = await user_name(session, appointment.expert_id) or None
        view = waiting_view(
            services, guest, appointment, name, await guest_online(services, guest_id)
        )
        call = await session.get(Call, guest.call_id) if view["returning"] else None
    room = (
        rooms.user(appointment.expert_id)
        if appointment.expert_id is not None
        else rooms.authority(appointment.authority_id)
    )
    if call is not None and call.expert_id is not None:
        room = rooms.user(call.expert_id)
    await services.sio.emit("remote:waiting", {"customer": view}, room=room)


# --- HTTP ----------------------------------------------------------------------------------


def _token(request: web.Request) -> str:
    return request.match_info["token"]


async def _open(request: web.Request) -> Opened:
    """What the link shows to this browser (its session cookie). Raises JoinRefused."""
    services = services_of(request.app)
    secret = cookie_value(request.headers.get("Cookie", ""), COOKIE)
    async with services.sessions() as session:
        return await open_link(session, _token(request), utcnow(), secret)


def _gone(refusal: JoinRefused) -> web.HTTPGone:
    """A refused link to the page's JSON requests: 410 `{error: {code: "gone", reason}}`."""
    body: dict[str, Any] = {
        "error": {"code": "gone", "reason": refusal.reason.value, "message": str(refusal)}
    }
    if refusal.opens_at is not None:
        body["error"]["opens_at"] = iso(refusal.opens_at)
    return web.HTTPGone(text=json.dumps(body), content_type="application/json", headers=NO_STORE)


async def _open_json(request: web.Request) -> Opened:
    """`_open` for the page's JSON requests: a refused link raises 410 (`_gone`)."""
    try:
        return await _open(request)
    except JoinRefused as refusal:
        raise _gone(refusal) from None


async def join_page(request: web.Request) -> web.StreamResponse:
    try:
        await _open(request)
    except JoinRefused as refusal:
        return refused_page(refusal, pick_language(request), request.path)
    found = safe_join(PAGE.parent, PAGE.name)
    if found is None:
        raise web.HTTPServiceUnavailable(text="the join page is not installed")
    return web.FileResponse(found, headers={**NO_STORE, "Content-Type": "text/html; charset=utf-8"})


async def join_state(request: web.Request) -> web.Response:
    services = services_of(request.app)
    opened = await _open_json(request)
    from signaling.flow.calls import ice_servers_for

    async with services.sessions() as session:
        if opened.guest is not None:
            state = await guest_state(session, opened.guest)
        else:
            state = {
                "phase": "check",
                "appointment": await appointment_for_customer(session, opened.appointment),
                "call": None,
                "identified": False,
            }
    probe_principal = Principal(kind="join", id=opened.token.id, role=Role.CUSTOMER, name="")
    state["identity"] = identity_provider(services.settings).name
    state["ice_servers"] = ice_servers_for(services, probe_principal)
    return web.json_response(state, headers=NO_STORE)


async def _enter(
    request: web.Request, token: str, provider: str, subject: str | None
) -> tuple[RemoteGuest, str]:
    services = services_of(request.app)
    now = utcnow()
    async with services.sessions() as session:
        guest, secret = await consume(
            session, token, now, identity_provider=provider, identity_subject=subject
        )
        # The customer is here: his slot is not released as a no-show.
        await session.execute(
            update(Appointment)
            .where(
                Appointment.id == guest.appointment_id,
                Appointment.status == AppointmentStatus.BOOKED,
            )
            .values(status=AppointmentStatus.CHECKED_IN.value, checked_in_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        await session.refresh(guest)
    log.info("customer at home entered the waiting room of appointment %s", guest.appointment_id)
    await push_waiting(services, guest.id)
    return guest, secret


async def join_enter(request: web.Request) -> web.Response:
    services = services_of(request.app)
    opened = await _open_json(request)
    if opened.guest is not None:
        return web.json_response({"ok": True, "phase": "waiting"}, headers=NO_STORE)
    if identity_provider(services.settings).name != "none":
        return web.json_response(
            {
                "error": {
                    "code": "conflict",
                    "reason": "identity_required",
                    "message": "identify yourself first",
                }
            },
            status=409,
            headers=NO_STORE,
        )
    try:
        guest, secret = await _enter(request, _token(request), "", None)
    except JoinRefused as refusal:
        raise _gone(refusal) from None
    response = web.json_response({"ok": True, "phase": "waiting"}, headers=NO_STORE)
    _set_session_cookie(request, response, secret, guest.expires_at)
    return response


def _redirect_uri(request: web.Request) -> str:
    base = services_of(request.app).settings.public_url.rstrip("/") or str(request.url.origin())
    return f"{base}/join/identity/callback"


async def identity_start(request: web.Request) -> web.StreamResponse:
    services = services_of(request.app)
    lang = pick_language(request)
    try:
        opened = await _open(request)
    except JoinRefused as refusal:
        return refused_page(refusal, lang, f"/join/{_token(request)}")
    if opened.guest is not None:
        raise web.HTTPSeeOther(f"/join/{_token(request)}")
    provider = identity_provider(services.settings)
    try:
        url, pending = await provider.start(redirect_uri=_redirect_uri(request))
    except IdentityError as exc:
        raise web.HTTPSeeOther(f"/join/{_token(request)}?identity_error={exc.reason}") from None
    response = web.HTTPSeeOther(url, headers=NO_STORE)
    response.set_cookie(
        PENDING_COOKIE,
        encode_pending(_token(request), pending),
        max_age=600,
        path="/join/",
        httponly=True,
        samesite="Lax",
        secure=_secure(request),
    )
    return response


async def identity_callback(request: web.Request) -> web.StreamResponse:
    services = services_of(request.app)
    pending = decode_pending(cookie_value(request.headers.get("Cookie", ""), PENDING_COOKIE) or "")
    if pending is None or not plausible_token(pending["token"]):
        return refused_page(JoinRefused(Refusal.UNKNOWN), pick_language(request), "/join/")
    token = pending["token"]
    provider = identity_provider(services.settings)
    params = {k: v[:4000] for k, v in request.query.items()}
    try:
        identified = await provider.finish(params, pending, redirect_uri=_redirect_uri(request))
    except IdentityError as exc:
        log.info("identity step refused: %s (%s)", exc.reason, exc)
        response = web.HTTPSeeOther(f"/join/{token}?identity_error={exc.reason}")
        response.del_cookie(PENDING_COOKIE, path="/join/")
        return response
    try:
        guest, secret = await _enter(request, token, identified.provider, identified.subject)
    except JoinRefused as refusal:
        return refused_page(refusal, pick_language(request), f"/join/{token}")
    response = web.HTTPSeeOther(f"/join/{token}", headers=NO_STORE)
    response.del_cookie(PENDING_COOKIE, path="/join/")
    _set_session_cookie(request, response, secret, guest.expires_at)
    return response


# --- the relay probe of the device check (signaling/flow/relay_probes.py) ----------------------


def _probe_owner(request: web.Request) -> str:
    """A join link's probes are its own (the link itself is not kept)."""
    return "join:" + hashlib.sha256(_token(request).encode()).hexdigest()[:32]


async def probe_open(request: web.Request) -> web.Response:
    services = services_of(request.app)
    opened = await _open_json(request)
    principal = Principal(kind="join", id=opened.token.id, role=Role.CUSTOMER, name="")
    try:
        probe = await relay_probes.open_probe(
            services, relay_probes.JOIN, _probe_owner(request), opened.token.id, principal
        )
    except FlowError as exc:  # the relay is down, or too many checks at once
        return web.json_response({"error": exc.to_ack()["error"]}, status=503)
    return web.json_response({"probe_id": probe.probe_id, "offer": probe.offer}, headers=NO_STORE)


async def _probe_body(request: web.Request, limit: int = 70000) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text="the body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body is not a JSON object")
    return body


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"code": "invalid", "message": message}}, status=400)


async def probe_answer(request: web.Request) -> web.Response:
    services = services_of(request.app)
    await _open_json(request)
    try:
        body = await _probe_body(request)
    except web.HTTPBadRequest as exc:
        return _bad(exc.text or "bad body")
    probe = await relay_probes.find(services, request.match_info["probe"], _probe_owner(request))
    if probe is None:
        return web.json_response(
            {"error": {"code": "not_found", "message": "no such check (it may have timed out)"}},
            status=404,
        )
    sdp = body.get("sdp")
    if set(body) != {"sdp"} or not isinstance(sdp, str) or not 1 <= len(sdp) <= 60000:
        return _bad("expected {sdp: string of at most 60000 characters}")
    try:
        await relay_probes.answer(services, probe, sdp)
    except FlowError as exc:  # a refused SDP is the client's error
        return _bad(exc.message)
    return web.json_response({"ok": True})


async def probe_close(request: web.Request) -> web.Response:
    services = services_of(request.app)
    # Found on any process: the open probe may be another's (relay_probes, "Several processes").
    probe = await relay_probes.find(services, request.match_info["probe"], _probe_owner(request))
    if probe is not None:
        await relay_probes.close_probe(services, probe.probe_id)
    return web.json_response({"ok": True})


# --- events --------------------------------------------------------------------------------


class Empty(EventModel):
    pass


class AdmitPayload(EventModel):
    appointment_id: DbId


class SeatPayload(EventModel):
    # The seat this browser tab keeps in its sessionStorage while it is in the call.
    seat: str | None = Field(default=None, min_length=32, max_length=64)


class JoinCheckPayload(EventModel):
    """The device check's result as the customer's page reports it. Fixed codes only: nothing
    the client writes freely reaches the expert's screen or the database."""

    camera: Literal["ok", "failed", "blocked"]  # blocked: the browser was not allowed to
    microphone: Literal["ok", "silent", "failed", "blocked", "pending"]  # pending: not measured
    speaker: Literal["ok", "failed", "not_tested"]  # failed: "I heard nothing"
    relay: Literal["ok", "failed"]
    relay_reason: Literal["no_pair", "relay_down", "error"] | None = None
    turn: Literal["ok", "skipped", "failed"]  # skipped: the service hands out no TURN server
    turn_reason: Literal["refused", "unreachable", "error"] | None = None

    @model_validator(mode="after")
    def _reason_with_failure(self) -> Self:
        # A reason exactly when the check failed, so the expert's summary is never ambiguous.
        if (self.relay == "failed") != (self.relay_reason is not None):
            raise ValueError("relay_reason goes with relay 'failed', and only with it")
        if (self.turn == "failed") != (self.turn_reason is not None):
            raise ValueError("turn_reason goes with turn 'failed', and only with it")
        return self


async def _guest(session: AsyncSession, principal: Principal) -> RemoteGuest:
    guest = await session.get(RemoteGuest, principal.id, populate_existing=True)
    if guest is None:
        raise not_found("your session has ended", "session_ended")
    return guest


@on_event("remote:state", SeatPayload, roles={Role.CUSTOMER})
async def remote_state(ctx: EventContext, data: SeatPayload) -> dict[str, Any]:
    """The customer at home's page after (re)connecting and when let in: waiting, in the call
    (with the seat this tab keeps), or ended. A tab without the seat of a customer who
    dropped out sends him back to the waiting room ("The seat" below)."""
    services = ctx.services
    async with services.sessions() as session:
        guest = await _guest(session, ctx.principal)
        judged = guest.seat_hash
        seat, secret = await take_seat(session, guest, data.seat, utcnow())
    if seat == Seat.DROPPED:
        await send_back(services, ctx.principal.id, judged)
    return await _tab_state(services, ctx.principal, secret)


@on_event("remote:check", JoinCheckPayload, roles={Role.CUSTOMER})
async def remote_check(ctx: EventContext, data: JoinCheckPayload) -> dict[str, Any]:
    """His page reports the device check's result once it is in the waiting room (the check
    ran before he entered, when he had no session yet). Only the last result is kept; the
    experts who may admit him see it in their list (`remote:waiting`)."""
    async with ctx.services.sessions() as session:
        guest = await _guest(session, ctx.principal)
        guest.join_check = data.model_dump_json()
        guest.join_check_at = utcnow()
        await session.commit()
    await push_waiting(ctx.services, ctx.principal.id)
    return {}


async def _tab_state(services: Services, principal: Principal, seat: str | None) -> dict[str, Any]:
    """`guest_state` as the tab holding `seat` (or none) sees it: in the call with it only."""
    async with services.sessions() as session:
        state = await guest_state(session, await _guest(session, principal))
    state["elsewhere"] = state["phase"] == "call" and seat is None
    if state["elsewhere"]:
        state["phase"] = "waiting"  # another tab of his is in the call
    state["seat"] = seat if state["phase"] == "call" else None
    return state


async def waiting_for(
    services: Services, session: AsyncSession, principal: Principal
) -> list[dict[str, Any]]:
    now = utcnow()
    rows = await session.execute(
        select(RemoteGuest, Appointment)
        .join(Appointment, Appointment.id == RemoteGuest.appointment_id)
        .outerjoin(Call, Call.id == RemoteGuest.call_id)
        .where(
            RemoteGuest.admitted_at.is_(None),
            RemoteGuest.expires_at > now,
            Appointment.authority_id.in_(sorted(principal.authority_ids)),
            or_(
                and_(
                    RemoteGuest.call_id.is_(None),
                    Appointment.status == AppointmentStatus.CHECKED_IN,
                ),
                # back from his call, which goes on with this expert
                and_(Call.status == CallStatus.ACTIVE, Call.expert_id == principal.id),
            ),
        )
        .order_by(Appointment.starts_at, RemoteGuest.id)
    )
    found = []
    for guest, appointment in rows.all():
        if appointment.expert_id is not None and appointment.expert_id != principal.id:
            continue
        name = await user_name(session, appointment.expert_id) or None
        online = await guest_online(services, guest.id)
        found.append(waiting_view(services, guest, appointment, name, online))
    return found


@on_event("remote:list", Empty, roles={Role.EXPERT})
async def remote_list(ctx: EventContext, _data: Empty) -> dict[str, Any]:
    """The customers at home waiting for this expert (his own appointments, and those of his
    authorities booked with no expert named)."""
    async with ctx.services.sessions() as session:
        return {"waiting": await waiting_for(ctx.services, session, ctx.principal)}


@on_event("remote:admit", AdmitPayload, roles={Role.EXPERT})
async def remote_admit(ctx: EventContext, data: AdmitPayload) -> dict[str, Any]:
    """Let the waiting customer at home of an appointment in: a call of the two of them, or,
    when he dropped out of his call and waits again, back into that call."""
    services, principal = ctx.services, ctx.principal
    from signaling.flow.calls import (
        HomeCustomer,
        active_call_of_user,
        announce_call,
        create_call,
        load_call,
        place_relay,
        push_participants,
    )

    now = utcnow()
    async with services.sessions() as session:
        appointment = await session.get(Appointment, data.appointment_id)
        if appointment is None:
            raise not_found(f"no appointment {data.appointment_id}")
        if appointment.authority_id not in principal.authority_ids:
            raise forbidden("this appointment is with another authority", "other_authority")
        if appointment.expert_id is not None and appointment.expert_id != principal.id:
            raise forbidden("this appointment is another expert's", "other_expert")
        guest = (
            await session.execute(
                select(RemoteGuest).where(RemoteGuest.appointment_id == appointment.id)
            )
        ).scalar_one_or_none()
        if guest is None or guest.expires_at <= now:
            raise conflict("no customer is waiting for this appointment", "not_waiting")
        if guest.admitted_at is not None:
            raise conflict("this customer has already been admitted", "already_admitted")
        busy = await active_call_of_user(session, principal.id)
        if busy is not None and busy.id != guest.call_id:
            raise conflict("you are in a call already", "busy")
        again = guest.call_id is not None
        if again:
            call = await session.get(Call, guest.call_id)
            if call is None or call.status != CallStatus.ACTIVE:
                raise conflict("his call has ended", "call_ended")
            if call.expert_id != principal.id:
                raise forbidden("he was in another expert's call", "other_expert")
            row = await _home_participant(session, call.id, guest.id)
            if row is not None:  # in again: not "left"; the watchdog counts from his join
                row.left_at = None
                row.connected = False
                row.gone_reason = None
                row.disconnected_at = None
        else:
            expert = await session.get(User, principal.id)
            assert expert is not None
            home = HomeCustomer(guest.id, GUEST_NAME, guest.entered_at)
            node = place_relay(services)(None)
            call = await create_call(session, appointment, expert, now, node, home=home)
        # Of two experts admitting at once, one wins: the other's whole transaction goes.
        won = await session.execute(
            update(RemoteGuest)
            .where(
                RemoteGuest.id == guest.id,
                RemoteGuest.admitted_at.is_(None),
                (RemoteGuest.call_id == call.id) if again else RemoteGuest.call_id.is_(None),
            )
            .values(
                call_id=call.id,
                admitted_at=now,
                admitted_by=principal.id,
                seat_hash=None,
                seat_taken_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        if int(getattr(won, "rowcount", 0) or 0) != 1:
            await session.rollback()
            raise conflict("this customer has already been admitted", "already_admitted")
        guest_id, call_id = guest.id, call.id
        await session.commit()
    log.info(
        "expert %s admitted the customer at home of appointment %s (call %s%s)",
        principal.id,
        data.appointment_id,
        call_id,
        ", again" if again else "",
    )
    if again:
        await push_participants(services, call_id)
        async with services.sessions() as session:
            view = await call_view(session, await load_call(session, call_id))
    else:
        view = await announce_call(services, call_id)
    await services.sio.emit("remote:admitted", {"call": view}, room=rooms.guest(guest_id))
    await push_waiting(services, guest_id)
    return {"call": view}


# --- the seat: the one browser tab in the call ----------------------------------------------
#
# The session cookie tells the customer's browser from others; the seat tells which of its
# tabs is in the call. The first tab to ask (`remote:state`) after the expert let him in takes
# it and keeps it in its sessionStorage, so a reconnect or a reload of that tab goes on in the
# call. A tab without it (the link opened again after the tab was closed or the call left)
# finds him dropped out and sends him back to the waiting room, where the expert sees him
# waiting again and can let him into the same call; while another tab of his is in the call,
# it only waits. A tab whose media does not come back gives the seat up (`remote:return`).

SEAT_GRACE = timedelta(seconds=20)  # a tab that took the seat has this long to join the call


class Seat(StrEnum):
    NONE = "none"  # not let in: waiting, or the call is over
    TAKEN = "taken"  # this tab is in the call: its seat, or the one it has just taken
    ELSEWHERE = "elsewhere"  # another tab of his is in the call, or joining it
    DROPPED = "dropped"  # he dropped out of the call: back to the waiting room


def _holds(guest: RemoteGuest, seat: str | None) -> bool:
    return bool(seat and guest.seat_hash and hmac.compare_digest(guest.seat_hash, sha256_hex(seat)))


async def _home_participant(
    session: AsyncSession, call_id: int, guest_id: int
) -> CallParticipant | None:
    from signaling.flow.calls import participant_row

    pid = participant_id_for("guest", guest_id, ParticipantRole.CUSTOMER)
    return await participant_row(session, call_id, pid)


async def take_seat(
    session: AsyncSession, guest: RemoteGuest, seat: str | None, now: datetime
) -> tuple[Seat, str | None]:
    """What a `remote:state` from a tab holding `seat` (or none) finds, and the seat the tab
    keeps when it is in the call. Commits when the tab takes the seat."""
    if guest.admitted_at is None or guest.call_id is None:
        return Seat.NONE, None
    call = await session.get(Call, guest.call_id)
    if call is None or call.status != CallStatus.ACTIVE:
        return Seat.NONE, None
    if _holds(guest, seat):
        return Seat.TAKEN, seat
    if guest.seat_hash is None:
        fresh = new_secret()
        took = await session.execute(
            update(RemoteGuest)
            .where(
                RemoteGuest.id == guest.id,
                RemoteGuest.admitted_at.is_not(None),
                RemoteGuest.seat_hash.is_(None),
            )
            .values(seat_hash=sha256_hex(fresh), seat_taken_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        if int(getattr(took, "rowcount", 0) or 0) == 1:
            return Seat.TAKEN, fresh
        return Seat.ELSEWHERE, None  # of two tabs asking at once, the other took it
    row = await _home_participant(session, call.id, guest.id)
    if row is not None and row.connected:
        return Seat.ELSEWHERE, None
    taken = guest.seat_taken_at or now
    gone = row.disconnected_at if row is not None else None
    if (gone is not None and gone >= taken) or now - taken >= SEAT_GRACE:
        return Seat.DROPPED, None
    return Seat.ELSEWHERE, None


async def send_back(services: Services, guest_id: int, judged: str | None) -> bool:
    """The customer at home dropped out of his call: back to the waiting room. His seat is
    given up and his participant row `left` until the expert lets him in again; the expert
    sees him waiting again. `judged`: the seat found given up (a tab that took a seat
    meanwhile wins). False when he was not in the call."""
    from signaling.flow.calls import call_sessions, load_call, push_participants, relay_for

    now = utcnow()
    async with services.sessions() as session:
        guest = await session.get(RemoteGuest, guest_id, populate_existing=True)
        if guest is None or guest.call_id is None:
            return False
        same_seat = (
            RemoteGuest.seat_hash.is_(None) if judged is None else RemoteGuest.seat_hash == judged
        )
        done = await session.execute(
            update(RemoteGuest)
            .where(RemoteGuest.id == guest_id, RemoteGuest.admitted_at.is_not(None), same_seat)
            .values(admitted_at=None, seat_hash=None, seat_taken_at=None)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(done, "rowcount", 0) or 0) != 1:
            await session.rollback()
            return False
        call = await load_call(session, guest.call_id)
        row = await _home_participant(session, call.id, guest_id)
        if row is not None:
            row.left_at = now
            if row.connected:
                row.connected = False
                row.disconnected_at = now
                row.gone_reason = GoneReason.LEFT.value
        await session.commit()
    pid = participant_id_for("guest", guest_id, ParticipantRole.CUSTOMER)
    sessions = call_sessions(services)
    sid = sessions.sid_of(call.id, pid)
    sessions.unbind(call.id, pid)
    if sid is not None:
        await services.sio.leave_room(sid, call_room(call.id))
    try:
        relay = await relay_for(services, call)
        await relay.leave(call.room_id, pid)
    except Exception as exc:  # his relay session has usually ended already
        log.info("relay leave %s/%s: %s", call.room_id, pid, exc)
    log.info("the customer at home of call %s is back in the waiting room", call.id)
    await push_participants(services, call.id)
    await push_waiting(services, guest_id)
    return True


@on_event("remote:return", SeatPayload, roles={Role.CUSTOMER})
async def remote_return(ctx: EventContext, data: SeatPayload) -> dict[str, Any]:
    """The tab in the call gives its seat up (its media did not come back): he goes back to
    the waiting room, where the expert sees him waiting again. Another tab changes nothing."""
    services = ctx.services
    async with services.sessions() as session:
        guest = await _guest(session, ctx.principal)
        judged = guest.seat_hash if _holds(guest, data.seat) else None
    if judged is not None and await send_back(services, ctx.principal.id, judged):
        return await _tab_state(services, ctx.principal, None)
    return await _tab_state(services, ctx.principal, data.seat if judged else None)


async def _on_connect(services: Services, _sid: str, principal: Principal) -> None:
    if principal.kind == "guest" and len(services.connections.sids_of("guest", principal.id)) == 1:
        await push_waiting(services, principal.id)


async def _on_disconnect(services: Services, _sid: str, principal: Principal) -> None:
    if principal.kind == "guest" and not services.connections.sids_of("guest", principal.id):
        await push_waiting(services, principal.id)


async def _guest_lost(services: Services, kind: str, ident: int) -> None:
    """A dead process held the customer's last socket (signaling/flow/leases.py): the experts'
    consoles show him gone."""
    if kind == "guest":
        await push_waiting(services, ident)


def setup(app: web.Application, services: Services) -> None:
    app.router.add_get("/join/identity/callback", identity_callback)
    app.router.add_get("/join/{token}", join_page)
    app.router.add_get("/join/{token}/state", join_state)
    app.router.add_post("/join/{token}/enter", join_enter)
    app.router.add_get("/join/{token}/identity", identity_start)
    app.router.add_post("/join/{token}/probe", probe_open)
    app.router.add_post("/join/{token}/probe/{probe}/answer", probe_answer)
    app.router.add_post("/join/{token}/probe/{probe}/close", probe_close)
    services.connections.on_connect(_on_connect)
    services.connections.on_disconnect(_on_disconnect)
    leases = leases_of(services)
    if leases is not None:
        leases.on_lost(_guest_lost)

    async def close_probes(_app: web.Application) -> Any:
        yield
        await relay_probes.close_all(services)

    app.cleanup_ctx.append(close_probes)


__all__ = ["JoinToken", "authenticate_guest", "setup"]
