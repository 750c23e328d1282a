"""The endpoint agent end to end: it logs in as the office's kiosk, waits for the office's
call, joins it as the document camera and the expert receives the document track."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import pytest_asyncio
from aiortc import MediaStreamTrack

from document_camera.rate_control import RatePolicy
from document_camera.sources import SyntheticSource
from endpoint.agent import AgentOptions, EndpointAgent
from media_relay.aiortc_client import RelayPeerClient
from tests.support.service import LiveService, make_live_service

SIZE = (544, 768)


@pytest_asyncio.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveService]:
    """The whole service; create_app constructs and starts its relay."""
    async with make_live_service(tmp_path) as service:
        assert service.services.relay is not None
        yield service


async def _ack(client: Any, event: str, data: dict[str, Any]) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call(event, data, timeout=10)
    assert ack["ok"], (event, ack)
    return ack


async def _eventually(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_agent_joins_the_office_call_and_the_expert_sees_the_document(
    live: LiveService,
) -> None:
    options = AgentOptions(
        server=live.base_url, endpoint_id=live.demo.endpoint_id,
        credential=live.demo.endpoint_credential, host_addresses=["127.0.0.1"], size=SIZE,
        policy=RatePolicy(max_fps=10.0, bits_per_frame=100_000))
    agent = EndpointAgent(options, SyntheticSource(frame_size=(960, 540), seed=6))
    await agent.start()
    expert_pc: RelayPeerClient | None = None
    try:
        # No call yet: the agent waits.
        await asyncio.sleep(0.3)
        assert agent.call_id is None

        kiosk = await live.connect_kiosk()
        expert = await live.connect_user("kela")
        await _ack(kiosk, "flow:sync", {})
        await _ack(expert, "flow:sync", {})
        await _ack(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
        call_id = int((await _ack(expert, "queue:take_next", {}))["call"]["id"])

        await asyncio.wait_for(agent.joined.wait(), 15)
        assert agent.call_id == call_id
        assert agent.participant_id == f"doccam-{live.demo.endpoint_id}"

        document: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

        def on_track(track: MediaStreamTrack, meta: dict[str, Any]) -> None:
            if (meta.get("source"), meta.get("participant_id")) == (
                    "document", agent.participant_id) and not document.done():
                document.set_result(track)

        expert_pc = RelayPeerClient({}, ice_servers=[], host_addresses=["127.0.0.1"],
                                    on_track=on_track)

        async def on_offer(data: dict[str, Any]) -> None:
            assert expert_pc is not None
            sdp = await expert_pc.handle_offer(data["offer"])
            await expert.call("call:answer", {"call_id": data["call_id"], "sdp": sdp})

        expert.on("call:offer", on_offer)
        joined = await _ack(expert, "call:join", {"call_id": call_id})
        sdp = await expert_pc.handle_offer(joined["offer"])
        await _ack(expert, "call:answer", {"call_id": call_id, "sdp": sdp})

        track = await asyncio.wait_for(document, 20)
        for _ in range(3):
            frame = await asyncio.wait_for(track.recv(), 20)
            assert (frame.width, frame.height) == SIZE

        # What the agent does after a reconnect: sync and join again. The relay replaces the
        # session; the expert's document stream goes on.
        first_publisher = agent.publisher
        await agent._sync()
        assert agent.publisher is not None and agent.publisher is not first_publisher
        assert agent.call_id == call_id
        for _ in range(3):
            frame = await asyncio.wait_for(track.recv(), 20)
            assert (frame.width, frame.height) == SIZE
        await _eventually(lambda: agent.publisher is not None
                          and agent.publisher.encoder.frames_encoded > 0)

        # A still on the expert's command (`document_camera:take_still` → the agent's push
        # `document_camera:still`): full resolution, rectified, end-to-end encrypted to him.
        from endpoint.document_channel import DocumentChannel

        kiosk_refusal = await kiosk.call(
            "document_camera:take_still", {"call_id": call_id}, timeout=10)
        assert kiosk_refusal["ok"] is False
        assert kiosk_refusal["error"]["code"] == "forbidden"
        interpreter = await live.connect_user("tulkki")
        interpreter_refusal = await interpreter.call(
            "document_camera:take_still", {"call_id": call_id}, timeout=10)
        assert interpreter_refusal["ok"] is False
        assert interpreter_refusal["error"]["code"] == "forbidden"
        other_expert = await live.connect_user("rakennus")
        not_his = await other_expert.call(
            "document_camera:take_still", {"call_id": call_id}, timeout=10)
        assert not_his["ok"] is False and not_his["error"]["reason"] == "not_your_call"

        expert_docs = DocumentChannel(expert, live.base_url, call_id)
        try:
            await expert_docs.start()
            asked = await _ack(expert, "document_camera:take_still", {"call_id": call_id})
            assert asked["document_cameras"] == [agent.participant_id]
            received = await asyncio.wait_for(expert_docs.receive(), 30)
            # The office's clerk may ask too.
            clerk = await live.connect_user("sihteeri")
            await _ack(clerk, "document_camera:take_still",
                       {"call_id": call_id, "format": "jpeg"})
            from_clerk = await asyncio.wait_for(expert_docs.receive(), 30)
        finally:
            await expert_docs.close()
        assert received.verified
        assert received.metadata.type == "image/png"
        assert received.sender.participant_id == agent.participant_id
        image = cv2.imdecode(np.frombuffer(received.content, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        # The camera's own resolution of the page (~475 px high at 540p), not the track's.
        assert image.shape[0] != SIZE[1] and image.shape[0] > 300
        assert from_clerk.verified and from_clerk.metadata.type == "image/jpeg"
        assert from_clerk.sender.participant_id == agent.participant_id

        # The expert ends the call: the agent lets go of it and waits for the next one.
        await _ack(expert, "call:end", {"call_id": call_id})
        await _eventually(lambda: agent.call_id is None and agent.publisher is None)
    finally:
        if expert_pc is not None:
            await expert_pc.close()
        await agent.stop()
