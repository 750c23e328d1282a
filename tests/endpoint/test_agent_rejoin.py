"""The endpoint agent keeps the document camera in its call when the media path dies or the
socket drops: the whole service on loopback (signaling, the in-process relay, real UDP), the
agent publishing, the expert receiving the document track with an aiortc subscriber. Each test
breaks something for real and checks that the agent notices by itself, joins again, and that
the expert sees the page again, from the same document track (nothing reopened)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack

from document_camera.rate_control import RatePolicy
from document_camera.sources import SyntheticSource
from endpoint.agent import AgentOptions, EndpointAgent
from media_relay.aiortc_client import RelayPeerClient
from media_relay.control import LocalRelay, RelayConfig
from media_relay.participant import Participant
from tests.support.service import LiveService, make_live_service

SIZE = (544, 768)
pytestmark = pytest.mark.slow


@pytest_asyncio.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveService]:
    async with make_live_service(tmp_path) as service:
        assert service.services.relay is not None
        yield service


async def _ack(client: Any, event: str, data: dict[str, Any]) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call(event, data, timeout=10)
    assert ack["ok"], (event, ack)
    return ack


async def _eventually(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


class FrameLog:
    """Every frame the expert's subscriber decodes, with its arrival time (monotonic)."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.frames: list[tuple[float, tuple[int, int]]] = []
        self._task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame: Any = await track.recv()
                self.frames.append((time.monotonic(), (frame.width, frame.height)))

    def since(self, moment: float) -> list[tuple[float, tuple[int, int]]]:
        return [item for item in self.frames if item[0] > moment]

    async def wait_since(self, moment: float, count: int, within: float) -> float:
        """Waits for `count` frames after `moment`; returns the arrival of the first one."""
        await _eventually(lambda: len(self.since(moment)) >= count, within,
                          f"{count} document frames at the expert")
        frames = self.since(moment)
        assert {size for _, size in frames} == {SIZE}
        return frames[0][0]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@dataclass
class CallSetup:
    live: LiveService
    agent: EndpointAgent
    expert: Any
    expert_pc: RelayPeerClient
    call_id: int
    frames: FrameLog
    # the relay's join calls: (when, participant, accepted)
    joins: list[tuple[float, str, bool]] = field(default_factory=list)

    @property
    def relay(self) -> LocalRelay:
        relay = self.live.services.relay
        assert isinstance(relay, LocalRelay)
        return relay

    def room_id(self) -> str:
        pid = self.agent.participant_id
        return next(room_id for room_id, room in self.relay.rooms.items()
                    if pid in room.participants)

    def doccam(self) -> Participant:
        """The relay's side of the agent's current session."""
        return self.relay.rooms[self.room_id()].participants[str(self.agent.participant_id)]

    def doccam_joins(self, *, accepted: bool = False) -> list[float]:
        return [at for at, pid, ok in self.joins
                if pid == self.agent_pid and (ok or not accepted)]

    def rejoined(self, accepted_before: int, count: int = 1) -> bool:
        """The relay took `count` more joins of the agent, and its session is connected."""
        publisher = self.agent.publisher
        return (len(self.doccam_joins(accepted=True)) >= accepted_before + count
                and publisher is not None and self.agent.joined.is_set()
                and publisher.client.pc.connectionState == "connected")

    @property
    def agent_pid(self) -> str:
        return f"doccam-{self.live.demo.endpoint_id}"


