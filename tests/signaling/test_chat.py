"""`chat:send` at the socket level (signaling/in_call/chat.py): the server relays a sealed message
to
the call's people as it came, with the sender it knows; it refuses garbage, outsiders and
devices, and changes nothing when it refuses; `chat:history` (a page of the chat for a new
key) goes to the one person it is sealed to, and garbage, oversized pages, pages for several
people, for oneself, for someone without a key in the call or from outside it are refused.
The sealing itself runs in the browsers (tests/expert_console/test_chat.py). The office's
clerk keeps his chat keys while any console of his is connected, to whichever signaling process
(two servers sharing a database and Redis)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from pathlib import Path
from typing import Any

import socketio
from sqlalchemy import select

from endpoint.document_channel import DocumentChannel
from signaling.store.flow_models import DocumentCallKey
from tests.signaling.document_support import DocumentCall, document_call, start_call
from tests.signaling.test_presence_lease import (
    drop_channel_keys,
    redis_client,  # noqa: F401 (fixture)
    shared_settings,
)
from tests.support.service import LiveService, make_live_service

__all__ = ["document_call"]

ACK_TIMEOUT = 10.0


def b64u(n: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(n)).rstrip(b"=").decode()


def envelope(recipient: str) -> dict[str, Any]:
    return {"v": 1, "suite": 1, "id": b64u(16), "iv": b64u(12), "ct": b64u(64),
            "keys": {recipient: b64u(60)}}


async def ack(
    client: socketio.AsyncClient, data: Any, event: str = "chat:send"
) -> dict[str, Any]:
    answer: dict[str, Any] = await client.call(event, data, timeout=ACK_TIMEOUT)
    return answer


def history_page(recipient: str, ct_chars: int = 40_000) -> dict[str, Any]:
    """A history page's envelope: sealed to one person, its body up to 44,000 characters."""
    return {"v": 1, "suite": 1, "id": b64u(16), "iv": b64u(12), "ct": "A" * ct_chars,
            "keys": {recipient: b64u(60)}}


async def test_a_sealed_message_is_relayed_and_garbage_refused(
    document_call: DocumentCall,
) -> None:
    call = document_call
    base = call.live.base_url
    kiosk = DocumentChannel(call.kiosk, base, call.call_id)
    expert = DocumentChannel(call.expert, base, call.call_id)
    await kiosk.start()
    await expert.start()
    got: list[dict[str, Any]] = []
    call.expert.on("chat:message", lambda data: got.append(data))
    echoed: list[dict[str, Any]] = []
    call.kiosk.on("chat:message", lambda data: echoed.append(data))
    try:
        sealed = envelope(expert.participant_id)
        answer = await ack(call.kiosk, {"call_id": call.call_id, "envelope": sealed})
        assert answer["ok"] and answer["id"] == sealed["id"], answer
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got == [{"call_id": call.call_id, "sender": kiosk.participant_id,
                        "envelope": sealed}]
        assert echoed == []  # not back to the sender's own socket

        bad_cases: list[Any] = [
            {"call_id": call.call_id},
            {"call_id": call.call_id, "envelope": {**sealed, "v": 2}},
            {"call_id": call.call_id, "envelope": {**sealed, "ct": "x" * 20_000}},
            {"call_id": call.call_id, "envelope": {**sealed, "ct": "not base64!"}},
            {"call_id": call.call_id, "envelope": {**sealed, "keys": {}}},
            {"call_id": call.call_id, "envelope": {**sealed, "keys": {"a b": b64u(60)}}},
            {"call_id": call.call_id, "envelope": {**sealed, "keys": {
                f"user-{i}": b64u(60) for i in range(9)}}},
            {"call_id": call.call_id, "envelope": {**sealed, "extra": 1}},
            {"call_id": "x", "envelope": sealed},
            "garbage",
        ]
        for bad in bad_cases:
            answer = await ack(call.kiosk, bad)
            assert not answer["ok"] and answer["error"]["code"] == "invalid", (bad, answer)
        # Sealed to himself: refused.
        answer = await ack(call.kiosk, {"call_id": call.call_id,
                                        "envelope": envelope(kiosk.participant_id)})
        assert answer["error"]["reason"] == "bad_recipient", answer
        # Someone outside the call, and a call that does not exist.
        outsider = await call.live.connect_user("tulkki")
        answer = await ack(outsider, {"call_id": call.call_id, "envelope": sealed})
        assert not answer["ok"] and answer["error"]["code"] in ("forbidden", "not_found"), answer
        answer = await ack(call.kiosk, {"call_id": call.call_id + 999, "envelope": sealed})
        assert not answer["ok"] and answer["error"]["code"] == "not_found", answer
        await asyncio.sleep(0.2)
        assert len(got) == 1  # nothing of the refused ones went anywhere

        # History for a new key: to the one person it is sealed to, with the sender the
        # server knows, and to nobody else.
        history: list[dict[str, Any]] = []
        call.expert.on("chat:history", lambda data: history.append(data))
        kiosk_history: list[dict[str, Any]] = []
        call.kiosk.on("chat:history", lambda data: kiosk_history.append(data))
        page = history_page(expert.participant_id)
        answer = await ack(call.kiosk, {"call_id": call.call_id, "envelope": page},
                           "chat:history")
        assert answer["ok"] and answer["id"] == page["id"], answer
        for _ in range(100):
            if history:
                break
            await asyncio.sleep(0.02)
        assert history == [{"call_id": call.call_id, "sender": kiosk.participant_id,
                            "envelope": page}]
        # Bad pages: each refused with a clear error, and nothing relayed.
        to_expert = {expert.participant_id: b64u(60)}
        bad_pages: list[tuple[Any, str, str | None]] = [
            ({"call_id": call.call_id}, "invalid", None),
            ({"call_id": call.call_id, "envelope": {**page, "ct": "A" * 44_001}},
             "invalid", None),  # oversized
            ({"call_id": call.call_id, "envelope": {**page, "ct": "not base64!"}},
             "invalid", None),
            ({"call_id": call.call_id, "envelope": {**page, "v": 2}}, "invalid", None),
            ({"call_id": call.call_id, "envelope": {**page, "id": "short"}}, "invalid", None),
            ({"call_id": call.call_id, "envelope": {**page, "keys": {}}}, "invalid", None),
            ({"call_id": call.call_id, "envelope": {**page, "keys": {
                **to_expert, kiosk.participant_id: b64u(60)}}}, "invalid", None),
            ({"call_id": call.call_id, "envelope": {**page, "keys": {
                expert.participant_id: b64u(59)}}}, "invalid", None),
            ({"call_id": call.call_id, "envelope": {**page, "extra": 1}}, "invalid", None),
            ({"call_id": call.call_id, "envelope": page, "to": "user-1"}, "invalid", None),
            ({"call_id": call.call_id, "envelope": [page]}, "invalid", None),
            ("garbage", "invalid", None),
            ({"call_id": call.call_id, "envelope": {**page, "keys": {"a b": b64u(60)}}},
             "invalid", "bad_recipient"),
            ({"call_id": call.call_id, "envelope": history_page(kiosk.participant_id)},
             "invalid", "bad_recipient"),  # to himself
            ({"call_id": call.call_id, "envelope": history_page("user-999999")},
             "invalid", "bad_recipient"),  # no key in this call
            ({"call_id": call.call_id + 999, "envelope": page}, "not_found", None),
        ]
        for bad, code, reason in bad_pages:
            answer = await ack(call.kiosk, bad, "chat:history")
            assert not answer["ok"] and answer["error"]["code"] == code, (bad, answer)
            if reason:
                assert answer["error"]["reason"] == reason, (bad, answer)
            assert answer["error"]["message"], answer
        # Too large for one event at all: refused before it is even parsed.
        answer = await ack(call.kiosk, {"call_id": call.call_id, "envelope": history_page(
            expert.participant_id, 70_000)}, "chat:history")
        assert not answer["ok"] and answer["error"]["code"] in ("too_large", "invalid"), answer
        answer = await ack(outsider, {"call_id": call.call_id, "envelope": page},
                           "chat:history")
        assert not answer["ok"] and answer["error"]["code"] in ("forbidden", "not_found"), answer
        await asyncio.sleep(0.2)
        assert len(history) == 1 and kiosk_history == []
        assert len(got) == 1  # and no history page went out as a message
    finally:
        await kiosk.close()
        await expert.close()


