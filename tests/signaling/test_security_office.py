"""Finding 4 of the outside review: disabling an office disconnected nothing and left its
kiosks and secretaries working. Performed against the running service, over the REST API the
admin pages use and with the `etapalvelu admin` CLI from another process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from signaling.db import utcnow
from signaling.store.flow_models import Appointment, Call, Ticket
from tests.signaling.flow_support import call, extra_kiosk
from tests.signaling.test_revocation import wait_disconnected
from tests.support.service import LiveService, connect_refusal, http_login, make_live_service


async def _office_at_work(live: LiveService) -> dict[str, Any]:
    """A call in progress, a customer waiting and an appointment booked at the demo office."""
    kiosk = await live.connect_kiosk()
    waiting_kiosk = await extra_kiosk(live)
    clerk = await live.connect_user("sihteeri")
    expert = await live.connect_user("kela")
    admin = await live.connect_user("admin")
    ended: list[Any] = []
    expert.on("call:ended", lambda data: ended.append(data))
    assert (await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
    taken = await call(expert, "queue:take_next", {})
    assert taken["ok"], taken
    waiting = await call(waiting_kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
    assert waiting["ok"], waiting
    synced = await call(admin, "flow:sync")
    kela = next(a for a in synced["authorities"] if a["code"] == "kela")
    booked = await call(
        admin,
        "appointment:book",
        {
            "authority_id": kela["id"],
            "office_id": live.demo.office_id,
            "starts_at": (utcnow() + timedelta(hours=2)).isoformat(),
            "language": "fin",
            "service_type": "general_advice",
        },
    )
    assert booked["ok"], booked
    lines = await call(expert, "queue:list", {})
    listed = [t["ticket_id"] for q in lines["queues"] for t in q["tickets"]]
    assert waiting["ticket"]["id"] in listed
    return {
        "kiosk": kiosk,
        "waiting_kiosk": waiting_kiosk,
        "clerk": clerk,
        "expert": expert,
        "ended": ended,
        "call_id": taken["call"]["id"],
        "ticket_id": waiting["ticket"]["id"],
        "appointment_id": booked["appointment"]["id"],
    }


async def _assert_office_closed(live: LiveService, work: dict[str, Any]) -> None:
    await wait_disconnected(work["kiosk"])
    await wait_disconnected(work["waiting_kiosk"])
    await wait_disconnected(work["clerk"])
    assert work["expert"].connected  # experts serve every office
    async with live.services.sessions() as session:
        ended = await session.get(Call, work["call_id"])
        ticket = await session.get(Ticket, work["ticket_id"])
        appointment = await session.get(Appointment, work["appointment_id"])
        assert ended is not None and ticket is not None and appointment is not None
        assert (ended.status, ended.end_reason) == ("ended", "office_disabled")
        assert ticket.status == "cancelled"
        assert appointment.status == "cancelled"
    refusal = await connect_refusal(live.base_url, live.kiosk_auth)
    assert refusal["message"] == "this endpoint's office is disabled"
    try:
        await http_login(live.base_url, "sihteeri", "sihteeri-demo")
        raise AssertionError("the clerk of a disabled office could log in")
    except PermissionError as exc:
        assert "office is disabled" in str(exc)
    # the expert's line no longer shows the cancelled customer
    lines = await call(work["expert"], "queue:list", {})
    waiting = [t["ticket_id"] for q in lines["queues"] for t in q["tickets"]]
    assert work["ticket_id"] not in waiting


async def test_disabling_an_office_over_rest_closes_its_work(live_service: LiveService) -> None:
    live = live_service
    work = await _office_at_work(live)
    token = await live.login("admin")
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.post(f"{live.base_url}/api/admin/offices/{live.demo.office_id}/disable") as r,
    ):
        assert r.status == 200
        body = await r.json()
    assert body["disconnected"] == 3  # two kiosks and the clerk
    assert (body["cancelled_tickets"], body["cancelled_appointments"], body["ended_calls"]) == (
        1,
        1,
        1,
    )
    await _assert_office_closed(live, work)
    for _ in range(100):
        if work["ended"]:
            break
        await asyncio.sleep(0.05)
    assert work["ended"][0]["reason"] == "office_disabled"


async def test_disabling_an_office_with_the_cli_closes_its_work(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, revocation_check_seconds=0.2) as live:
        work = await _office_at_work(live)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "signaling",
            "admin",
            "office",
            "disable",
            str(live.demo.office_id),
            "--data-dir",
            str(live.settings.data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert "cancelled tickets 1" in out.decode()
        await _assert_office_closed(live, work)
