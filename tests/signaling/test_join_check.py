"""The customer at home's device check reaches the expert (`remote:check`): only fixed codes
are taken, garbage is refused and changes nothing, the last result is kept with the guest and
pushed to the expert's waiting list. The browser side is tests/expert_console/test_join_browser.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from signaling.store.remote_models import RemoteGuest
from tests.signaling.test_join import ack, error_of, guest_tab, http, remote_appointment
from tests.support.service import LiveService

GOOD: dict[str, Any] = {
    "camera": "ok",
    "microphone": "ok",
    "speaker": "not_tested",
    "relay": "ok",
    "relay_reason": None,
    "turn": "failed",
    "turn_reason": "unreachable",
}


async def test_the_check_report_is_validated_kept_and_shown(live_service: LiveService) -> None:
    live = live_service
    appointment_id, path = await remote_appointment(live)
    async with http() as browser:
        async with browser.post(f"{live.base_url}{path}/enter") as r:
            assert r.status == 200
            secret = r.cookies["etapalvelu_join"].value
    guest = await guest_tab(live, secret)
    expert = await live.connect_user("kela")
    pushed: list[dict[str, Any]] = []
    expert.on("remote:waiting", lambda data: pushed.append(data["customer"]))
    listed = (await ack(expert, "remote:list"))["waiting"]
    assert [w["appointment_id"] for w in listed] == [appointment_id]
    assert listed[0]["check"] is None  # nothing reported yet

    # the expert cannot report for him
    assert error_of(await ack(expert, "remote:check", GOOD)) == "forbidden"
    bad: list[Any] = [
        None,
        [GOOD],
        "ok",
        {},
        {**GOOD, "note": "call me"},  # no free text
        {**GOOD, "camera": "<b>broken</b>"},
        {**GOOD, "camera": "OK "},
        {**GOOD, "camera": True},
        {**GOOD, "microphone": 1},
        {**GOOD, "speaker": "x" * 5000},
        {**GOOD, "turn_reason": "coturn said: 401 at 10.0.0.5"},
        {**GOOD, "turn_reason": None},  # failed without a reason
        {**GOOD, "turn": "ok"},  # a reason without a failure
        {**GOOD, "relay": "failed"},
        {**GOOD, "relay_reason": "no_pair"},
        {k: v for k, v in GOOD.items() if k != "relay"},
    ]
    for payload in bad:
        assert error_of(await ack(guest, "remote:check", payload)) == "invalid", payload
    async with live.services.sessions() as session:
        row = await session.get(RemoteGuest, guest_id := listed[0]["guest_id"])
        assert row is not None and row.join_check is None and row.join_check_at is None
    assert (await ack(expert, "remote:list"))["waiting"][0]["check"] is None

    # a good one is kept and pushed; the next replaces it (only the last)
    assert (await ack(guest, "remote:check", GOOD))["ok"]
    for _ in range(100):
        if pushed and pushed[-1]["check"]:
            break
        await asyncio.sleep(0.05)
    check = pushed[-1]["check"]
    assert {k: check[k] for k in GOOD} == GOOD and check["at"]
    second = {
        **GOOD,
        "relay": "failed",
        "relay_reason": "relay_down",
        "turn": "skipped",
        "turn_reason": None,
        "camera": "blocked",
        "microphone": "blocked",
    }
    assert (await ack(guest, "remote:check", second))["ok"]
    assert error_of(await ack(guest, "remote:check", {**GOOD, "turn": "maybe"})) == "invalid"
    listed = (await ack(expert, "remote:list"))["waiting"]
    assert {k: listed[0]["check"][k] for k in second} == second
    async with live.services.sessions() as session:
        row = await session.get(RemoteGuest, guest_id)
        assert row is not None and row.join_check is not None and len(row.join_check) < 500
        assert "relay_down" in row.join_check and "unreachable" not in row.join_check
