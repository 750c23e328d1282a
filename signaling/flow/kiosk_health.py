"""The kiosk's device self-test (issue 18): camera, microphone, speaker and the relay.

The kiosk page tests its devices at start-up and then every `kiosk_self_test_seconds` (an hour
by default; endpoint/static/kiosk/self-test.js) and reports what it found. A failing check never
stops the kiosk: a customer with a broken camera still takes a ticket; the office's clerks are
told at once (a warning per kiosk in their console) and the administrator sees every kiosk's
latest result per office. The result is a row of `kiosk_self_tests` (one per kiosk,
signaling/store/kiosk_health_models.py), so every signaling process sees the same.

Events (docs/signaling-events.md, "Kiosk self-test"):
- `selftest:relay_probe {}` (kiosk) → `{probe_id, offer, ice_servers}`: a throwaway relay room
  with one participant that receives audio; the kiosk answers with a peer connection of its own
  and sees whether ICE and DTLS come up. No media needs to flow: it tests the path.
- `selftest:relay_answer {probe_id, sdp}` → `{}`; `selftest:relay_done {probe_id}` → `{}` (also
  when the socket goes, and by itself after 30 s). The probe itself: signaling/flow/relay_probes.py.
- `selftest:report {trigger, results: {camera, microphone, speaker, relay}}` (kiosk) →
  `{passed, next_seconds}`; each check is `{status: ok|fail|unknown, code, ms?}`. The office's
  clerks get the push `kiosk:self_test` (the kiosk's view below).
- `selftest:office {}` (clerk) → `{kiosks: [view]}`: his office's kiosks with their latest test.

HTTP: `GET /api/admin/kiosk-health` (administrator) → `{offices: [{id, name, kiosks: [view]}]}`,
every kiosk, tested or not.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from signaling.db import utcnow
from signaling.directory.principals import Principal, Role
from signaling.flow import relay_probes
from signaling.flow.flow_common import conflict, iso, not_found
from signaling.store.kiosk_health_models import KioskSelfTest
from signaling.store.models import Endpoint, Office
from signaling.transport import rooms
from signaling.transport.http import json_ok, require_principal, services_of
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.transport.services import Services

log = logging.getLogger(__name__)

CHECKS = ("camera", "microphone", "speaker", "relay")
PUSH = "kiosk:self_test"

# What a check can say. `unknown`: the browser cannot tell (e.g. whether sound really comes out
# of the speaker); it is no failure.
Status = Literal["ok", "fail", "unknown"]
Code = Field(default="ok", pattern=r"^[a-z][a-z_]{0,31}$")


class CheckResult(EventModel):
    status: Status
    code: str = Code
    ms: int | None = Field(default=None, ge=0, le=600_000)


class Results(EventModel):
    camera: CheckResult
    microphone: CheckResult
    speaker: CheckResult
    relay: CheckResult


class ReportPayload(EventModel):
    trigger: Literal["startup", "hourly", "manual"]
    results: Results


class ProbeAnswer(EventModel):
    probe_id: str = Field(pattern=r"^[A-Za-z0-9_-]{16,32}$")
    sdp: str = Field(min_length=1, max_length=100_000)


class ProbeRef(EventModel):
    probe_id: str = Field(pattern=r"^[A-Za-z0-9_-]{16,32}$")


class Empty(EventModel):
    pass


# --- the relay probe (signaling/flow/relay_probes.py) -------------------------------------------


async def _probe_of(ctx: EventContext, probe_id: str) -> relay_probes.Probe:
    probe = await relay_probes.find(ctx.services, probe_id, ctx.sid)
    if probe is None:
        raise not_found("no such relay probe (it has ended)", "no_probe")
    return probe


@on_event("selftest:relay_probe", Empty, roles={Role.ENDPOINT})
async def relay_probe(ctx: EventContext, _data: Empty) -> dict[str, Any]:
    """Open a throwaway relay room for the kiosk to connect to (one per socket at a time)."""
    async with ctx.services.sessions() as session:
        office = await session.get(Office, ctx.principal.office_id)
    probe = await relay_probes.open_probe(
        ctx.services,
        relay_probes.KIOSK,
        owner=ctx.sid,
        label=ctx.principal.id,
        principal=ctx.principal,
        site=office.relay_site if office else None,
    )
    return {"probe_id": probe.probe_id, "offer": probe.offer, "ice_servers": probe.ice_servers}


@on_event("selftest:relay_answer", ProbeAnswer, roles={Role.ENDPOINT})
async def relay_answer(ctx: EventContext, data: ProbeAnswer) -> dict[str, Any]:
    await relay_probes.answer(ctx.services, await _probe_of(ctx, data.probe_id), data.sdp)
    return {}


@on_event("selftest:relay_done", ProbeRef, roles={Role.ENDPOINT})
async def relay_done(ctx: EventContext, data: ProbeRef) -> dict[str, Any]:
    await _probe_of(ctx, data.probe_id)
    await relay_probes.close_probe(ctx.services, data.probe_id)
    return {}


async def _socket_gone(services: Services, sid: str, _principal: Principal) -> None:
    await relay_probes.close_owned(services, sid)


# --- results -----------------------------------------------------------------------------------


def failures(results: dict[str, Any]) -> list[dict[str, str]]:
    """The checks that failed, `[{check, code}]`, in CHECKS order."""
    return [
        {"check": name, "code": str(results[name].get("code", ""))}
        for name in CHECKS
        if isinstance(results.get(name), dict) and results[name].get("status") == "fail"
    ]


def kiosk_view(endpoint: Endpoint, row: KioskSelfTest | None) -> dict[str, Any]:
    """A kiosk and its latest self-test (`tested_at` None: it has never reported)."""
    results: dict[str, Any] = json.loads(row.results) if row is not None else {}
    return {
        "endpoint_id": endpoint.id,
        "endpoint_name": endpoint.name,
        "office_id": endpoint.office_id,
        "enabled": endpoint.enabled,
        "presence": endpoint.presence,
        "tested_at": iso(row.tested_at) if row is not None else None,
        "trigger": row.trigger if row is not None else None,
        "ok": row.ok if row is not None else None,
        "failing_since": iso(row.failing_since) if row is not None and row.failing_since else None,
        "results": results,
        "failures": failures(results),
    }


async def store_report(
    services: Services, endpoint_id: int, data: ReportPayload, now: datetime
) -> dict[str, Any]:
    results = data.results.model_dump(exclude_none=True)
    ok = not failures(results)
    async with services.sessions() as session:
        endpoint = await session.get(Endpoint, endpoint_id)
        if endpoint is None:
            raise not_found(f"no kiosk {endpoint_id}")
        row = await session.get(KioskSelfTest, endpoint_id, populate_existing=True)
        if row is None:
            row = KioskSelfTest(endpoint_id=endpoint_id)
            session.add(row)
        was_failing = row.failing_since
        row.tested_at, row.ok, row.trigger = now, ok, data.trigger
        row.results = json.dumps(results, sort_keys=True, separators=(",", ":"))
        row.failing_since = None if ok else (was_failing or now)
        await session.commit()
        return kiosk_view(endpoint, row)


@on_event("selftest:report", ReportPayload, roles={Role.ENDPOINT})
async def self_test_report(ctx: EventContext, data: ReportPayload) -> dict[str, Any]:
    """Store a kiosk's self-test and tell its office's clerks."""
    view = await store_report(ctx.services, ctx.principal.id, data, utcnow())
    await ctx.services.sio.emit(PUSH, view, room=rooms.office(view["office_id"]))
    return {"passed": view["ok"], "next_seconds": ctx.services.settings.kiosk_self_test_seconds}


async def office_kiosks(services: Services, office_id: int | None) -> list[dict[str, Any]]:
    """Every kiosk (of one office, or all) with its latest self-test, by office and name."""
    query = (
        select(Endpoint, KioskSelfTest)
        .outerjoin(KioskSelfTest, KioskSelfTest.endpoint_id == Endpoint.id)
        .order_by(Endpoint.office_id, Endpoint.name, Endpoint.id)
    )
    if office_id is not None:
        query = query.where(Endpoint.office_id == office_id)
    async with services.sessions() as session:
        rows = (await session.execute(query)).all()
        return [kiosk_view(endpoint, row) for endpoint, row in rows]


@on_event("selftest:office", Empty, roles={Role.CLERK})
async def office_self_tests(ctx: EventContext, _data: Empty) -> dict[str, Any]:
    if ctx.principal.office_id is None:
        raise conflict("you are not a clerk of an office", "no_office")
    return {"kiosks": await office_kiosks(ctx.services, ctx.principal.office_id)}


async def api_kiosk_health(request: web.Request) -> web.Response:
    """Every office's kiosks with their latest self-test (the administrator's pages)."""
    services = services_of(request.app)
    await require_principal(request, {Role.ADMIN})
    kiosks = await office_kiosks(services, None)
    async with services.sessions() as session:
        offices = (await session.execute(select(Office.id, Office.name))).all()
    names = {office_id: name for office_id, name in offices}
    grouped: dict[int, list[dict[str, Any]]] = {}
    for kiosk in kiosks:
        grouped.setdefault(kiosk["office_id"], []).append(kiosk)
    items = [
        {"id": office_id, "name": names.get(office_id, ""), "kiosks": items}
        for office_id, items in grouped.items()
    ]
    items.sort(key=lambda o: (str(o["name"]).casefold(), o["id"]))
    return json_ok(offices=items, self_test_seconds=services.settings.kiosk_self_test_seconds)


def setup(app: web.Application, services: Services) -> None:
    app.router.add_get("/api/admin/kiosk-health", api_kiosk_health)
    services.connections.on_disconnect(_socket_gone)
