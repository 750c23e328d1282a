"""The clerk's call keys and the chat transcript at the socket level (signaling/in_call/chat.py,
issue 18): the office's clerk publishes keys attested with role "clerk" (only for an active
call of his own office), is no recipient of documents, and his keys go when he leaves the chat
or his socket goes; `chat:transcript` refuses garbage, strangers and a filed record, and the
hash it stores goes into the record's draft. The browsers' side:
tests/expert_console/test_chat_clerk_transcript.py."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from sqlalchemy import select

from endpoint.document_channel import DocumentChannel
from signaling.directory import directory
from signaling.store.kiosk_health_models import ChatTranscript
from signaling.store.models import User
from tests.signaling.document_support import DocumentCall, document_call

__all__ = ["document_call"]

ACK = 10.0


async def key_roles(channel: DocumentChannel) -> dict[str, str]:
    return {pid: next(iter(keys.values())).role for pid, keys in channel.peers.items()}


async def eventually(check: Any, within: float = 5.0) -> None:
    for _ in range(int(within / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never came true")


async def offer_pdf(socket: Any, call_id: int, recipient: str) -> dict[str, Any]:
    """The server's answer to `documents:offer` of a small PDF to `recipient`."""
    answer: dict[str, Any] = await socket.call(
        "documents:offer",
        {
            "call_id": call_id,
            "recipients": [recipient],
            "suite": 1,
            "ciphertext_bytes": 1000,
            "sha256": "0" * 64,
            "size": 10,
            "type": "application/pdf",
        },
        timeout=ACK,
    )
    return answer


async def test_clerk_keys_and_the_transcript(document_call: DocumentCall) -> None:
    call = document_call
    live = call.live
    base = live.base_url
    kiosk = DocumentChannel(call.kiosk, base, call.call_id)
    expert = DocumentChannel(call.expert, base, call.call_id)
    await kiosk.start()
    await expert.start()

    # A clerk of another office may not; the office's own clerk may, with role "clerk".
    async with live.services.sessions() as session:
        other = await directory.create_office(
            session, directory.OfficeCreate(name="Muu piste", municipality="Espoo")
        )
        await session.flush()
        await directory.create_user(
            session,
            directory.UserCreate(
                username="muusihteeri",
                display_name="Muu Sihteeri",
                role="clerk",
                password="x" * 16,
                office_id=other.id,
            ),
            password_hash="x",
        )
        await session.commit()
    stranger = await live.connect_user("muusihteeri")
    refused = await stranger.call(
        "documents:key",
        {"call_id": call.call_id, "keys": [{"suite": 1, "public_key": "A" * 43}]},
        timeout=ACK,
    )
    assert not refused["ok"] and refused["error"]["reason"] == "other_office", refused
    for event in ("chat:send", "documents:offer"):
        answer = await stranger.call(event, {"call_id": call.call_id}, timeout=ACK)
        assert not answer["ok"], answer

    clerk_socket = await live.connect_user("sihteeri")
    clerk = DocumentChannel(clerk_socket, base, call.call_id)
    await clerk.start()
    async with live.services.sessions() as session:
        clerk_id = (await session.scalars(select(User.id).where(User.username == "sihteeri"))).one()
    assert clerk.participant_id == f"user-{clerk_id}"
    await eventually(lambda: _has(expert, clerk.participant_id))
    assert (await key_roles(expert))[clerk.participant_id] == "clerk"
    # Documents are not for him: the server refuses a document addressed to the clerk, and a
    # clerk cannot offer one.
    offered = await offer_pdf(call.expert, call.call_id, clerk.participant_id)
    assert not offered["ok"] and offered["error"]["reason"] == "chat_only", offered
    offered = await offer_pdf(clerk_socket, call.call_id, kiosk.participant_id)
    assert not offered["ok"] and offered["error"]["code"] == "forbidden", offered

    # chat:leave withdraws his keys; the others are told.
    assert (await clerk_socket.call("chat:leave", {"call_id": call.call_id}, timeout=ACK))["ok"]
    await eventually(lambda: _gone(expert, clerk.participant_id))
    # Back in, then his socket goes: the keys go too.
    clerk2 = DocumentChannel(clerk_socket, base, call.call_id)
    await clerk2.start()
    await eventually(lambda: _has(kiosk, clerk.participant_id))
    await clerk_socket.disconnect()
    await eventually(lambda: _gone(kiosk, clerk.participant_id))

    # The transcript: the expert of the call only, well-formed, until the record is filed.
    transcript = b'{"call_id":1,"messages":[],"type":"etapalvelu.chat_transcript","v":1}'
    good = {
        "call_id": call.call_id,
        "sha256": hashlib.sha256(transcript).hexdigest(),
        "size": len(transcript),
        "messages": 2,
    }
    bad_cases: list[Any] = [
        "garbage",
        {},
        {**good, "sha256": "ABC"},
        {**good, "sha256": "g" * 64},
        {**good, "size": 0},
        {**good, "messages": 0},
        {**good, "messages": 10**7},
        {**good, "text": "hei"},
        {**good, "call_id": -1},
    ]
    for bad in bad_cases:
        answer = await call.expert.call("chat:transcript", bad, timeout=ACK)
        assert not answer["ok"] and answer["error"]["code"] == "invalid", (bad, answer)
    for socket in (call.kiosk, await live.connect_user("sihteeri")):
        answer = await socket.call("chat:transcript", good, timeout=ACK)
        assert not answer["ok"] and answer["error"]["code"] == "forbidden", answer
    answer = await call.expert.call(
        "chat:transcript", {**good, "call_id": call.call_id + 99}, timeout=ACK
    )
    assert not answer["ok"] and answer["error"]["code"] == "not_found", answer
    async with live.services.sessions() as session:
        assert (await session.scalars(select(ChatTranscript))).all() == []

    answer = await call.expert.call("chat:transcript", good, timeout=ACK)
    assert answer["ok"] and answer["transcript"] == {
        "sha256": good["sha256"],
        "size": good["size"],
        "messages": 2,
    }, answer
    # A newer transcript replaces it (one per call).
    newer = {**good, "messages": 3, "sha256": "1" * 64}
    assert (await call.expert.call("chat:transcript", newer, timeout=ACK))["ok"]
    ended = await call.expert.call("call:end", {"call_id": call.call_id}, timeout=ACK)
    assert ended["ok"], ended
    draft = await call.expert.call(
        "record:draft",
        {
            "call_id": call.call_id,
            "service_type": "benefit_application",
            "outcome": "resolved",
        },
        timeout=ACK,
    )
    if not draft["ok"]:  # the demo's first Kela service type, whatever its code
        from signaling.flow.flow_common import service_types_for

        code = service_types_for("kela")[0].code
        draft = await call.expert.call(
            "record:draft",
            {"call_id": call.call_id, "service_type": code, "outcome": "resolved"},
            timeout=ACK,
        )
    assert draft["ok"], draft
    assert draft["body"]["chat_transcript"] == {
        "sha256": "1" * 64,
        "size": good["size"],
        "messages": 3,
    }


async def _has(channel: DocumentChannel, pid: str) -> bool:
    return pid in channel.peers


async def _gone(channel: DocumentChannel, pid: str) -> bool:
    return pid not in channel.peers
