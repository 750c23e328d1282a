"""`document_camera:take_still` refusals at socket level (the still itself arriving through the
real endpoint agent is tests/endpoint/test_agent_signaling.py)."""

from __future__ import annotations

from typing import Any

from tests.support.service import LiveService


async def ack_of(client: Any, event: str, data: dict[str, Any]) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call(event, data, timeout=10)
    return ack


async def test_take_still_needs_a_document_camera_and_an_active_call(
    live_service: LiveService,
) -> None:
    kiosk = await live_service.connect_kiosk()
    expert = await live_service.connect_user("kela")
    clerk = await live_service.connect_user("sihteeri")
    await ack_of(kiosk, "flow:sync", {})
    assert (await ack_of(kiosk, "ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
    taken = await ack_of(expert, "queue:take_next", {})
    call_id = int(taken["call"]["id"])
    stills: list[dict[str, Any]] = []
    kiosk.on("document_camera:still", lambda data: stills.append(data))

    missing = await ack_of(expert, "document_camera:take_still", {"call_id": call_id + 99})
    assert missing["error"]["code"] == "not_found"
    bad = await ack_of(expert, "document_camera:take_still", {"call_id": call_id, "format": "gif"})
    assert bad["error"]["code"] == "invalid"
    # No document camera has joined the call: nothing to ask.
    for client in (expert, clerk):
        none = await ack_of(client, "document_camera:take_still", {"call_id": call_id})
        assert none["ok"] is False
        assert (none["error"]["code"], none["error"]["reason"]) == (
            "conflict",
            "no_document_camera",
        )
    assert (await ack_of(expert, "call:end", {"call_id": call_id}))["ok"]
    ended = await ack_of(expert, "document_camera:take_still", {"call_id": call_id})
    assert (ended["error"]["code"], ended["error"]["reason"]) == ("conflict", "call_ended")
    assert stills == []
