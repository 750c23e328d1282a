"""`document_camera:view` (remote zoom) at socket level against the real service: who may
steer the document camera, what reaches the office's endpoint, and garbage refused with
`invalid` and nothing pushed. The zoom itself through the real agent and Chromium is
tests/expert_console/test_remote_zoom.py."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import socketio
from aiortc.mediastreams import VideoStreamTrack

from tests.signaling.call_support import CallPeer, eventually, start_call
from tests.support.service import LiveService

PUSH = "document_camera:region"
REGION = {"x": 0.25, "y": 0.5, "w": 0.25, "h": 0.125}

# Each is refused with `invalid` (the payload's region, or the whole payload).
GARBAGE: list[Any] = [
    {"x": 0.5, "y": 0.0, "w": 0.6, "h": 0.2},  # past the right edge
    {"x": 0.0, "y": 0.9, "w": 0.2, "h": 0.2},  # past the bottom
    {"x": -0.1, "y": 0.0, "w": 0.5, "h": 0.5},  # left of the page
    {"x": 0.1, "y": 0.1, "w": 0.0, "h": 0.5},  # empty
    {"x": 0.1, "y": 0.1, "w": 0.01, "h": 0.01},  # more than native pixels from any camera
    {"x": 0.1, "y": 0.1, "w": -0.5, "h": 0.5},
    {"x": "0.1", "y": 0.1, "w": 0.5, "h": 0.5},  # strings are not numbers
    {"x": True, "y": 0.1, "w": 0.5, "h": 0.5},
    {"x": 0.1, "y": 0.1, "w": 0.5},  # truncated
    {"x": 0.1, "y": 0.1, "w": 0.5, "h": 0.5, "zoom": 2},  # unknown field
    {"x": math.inf, "y": 0.1, "w": 0.5, "h": 0.5},
    [0.1, 0.1, 0.5, 0.5],
    "all",
    7,
]


async def ack_of(client: socketio.AsyncClient, event: str, data: Any) -> Any:
    return await client.call(event, data, timeout=15)


def pushes_to(client: socketio.AsyncClient) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    client.on(PUSH, lambda data: got.append(data))
    return got


async def test_view_needs_the_calls_expert_a_camera_and_an_active_call(
    live_service: LiveService,
) -> None:
    live = live_service
    kiosk, expert, call_id = await start_call(live)
    pushed = pushes_to(kiosk)
    clerk = await live.connect_user("sihteeri")
    interpreter = await live.connect_user("tulkki")
    other_expert = await live.connect_user("rakennus")
    view = {"call_id": call_id, "region": REGION}

    missing = await ack_of(expert, "document_camera:view", {**view, "call_id": call_id + 99})
    assert missing["error"]["code"] == "not_found"
    none = await ack_of(expert, "document_camera:view", view)
    assert (none["error"]["code"], none["error"]["reason"]) == ("conflict", "no_document_camera")
    # Only the call's expert steers the one picture everyone in the call sees.
    for client in (clerk, interpreter, kiosk):
        refused = await ack_of(client, "document_camera:view", view)
        assert refused["error"]["code"] == "forbidden", refused
    not_his = await ack_of(other_expert, "document_camera:view", view)
    assert (not_his["error"]["code"], not_his["error"]["reason"]) == ("forbidden", "not_your_call")
    assert (await ack_of(expert, "call:end", {"call_id": call_id}))["ok"]
    ended = await ack_of(expert, "document_camera:view", view)
    assert (ended["error"]["code"], ended["error"]["reason"]) == ("conflict", "call_ended")
    await asyncio.sleep(0.2)
    assert pushed == []


async def test_region_reaches_the_office_endpoint_and_garbage_changes_nothing(
    live_service: LiveService,
) -> None:
    live = live_service
    kiosk_sio, expert_sio, call_id = await start_call(live)
    agent_sio = await live.connect_kiosk()  # the agent logs in with the kiosk's credential
    camera = CallPeer(agent_sio, call_id, {"document": VideoStreamTrack()}, 15.0)
    pushed = pushes_to(agent_sio)
    try:
        joined = await camera.join(device="document_camera")
        assert joined["ok"], joined

        ack = await ack_of(expert_sio, "document_camera:view",
                           {"call_id": call_id, "region": REGION})
        assert ack == {"ok": True, "region": REGION}
        await eventually(lambda: len(pushed) == 1)
        assert pushed[0] == {"call_id": call_id, "region": REGION}
        # Integers are numbers too: the whole page, and the edge exactly.
        edge = {"x": 0, "y": 0.75, "w": 1, "h": 0.25}
        assert (await ack_of(expert_sio, "document_camera:view",
                             {"call_id": call_id, "region": edge}))["ok"]
        await eventually(lambda: len(pushed) == 2)
        assert pushed[1]["region"] == edge

        for garbage in GARBAGE:
            bad = await ack_of(expert_sio, "document_camera:view",
                               {"call_id": call_id, "region": garbage})
            assert bad["ok"] is False and bad["error"]["code"] == "invalid", (garbage, bad)
        for payload in ({"call_id": call_id}, {"region": REGION},
                        {"call_id": str(call_id), "region": REGION},
                        {"call_id": call_id, "region": None, "extra": 1}, [call_id]):
            bad = await ack_of(expert_sio, "document_camera:view", payload)
            assert bad["ok"] is False and bad["error"]["code"] == "invalid", (payload, bad)
        message = (await ack_of(expert_sio, "document_camera:view", {
            "call_id": call_id, "region": GARBAGE[0]}))["error"]["message"]
        assert "within the page" in message, message

        # Zoomed out: the whole page again.
        assert (await ack_of(expert_sio, "document_camera:view",
                             {"call_id": call_id, "region": None}))["ok"]
        await eventually(lambda: len(pushed) == 3)
        await asyncio.sleep(0.2)
        assert pushed[2] == {"call_id": call_id, "region": None}
        assert len(pushed) == 3  # none of the garbage got through
    finally:
        await camera.close()
        await kiosk_sio.disconnect()
        await expert_sio.disconnect()
