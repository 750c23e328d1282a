"""The clerk's preview of the document camera (signaling/in_call/call_preview.py), with the real
relay
and real aiortc peers over UDP on 127.0.0.1: he is sent the camera's `document` source only
(never a face or a voice), he is not a participant of the call, and nobody else may preview."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from aiortc.mediastreams import VideoStreamTrack
from sqlalchemy import select

from media_relay.aiortc_client import RelayPeerClient
from signaling.store.flow_models import CallParticipant
from tests.signaling.call_support import CallPeer, eventually, face, start_call
from tests.support.service import LiveService

ACK_TIMEOUT = 15.0


async def ack(client: socketio.AsyncClient, event: str, data: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await client.call(event, data, timeout=ACK_TIMEOUT)
    return answer


async def relay_room(live: LiveService, call_id: int) -> dict[str, Any]:
    stats = await live.services.relay.stats()
    return dict(stats["rooms"].get(f"call-{call_id}", {"participants": {}})["participants"])


class Preview:
    """The clerk's page, as its socket.io events and one receive-only peer connection."""

    def __init__(self, sio: socketio.AsyncClient, call_id: int) -> None:
        self.sio = sio
        self.call_id = call_id
        self.client = RelayPeerClient({}, ice_servers=[], host_addresses=["127.0.0.1"])
        sio.on("call:offer", self._on_offer)

    async def _on_offer(self, data: dict[str, Any]) -> None:
        if data["call_id"] == self.call_id:
            sdp = await self.client.handle_offer(data["offer"])
            await ack(self.sio, "call:preview_answer", {"call_id": self.call_id, "sdp": sdp})

    async def start(self) -> dict[str, Any]:
        if self.client.pc.signalingState == "closed":  # a page opens a fresh connection
            self.client = RelayPeerClient({}, ice_servers=[], host_addresses=["127.0.0.1"])
        started = await ack(self.sio, "call:preview", {"call_id": self.call_id})
        assert started["ok"], started
        sdp = await self.client.handle_offer(started["offer"])
        answered = await ack(self.sio, "call:preview_answer", {"call_id": self.call_id, "sdp": sdp})
        assert answered["ok"], answered
        return started

    def sources(self) -> set[tuple[str, str]]:
        return {(str(m.get("participant_id")), str(m.get("source")))
                for _t, m in self.client.remote_tracks}


async def test_the_clerk_sees_the_document_camera_and_nothing_else(
    live_service: LiveService,
) -> None:
    live = live_service
    kiosk_sio, expert_sio, call_id = await start_call(live, ack_timeout=ACK_TIMEOUT)
    kiosk = CallPeer(kiosk_sio, call_id, face(), ACK_TIMEOUT)
    expert = CallPeer(expert_sio, call_id, face(), ACK_TIMEOUT)
    agent_sio = await live.connect_kiosk()
    camera = CallPeer(agent_sio, call_id, {"document": VideoStreamTrack()}, ACK_TIMEOUT)
    clerk_sio = await live.connect_user("sihteeri")
    preview = Preview(clerk_sio, call_id)
    try:
        await kiosk.join()
        await expert.join()
        # Before the camera joins: nothing to see, and nothing else is sent to him.
        started = await preview.start()
        pid = started["participant_id"]
        assert started["offer"]["tracks"] == [], started["offer"]["tracks"]
        doccam = (await camera.join(device="document_camera"))["participant_id"]
        # The camera joins: the relay offers him its picture by itself.
        await eventually(lambda: (doccam, "document") in preview.sources(), 15)
        published = await ack(expert_sio, "call:publish", {"call_id": call_id, "source": "screen"})
        assert published["ok"], published
        kela = f"user-{live.demo.user_ids['kela']}"
        await eventually(lambda: (kela, "screen") in kiosk.remote_sources(), 15)
        await asyncio.sleep(0.3)
        assert preview.sources() == {(doccam, "document")}
        room = await relay_room(live, call_id)
        assert {(s["from_participant_id"], s["source"]) for s in room[pid]["forwarded"]} == {
            (doccam, "document")
        }
        assert room[pid]["published"] == {} or not room[pid]["published"]
        # Not a participant: no row, not in the pushed participant list.
        async with live.services.sessions() as session:
            rows = (await session.scalars(
                select(CallParticipant.participant_id).where(CallParticipant.call_id == call_id)
            )).all()
        assert pid not in rows
        synced = await ack(kiosk_sio, "flow:sync", {})
        assert pid not in {p["participant_id"] for p in synced["call"]["participants"]}

        # Stopping it leaves the relay room; the call goes on.
        assert (await ack(clerk_sio, "call:preview_stop", {"call_id": call_id}))["ok"]
        assert pid not in await relay_room(live, call_id)
        # A closed socket leaves too.
        await preview.start()
        assert pid in await relay_room(live, call_id)
        await clerk_sio.disconnect()
        for _ in range(100):
            if pid not in await relay_room(live, call_id):
                break
            await asyncio.sleep(0.05)
        assert pid not in await relay_room(live, call_id)
    finally:
        for peer in (camera, kiosk, expert):
            await peer.close()
        await preview.client.close()


async def test_only_a_clerk_of_the_office_previews_an_active_call(
    live_service: LiveService,
) -> None:
    live = live_service
    kiosk_sio, expert_sio, call_id = await start_call(live, ack_timeout=ACK_TIMEOUT)
    # The expert and the kiosk are refused by role; an unknown call is not found.
    for sio in (expert_sio, kiosk_sio):
        refused = await ack(sio, "call:preview", {"call_id": call_id})
        assert not refused["ok"] and refused["error"]["code"] == "forbidden", refused
    clerk = await live.connect_user("sihteeri")
    missing = await ack(clerk, "call:preview", {"call_id": call_id + 1000})
    assert not missing["ok"] and missing["error"]["code"] == "not_found", missing
    # Garbage is refused with a clear error, and changes nothing.
    for bad in ({}, {"call_id": "x"}, {"call_id": -1}):
        answer = await ack(clerk, "call:preview", bad)
        assert not answer["ok"] and answer["error"]["code"] == "invalid", answer
    answer = await ack(clerk, "call:preview_answer", {"call_id": call_id, "sdp": "v=0"})
    assert not answer["ok"] and answer["error"]["reason"] == "not_joined", answer
    # Ended: no preview.
    assert (await ack(expert_sio, "call:end", {"call_id": call_id}))["ok"]
    ended = await ack(clerk, "call:preview", {"call_id": call_id})
    assert not ended["ok"] and ended["error"]["reason"] == "call_ended", ended
