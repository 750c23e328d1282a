"""Every event passes rate limit, size limit, name, role and schema checks before its handler."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from signaling.directory.principals import Role
from signaling.server.dispatch import TokenBucket, dispatcher_of, payload_size
from signaling.store.models import User
from signaling.transport.protocol import (
    REGISTRY,
    EventContext,
    EventModel,
    EventRegistry,
    EventSpec,
)
from tests.support.service import LiveService, make_live_service


def refusal(ack: dict[str, Any], code: str) -> str:
    assert ack["ok"] is False, ack
    assert ack["error"]["code"] == code, ack
    message: str = ack["error"]["message"]
    assert message
    return message


async def presence_status(live: LiveService, username: str) -> str:
    from sqlalchemy import select

    async with live.services.sessions() as session:
        status: str = (
            await session.execute(select(User.presence).where(User.username == username))
        ).scalar_one()
        return status


async def test_kiosk_cannot_send_an_experts_event(live_service: LiveService) -> None:
    kiosk = await live_service.connect_kiosk()
    ack = await kiosk.call("presence:set", {"status": "busy"})
    assert "endpoint" in refusal(ack, "forbidden")
    clerk = await live_service.connect_user("sihteeri")
    refusal(await clerk.call("presence:set", {"status": "busy"}), "forbidden")
    refusal(await kiosk.call("presence:get", {}), "forbidden")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({}, "status: Field required"),
        ({"status": "busy", "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"status": 5}, "status: Input should be"),
        ({"status": "sleeping"}, "status: Input should be"),
        ({"status": ["busy"]}, "status: Input should be"),
        ({"status": None}, "status: Input should be"),
        ("busy", "the payload must be an object"),
        (["busy"], "the payload must be an object"),
        (17, "the payload must be an object"),
    ],
)
async def test_invalid_payloads_are_refused_and_change_nothing(
    live_service: LiveService, payload: Any, fragment: str
) -> None:
    expert = await live_service.connect_user("kela")
    before = await presence_status(live_service, "kela")
    message = refusal(await expert.call("presence:set", payload), "invalid")
    assert fragment in message
    assert await presence_status(live_service, "kela") == before
    # A valid event still works afterwards.
    assert (await expert.call("presence:set", {"status": "away"}))["ok"] is True
    assert await presence_status(live_service, "kela") == "away"


async def test_several_arguments_are_invalid(live_service: LiveService) -> None:
    expert = await live_service.connect_user("kela")
    ack = await expert.call("presence:set", ({"status": "busy"}, {"status": "away"}))
    assert "one payload" in refusal(ack, "invalid")


async def test_unknown_event(live_service: LiveService) -> None:
    kiosk = await live_service.connect_kiosk()
    assert "no:such" in refusal(await kiosk.call("no:such", {}), "unknown_event")
    refusal(await kiosk.call("x" * 5000, {}), "unknown_event")


async def test_oversized_message_is_refused_and_others_are_unaffected(
    live_service: LiveService,
) -> None:
    limit = live_service.settings.max_message_bytes
    expert = await live_service.connect_user("kela")
    other = await live_service.connect_kiosk()
    ack = await expert.call("presence:set", {"status": "busy", "padding": "x" * (limit + 10)})
    assert str(limit) in refusal(ack, "too_large")
    assert await presence_status(live_service, "kela") != "busy"
    # Still connected and served.
    assert (await expert.call("session:ping", {"seq": 1}))["seq"] == 1
    # Far over the limit: engine.io drops the socket before decoding anything.
    disconnected = asyncio.Event()
    expert.on("disconnect", lambda *args: disconnected.set())
    await expert.emit("presence:set", {"status": "busy", "padding": "x" * (4 * limit)})
    await asyncio.wait_for(disconnected.wait(), 10)
    assert await presence_status(live_service, "kela") != "busy"
    assert (await other.call("session:ping", {"seq": 2}))["seq"] == 2


async def test_flood_is_rate_limited_per_socket(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, rate_limit_events=20, rate_limit_window=1000.0) as live:
        flooder = await live.connect_user("kela")
        bystander = await live.connect_kiosk()
        acks = await asyncio.gather(*(flooder.call("session:ping", {"seq": i}) for i in range(60)))
        codes = [a["ok"] if a["ok"] else a["error"]["code"] for a in acks]
        assert codes.count(True) == 20
        assert codes.count("rate_limited") == 40
        # The flood changed nothing for the flooder's state ...
        refusal(await flooder.call("presence:set", {"status": "busy"}), "rate_limited")
        assert await presence_status(live, "kela") != "busy"
        # ... and another client is served as usual.
        for i in range(10):
            assert (await bystander.call("session:ping", {"seq": i}))["ok"] is True


def test_token_bucket_refills() -> None:
    bucket = TokenBucket(3, 0.05)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    bucket.last -= 0.05  # as if one window had passed
    assert bucket.take()


def test_payload_size_counts_and_stops_early() -> None:
    assert payload_size({"a": "x" * 100}, 10_000) > 100
    assert payload_size([b"\0" * 500], 10_000) >= 500
    deep: Any = []
    for _ in range(10_000):
        deep = [deep]
    assert payload_size(deep, 100) > 100


async def test_handler_failure_is_internal_and_logged(
    live_service: LiveService, caplog: pytest.LogCaptureFixture
) -> None:
    class Empty(EventModel):
        pass

    async def explode(_ctx: EventContext, _payload: Empty) -> dict[str, Any]:
        raise RuntimeError("boom")

    async def wrong_type(_ctx: EventContext, _payload: Empty) -> Any:
        return ["not", "a", "dict"]

    # A registry private to this test, so no other test sees these events.
    dispatcher = dispatcher_of(live_service.services)
    dispatcher.registry = EventRegistry(dict(REGISTRY.events))
    for name, handler in (("test:explode", explode), ("test:wrong", wrong_type)):
        dispatcher.registry.add(EventSpec(name, Empty, frozenset(Role), handler))
        live_service.services.sio.on(name, dispatcher._bound(name))
    kiosk = await live_service.connect_kiosk()
    assert refusal(await kiosk.call("test:explode", {}), "internal") == (
        "internal error; it has been logged"
    )
    refusal(await kiosk.call("test:wrong", {}), "internal")
    assert "boom" in caplog.text
    assert (await kiosk.call("session:ping", {}))["ok"] is True


async def test_acks_and_metrics(live_service: LiveService) -> None:
    import aiohttp

    kiosk = await live_service.connect_kiosk()
    ack = await kiosk.call("session:whoami", {})
    assert ack["ok"] is True and ack["principal"]["role"] == "endpoint"
    await kiosk.call("nope", {})
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{live_service.base_url}/metrics") as response,
    ):
        text = await response.text()
    assert 'etapalvelu_events_total{event="session:whoami",result="ok"} 1.0' in text
    assert 'etapalvelu_events_total{event="(unknown)",result="unknown_event"} 1.0' in text
    assert "etapalvelu_sockets 1.0" in text


async def test_sockets_join_their_rooms(live_service: LiveService) -> None:
    expert = await live_service.connect_user("kela")
    kiosk = await live_service.connect_kiosk()
    services = live_service.services
    got: dict[str, list[Any]] = {"expert": [], "kiosk": []}
    expert.on("hello", lambda data: got["expert"].append(data))
    kiosk.on("hello", lambda data: got["kiosk"].append(data))
    from signaling.transport import rooms

    kela_id = next(iter((await expert.call("session:whoami", {}))["principal"]["authority_ids"]))
    await services.sio.emit("hello", 1, room=rooms.authority(kela_id))
    await services.sio.emit("hello", 2, room=rooms.office(live_service.demo.office_id))
    await services.sio.emit("hello", 3, room=rooms.language("fin"))
    await services.sio.emit("hello", 4, room=rooms.endpoint(live_service.demo.endpoint_id))
    await services.sio.emit("hello", 5, room=rooms.user(live_service.demo.user_ids["kela"]))
    for _ in range(500):
        if len(got["expert"]) == 3 and len(got["kiosk"]) == 2:
            break
        await asyncio.sleep(0.02)
    assert got == {"expert": [1, 3, 5], "kiosk": [2, 4]}


async def test_client_disconnect_is_tolerated_mid_event(live_service: LiveService) -> None:
    expert = await live_service.connect_user("kela")
    await expert.emit("presence:set", {"status": "away"})
    await expert.disconnect()
    kiosk = await live_service.connect_kiosk()
    assert (await kiosk.call("session:ping", {}))["ok"] is True
