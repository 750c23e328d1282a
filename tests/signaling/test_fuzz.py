"""Garbage events never crash the server: each gets one well-formed ack.

Hypothesis runs in a worker thread and sends every example through real socket.io clients on
the test's event loop (`run_coroutine_threadsafe`), so shrinking works against the live server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.transport.protocol import REGISTRY, ErrorCode
from signaling.transport.socket_server import RESERVED_EVENT_NAMES
from tests.signaling.raw_socketio import RawSocketIO
from tests.support.service import make_live_service

T = TypeVar("T")
CODES = {str(code) for code in ErrorCode}
MINE = ["session:whoami", "session:ping", "presence:set", "presence:get"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
# A key no schema declares: with extra="forbid" the payload is refused before any handler.
poisoned = st.dictionaries(st.text(max_size=10), json_values, max_size=4).map(
    lambda d: {**d, "\x00fuzz": 1}
)


def check_ack(ack: Any) -> None:
    assert isinstance(ack, dict), ack
    if ack["ok"] is True:
        return
    assert ack["ok"] is False
    assert set(ack) == {"ok", "error"}
    assert set(ack["error"]) == {"code", "message"}
    assert ack["error"]["code"] in CODES
    assert ack["error"]["code"] != "internal", ack
    assert isinstance(ack["error"]["message"], str) and ack["error"]["message"]


async def test_garbage_events_get_clean_acks(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, rate_limit_events=100_000) as live:
        kiosk = await live.connect_kiosk()
        expert = await live.connect_user("kela")
        loop = asyncio.get_running_loop()

        def run(coro: Callable[[], Awaitable[T]]) -> T:
            async def wrapped() -> T:
                return await asyncio.wait_for(coro(), 10)

            return asyncio.run_coroutine_threadsafe(wrapped(), loop).result(20)

        common = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

        @common
        @given(
            event=st.sampled_from(MINE) | st.text(min_size=1, max_size=30),
            payload=json_values,
            as_kiosk=st.booleans(),
        )
        def my_events_and_unknown_names(event: str, payload: Any, as_kiosk: bool) -> None:
            client = kiosk if as_kiosk else expert
            check_ack(run(lambda: client.call(event, payload)))

        @common
        @given(event=st.sampled_from(sorted(REGISTRY.events)), payload=poisoned | json_values)
        def every_event_refuses_malformed_payloads(event: str, payload: Any) -> None:
            if payload is None or (isinstance(payload, dict) and "\x00fuzz" not in payload):
                # No payload means `{}`, valid for some events: keep every example invalid so
                # that it stays before the handlers.
                payload = [payload]
            for client in (kiosk, expert):
                ack = run(lambda c=client: c.call(event, payload))
                check_ack(ack)
                assert ack["ok"] is False

        raw = await RawSocketIO.connect(live.base_url, live.kiosk_auth)
        dispatcher = live.services.extras["dispatcher"]
        raw_bucket = dispatcher.buckets[raw.sid]

        @common
        @given(
            event=st.sampled_from(sorted(RESERVED_EVENT_NAMES))
            | json_values.filter(lambda e: not (isinstance(e, str) and e in REGISTRY.events)),
            payloads=st.lists(json_values, max_size=3),
        )
        def reserved_and_non_string_names(event: Any, payloads: list[Any]) -> None:
            # python-socketio's client refuses to send these; an attacker's client does not.
            ack = run(lambda: raw.emit_raw([event, *payloads]))
            check_ack(ack)
            assert ack["error"]["code"] == "unknown_event"
            assert dispatcher.buckets[raw.sid] is raw_bucket  # no connect handler ran

        await asyncio.to_thread(my_events_and_unknown_names)
        await asyncio.to_thread(every_event_refuses_malformed_payloads)
        await asyncio.to_thread(reserved_and_non_string_names)
        # Still serving.
        assert (await kiosk.call("session:ping", {"seq": 7}))["seq"] == 7
        assert kiosk.connected and expert.connected
        assert raw.connected
        assert (await raw.emit_raw(["session:ping", {"seq": 8}]))["seq"] == 8
        await raw.close()


RAW_FRAMES = [
    "42",
    '42["session:ping"',
    "42[]",
    "42[123,{}]",
    '42[["nested"],{}]',
    '42[{"a":1}]',
    "42[null]",
    '42999999999999999999999["session:ping",{}]',
    '42-1["session:ping",{}]',
    '421["session:ping",' + "[" * 5000 + "]" * 5000 + "]",
    "4" + "x" * 100,
    "9",
    "",
    "\x00\xff",
    '43["ack for nothing"]',
    "41",
    '451-["session:ping",{"_placeholder":true,"num":0}]',
]


async def test_malformed_wire_frames_never_crash_the_server(tmp_path: Path) -> None:
    import aiohttp

    from signaling.cli.bench import WireClient

    async with make_live_service(tmp_path) as live, aiohttp.ClientSession() as http:
        bystander = await live.connect_kiosk()
        for frame in RAW_FRAMES:
            client = WireClient(http)
            await client.connect(live.base_url, live.kiosk_auth)
            await client.ws.send_str(frame)
            await asyncio.sleep(0.05)
            # Whatever happened to that socket, the server still serves everyone else.
            assert (await bystander.call("session:ping", {"seq": 1}))["seq"] == 1
            await client.close()
        binary = WireClient(http)
        await binary.connect(live.base_url, live.kiosk_auth)
        await binary.ws.send_bytes(b"\x04\x00\xff" * 100)
        await asyncio.sleep(0.05)
        await binary.close()
        # A well-behaved wire client is still answered.
        fresh = WireClient(http)
        await fresh.connect(live.base_url, live.kiosk_auth)
        ack = await fresh.call("session:ping", {"seq": 5}, 10)
        assert ack["ok"] is True and ack["seq"] == 5
        await fresh.close()
