"""What an office offers (issue 17) at socket level: service hours and gentle closing, the
catalogue, routing of the municipal lines by municipality, the admin API and CLI.

A live service on loopback with python-socketio clients; "now" for the hours is the service's
injectable clock (`services.clock`), never the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import socketio
from sqlalchemy import func, select

from signaling.directory.directory import (
    EndpointCreate,
    OfficeCreate,
    UserCreate,
    create_endpoint,
    create_office,
    create_user,
)
from signaling.directory.service_hours import HELSINKI
from signaling.store.flow_models import Ticket
from signaling.store.models import User
from tests.signaling.flow_support import call, extra_kiosk
from tests.support.service import LiveService, make_live_service

THURSDAY_CLOSING = datetime(2026, 11, 26, 14, 59, tzinfo=HELSINKI)
THURSDAY_AFTER = datetime(2026, 11, 26, 15, 1, tzinfo=HELSINKI)
MONDAY_OPENING = datetime(2026, 11, 30, 9, 0, tzinfo=HELSINKI)


def at(live: LiveService, moment: datetime) -> None:
    live.services.clock = lambda: moment


async def admin_api(
    live: LiveService, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, Any]]:
    token = await live.issue_token("admin")
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            live.base_url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        return response.status, await response.json()


async def set_kela_hours(live: LiveService, **extra: Any) -> dict[str, Any]:
    body = {"weekly": ["mon-thu 09:00-15:00"], **extra}
    status, answer = await admin_api(
        live, "PUT", f"/api/admin/offices/{live.demo.office_id}/hours/kela", body
    )
    assert status == 200, answer
    return answer


async def take(kiosk: socketio.AsyncClient, authority: str = "kela", language: str = "fin") -> Any:
    return await call(kiosk, "ticket:take", {"authority": authority, "language": language})


async def ticket_count(live: LiveService) -> int:
    async with live.services.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Ticket))).scalar_one())


# --- hours -----------------------------------------------------------------------------------


async def test_outside_hours_ticket_take_is_closed_with_opens_at(live_service: LiveService) -> None:
    live = live_service
    await set_kela_hours(live)
    kiosk = await live.connect_kiosk()
    at(live, THURSDAY_AFTER)
    ack = await take(kiosk)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "closed"
    assert ack["error"]["opens_at"] == "2026-11-30T09:00:00+02:00"
    assert "opens 2026-11-30 09:00" in ack["error"]["message"]
    assert await ticket_count(live) == 0  # a refusal changes nothing
    # Other authorities (no hours) are open at all times, as before.
    assert (await take(kiosk, "vero"))["ok"]
    assert (await call(kiosk, "ticket:cancel", {"ticket_id": 1}))["ok"]
    at(live, MONDAY_OPENING)
    assert (await take(kiosk))["ok"]


async def test_closing_is_gentle_for_those_already_waiting(live_service: LiveService) -> None:
    live = live_service
    await set_kela_hours(live)
    at(live, THURSDAY_CLOSING)
    first = await live.connect_kiosk()
    waiting = await take(first)
    assert waiting["ok"], waiting
    at(live, THURSDAY_AFTER)
    second = await extra_kiosk(live)
    refused = await take(second)
    assert refused["error"]["code"] == "closed"
    # The customer who came before closing time is still served.
    expert = await live.connect_user("kela")
    assert (await call(expert, "flow:sync"))["ok"]
    taken = await call(expert, "queue:take_next", {})
    assert taken["ok"], taken
    assert taken["ticket"]["id"] == waiting["ticket"]["id"]
    assert taken["call"]["status"] == "active"


async def test_holidays_exceptions_and_never_opening(live_service: LiveService) -> None:
    live = live_service
    kiosk = await live.connect_kiosk()
    # Wed 23 Dec short day, 24th closed, 25th/26th public holidays: after noon on the 23rd the
    # next opening is Monday 28th.
    await set_kela_hours(
        live, exceptions=["2026-12-23 09:00-12:00"], closed=["2026-12-24"], public_holidays=True
    )
    at(live, datetime(2026, 12, 23, 11, 0, tzinfo=HELSINKI))
    assert (await take(kiosk))["ok"]
    assert (await call(kiosk, "ticket:cancel", {"ticket_id": 1}))["ok"]
    at(live, datetime(2026, 12, 23, 12, 0, tzinfo=HELSINKI))
    ack = await take(kiosk)
    assert ack["error"]["opens_at"] == "2026-12-28T09:00:00+02:00"
    # Closed for the whole horizon: opens_at null.
    await set_kela_hours(live, closed=["2026-12-01..2027-03-31"])
    ack = await take(kiosk)
    assert ack["error"]["code"] == "closed" and ack["error"]["opens_at"] is None


async def test_bad_hours_are_refused_and_change_nothing(live_service: LiveService) -> None:
    live = live_service
    path = f"/api/admin/offices/{live.demo.office_id}/hours/kela"
    status, answer = await admin_api(live, "PUT", path, {"weekly": ["mon-thu 15-09"]})
    assert status == 400 and "must end after it starts" in answer["error"]["message"]
    status, answer = await admin_api(live, "PUT", path, {"weekly": [], "exceptions": []})
    assert status == 400
    status, answer = await admin_api(live, "PUT", path, {"weekly": ["mon 9-15"], "x": 1})
    assert status == 400
    status, offer = await admin_api(live, "GET", f"/api/admin/offices/{live.demo.office_id}/offer")
    kela = next(h for h in offer["hours"] if h["authority"] == "kela")
    assert kela["always_open"] is True
    # Only administrators.
    token = await live.issue_token("kela")
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            live.base_url + path,
            json={"weekly": ["mon 9-15"]},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 403


async def test_kiosk_sync_carries_hours_and_hears_of_changes(live_service: LiveService) -> None:
    live = live_service
    kiosk = await live.connect_kiosk()
    changed: list[Any] = []
    kiosk.on("office:offer_changed", lambda data: changed.append(data))
    at(live, THURSDAY_AFTER)
    await set_kela_hours(live)
    for _ in range(100):
        if changed:
            break
        await asyncio.sleep(0.05)
    assert changed == [{"office_id": live.demo.office_id}]
    synced = await call(kiosk, "flow:sync")
    kela = next(a for a in synced["authorities"] if a["code"] == "kela")
    assert kela["hours"]["open_now"] is False
    assert kela["hours"]["opens_at"] == "2026-11-30T09:00:00+02:00"
    assert kela["hours"]["weekly"] == [{"days": [0, 1, 2, 3], "intervals": [["09:00", "15:00"]]}]
    vero = next(a for a in synced["authorities"] if a["code"] == "vero")
    assert vero["hours"]["always_open"] is True
    assert synced["server_time"].startswith("2026-11-26T13:01:00")


# --- catalogue -------------------------------------------------------------------------------


async def test_catalogue_filters_the_kiosk_and_refuses_the_rest(live_service: LiveService) -> None:
    live = live_service
    kiosk = await live.connect_kiosk()
    before = await call(kiosk, "flow:sync")
    assert len(before["authorities"]) == 8  # no catalogue: everything offered
    path = f"/api/admin/offices/{live.demo.office_id}/catalogue"
    status, answer = await admin_api(
        live, "PUT", path, {"authorities": ["vero", "kela"], "languages": {"kela": ["fin"]}}
    )
    assert status == 200, answer
    synced = await call(kiosk, "flow:sync")
    assert [a["code"] for a in synced["authorities"]] == ["kela", "vero"]
    assert synced["authorities"][0]["languages"] == ["fin"]
    assert synced["authorities"][1]["languages"] is None
    refused = await take(kiosk, "poliisi")
    assert refused["error"]["code"] == "forbidden"
    assert refused["error"]["reason"] == "not_offered"
    refused = await take(kiosk, "kela", "swe")
    assert refused["error"]["reason"] == "language_not_offered"
    assert await ticket_count(live) == 0
    assert (await take(kiosk, "kela", "fin"))["ok"]
    # Bad input changes nothing.
    status, answer = await admin_api(live, "PUT", path, {"authorities": ["kela", "nosuch"]})
    assert status == 404
    status, answer = await admin_api(
        live, "PUT", path, {"authorities": ["kela"], "languages": {"kela": ["finnish"]}}
    )
    assert status == 400
    assert [a["code"] for a in (await call(kiosk, "flow:sync"))["authorities"]] == ["kela", "vero"]
    # Clearing offers everything again.
    status, _ = await admin_api(live, "PUT", path, {"authorities": []})
    assert status == 200
    assert len((await call(kiosk, "flow:sync"))["authorities"]) == 8


# --- routing by municipality -------------------------------------------------------------------


async def _espoo(live: LiveService) -> tuple[socketio.AsyncClient, socketio.AsyncClient]:
    """An office in Espoo with a kiosk, and an Espoo building inspector."""
    async with live.services.sessions() as session:
        office = await create_office(
            session, OfficeCreate(name="Sello", municipality="Espoo", default_language="fi")
        )
        await session.flush()
        endpoint, credential = await create_endpoint(
            session, EndpointCreate(office_id=office.id, name="Sello 1")
        )
        await create_user(
            session,
            UserCreate(
                username="espoo-rakennus",
                display_name="Eero Espoo",
                role="expert",  # type: ignore[arg-type]
                password="x" * 12,
                authorities=["rakennusvalvonta"],
                languages=["fin"],
                municipality="espoo",
            ),
            password_hash="x",
        )
        await session.commit()
        endpoint_id = endpoint.id
    kiosk = await live.connect({"endpoint_id": endpoint_id, "credential": credential})
    expert = await live.connect_user("espoo-rakennus")
    return kiosk, expert


def _ticket_ids(queues: list[dict[str, Any]]) -> set[int]:
    return {t["ticket_id"] for q in queues for t in q["tickets"]}


async def test_municipal_lines_go_to_their_own_municipality(live_service: LiveService) -> None:
    live = live_service
    espoo_kiosk, espoo_expert = await _espoo(live)
    helsinki_expert = await live.connect_user("rakennus")  # demo: Helsinki
    pushes: dict[str, list[Any]] = {"espoo": [], "helsinki": []}
    espoo_expert.on("queue:update", lambda d: pushes["espoo"].append(d))
    helsinki_expert.on("queue:update", lambda d: pushes["helsinki"].append(d))
    for expert in (espoo_expert, helsinki_expert):
        assert (await call(expert, "flow:sync"))["ok"]

    # Espoo's customer comes first, then Helsinki's.
    espoo_ticket = (await take(espoo_kiosk, "rakennusvalvonta"))["ticket"]
    helsinki_kiosk = await live.connect_kiosk()
    helsinki_ticket = (await take(helsinki_kiosk, "rakennusvalvonta"))["ticket"]
    # Each is first in his own municipality's line.
    assert espoo_ticket["position"] == 1 and helsinki_ticket["position"] == 1

    listed = await call(helsinki_expert, "queue:list", {})
    assert _ticket_ids(listed["queues"]) == {helsinki_ticket["id"]}
    listed = await call(espoo_expert, "queue:list", {})
    assert _ticket_ids(listed["queues"]) == {espoo_ticket["id"]}
    synced = await call(helsinki_expert, "flow:sync")
    assert _ticket_ids(synced["queues"]) == {helsinki_ticket["id"]}

    await asyncio.sleep(0.3)
    seen_by_helsinki = {i for p in pushes["helsinki"] for i in _ticket_ids(p["queues"])}
    seen_by_espoo = {i for p in pushes["espoo"] for i in _ticket_ids(p["queues"])}
    assert seen_by_helsinki == {helsinki_ticket["id"]}
    assert seen_by_espoo == {espoo_ticket["id"]}

    refused = await call(helsinki_expert, "queue:take", {"ticket_id": espoo_ticket["id"]})
    assert refused["error"]["code"] == "forbidden"
    assert refused["error"]["reason"] == "other_municipality"
    # take_next skips the earlier Espoo customer.
    taken = await call(helsinki_expert, "queue:take_next", {})
    assert taken["ok"], taken
    assert taken["ticket"]["id"] == helsinki_ticket["id"]
    taken = await call(espoo_expert, "queue:take_next", {})
    assert taken["ticket"]["id"] == espoo_ticket["id"]


async def test_municipal_expert_without_municipality_sees_none(live_service: LiveService) -> None:
    live = live_service
    async with live.services.sessions() as session:
        user = (await session.execute(select(User).where(User.username == "rakennus"))).scalar_one()
        user_id = user.id
    status, answer = await admin_api(
        live, "PUT", f"/api/admin/users/{user_id}/municipality", {"municipality": ""}
    )
    assert status == 200 and answer["item"]["municipality"] is None
    expert = await live.connect_user("rakennus")
    kiosk = await live.connect_kiosk()
    ticket = (await take(kiosk, "rakennusvalvonta"))["ticket"]
    assert _ticket_ids((await call(expert, "queue:list", {}))["queues"]) == set()
    refused = await call(expert, "queue:take_next", {})
    assert refused["error"]["reason"] == "queue_empty"
    # The Kela line is national: untouched by municipalities.
    kela = await live.connect_user("kela")
    kela_ticket = (await take(await extra_kiosk(live), "kela"))["ticket"]
    assert _ticket_ids((await call(kela, "queue:list", {}))["queues"]) == {kela_ticket["id"]}
    assert ticket["position"] == 1


# --- the CLI contract, from outside -------------------------------------------------------------


def etapalvelu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signaling", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_cli_hours_set_closes_ticket_take(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with make_live_service(tmp_path, data_dir=data) as live:
        office = str(live.demo.office_id)
        loop = asyncio.get_running_loop()

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return etapalvelu("admin", *args, "--data-dir", str(data))

        done = await loop.run_in_executor(
            None,
            lambda: run(
                "hours", "set", "--office", office, "--authority", "kela",
                "--weekly", "mon-thu 09:00-15:00", "--weekly", "fri 09:00-12:00",
                "--exception", "2026-12-23 09:00-12:00", "--closed", "2026-12-24", "--json",
            ),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)[0]
        assert shown["weekly"] == ["mon-thu 09:00-15:00", "fri 09:00-12:00"]
        assert shown["closed"] == ["2026-12-24"]

        kiosk = await live.connect_kiosk()
        at(live, datetime(2026, 11, 27, 12, 30, tzinfo=HELSINKI))  # Friday after 12
        ack = await take(kiosk)
        assert ack == {
            "ok": False,
            "error": {
                "code": "closed",
                "message": ack["error"]["message"],
                "opens_at": "2026-11-30T09:00:00+02:00",
            },
        }

        bad = await loop.run_in_executor(
            None,
            lambda: run("hours", "set", "--office", office, "--authority", "kela",
                        "--weekly", "mon-thu 09:00"),
        )  # fmt: skip
        assert bad.returncode == 2 and "not an interval" in bad.stderr
        shown = json.loads(
            (
                await loop.run_in_executor(
                    None, lambda: run("hours", "show", "--office", office, "--authority", "kela",
                                      "--json")
                )
            ).stdout
        )[0]  # fmt: skip
        assert shown["weekly"] == ["mon-thu 09:00-15:00", "fri 09:00-12:00"]  # unchanged

        cleared = await loop.run_in_executor(
            None, lambda: run("hours", "clear", "--office", office, "--authority", "kela")
        )
        assert cleared.returncode == 0, cleared.stderr
        assert (await take(kiosk))["ok"]

        catalogue = await loop.run_in_executor(
            None,
            lambda: run("catalogue", "set", "--office", office, "--authorities", "vero,kela",
                        "--languages", "kela=fin,swe", "--json"),
        )  # fmt: skip
        assert catalogue.returncode == 0, catalogue.stderr
        offered = {a["code"] for a in json.loads(catalogue.stdout)["authorities"] if a["offered"]}
        assert offered == {"kela", "vero"}
        synced = await call(kiosk, "flow:sync")
        assert [a["code"] for a in synced["authorities"]] == ["kela", "vero"]


async def test_appointments_check_in_whatever_the_hours(live_service: LiveService) -> None:
    """A booked time is the booking's business: outside the hours a walk-in is refused but
    the customer with an appointment checks in."""
    from datetime import timedelta

    from signaling.db import utcnow

    live = live_service
    await set_kela_hours(live)
    at(live, THURSDAY_AFTER)
    admin = await live.connect_user("admin")
    synced = await call(admin, "flow:sync")
    kela = next(a for a in synced["authorities"] if a["code"] == "kela")
    made = await call(
        admin,
        "appointment:book",
        {
            "authority_id": kela["id"],
            "office_id": live.demo.office_id,
            "starts_at": (utcnow() + timedelta(minutes=5)).isoformat(),
            "language": "fin",
            "service_type": "general_advice",
        },
    )
    assert made["ok"], made
    kiosk = await live.connect_kiosk()
    assert (await take(kiosk))["error"]["code"] == "closed"
    checked = await call(kiosk, "appointment:check_in", {"code": made["appointment"]["code"]})
    assert checked["ok"], checked
    assert checked["ticket"]["kind"] == "appointment"
