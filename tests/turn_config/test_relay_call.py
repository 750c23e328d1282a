"""Calls whose participants force relay-only ICE carry media through a real coturn."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)

from tests.turn_config.conftest import NEW_SECRET
from tests.turn_config.coturn_server import Coturn
from tests.turn_config.media import (
    ColourTrack,
    looks_like_fill,
    sdp_candidate_types,
    selected_local_candidate_types,
)
from turn_config.credentials import mint_credential

FRAMES = 5


def _relay_only(coturn: Coturn, transport: str, user: str) -> RTCConfiguration:
    credential = mint_credential(NEW_SECRET, user, 600)
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=[coturn.urls()[transport]],
                username=credential.username,
                credential=credential.password,
            )
        ],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )


async def _decoded_frames(track: MediaStreamTrack, count: int) -> list[object]:
    return [await track.recv() for _ in range(count)]


@pytest.mark.parametrize("transport", ["UDP", "TCP", "TLS"])
async def test_aiortc_call_relay_only_through_coturn(
    coturn: Coturn, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aioice opens TURN over TLS with Python's default context: trust the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(coturn.tls.ca))
    caller = RTCPeerConnection(_relay_only(coturn, transport, f"caller-{transport}"))
    callee = RTCPeerConnection(_relay_only(coturn, transport, f"callee-{transport}"))
    arrived: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    @callee.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        if not arrived.done():
            arrived.set_result(track)

    try:
        caller.addTrack(ColourTrack())
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)

        # Relay-only: nothing but relayed candidates is even offered.
        assert sdp_candidate_types(caller.localDescription.sdp) == {"relay"}
        assert sdp_candidate_types(callee.localDescription.sdp) == {"relay"}

        track = await asyncio.wait_for(arrived, 20)
        frames = await asyncio.wait_for(_decoded_frames(track, FRAMES), 30)
        assert all(looks_like_fill(frame) for frame in frames)  # type: ignore[arg-type]
        assert selected_local_candidate_types(caller) == {"relay"}
        assert selected_local_candidate_types(callee) == {"relay"}
        callee_sdp = callee.localDescription.sdp
    finally:
        await caller.close()
        await callee.close()

    # coturn itself carried the media: the caller's allocation is bound to the callee's
    # relayed address, and its session's peer counters (logged when it ends) are non-zero.
    log = coturn.log()
    assert f"peer {_relayed_address(callee_sdp)} lifetime updated" in log
    assert await coturn.peer_packets_sent(f"caller-{transport}") > FRAMES


def _relayed_address(sdp: str) -> str:
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and " typ relay" in line:
            parts = line.split()
            return f"{parts[4]}:{parts[5]}"
    raise AssertionError("no relayed candidate")