@contextlib.asynccontextmanager
async def call_with_agent(live: LiveService) -> AsyncIterator[CallSetup]:
    """A Kela call with the office's agent publishing and the expert subscribed to the
    document track, frames flowing; every relay join is recorded (CallSetup.joins)."""
    relay = live.services.relay
    assert isinstance(relay, LocalRelay)
    joins: list[tuple[float, str, bool]] = []
    real_join = relay.join

    async def recording_join(room_id: str, participant_id: str, *args: Any,
                             **kwargs: Any) -> dict[str, Any]:
        joins.append((time.monotonic(), participant_id, True))
        return await real_join(room_id, participant_id, *args, **kwargs)

    relay.join = recording_join  # type: ignore[method-assign]
    options = AgentOptions(
        server=live.base_url, endpoint_id=live.demo.endpoint_id,
        credential=live.demo.endpoint_credential, host_addresses=["127.0.0.1"], size=SIZE,
        policy=RatePolicy(max_fps=10.0, bits_per_frame=100_000))
    agent = EndpointAgent(options, SyntheticSource(frame_size=(960, 540), seed=6))
    expert_pc: RelayPeerClient | None = None
    frames: FrameLog | None = None
    try:
        await agent.start()
        # its flow:sync (no call yet) done: it joins on the call:started push alone
        await _eventually(lambda: not agent._tasks, 10, "the agent's first sync")
        kiosk = await live.connect_kiosk()
        expert = await live.connect_user("kela")
        await _ack(kiosk, "flow:sync", {})
        await _ack(expert, "flow:sync", {})
        await _ack(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
        call_id = int((await _ack(expert, "queue:take_next", {}))["call"]["id"])
        await asyncio.wait_for(agent.joined.wait(), 15)
        assert len(joins) == 1  # the agent's

        document: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

        def on_track(track: MediaStreamTrack, meta: dict[str, Any]) -> None:
            if meta.get("source") == "document" and not document.done():
                document.set_result(track)

        expert_pc = RelayPeerClient({}, ice_servers=[], host_addresses=["127.0.0.1"],
                                    on_track=on_track)

        async def on_offer(data: dict[str, Any]) -> None:
            assert expert_pc is not None
            sdp = await expert_pc.handle_offer(data["offer"])
            await expert.call("call:answer", {"call_id": data["call_id"], "sdp": sdp})

        expert.on("call:offer", on_offer)
        joined = await _ack(expert, "call:join", {"call_id": call_id})
        await _ack(expert, "call:answer",
                   {"call_id": call_id, "sdp": await expert_pc.handle_offer(joined["offer"])})
        frames = FrameLog(await asyncio.wait_for(document, 20))
        setup = CallSetup(live, agent, expert, expert_pc, call_id, frames, joins)
        await frames.wait_since(0.0, 3, 20)
        yield setup
    finally:
        if frames is not None:
            await frames.close()
        if expert_pc is not None:
            await expert_pc.close()
        await agent.stop()
        relay.join = real_join  # type: ignore[method-assign]


async def test_relay_drops_the_session_the_agent_joins_again_with_backoff(
    live: LiveService,
) -> None:
    """The relay ends the agent's session without a word to it at the signaling level (its
    DTLS close reaches aiortc, which closes the connection): the agent joins again at once; the
    relay refuses twice, so it retries after 1 s and 2 s; the expert sees the page again, from
    the same document track, and a still still works. Then, media lost and the call ended at
    once: it lets go for good."""
    async with call_with_agent(live) as call:
        agent = call.agent
        assert agent.publisher is not None
        track = agent.publisher.track
        sent_before = track.status.frames_sent

        relay = call.relay
        recording_join = relay.join
        refusals = 2

        async def flaky_join(room_id: str, participant_id: str, *args: Any,
                             **kwargs: Any) -> dict[str, Any]:
            nonlocal refusals
            if participant_id == call.agent_pid and refusals > 0:
                refusals -= 1
                call.joins.append((time.monotonic(), participant_id, False))
                raise RuntimeError("relay busy (test)")
            return await recording_join(room_id, participant_id, *args, **kwargs)

        relay.join = flaky_join  # type: ignore[method-assign]
        joins_before = len(call.doccam_joins())
        accepted_before = len(call.doccam_joins(accepted=True))
        broken_at = time.monotonic()
        await relay.leave(call.room_id(), call.agent_pid)

        await _eventually(lambda: call.rejoined(accepted_before), 20, "the agent joined again")
        attempts = call.doccam_joins()[joins_before:]
        assert len(attempts) == 3, attempts
        assert attempts[0] - broken_at < 1.5  # noticed at once (the connection closed)
        assert attempts[1] - attempts[0] >= 0.9  # then 1 s
        assert attempts[2] - attempts[1] >= 1.9  # then 2 s
        first = await call.frames.wait_since(attempts[-1], 5, 20)
        print(f"relay dropped the session: expert sees the page again after "
              f"{first - broken_at:.2f} s (3 joins, 2 refused; "
              f"{first - attempts[-1]:.2f} s after the accepted one)")

        # The same document track (camera, pipeline, rate control) carried on.
        assert agent.publisher is not None and agent.publisher.track is track
        assert track.readyState == "live" and track.status.frames_sent > sent_before
        assert agent.rejoins == 1 and agent.media_failures == ["connection_closed"]

        # A still on the expert's command after the rejoin.
        from endpoint.document_channel import DocumentChannel

        expert_docs = DocumentChannel(call.expert, live.base_url, call.call_id)
        try:
            await expert_docs.start()
            asked = await _ack(call.expert, "document_camera:take_still",
                               {"call_id": call.call_id})
            assert asked["document_cameras"] == [agent.participant_id]
            received = await asyncio.wait_for(expert_docs.receive(), 30)
        finally:
            await expert_docs.close()
        assert received.verified and received.metadata.type == "image/png"
        assert received.sender.participant_id == agent.participant_id

        # Media lost and the call ended at the same moment: no rejoining an ended call.
        await relay.leave(call.room_id(), call.agent_pid)
        await _ack(call.expert, "call:end", {"call_id": call.call_id})
        await _eventually(lambda: agent.call_id is None and agent.publisher is None, 10,
                          "the agent let go of the ended call")
        joins_after_end = len(call.doccam_joins())
        await asyncio.sleep(2.5)
        assert len(call.doccam_joins()) == joins_after_end
        assert agent.call_id is None and agent._keeper is not None and agent._keeper.done()
        assert track.readyState == "ended"  # the call's track ends with the call


async def test_a_silent_media_path_is_noticed_and_the_agent_joins_again(
    live: LiveService,
) -> None:
    """The relay's end of the agent's path disappears without any DTLS close (its UDP socket
    closed: the agent's packets now meet a closed port, nothing comes back). aiortc would
    notice only when consent freshness gives up, ~30 s later; the agent's own watch (nothing
    from the relay for 2 s, then a 3 s grace) notices in ~5 s and joins again."""
    async with call_with_agent(live) as call:
        agent = call.agent
        old_publisher = agent.publisher
        assert old_publisher is not None
        track = old_publisher.track
        accepted_before = len(call.doccam_joins(accepted=True))

        doccam = call.doccam()
        assert doccam.link is not None
        broken_at = time.monotonic()
        doccam.link.close_socket()
        for protocol in list(doccam.link.connection._protocols):
            protocol.transport.close()

        await _eventually(lambda: call.rejoined(accepted_before), 15, "the agent joined again")
        rejoined_at = time.monotonic()
        first = await call.frames.wait_since(rejoined_at, 5, 20)
        print(f"silent path: rejoined after {rejoined_at - broken_at:.2f} s, expert sees the "
              f"page again after {first - broken_at:.2f} s")
        assert agent.publisher is not old_publisher and agent.publisher is not None
        assert agent.publisher.track is track and track.readyState == "live"
        # the agent's own watch noticed, not aiortc (which would have said "connection_closed")
        assert agent.media_failures == ["silence"]
        assert old_publisher.client.failure_reason == "silence"
        assert rejoined_at - broken_at < 10.0


async def test_socket_reconnects_rejoin_with_the_same_document_track(
    live: LiveService,
) -> None:
    """(1) The agent's TCP connection to the server is torn down under it while its media is
    fine: python-socketio reconnects, the agent syncs and joins again although its peer
    connection still looks connected, and keeps its document track. (2) The server closes
    the agent's socket.io connection itself: python-socketio would not reconnect; the agent
    does, and joins again."""
    async with call_with_agent(live) as call:
        agent = call.agent
        first_sid = agent.sio.get_sid()
        old_publisher = agent.publisher
        assert old_publisher is not None
        track = old_publisher.track

        # (1) a network-level break of the websocket (no socket.io or engine.io close)
        raw = agent.sio.eio.ws.get_extra_info("socket")
        accepted_before = len(call.doccam_joins(accepted=True))
        broken_at = time.monotonic()
        assert old_publisher.client.pc.connectionState == "connected"
        raw.shutdown(socket.SHUT_RDWR)
        await _eventually(lambda: call.rejoined(accepted_before), 20,
                          "rejoined after the reconnect")
        rejoined_at = time.monotonic()
        assert agent.sio.get_sid() != first_sid
        first = await call.frames.wait_since(rejoined_at, 3, 20)
        print(f"transport drop: rejoined after {rejoined_at - broken_at:.2f} s, frames after "
              f"{first - broken_at:.2f} s")
        assert agent.publisher is not old_publisher and agent.publisher is not None
        assert agent.publisher.track is track and track.readyState == "live"

        # (2) the server closes the socket
        second_sid = agent.sio.get_sid()
        accepted_before = len(call.doccam_joins(accepted=True))
        broken_at = time.monotonic()
        await live.services.sio.disconnect(second_sid)
        await _eventually(lambda: call.rejoined(accepted_before), 20,
                          "rejoined after a server disconnect")
        rejoined_at = time.monotonic()
        assert agent.sio.connected and agent.sio.get_sid() not in (first_sid, second_sid)
        first = await call.frames.wait_since(rejoined_at, 3, 20)
        print(f"server disconnect: rejoined after {rejoined_at - broken_at:.2f} s, frames "
              f"after {first - broken_at:.2f} s")
        assert agent.publisher.track is track and track.readyState == "live"
        assert agent.rejoins == 2 and agent.media_failures == []  # socket matters, not media


async def test_relay_peer_client_reports_a_silent_path() -> None:
    """RelayPeerClient alone against the relay: healthy while the relay's reports arrive,
    "disconnected" then failed (reason "silence") once they stop; on_failure is called once."""
    relay = LocalRelay(RelayConfig(listen_address="127.0.0.1",
                                   announced_addresses=["127.0.0.1"]))
    await relay.start()
    failures: list[tuple[float, str]] = []
    client = RelayPeerClient(
        {"document": VideoStreamTrack()}, ice_servers=[], host_addresses=["127.0.0.1"],
        on_failure=lambda reason: failures.append((time.monotonic(), reason)),
        silence_timeout=2.0, disconnected_grace=1.0)
    try:
        offer = await relay.join("r", "doccam-1", ["document"], subscribe=False)
        await relay.answer("r", "doccam-1", await client.handle_offer(offer))
        assert await client.wait_connected(10)
        await asyncio.sleep(4.0)  # relay receiver reports about once a second
        assert client.health == "connected" and failures == []

        participant = relay.rooms["r"].participants["doccam-1"]
        assert participant.link is not None
        broken_at = time.monotonic()
        participant.link.close_socket()
        for protocol in list(participant.link.connection._protocols):
            protocol.transport.close()
        await _eventually(lambda: client.health == "disconnected", 6, "disconnected")
        await _eventually(lambda: bool(failures), 6, "failed")
        assert [reason for _, reason in failures] == ["silence"]
        # 2 s of silence (counted from the relay's last report, ≤ ~1 s before the break)
        # and 1 s of grace, seen every 0.5 s
        assert 1.0 <= failures[0][0] - broken_at < 6.0
        assert client.health == "failed" and client.failure_reason == "silence"
        assert client.pc.connectionState == "connected"  # aiortc has not noticed
        await asyncio.sleep(0.6)
        assert len(failures) == 1
    finally:
        await client.close()
        await relay.stop()
