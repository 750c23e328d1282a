"""Statistics from the service log, the compensation CSV, the admin REST routes."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from signaling.flow.calls import end_call
from signaling.flow.interpreters import accept_request, request_interpreter
from signaling.flow.queues import take_next, take_walk_in_ticket
from signaling.records.service_log import record_document
from signaling.records.statistics import compensation_csv, compensation_rows, service_stats
from signaling.store.flow_models import Call, CallParticipant
from tests.signaling.flow_support import (  # noqa: F401 (fixtures)
    T0,
    World,
    call,
    flow_engine_fixture,
    flow_sessions_fixture,
    world_fixture,
)
from tests.support.service import LiveService
from tests.support.signing import (
    file_signed,
    file_signed_over_socket,
    register_key,
    register_key_over_socket,
)

OCTOBER = T0 - timedelta(days=40)


async def served(
    world: World,
    kiosk: str,
    start: datetime,
    minutes: int,
    *,
    interpreter: bool = False,
    documents: int = 0,
) -> int:
    async with world.sessions() as session:
        await take_walk_in_ticket(session, getattr(world, kiosk), "kela", "fin", start)
        await session.commit()
        _t, created = await take_next(
            session, world.expert, None, None, start + timedelta(minutes=1)
        )
        if interpreter:
            request, _ = await request_interpreter(session, world.expert, created.id, "fse", start)
            await accept_request(session, world.interpreter, request.id, start)
            # He joined the media too (the record lists interpreters who joined).
            await session.execute(
                update(CallParticipant)
                .where(CallParticipant.call_id == created.id)
                .values(joined_at=start)
            )
        for i in range(documents):
            await record_document(
                session,
                call_id=created.id,
                sha256=f"{created.id:032x}{i:032x}",
                size=10,
                type="application/pdf",
                sender="a",
                receiver="b",
                received_at=start + timedelta(minutes=2),
            )
        row = await session.get(Call, created.id)
        assert row is not None
        await end_call(session, row, start + timedelta(minutes=1 + minutes))
        await session.commit()
        key = await register_key(world.sessions, world.expert.id)
        await file_signed(session, key, world.expert, created.id, "general_advice", "resolved", T0)
        return created.id


async def test_figures_per_authority_office_and_month(world: World) -> None:
    await served(world, "kiosk", OCTOBER, 10)
    await served(world, "kiosk", T0, 6, interpreter=True, documents=2)
    await served(world, "far_kiosk", T0 + timedelta(hours=1), 4)
    async with world.sessions() as session:
        by_month = await service_stats(session, "month")
        by_office = await service_stats(session, "office")
        by_authority = await service_stats(session, "authority", "2026-11", "2026-11")
    assert [(r["month"], r["services"]) for r in by_month] == [("2026-10", 1), ("2026-11", 2)]
    november = by_month[1]
    assert november["interpreted"] == 1 and november["documents"] == 2
    assert november["total_duration_seconds"] == 600 and november["mean_duration_seconds"] == 300
    assert november["mean_wait_seconds"] == 60 and november["walk_ins"] == 2
    offices = {r["office_id"]: (r["services"], r["office_name"]) for r in by_office}
    assert offices == {world.office: (2, "Kallio"), world.office2: (1, "Inari")}
    assert [(r["authority_code"], r["services"]) for r in by_authority] == [("kela", 2)]
    async with world.sessions() as session:
        with pytest.raises(ValueError):
            await service_stats(session, "weekday")


async def test_compensation_csv(world: World) -> None:
    await served(world, "kiosk", OCTOBER, 10)
    await served(world, "kiosk", T0, 6, documents=1)
    await served(world, "kiosk2", T0 + timedelta(hours=1), 3)
    async with world.sessions() as session:
        rows = await compensation_rows(session, "2026-11", "2026-11")
    text = compensation_csv(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 1
    assert parsed[0] == {
        "month": "2026-11",
        "authority_code": "kela",
        "authority": "Kela",
        "office_id": str(world.office),
        "office": "Kallio",
        "services": "2",
        "walk_ins": "2",
        "appointments": "0",
        "interpreted": "0",
        "documents": "1",
        "total_minutes": "9",
        # No desk services were recorded (tests/signaling/test_desk_receipts_feedback.py).
        "desk_services": "0",
        "desk_assisted_eservice": "0",
        "desk_form_handed_over": "0",
        "desk_identity_check": "0",
        "desk_other": "0",
    }


async def _get(live: LiveService, path: str, token: str | None) -> tuple[int, Any, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{live.base_url}{path}", headers=headers) as response,
    ):
        body = await response.text()
        kind = response.headers.get("Content-Type", "")
        return response.status, body, kind


async def test_admin_routes(live_service: LiveService) -> None:
    admin = await live_service.issue_token("admin")
    expert_token = await live_service.issue_token("kela")
    assert (await _get(live_service, "/api/stats", None))[0] == 401
    assert (await _get(live_service, "/api/stats", expert_token))[0] == 403
    assert (await _get(live_service, "/api/stats?from=2026-13", admin))[0] == 400
    assert (await _get(live_service, "/api/stats?by=weekday", admin))[0] == 400

    kiosk = await live_service.connect_kiosk()
    expert = await live_service.connect_user("kela")
    await call(kiosk, "ticket:take", {"authority": "kela", "language": "swe"})
    status, body, _ = await _get(live_service, "/api/live", admin)
    assert status == 200 and '"language": "swe"' in body.replace('":"', '": "')
    call_id = (await call(expert, "queue:take_next", {}))["call"]["id"]
    status, body, _ = await _get(live_service, "/api/live", admin)
    assert status == 200 and f'"room_id": "call-{call_id}"' in body.replace('":"', '": "')
    await call(expert, "call:end", {"call_id": call_id})
    key = await register_key_over_socket(expert, live_service.demo.user_ids["kela"])
    filed = await file_signed_over_socket(
        expert, key, {"call_id": call_id, "service_type": "general_advice", "outcome": "referred"}
    )
    assert filed["ok"], filed

    status, body, _ = await _get(live_service, "/api/stats?by=authority", admin)
    rows = json.loads(body)["rows"]
    assert status == 200 and [(r["authority_code"], r["services"]) for r in rows] == [("kela", 1)]
    status, body, kind = await _get(live_service, "/api/stats/compensation.csv", admin)
    assert status == 200 and kind.startswith("text/csv")
    assert next(iter(csv.DictReader(io.StringIO(body))))["services"] == "1"
    status, body, _ = await _get(live_service, "/api/log/verify", admin)
    verified = json.loads(body)
    assert status == 200 and verified["valid"] and verified["entries"] == 1
    status, body, _ = await _get(live_service, "/metrics", None)
    assert status == 200
    assert 'etapalvelu_calls_total{kind="walk_in"} 1.0' in body
    assert "etapalvelu_service_records_total 1.0" in body
    assert "etapalvelu_active_calls 0.0" in body
    assert 'etapalvelu_waiting_customers{authority="kela"} 0.0' in body


async def test_hourly_figures_in_finnish_time(world: World) -> None:
    from signaling.records.statistics import hourly_rows

    # T0 is 09:00 UTC in November: 11:00 in Helsinki (UTC+2).
    await served(world, "kiosk", T0, 5)
    await served(world, "kiosk2", T0 + timedelta(minutes=20), 10)
    async with world.sessions() as session:
        rows = await hourly_rows(session)
        only_vero = await hourly_rows(session, authority_id=world.vero)
        other_month = await hourly_rows(session, "2026-12", "2026-12")
    assert len(rows) == 24 and [r["hour"] for r in rows] == list(range(24))
    busy = [r for r in rows if r["services"]]
    assert [(r["hour"], r["services"]) for r in busy] == [(11, 2)]
    # Each was taken a minute after his ticket.
    assert (busy[0]["mean_wait_seconds"], busy[0]["max_wait_seconds"]) == (60, 60)
    assert rows[10]["mean_wait_seconds"] is None
    assert sum(r["services"] for r in only_vero) == 0
    assert sum(r["services"] for r in other_month) == 0


async def test_admin_log_languages_and_hourly_routes(live_service: LiveService) -> None:
    admin = await live_service.issue_token("admin")
    expert_token = await live_service.issue_token("kela")
    for path in ("/api/admin/service-log", "/api/admin/languages", "/api/stats/hourly"):
        assert (await _get(live_service, path, None))[0] == 401, path
        assert (await _get(live_service, path, expert_token))[0] == 403, path
    for bad in (
        "/api/admin/service-log?from=2026-13-01",
        "/api/admin/service-log?limit=0",
        "/api/admin/service-log?limit=201",
        "/api/admin/service-log?office_id=-1",
        "/api/admin/service-log?kind=other",
        "/api/stats/hourly?office_id=x",
        "/api/stats/hourly?from=2026",
    ):
        status, body, _ = await _get(live_service, bad, admin)
        assert status == 400 and json.loads(body)["error"]["code"] == "invalid", (bad, body)

    status, body, _ = await _get(live_service, "/api/admin/languages", admin)
    languages = {item["code"]: item for item in json.loads(body)["items"]}
    assert status == 200 and list(languages)[:3] == ["fin", "swe", "eng"]
    assert languages["eng"]["name_sv"] == "engelska" and languages["fse"]["sign_language"]
    assert languages["fin"]["in_use"] and not languages["ukr"]["in_use"]

    # One served and recorded customer: a service record in the log, filterable.
    kiosk = await live_service.connect_kiosk()
    expert = await live_service.connect_user("kela")
    await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
    call_id = (await call(expert, "queue:take_next", {}))["call"]["id"]
    await call(expert, "call:end", {"call_id": call_id})
    key = await register_key_over_socket(expert, live_service.demo.user_ids["kela"])
    filed = await file_signed_over_socket(
        expert, key, {"call_id": call_id, "service_type": "general_advice", "outcome": "resolved"}
    )
    assert filed["ok"], filed
    status, body, _ = await _get(live_service, "/api/admin/service-log", admin)
    page = json.loads(body)
    assert status == 200 and page["total"] == 1 and page["offset"] == 0
    item = page["items"][0]
    assert (item["seq"], item["kind"], item["call_id"]) == (1, "service", call_id)
    assert item["signed"] is True
    assert item["authority_code"] == "kela" and item["office_id"] == live_service.demo.office_id
    assert item["body"]["outcome"] == "resolved"
    office = live_service.demo.office_id
    today = datetime.now().date()
    for query, expected in (
        (f"office_id={office}", 1),
        (f"office_id={office + 1000}", 0),
        ("kind=document", 0),
        (f"from={today - timedelta(days=1)}&to={today + timedelta(days=1)}", 1),
        (f"from={today + timedelta(days=2)}", 0),
        (f"to={today - timedelta(days=2)}", 0),
        ("offset=1", 0),
    ):
        status, body, _ = await _get(live_service, f"/api/admin/service-log?{query}", admin)
        found = json.loads(body)
        assert status == 200 and len(found["items"]) == expected, (query, found)
    status, body, _ = await _get(live_service, "/api/stats/hourly", admin)
    hourly = json.loads(body)
    assert status == 200 and hourly["timezone"] == "Europe/Helsinki"
    assert sum(r["services"] for r in hourly["rows"]) == 1
