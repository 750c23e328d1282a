"""Findings of the outside review on sockets, performed against the running service.

- 2: clients emitting `connect` / `disconnect` (and every other reserved name) ran the server's
  own lifecycle handlers;
- 7: a logout left the socket connected with a working session;
- 11: no limit on sockets per person or per kiosk.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import delete

from signaling.directory.identity import sha256_hex
from signaling.store.models import UserSession
from signaling.transport.socket_server import RESERVED_EVENT_NAMES
from tests.signaling.raw_socketio import RawSocketIO
from tests.support.service import LiveService, connect_refusal, make_live_service


async def wait_for(condition: object, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


def _state(live: LiveService, sid: str) -> tuple[object, int, float]:
    """What a replayed connect/disconnect handler would change for this socket."""
    dispatcher = live.services.extras["dispatcher"]
    principal = live.services.connections.principal(sid)
    assert principal is not None
    return (
        dispatcher.buckets[sid],  # a replayed connect would put a fresh bucket here
        len(live.services.connections.sids_of(principal.kind, principal.id)),
        live.services.metrics.sockets._value.get(),
    )


@pytest.mark.parametrize("name", sorted(RESERVED_EVENT_NAMES))
async def test_reserved_event_names_run_no_handler(live_service: LiveService, name: str) -> None:
    token = await live_service.issue_token("kela")
    client = await RawSocketIO.connect(live_service.base_url, {"token": token})
    try:
        before = _state(live_service, client.sid)
        for payload in ([name], [name, {"token": token}], [name, "x", {}]):
            ack = await client.emit_raw(payload)
            assert ack["ok"] is False
            assert ack["error"]["code"] == "unknown_event"
            assert "reserved" in ack["error"]["message"]
        assert client.connected
        assert _state(live_service, client.sid) == before
        # the socket still works normally
        assert (await client.emit_raw(["session:ping", {}]))["ok"] is True
    finally:
        await client.close()


async def test_non_string_and_unknown_names_are_refused(live_service: LiveService) -> None:
    client = await RawSocketIO.connect(live_service.base_url, live_service.kiosk_auth)
    try:
        before = _state(live_service, client.sid)
        for payload in ([5, {}], [None], [{"a": 1}], [["connect"]], ["nosuch:event", {}]):
            ack = await client.emit_raw(payload)
            assert ack["error"]["code"] == "unknown_event", (payload, ack)
        assert _state(live_service, client.sid) == before
        assert client.connected
    finally:
        await client.close()


async def test_replayed_connect_does_not_refill_the_rate_limit(tmp_path: Path) -> None:
    # The review's attack: 1,000 events accepted in 0.3 s by sending `connect` between them.
    async with make_live_service(tmp_path, rate_limit_events=20, rate_limit_window=60) as live:
        token = await live.issue_token("kela")
        client = await RawSocketIO.connect(live.base_url, {"token": token})
        try:
            results = []
            for _ in range(40):
                await client.send_no_ack(["connect", {"token": token}])
                results.append(await client.emit_raw(["session:ping", {}]))
            accepted = sum(1 for ack in results if ack["ok"])
            # 20 events per minute in all, the `connect`s included: at most 10 pings pass.
            assert accepted <= 10
            assert results[-1]["error"]["code"] == "rate_limited"
        finally:
            await client.close()


async def test_replayed_disconnect_does_not_hide_a_disabled_account(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, revocation_check_seconds=0.2) as live:
        token = await live.issue_token("kela")
        client = await RawSocketIO.connect(live.base_url, {"token": token})
        try:
            # A replayed disconnect used to drop the socket from the server's map while it
            # stayed connected, so the revocation sweep no longer saw it.
            await client.emit_raw(["disconnect", "client namespace disconnect"])
            assert live.services.connections.principal(client.sid) is not None
            admin = await live.login("admin")
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http,
                http.post(
                    f"{live.base_url}/api/admin/users/{live.demo.user_ids['kela']}/disable"
                ) as response,
            ):
                assert response.status == 200
            await asyncio.wait_for(client.closed.wait(), 10)
        finally:
            await client.close()


async def test_logout_disconnects_the_sessions_sockets(live_service: LiveService) -> None:
    token = await live_service.login("kela")
    other_token = await live_service.issue_token("kela")
    socket = await live_service.connect({"token": token})
    other = await live_service.connect({"token": other_token})  # another login of his
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.post(f"{live_service.base_url}/api/logout") as response,
    ):
        assert response.status == 200
        assert (await response.json())["disconnected"] == 1
    await wait_for(lambda: not socket.connected)
    refusal = await connect_refusal(live_service.base_url, {"token": token})
    assert refusal["data"]["code"] == "unauthenticated"
    # the same person's other session is untouched
    assert other.connected
    assert (await other.call("session:ping", {}, timeout=10))["ok"] is True


async def test_logout_in_another_process_reaches_this_one(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, revocation_check_seconds=0.2) as live:
        token = await live.issue_token("kela")
        socket = await live.connect({"token": token})
        # What another process's logout leaves behind: the session row is gone.
        async with live.services.sessions() as session:
            await session.execute(
                delete(UserSession).where(UserSession.token_hash == sha256_hex(token))
            )
            await session.commit()
        await wait_for(lambda: not socket.connected)


async def test_sockets_per_person_and_kiosk_are_limited(tmp_path: Path) -> None:
    async with make_live_service(
        tmp_path, max_sockets_per_user=3, max_sockets_per_endpoint=2
    ) as live:
        token = await live.issue_token("kela")
        people = [await live.connect({"token": token}) for _ in range(3)]
        refusal = await connect_refusal(live.base_url, {"token": token})
        assert refusal["data"]["code"] == "rate_limited"
        assert "3 connections" in refusal["message"]
        kiosks = [await live.connect_kiosk() for _ in range(2)]
        refusal = await connect_refusal(live.base_url, live.kiosk_auth)
        assert refusal["data"]["code"] == "rate_limited"
        # another person is not affected, and closing one socket makes room again
        await live.connect_user("rakennus")
        await people[0].disconnect()
        await wait_for(
            lambda: len(live.services.connections.sids_of("user", live.demo.user_ids["kela"]))
            == 2
        )
        again = await live.connect({"token": token})
        assert again.connected
        assert all(k.connected for k in kiosks)
