"""Real aiortc peers talking to a real LocalRelay over UDP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import fractions
import gc
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

# Imported now, not lazily by its plugin at the end of the session: CPython 3.11.7 can raise
# "SystemError: AST constructor recursion depth mismatch" when the garbage collector runs
# finalizers (aiortc peers) while pytest's assertion rewriter compiles a module.
import hypothesis  # noqa: F401
import numpy as np
import pytest
import pytest_asyncio
from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame

from media_relay.aiortc_client import RelayPeerClient
from media_relay.control import LocalRelay, RelayConfig

VIDEO_CLOCK = fractions.Fraction(1, 90000)


class PatternTrack(MediaStreamTrack):
    """A small moving test pattern, `fps` frames a second (encoded by aiortc: keep it small)."""

    kind = "video"

    def __init__(self, fps: int = 15, width: int = 160, height: int = 120) -> None:
        super().__init__()
        self.fps = fps
        self.width = width
        self.height = height
        self.count = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        self.count += 1
        await asyncio.sleep(max(0.0, self._start + self.count / self.fps - time.monotonic()))
        image = np.zeros((self.height, self.width, 3), np.uint8)
        image[:, (self.count * 4) % self.width :] = (40, 160, 220)
        frame = VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self.count * (90000 // self.fps)
        frame.time_base = VIDEO_CLOCK
        return frame


class ToneTrack(MediaStreamTrack):
    """20 ms frames of a sine tone (loud) or silence: aiortc writes RFC 6464 levels for them."""

    kind = "audio"

    def __init__(self, loud: bool = True) -> None:
        super().__init__()
        self.loud = loud
        self.samples = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self.samples / 48000 - time.monotonic()))
        n = 960
        t = (np.arange(n) + self.samples) / 48000
        amplitude = 12000 if self.loud else 0
        pcm = (amplitude * np.sin(2 * math.pi * 440 * t)).astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, 48000)
        self.samples += n
        return frame


class Peer:
    """An aiortc participant that counts decoded frames per (participant, source)."""

    def __init__(self, relay: LocalRelay, room: str, name: str, tracks: dict[str, Any]) -> None:
        self.relay = relay
        self.room = room
        self.name = name
        self.frames: dict[tuple[str, str], int] = {}
        self.first_frame_at: dict[tuple[str, str], float] = {}
        self.client = RelayPeerClient(
            tracks, ice_servers=[], host_addresses=["127.0.0.1"], on_track=self._on_track
        )
        self._tasks: list[asyncio.Task[None]] = []

    def _on_track(self, track: MediaStreamTrack, meta: dict[str, Any]) -> None:
        self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except Exception:
                return
            meta = self.client.meta(track)
            key = (str(meta.get("participant_id")), str(meta.get("source")))
            self.frames[key] = self.frames.get(key, 0) + 1
            self.first_frame_at.setdefault(key, time.monotonic())

    async def join(self, publish: list[str]) -> None:
        offer = await self.relay.join(self.room, self.name, publish)
        await self.relay.answer(self.room, self.name, await self.client.handle_offer(offer))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()


class Bridge:
    """The relay's listener in tests: pushes renegotiation offers to the peers."""

    def __init__(self, relay: LocalRelay) -> None:
        self.relay = relay
        self.peers: dict[str, Peer] = {}
        self.gone: list[tuple[str, str, str]] = []
        self.speakers: list[tuple[str, str]] = []
        self.offers = 0

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        self.offers += 1
        peer = self.peers.get(participant_id)
        if peer is not None:
            sdp = await peer.client.handle_offer(offer)
            await self.relay.answer(room_id, participant_id, sdp)

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        self.gone.append((room_id, participant_id, reason))

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        self.speakers.append((room_id, participant_id))

    def peer(self, room: str, name: str, tracks: dict[str, Any] | None = None) -> Peer:
        peer = Peer(self.relay, room, name, tracks or {})
        self.peers[name] = peer
        return peer

    async def close(self) -> None:
        for peer in self.peers.values():
            await peer.close()


def loopback_config(**overrides: Any) -> RelayConfig:
    return RelayConfig(listen_address="127.0.0.1", announced_addresses=["127.0.0.1"], **overrides)


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[LocalRelay]:
    instance = LocalRelay(loopback_config())
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()
        gc.collect()


@pytest_asyncio.fixture
async def bridge(relay: LocalRelay) -> AsyncIterator[Bridge]:
    instance = Bridge(relay)
    relay.set_listener(instance)
    try:
        yield instance
    finally:
        await instance.close()


async def wait_for(predicate: Callable[[], bool], seconds: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


@pytest.fixture(params=["C", "Python"])
def fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once on the C fast path and once on its pure-Python twin."""
    from media_relay import aiortc_hooks, fastpath, fastpath_py, forwarding

    if request.param == "C":
        if not fastpath.NATIVE:
            pytest.fail("the C fast path is not built: run scripts/setup (needs a C compiler)")
        return "C"
    monkeypatch.setattr(forwarding, "Output", fastpath_py.Output)
    monkeypatch.setattr(forwarding, "fanout", fastpath_py.fanout)
    monkeypatch.setattr(forwarding, "Route", fastpath_py.Route)
    monkeypatch.setattr(aiortc_hooks, "Receiver", fastpath_py.Receiver)
    monkeypatch.setattr(aiortc_hooks, "Link", fastpath_py.Link)
    monkeypatch.setattr(aiortc_hooks, "unprotect", fastpath_py.unprotect)
    return "Python"
