"""Participants forcing relay-only ICE reach the media relay (SFU) through a real coturn."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiortc import MediaStreamTrack

from media_relay.aiortc_client import RelayPeerClient
from media_relay.control import LocalRelay, RelayConfig
from signaling.config import Settings
from tests.support.net import LOOPBACK
from tests.turn_config.conftest import NEW_SECRET, OLD_SECRET
from tests.turn_config.coturn_server import Coturn
from tests.turn_config.media import (
    ColourTrack,
    looks_like_fill,
    sdp_candidate_types,
    selected_local_candidate_types,
)
from turn_config.credentials import ice_servers_for

pytestmark = pytest.mark.timeout(90)
ROOM = "turn-room"


class Participants:
    """The relay's listener: forwards renegotiation offers to relay-only aiortc clients."""

    def __init__(self, relay: LocalRelay) -> None:
        self.relay = relay
        self.clients: dict[str, RelayPeerClient] = {}

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        client = self.clients.get(participant_id)
        if client is not None:
            sdp = await client.handle_offer(offer)
            await self.relay.answer(room_id, participant_id, sdp)

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        return None

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        return None


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[LocalRelay]:
    instance = LocalRelay(RelayConfig(listen_address=LOOPBACK, announced_addresses=[LOOPBACK]))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


def turn_settings(coturn: Coturn, transport: str) -> Settings:
    """What a deployment behind a firewall configures: TURN only, rotating secrets."""
    return Settings(
        turn_urls=[coturn.urls()[transport]],
        turn_secrets=[NEW_SECRET, OLD_SECRET],
        turn_credential_ttl=300,
    )


async def test_aiortc_participants_reach_the_relay_only_through_coturn(
    coturn: Coturn, relay: LocalRelay
) -> None:
    participants = Participants(relay)
    relay.set_listener(participants)
    settings = turn_settings(coturn, "UDP")
    received: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()

    def client(name: str, tracks: dict[str, MediaStreamTrack]) -> RelayPeerClient:
        instance = RelayPeerClient(
            tracks,
            # Exactly what the signaling service hands out on call:join.
            ice_servers=ice_servers_for(settings, f"{name}:{ROOM}"),
            ice_transport_policy="relay",
            on_track=lambda track, meta: (
                received.put_nowait(track) if meta.get("participant_id") == "kiosk" else None
            ),
        )
        participants.clients[name] = instance
        return instance

    kiosk = client("kiosk", {"camera": ColourTrack()})
    expert = client("expert", {})
    relay_candidates: dict[str, list[str]] = {}
    try:
        for name, publish in (("kiosk", ["camera"]), ("expert", [])):
            offer = await relay.join(ROOM, name, publish)
            relay_candidates[name] = _host_candidates(offer["sdp"])
            answer = await participants.clients[name].handle_offer(offer)
            assert sdp_candidate_types(answer) == {"relay"}
            await relay.answer(ROOM, name, answer)

        track = await asyncio.wait_for(received.get(), 30)
        frames = [await asyncio.wait_for(track.recv(), 30) for _ in range(5)]
        assert all(looks_like_fill(frame) for frame in frames)  # type: ignore[arg-type]
        for peer in (kiosk, expert):
            assert selected_local_candidate_types(peer.pc) == {"relay"}
        stats = await relay.stats()
        camera = stats["rooms"][ROOM]["participants"]["kiosk"]["published"]["camera"]
        assert camera["packets"] > 0
    finally:
        await kiosk.close()
        await expert.close()

    # coturn carried it: both allocations bound channels to the relay's own host candidate.
    log = coturn.log()
    for user in ("kiosk_turn-room", "expert_turn-room"):
        assert re.search(
            r"user <\d+:" + user + r">: incoming packet CHANNEL_BIND processed, success", log
        ), user
    for name, addresses in relay_candidates.items():
        assert any(f"peer {address} lifetime updated" in log for address in addresses), name
    assert await coturn.peer_packets_sent("kiosk_turn-room") > 5


def _host_candidates(sdp: str) -> list[str]:
    return [
        f"{parts[4]}:{parts[5]}"
        for parts in (line.split() for line in sdp.splitlines())
        if parts and parts[0].startswith("a=candidate:") and "host" in parts
    ]
