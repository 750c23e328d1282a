"""A lossy UDP link between the relay and one aiortc peer, for the loss and RTX tests.

relay <-> [relay_side | client_side] <-> client: both directions pass through it, so ICE sees
a consistent path; it drops a share of the RTP going one way (and whatever a filter picks).
"""

from __future__ import annotations

import asyncio
import random
import re
import struct
from collections.abc import Callable
from typing import Any

from media_relay.control import LocalRelay
from tests.media_relay.conftest import Peer

CANDIDATE = re.compile(r"(a=candidate:\S+ 1 udp \d+ )(127\.0\.0\.1) (\d+)( typ host)")


def rewrite_candidates(sdp: str, port: int) -> tuple[str, tuple[str, int]]:
    """Point the (single) host candidate at the proxy; return the original address."""
    match = CANDIDATE.search(sdp)
    assert match is not None, sdp
    original = (match.group(2), int(match.group(3)))
    return CANDIDATE.sub(lambda m: f"{m.group(1)}127.0.0.1 {port}{m.group(4)}", sdp), original


class LossyLink:
    """relay <-> proxy <-> client; drops `loss` of the RTP going `towards` "client" or "relay".

    Records the clear-text header fields of what it dropped: {(ssrc, seq): timestamp}.
    """

    def __init__(self, loss: float, towards: str, seed: int = 11) -> None:
        self.loss = loss
        self.towards = towards
        self.random = random.Random(seed)
        self.relay_addr: tuple[str, int] | None = None
        self.client_addr: tuple[str, int] | None = None
        self.dropped: dict[tuple[int, int], int] = {}
        # more to lose, by content: called with each RTP packet going `towards`
        self.drop_filter: Callable[[bytes], bool] | None = None
        self.relay_side: asyncio.DatagramTransport | None = None
        self.client_side: asyncio.DatagramTransport | None = None

    def _lose(self, data: bytes) -> bool:
        is_rtp = len(data) > 12 and 127 < data[0] < 192 and not 192 <= data[1] <= 223
        if not is_rtp:
            return False
        chosen = self.drop_filter is not None and self.drop_filter(data)
        if not chosen and self.random.random() >= self.loss:
            return False
        _, _, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
        self.dropped[(ssrc, seq)] = ts
        return True

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        link = self

        class FromRelay(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                link.relay_addr = addr
                if link.towards == "client" and link._lose(data):
                    return
                if link.client_addr is not None and link.client_side is not None:
                    link.client_side.sendto(data, link.client_addr)

        class FromClient(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                link.client_addr = addr
                if link.towards == "relay" and link._lose(data):
                    return
                if link.relay_addr is not None and link.relay_side is not None:
                    link.relay_side.sendto(data, link.relay_addr)

        self.relay_side, _ = await loop.create_datagram_endpoint(
            FromRelay, local_addr=("127.0.0.1", 0)
        )
        self.client_side, _ = await loop.create_datagram_endpoint(
            FromClient, local_addr=("127.0.0.1", 0)
        )

    def port(self, side: asyncio.DatagramTransport | None) -> int:
        assert side is not None
        return int(side.get_extra_info("sockname")[1])

    async def join(self, relay: LocalRelay, peer: Peer, publish: list[str]) -> tuple[str, str]:
        """Join `peer` through the proxy; returns (offer SDP, answer SDP) as the relay has them."""
        offer: dict[str, Any] = await relay.join(peer.room, peer.name, publish)
        offer_sdp, relay_addr = rewrite_candidates(offer["sdp"], self.port(self.client_side))
        self.relay_addr = relay_addr
        answer = await peer.client.handle_offer({**offer, "sdp": offer_sdp})
        answer_sdp, client_addr = rewrite_candidates(answer, self.port(self.relay_side))
        self.client_addr = client_addr
        await relay.answer(peer.room, peer.name, answer_sdp)
        return offer["sdp"], answer_sdp

    def close(self) -> None:
        for side in (self.relay_side, self.client_side):
            if side is not None:
                side.close()
