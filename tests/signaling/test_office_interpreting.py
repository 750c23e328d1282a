"""Issue 17 at socket level: the customer's interpreting need (kiosk → ticket → the ring starts
when an expert takes him), the office's offer checked on transfer and at check-in, desk services
per office, and migration 0013 against the models.

A live service on loopback with python-socketio clients; "now" for the service hours is the
service's injectable clock.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import socketio
from sqlalchemy import func, select, update

from signaling.db import utcnow
from signaling.directory.service_hours import HELSINKI
from signaling.store.flow_models import Appointment, InterpreterRequest, Ticket
from signaling.store.office_desk_models import OfficeDeskService
from tests.signaling.flow_support import call
from tests.support.service import LiveService

THURSDAY_EVENING = datetime(2026, 11, 26, 16, 0, tzinfo=HELSINKI)


async def admin_api(
    live: LiveService, method: str, path: str, body: Any = None, *, user: str = "admin"
) -> tuple[int, Any]:
    token = await live.issue_token(user)
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            live.base_url + path,
            data=body if isinstance(body, str) else None,
            json=None if isinstance(body, str) else body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as response,
    ):
        return response.status, await response.json()


async def ticket_count(live: LiveService) -> int:
    async with live.services.sessions() as session:
        return int((await session.execute(select(func.count(Ticket.id)))).scalar_one())


async def wait_for(items: list[Any], what: str, seconds: float = 5.0) -> Any:
    for _ in range(int(seconds / 0.05)):
        if items:
            return items[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what} within {seconds} s")


async def authority_id(client: socketio.AsyncClient, code: str) -> int:
    synced = await call(client, "flow:sync")
    key = "all_authorities" if "all_authorities" in synced else "authorities"
    return int(next(a["id"] for a in synced[key] if a["code"] == code))


# --- the interpreting need ----------------------------------------------------------------------


async def test_interpreting_need_starts_the_ring_when_the_expert_takes(
    live_service: LiveService,
) -> None:
    live = live_service
    kiosk = await live.connect_kiosk()
    expert = await live.connect_user("kela")
    interpreter = await live.connect_user("tulkki")
    alerts: list[Any] = []
    updates: list[Any] = []
    interpreter.on("interpreter:alert", lambda d: alerts.append(d))
    expert.on("interpreter:update", lambda d: updates.append(d))
    for client in (expert, interpreter):
        assert (await call(client, "flow:sync"))["ok"]

    # The kiosk is told the sign languages and what the network's interpreters cover (tulkki:
    # fse, ara, fin; fin is a service language, never an interpreting need).
    synced = await call(kiosk, "flow:sync")
    tiles = {t["code"]: t for t in synced["interpreting_languages"]}
    assert list(tiles) == ["fse", "fss", "ara"]
    assert tiles["fse"]["own_name"] == "suomalainen viittomakieli"
    assert tiles["fse"]["sign_language"] and tiles["fse"]["lang"] == "fi"
    assert tiles["fss"]["own_name"] == "finlandssvenskt teckenspråk"
    assert tiles["ara"] == {
        "code": "ara",
        "own_name": "العربية",
        "lang": "ar",
        "dir": "rtl",
        "sample": "ع",
        "sign_language": False,
    }

    # Bad needs: a clear refusal and no ticket.
    base = {"authority": "kela", "language": "fin"}
    for bad, reason in (
        ({**base, "interpreting": "xyz"}, "interpreting_unknown"),
        ({**base, "interpreting": "fin"}, "interpreting_unknown"),
        ({**base, "interpreting": "FSE"}, None),
        ({**base, "interpreting": ""}, None),
        ({**base, "interpreting": 7}, None),
        ({**base, "interpreting": ["fse"]}, None),
        ({**base, "interpreting": "fse", "extra": 1}, None),
    ):
        ack = await call(kiosk, "ticket:take", bad)
        assert not ack["ok"] and ack["error"]["code"] == "invalid", (bad, ack)
        if reason:
            assert ack["error"]["reason"] == reason, ack
    assert await ticket_count(live) == 0

    took = await call(kiosk, "ticket:take", {**base, "interpreting": "fse"})
    assert took["ok"], took
    assert took["ticket"]["interpreting"] == "fse" and took["ticket"]["language"] == "fin"
    queues = (await call(expert, "queue:list"))["queues"]
    assert [t["interpreting"] for q in queues for t in q["tickets"]] == ["fse"]
    assert alerts == []  # nobody rings before an expert takes the customer

    taken = await call(expert, "queue:take", {"ticket_id": took["ticket"]["id"]})
    assert taken["ok"], taken
    # The call the expert sees already has the ring in his name, as if he had pressed it.
    [ring] = taken["call"]["interpreter_requests"]
    assert ring["language"] == "fse" and ring["status"] == "ringing"
    assert ring["requested_by"] == {
        "kind": "user",
        "id": live.demo.user_ids["kela"],
        "name": "Kaisa Kela-asiantuntija",
    }
    alert = await wait_for(alerts, "interpreter:alert")
    assert alert["request"]["id"] == ring["id"] and alert["request"]["sign_language"]
    update_ = await wait_for(updates, "interpreter:update")
    assert update_["request"]["id"] == ring["id"] and update_["alerted"] == 1
    assert update_["automatic"] is True

    accepted = await call(interpreter, "interpreter:accept", {"request_id": ring["id"]})
    assert accepted["ok"], accepted
    roles = {p["role"] for p in accepted["call"]["participants"]}
    assert roles == {"customer", "expert", "interpreter"}

    # Transferred, the need goes with the customer to the next line.
    vero = await authority_id(expert, "vero")
    moved = await call(
        expert, "queue:transfer", {"ticket_id": took["ticket"]["id"], "authority_id": vero}
    )
    assert moved["ok"], moved
    assert moved["ticket"]["interpreting"] == "fse"

    # A customer without a need: no ring at all.
    await asyncio.sleep(0.2)
    other = await live.connect_kiosk()
    async with live.services.sessions() as session:
        await session.execute(update(Ticket).values(status="cancelled"))
        await session.commit()
    plain = await call(other, "ticket:take", base)
    assert plain["ok"] and plain["ticket"]["interpreting"] is None
    async with live.services.sessions() as session:
        rings = (await session.execute(select(func.count(InterpreterRequest.id)))).scalar_one()
    assert rings == 1


# --- the office's offer on transfer and at check-in ---------------------------------------------


async def test_transfer_is_refused_outside_the_offer_and_the_hours(
    live_service: LiveService,
) -> None:
    live = live_service
    office = live.demo.office_id
    kiosk = await live.connect_kiosk()
    expert = await live.connect_user("kela")
    took = await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
    ticket_id = took["ticket"]["id"]
    call_id = (await call(expert, "queue:take", {"ticket_id": ticket_id}))["call"]["id"]
    vero, poliisi = await authority_id(expert, "vero"), await authority_id(expert, "poliisi")

    status, _ = await admin_api(
        live,
        "PUT",
        f"/api/admin/offices/{office}/catalogue",
        {"authorities": ["kela", "vero"], "languages": {"vero": ["swe"]}},
    )
    assert status == 200

    async def transfer(target: int, **extra: Any) -> dict[str, Any]:
        return await call(
            expert, "queue:transfer", {"ticket_id": ticket_id, "authority_id": target, **extra}
        )

    refused = await transfer(poliisi)
    assert refused["error"]["code"] == "forbidden", refused
    assert refused["error"]["reason"] == "target_not_offered"
    assert "does not offer poliisi" in refused["error"]["message"]
    refused = await transfer(vero)  # the customer's language is fin; vero is offered in swe
    assert refused["error"]["reason"] == "target_language_not_offered", refused

    # Outside the target's hours at the customer's office.
    status, _ = await admin_api(
        live,
        "PUT",
        f"/api/admin/offices/{office}/hours/vero",
        {"weekly": ["mon-fri 09:00-15:00"]},
    )
    assert status == 200
    live.services.clock = lambda: THURSDAY_EVENING
    refused = await transfer(vero, language="swe")
    assert refused["error"]["code"] == "closed" and refused["error"]["reason"] == "target_closed"
    assert refused["error"]["opens_at"] == "2026-11-27T09:00:00+02:00"

    # Garbage is refused before anything is looked at.
    for bad in (
        {"ticket_id": ticket_id, "authority_id": 0},
        {"ticket_id": ticket_id, "authority_id": "vero"},
        {"ticket_id": ticket_id, "authority_id": vero, "language": "sv"},
        {"ticket_id": ticket_id, "authority_id": vero, "extra": True},
        {"ticket_id": ticket_id},
    ):
        assert (await call(expert, "queue:transfer", bad))["error"]["code"] == "invalid", bad

    # Nothing changed: the call goes on, the customer is still being served.
    async with live.services.sessions() as session:
        ticket = await session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status == "serving"
    assert (await call(expert, "flow:sync"))["call"]["id"] == call_id

    # Open again: the transfer goes through.
    live.services.clock = lambda: datetime(2026, 11, 27, 10, 0, tzinfo=HELSINKI)
    moved = await transfer(vero, language="swe")
    assert moved["ok"], moved
    assert moved["ticket"]["authority_code"] == "vero"


async def test_check_in_is_refused_when_the_office_stopped_offering(
    live_service: LiveService,
) -> None:
    live = live_service
    office = live.demo.office_id
    admin = await live.connect_user("admin")
    kela = await authority_id(admin, "kela")
    made = await call(
        admin,
        "appointment:book",
        {
            "authority_id": kela,
            "office_id": office,
            "starts_at": (utcnow() + timedelta(minutes=5)).isoformat(),
            "language": "fin",
            "service_type": "general_advice",
        },
    )
    assert made["ok"], made
    appointment_id = made["appointment"]["id"]
    # The booking asked for an Arabic interpreter (the bookings' column).
    async with live.services.sessions() as session:
        await session.execute(
            update(Appointment).where(Appointment.id == appointment_id).values(interpreting="ara")
        )
        await session.commit()
    path = f"/api/admin/offices/{office}/catalogue"
    assert (await admin_api(live, "PUT", path, {"authorities": ["vero"]}))[0] == 200

    kiosk = await live.connect_kiosk()
    code = made["appointment"]["code"]
    refused = await call(kiosk, "appointment:check_in", {"code": code})
    assert refused["error"]["code"] == "forbidden", refused
    assert refused["error"]["reason"] == "not_offered"
    assert "no longer offers" in refused["error"]["message"]
    async with live.services.sessions() as session:
        appointment = await session.get(Appointment, appointment_id)
        assert appointment is not None and appointment.status == "booked"
    assert await ticket_count(live) == 0

    assert (await admin_api(live, "PUT", path, {"authorities": []}))[0] == 200
    checked = await call(kiosk, "appointment:check_in", {"code": code})
    assert checked["ok"], checked
    assert checked["ticket"]["interpreting"] == "ara"


# --- desk services per office -------------------------------------------------------------------


def etapalvelu(live: LiveService, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETAPALVELU_")}
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "signaling", *args, "--data-dir", str(live.settings.data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


async def test_desk_services_per_office(live_service: LiveService) -> None:
    live = live_service
    office = live.demo.office_id
    path = f"/api/admin/offices/{office}/desk-services"
    clerk = await live.connect_user("sihteeri")
    kela = await authority_id(clerk, "kela")

    async def offered() -> list[str]:
        return [s["code"] for s in (await call(clerk, "desk:services"))["services"]]

    assert await offered() == ["assisted_eservice", "form_handed_over", "identity_check", "other"]
    status, body = await admin_api(live, "PUT", path, {"services": ["identity_check", "other"]})
    assert status == 200, body
    assert body["item"]["services"] == ["identity_check", "other"] and not body["item"]["default"]
    assert await offered() == ["identity_check", "other"]

    refused = await call(clerk, "desk:draft", {"authority_id": kela, "desk_service": "other"})
    assert refused["ok"], refused
    refused = await call(
        clerk, "desk:draft", {"authority_id": kela, "desk_service": "assisted_eservice"}
    )
    assert refused["error"]["code"] == "forbidden", refused
    assert refused["error"]["reason"] == "desk_service_not_listed"

    # Bad input: refused, nothing changes.
    for bad, expected in (
        ({"services": ["coffee"]}, 400),
        ({"services": ["other", "identity_check", "x" * 40]}, 400),
        ({"services": "other"}, 400),
        ({"services": ["other"], "more": 1}, 400),
        ("{not json", 400),
        ({"services": [1]}, 400),
    ):
        status, answer = await admin_api(live, "PUT", path, bad)
        assert status == expected, (bad, answer)
    assert (await admin_api(live, "PUT", "/api/admin/offices/99999/desk-services", {}))[0] == 404
    assert (await admin_api(live, "PUT", path, {"services": []}, user="kela"))[0] == 403
    assert await offered() == ["identity_check", "other"]
    status, offer = await admin_api(live, "GET", f"/api/admin/offices/{office}/offer")
    assert offer["desk_services"]["services"] == ["identity_check", "other"]
    assert offer["desk_services"]["all"][0]["name"]["sv"] == "Assisterad e-tjänst"

    # The command line: a bad set, then clear (it prints the list it leaves).
    code, out = await asyncio.to_thread(
        etapalvelu, live, "admin", "desk-services", "set", "--office", str(office),
        "--services", "identity_check,tea",
    )  # fmt: skip
    assert code != 0 and "unknown desk services ['tea']" in out, out
    code, out = await asyncio.to_thread(
        etapalvelu, live, "admin", "desk-services", "clear", "--office", str(office)
    )
    assert code == 0 and "the global list" in out and "assisted_eservice" in out, out
    assert len(await offered()) == 4
    async with live.services.sessions() as session:
        rows = (await session.execute(select(func.count()).select_from(OfficeDeskService))).scalar()
    assert rows == 0


async def test_office_municipality_api_refuses_bad_input(live_service: LiveService) -> None:
    live = live_service
    path = f"/api/admin/offices/{live.demo.office_id}/municipality"
    for bad in ({"municipality": ""}, {"municipality": "x" * 101}, {"name": "Espoo"}, "[1"):
        status, _ = await admin_api(live, "PUT", path, bad)
        assert status == 400, bad
    status, body = await admin_api(live, "PUT", path, {"municipality": "  Espoo "})
    assert status == 200 and body["item"]["municipality"] == "Espoo"


# --- schema -------------------------------------------------------------------------------------

