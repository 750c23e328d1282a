"""Socket-level call tests' shared pieces: a real aiortc participant of a call, a call started
between the demo kiosk and the Kela expert, and polling until a condition holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from media_relay.aiortc_client import RelayPeerClient
from tests.support.service import LiveService


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def face() -> dict[str, Any]:
    """A kiosk's or an expert's tracks: microphone and camera."""
    return {"audio": AudioStreamTrack(), "camera": VideoStreamTrack()}


class CallPeer:
    """A socket.io participant with its aiortc connection to the relay, answering every offer
    (the join's and every `call:offer` push; all of them are kept in `offers`)."""

    def __init__(
        self,
        sio: socketio.AsyncClient,
        call_id: int,
        tracks: dict[str, Any],
        ack_timeout: float = 10.0,
    ) -> None:
        self.sio = sio
        self.call_id = call_id
        self.ack_timeout = ack_timeout
        self.client = RelayPeerClient(tracks, ice_servers=[], host_addresses=["127.0.0.1"])
        self.offers: list[dict[str, Any]] = []
        self.answer_errors: list[dict[str, Any]] = []
        sio.on("call:offer", self._on_offer)

    async def _ack(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        ack: dict[str, Any] = await self.sio.call(event, data, timeout=self.ack_timeout)
        return ack

    async def _on_offer(self, data: dict[str, Any]) -> None:
        self.offers.append(data["offer"])
        sdp = await self.client.handle_offer(data["offer"])
        ack = await self._ack("call:answer", {"call_id": data["call_id"], "sdp": sdp})
        if not ack["ok"]:
            self.answer_errors.append(ack)

    async def join(self, **extra: Any) -> dict[str, Any]:
        ack = await self._ack("call:join", {"call_id": self.call_id, **extra})
        assert ack["ok"], ack
        self.offers.append(ack["offer"])
        sdp = await self.client.handle_offer(ack["offer"])
        answered = await self._ack("call:answer", {"call_id": self.call_id, "sdp": sdp})
        assert answered["ok"], answered
        return ack

    def remote_sources(self) -> set[tuple[str, str]]:
        return {
            (str(meta.get("participant_id", "")), str(meta.get("source", "")))
            for _track, meta in self.client.remote_tracks
        }

    async def close(self) -> None:
        await self.client.close()


async def start_call(
    live: LiveService, kiosk: socketio.AsyncClient | None = None, ack_timeout: float = 10.0
) -> tuple[socketio.AsyncClient, socketio.AsyncClient, int]:
    """The demo kiosk takes a Kela ticket and the Kela expert takes it: (kiosk, expert, call)."""
    kiosk = kiosk or await live.connect_kiosk()
    expert = await live.connect_user("kela")
    for client in (kiosk, expert):
        assert (await client.call("flow:sync", {}, timeout=ack_timeout))["ok"]
    taken = await kiosk.call(
        "ticket:take", {"authority": "kela", "language": "fin"}, timeout=ack_timeout
    )
    assert taken["ok"], taken
    took = await expert.call("queue:take_next", {}, timeout=ack_timeout)
    assert took["ok"], took
    return kiosk, expert, int(took["call"]["id"])


__all__ = ["CallPeer", "eventually", "face", "start_call"]