async def _clerk_keys(live: LiveService, call_id: int) -> list[str]:
    """The sids recorded with the clerk's keys in the call ("" once that socket went)."""
    async with live.services.sessions() as session:
        found = await session.scalars(
            select(DocumentCallKey.sid).where(
                DocumentCallKey.call_id == call_id, DocumentCallKey.role == "clerk"
            )
        )
        return list(found)


async def test_the_clerks_keys_stay_while_a_console_of_his_is_on_another_process(
    tmp_path: Path,
    redis_client: Any,  # noqa: F811
) -> None:
    shared = shared_settings(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}", relay_mode="local")
    try:
        async with (
            make_live_service(tmp_path / "a", **shared) as a,
            make_live_service(tmp_path / "b", **shared) as b,
        ):
            call = await start_call(a)
            expert = DocumentChannel(call.expert, a.base_url, call.call_id)
            await expert.start()
            # His chat opened on A (keys published from that socket); another console on B.
            here = await a.connect_user("sihteeri")
            clerk = DocumentChannel(here, a.base_url, call.call_id)
            await clerk.start()
            await expert.wait_for_peer(clerk.participant_id)
            there = await b.connect_user("sihteeri")
            assert (await there.call("flow:sync", {}, timeout=ACK_TIMEOUT))["ok"]

            # The console on A goes: the documents' hook clears the key's socket, and the
            # chat's hook (which runs after it) keeps the keys, since B holds a socket of his.
            await here.disconnect()
            for _ in range(250):
                if await _clerk_keys(a, call.call_id) == ["", ""]:
                    break
                await asyncio.sleep(0.02)
            assert await _clerk_keys(a, call.call_id) == ["", ""]
            await asyncio.sleep(0.3)
            assert await _clerk_keys(a, call.call_id) == ["", ""]
            assert clerk.participant_id in expert.peers

            # His last console goes (on B): now the keys go, and the expert is told.
            await there.disconnect()
            for _ in range(250):
                if clerk.participant_id not in expert.peers:
                    break
                await asyncio.sleep(0.02)
            assert clerk.participant_id not in expert.peers
            assert await _clerk_keys(a, call.call_id) == []
    finally:
        await drop_channel_keys(redis_client, shared["redis_channel"])
