"""`chat:send` at the socket level (signaling/chat.py): the server relays a sealed message to
the call's people as it came, with the sender it knows; it refuses garbage, outsiders and
devices, and changes nothing when it refuses. The sealing itself runs in the browsers
(tests/expert_console/test_chat.py)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from typing import Any

import socketio

from endpoint.document_channel import DocumentChannel
from tests.signaling.document_support import DocumentCall, document_call

__all__ = ["document_call"]

ACK_TIMEOUT = 10.0


def b64u(n: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(n)).rstrip(b"=").decode()


def envelope(recipient: str) -> dict[str, Any]:
    return {"v": 1, "suite": 1, "id": b64u(16), "iv": b64u(12), "ct": b64u(64),
            "keys": {recipient: b64u(60)}}


async def ack(client: socketio.AsyncClient, data: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await client.call("chat:send", data, timeout=ACK_TIMEOUT)
    return answer


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
    finally:
        await kiosk.close()
        await expert.close()
