"""A lossy UDP link between the relay and one aiortc peer, for the loss and RTX tests.

relay <-> [relay_side | client_side] <-> client: both directions pass through it, so ICE sees
a consistent path; it drops a share of the RTP going one way (and whatever a filter picks).
With `rate_bps` set (at any time), that direction is also a bottleneck: every datagram waits
its turn in a FIFO drained at that rate (IP + UDP headers counted), and one that would wait
longer than `queue_seconds` is dropped (a router's tail drop) — what a narrow uplink does.
"""

from __future__ import annotations

import asyncio
import random
import re
import struct
import time
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
        # the client's address, when it is known and it may send from others (a browser
        # with several host candidates): replies go there only
        self.pin_client: tuple[str, int] | None = None
        self.relay_side: asyncio.DatagramTransport | None = None
        self.client_side: asyncio.DatagramTransport | None = None
        # the bottleneck towards `towards` (None: none), and what it dropped
        self.rate_bps: float | None = None
        self.queue_seconds = 0.25
        self.queue_dropped = 0
        self._free_at = 0.0  # when the bottleneck has sent everything queued so far

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

    def _pass(self, data: bytes, forward: Callable[[bytes], None]) -> None:
        """Through the bottleneck, if there is one: forward now, later, or never."""
        now = time.monotonic()
        if self.rate_bps is None and self._free_at <= now:
            forward(data)
            return
        start = max(now, self._free_at)
        if start - now > self.queue_seconds:
            self.queue_dropped += 1
            return
        rate = self.rate_bps
        self._free_at = start + ((len(data) + 28) * 8 / rate if rate else 0.0)
        asyncio.get_running_loop().call_later(self._free_at - now, forward, data)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        link = self

        def to_client(data: bytes) -> None:
            if link.client_addr is not None and link.client_side is not None:
                link.client_side.sendto(data, link.client_addr)

        def to_relay(data: bytes) -> None:
            if link.relay_addr is not None and link.relay_side is not None:
                link.relay_side.sendto(data, link.relay_addr)

        class FromRelay(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                link.relay_addr = addr
                if link.towards == "client":
                    if not link._lose(data):
                        link._pass(data, to_client)
                    return
                to_client(data)

        class FromClient(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if link.pin_client is None or addr == link.pin_client:
                    link.client_addr = addr
                if link.towards == "relay":
                    if not link._lose(data):
                        link._pass(data, to_relay)
                    return
                to_relay(data)

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
