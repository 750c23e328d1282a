"""5 % packet loss on one subscriber's link: the relay answers its NACKs from the cache.

The lossy link is a UDP proxy between the relay and that subscriber (both directions pass
through it, so ICE sees a consistent path); it drops 5 % of the RTP going to the subscriber.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import pytest

from media_relay.control import LocalRelay
from tests.media_relay.conftest import Bridge, PatternTrack, wait_for

pytestmark = pytest.mark.timeout(60)

CANDIDATE = re.compile(r"(a=candidate:\S+ 1 udp \d+ )(127\.0\.0\.1) (\d+)( typ host)")


class LossyProxy:
    """relay <-> [relay_side | client_side] <-> client, losing `loss` of RTP to the client."""

    def __init__(self, loss: float, seed: int = 5) -> None:
        self.loss = loss
        self.random = random.Random(seed)
        self.relay_addr: tuple[str, int] | None = None
        self.client_addr: tuple[str, int] | None = None
        self.dropped = 0
        self.forwarded = 0
        self.relay_side: asyncio.DatagramTransport | None = None
        self.client_side: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        proxy = self

        class FromRelay(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                proxy.relay_addr = addr
                is_rtp = len(data) > 12 and 127 < data[0] < 192 and not 192 <= data[1] <= 223
                if is_rtp and proxy.random.random() < proxy.loss:
                    proxy.dropped += 1
                    return
                if proxy.client_addr is not None and proxy.client_side is not None:
                    proxy.forwarded += 1
                    proxy.client_side.sendto(data, proxy.client_addr)

        class FromClient(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                proxy.client_addr = addr
                if proxy.relay_addr is not None and proxy.relay_side is not None:
                    proxy.relay_side.sendto(data, proxy.relay_addr)

        self.relay_side, _ = await loop.create_datagram_endpoint(
            FromRelay, local_addr=("127.0.0.1", 0)
        )
        self.client_side, _ = await loop.create_datagram_endpoint(
            FromClient, local_addr=("127.0.0.1", 0)
        )

    def port(self, side: asyncio.DatagramTransport | None) -> int:
        assert side is not None
        return int(side.get_extra_info("sockname")[1])

    def close(self) -> None:
        for side in (self.relay_side, self.client_side):
            if side is not None:
                side.close()


def rewrite_candidates(sdp: str, port: int) -> tuple[str, tuple[str, int]]:
    """Point the (single) host candidate at the proxy; return the original address."""
    match = CANDIDATE.search(sdp)
    assert match is not None, sdp
    original = (match.group(2), int(match.group(3)))
    return CANDIDATE.sub(lambda m: f"{m.group(1)}127.0.0.1 {port}{m.group(4)}", sdp), original


async def test_nack_recovers_five_percent_loss(relay: LocalRelay, bridge: Bridge) -> None:
    camera = PatternTrack(fps=20, width=320, height=240)
    publisher = bridge.peer("loss", "kiosk", {"camera": camera})
    await publisher.join(["camera"])
    clean = bridge.peer("loss", "clean")
    await clean.join([])

    proxy = LossyProxy(loss=0.05)
    await proxy.start()
    try:
        lossy = bridge.peer("loss", "lossy")
        offer: dict[str, Any] = await relay.join("loss", "lossy", [])
        # the client sees the relay at the proxy's client side...
        offer_sdp, relay_addr = rewrite_candidates(offer["sdp"], proxy.port(proxy.client_side))
        proxy.relay_addr = relay_addr
        answer = await lossy.client.handle_offer({**offer, "sdp": offer_sdp})
        # ...and the relay sees the client at the proxy's relay side
        answer_sdp, client_addr = rewrite_candidates(answer, proxy.port(proxy.relay_side))
        proxy.client_addr = client_addr
        await relay.answer("loss", "lossy", answer_sdp)

        assert await wait_for(lambda: lossy.frames.get(("kiosk", "camera"), 0) >= 5, 15)
        start_clean = clean.frames[("kiosk", "camera")]
        start_lossy = lossy.frames[("kiosk", "camera")]
        await asyncio.sleep(6)
        got_clean = clean.frames[("kiosk", "camera")] - start_clean
        got_lossy = lossy.frames[("kiosk", "camera")] - start_lossy

        stats = await relay.stats()
        stream = stats["rooms"]["loss"]["participants"]["lossy"]["forwarded"][0]
        assert proxy.dropped >= 5, proxy.dropped
        assert stream["nacks"] > 0, stream
        assert stream["retransmitted"] >= proxy.dropped * 0.5, (stream, proxy.dropped)
        # decoding keeps pace with the loss-free subscriber
        assert got_lossy >= 0.85 * got_clean, (got_lossy, got_clean)
        assert got_clean > 40
    finally:
        proxy.close()
