"""The wait a kiosk's ticket promises counts only experts who can serve that line.

Socket level (a live service, python-socketio clients), from the two tickets of issue 15: an
English Kela ticket promised "about 2 minutes" though no Kela expert speaks English, and the
first ticket said "you are next, about 8 minutes" while an expert was free. Domain cases of
`wait_estimate` are at the end.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from signaling.flow.queues import LineStaff, wait_estimate
from tests.signaling.flow_support import call, extra_kiosk
from tests.support.service import LiveService

# The demo Kela expert speaks Finnish and Swedish (signaling/server/demo.py); default 8 minutes.
MEAN = 8 * 60


def _estimate(ticket: dict[str, Any]) -> tuple[Any, Any, Any]:
    return ticket["position"], ticket["estimated_wait_seconds"], ticket["estimate_reason"]


async def _take(kiosk: socketio.AsyncClient, authority: str, language: str) -> dict[str, Any]:
    ack = await call(kiosk, "ticket:take", {"authority": authority, "language": language})
    assert ack["ok"], ack
    ticket: dict[str, Any] = ack["ticket"]
    return ticket


async def _latest_push(pushes: list[dict[str, Any]], ticket_id: int, within: float = 5) -> Any:
    """The newest `ticket:update` of this ticket, waiting up to `within` s for one."""
    for _ in range(int(within / 0.05)):
        mine = [p["ticket"] for p in pushes if p["ticket"]["id"] == ticket_id]
        if mine:
            return mine[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no ticket:update for ticket {ticket_id}: {pushes}")


async def test_a_free_expert_means_soon_not_eight_minutes(live_service: LiveService) -> None:
    expert = await live_service.connect_user("kela")
    assert (await call(expert, "flow:sync"))["ok"]
    kiosk = await live_service.connect_kiosk()
    first = await _take(kiosk, "kela", "fin")
    # The first customer, the expert free: ~0, not "you are next, about 8 minutes".
    assert _estimate(first) == (1, 0, "soon")

    # A second customer while the only expert is still free: he is second in line, so he
    # waits for the first call (one mean call duration).
    second_kiosk = await extra_kiosk(live_service)
    second = await _take(second_kiosk, "kela", "swe")
    assert _estimate(second) == (1, 0, "soon")  # his own line: Swedish, and she speaks it
    third_kiosk = await extra_kiosk(live_service, "Kallio kioski 3")
    pushes: list[dict[str, Any]] = []
    third_kiosk.on("ticket:update", lambda data: pushes.append(data))
    third = await _take(third_kiosk, "kela", "fin")
    assert _estimate(third) == (2, MEAN, "queue")

    # The expert takes the first Finnish customer: she is in a call, nobody is free; the
    # remaining Finnish customer is next but waits for that call.
    taken = await call(expert, "queue:take_next", {"language": "fin"})
    assert taken["ok"], taken
    pushed = await _latest_push(pushes, third["id"])
    assert _estimate(pushed) == (1, MEAN, "queue")
    synced = await call(third_kiosk, "flow:sync")
    assert _estimate(synced["ticket"]) == (1, MEAN, "queue")

    # The call ends: she is free again and the waiting customer is told "soon".
    pushes.clear()
    assert (await call(expert, "call:end", {"call_id": taken["call"]["id"]}))["ok"]
    for _ in range(100):
        mine = [p["ticket"] for p in pushes if p["ticket"]["id"] == third["id"]]
        if mine and mine[-1]["estimate_reason"] == "soon":
            break
        await asyncio.sleep(0.05)
    synced = await call(third_kiosk, "flow:sync")
    assert synced["ticket"]["estimate_reason"] == "soon"
    assert synced["ticket"]["estimated_wait_seconds"] == 0


async def test_nobody_speaks_the_language_means_no_estimate(live_service: LiveService) -> None:
    expert = await live_service.connect_user("kela")
    assert (await call(expert, "flow:sync"))["ok"]
    kiosk = await live_service.connect_kiosk()
    english = await _take(kiosk, "kela", "eng")
    # Not "about 2 minutes": the Kela expert online speaks Finnish and Swedish only.
    assert english["position"] == 1
    assert english["estimated_wait_seconds"] is None
    assert english["estimate_reason"] == "no_expert_for_language"
    synced = await call(kiosk, "flow:sync")
    assert synced["ticket"]["estimated_wait_seconds"] is None
    assert synced["ticket"]["estimate_reason"] == "no_expert_for_language"

    # A Finnish customer of the same authority meanwhile: she can serve him.
    other = await extra_kiosk(live_service)
    finnish = await _take(other, "kela", "fin")
    assert _estimate(finnish) == (1, 0, "soon")


async def test_nobody_of_the_authority_online_means_no_estimate(
    live_service: LiveService,
) -> None:
    kiosk = await live_service.connect_kiosk()
    pushes: list[dict[str, Any]] = []
    kiosk.on("ticket:update", lambda data: pushes.append(data))
    # Nobody has logged in: no Kela expert is online at all.
    ticket = await _take(kiosk, "kela", "fin")
    assert _estimate(ticket) == (1, None, "no_expert_online")
    # She logs in: the waiting customer is told at once, without asking.
    expert = await live_service.connect_user("kela")
    assert _estimate(await _reason_pushed(pushes, ticket["id"], "soon")) == (1, 0, "soon")
    # An expert who said "away" counts as not there.
    assert (await call(expert, "presence:set", {"status": "away"}))["ok"]
    assert _estimate(await _reason_pushed(pushes, ticket["id"], "no_expert_online")) == (
        1, None, "no_expert_online")
    synced = await call(kiosk, "flow:sync")
    assert _estimate(synced["ticket"]) == (1, None, "no_expert_online")
    # Back to available: she is free and can serve him.
    assert (await call(expert, "presence:set", {"status": "available"}))["ok"]
    assert _estimate(await _reason_pushed(pushes, ticket["id"], "soon")) == (1, 0, "soon")
    synced = await call(kiosk, "flow:sync")
    assert _estimate(synced["ticket"]) == (1, 0, "soon")
    # She logs out: nobody again.
    await expert.disconnect()
    assert _estimate(await _reason_pushed(pushes, ticket["id"], "no_expert_online")) == (
        1, None, "no_expert_online")


async def _reason_pushed(
    pushes: list[dict[str, Any]], ticket_id: int, reason: str
) -> dict[str, Any]:
    """The newest ticket:update of this ticket once it carries `reason` (5 s at most)."""
    for _ in range(100):
        mine = [p["ticket"] for p in pushes if p["ticket"]["id"] == ticket_id]
        if mine and mine[-1]["estimate_reason"] == reason:
            pushes.clear()
            return mine[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no ticket:update with {reason}: {pushes[-3:]}")


# --- the rule itself ---------------------------------------------------------------------------


def _staff(working: set[int], free: set[int], online: int | None = None) -> LineStaff:
    return LineStaff(
        frozenset(working), frozenset(free), len(working) if online is None else online
    )


@pytest.mark.parametrize(
    ("position", "staff", "booked", "expected"),
    [
        (1, _staff({1, 2}, {1, 2}), None, (0, "soon")),
        (2, _staff({1, 2}, {1, 2}), None, (0, "soon")),
        (3, _staff({1, 2}, {1, 2}), None, (MEAN, "queue")),
        (1, _staff({1, 2}, set()), None, (MEAN, "queue")),
        (2, _staff({1, 2}, set()), None, (MEAN, "queue")),
        (3, _staff({1, 2}, set()), None, (2 * MEAN, "queue")),
        (2, _staff({1, 2}, {1}), None, (MEAN, "queue")),
        (1, _staff(set(), set(), online=3), None, (None, "no_expert_for_language")),
        (1, _staff(set(), set(), online=0), None, (None, "no_expert_online")),
        # A booked appointment waits for its own expert only.
        (1, _staff({1, 2}, {2}), 1, (MEAN, "queue")),
        (1, _staff({1, 2}, {1}), 1, (0, "soon")),
        (1, _staff({2}, {2}), 1, (None, "no_expert_online")),
    ],
)
def test_wait_estimate_rule(
    position: int, staff: LineStaff, booked: int | None, expected: tuple[Any, str]
) -> None:
    assert wait_estimate(position, staff, MEAN, booked) == expected
