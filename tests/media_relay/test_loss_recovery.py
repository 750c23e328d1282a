"""5 % packet loss on one subscriber's link: the relay answers its NACKs from the cache.

The lossy link is a UDP proxy between the relay and that subscriber (both directions pass
through it, so ICE sees a consistent path); it drops 5 % of the RTP going to the subscriber.
"""

from __future__ import annotations

import asyncio

import pytest

from media_relay.control import LocalRelay
from tests.media_relay.conftest import Bridge, PatternTrack, wait_for
from tests.media_relay.lossy_link import LossyLink

pytestmark = pytest.mark.timeout(60)

async def test_nack_recovers_five_percent_loss(relay: LocalRelay, bridge: Bridge) -> None:
    camera = PatternTrack(fps=20, width=320, height=240)
    publisher = bridge.peer("loss", "kiosk", {"camera": camera})
    await publisher.join(["camera"])
    clean = bridge.peer("loss", "clean")
    await clean.join([])

    proxy = LossyLink(loss=0.05, towards="client", seed=5)
    await proxy.start()
    try:
        lossy = bridge.peer("loss", "lossy")
        # the client sees the relay at the proxy's client side, the relay the client at its
        # relay side
        await proxy.join(relay, lossy, [])

        assert await wait_for(lambda: lossy.frames.get(("kiosk", "camera"), 0) >= 5, 15)
        start_clean = clean.frames[("kiosk", "camera")]
        start_lossy = lossy.frames[("kiosk", "camera")]
        await asyncio.sleep(6)
        got_clean = clean.frames[("kiosk", "camera")] - start_clean
        got_lossy = lossy.frames[("kiosk", "camera")] - start_lossy

        stats = await relay.stats()
        stream = stats["rooms"]["loss"]["participants"]["lossy"]["forwarded"][0]
        assert len(proxy.dropped) >= 5, proxy.dropped
        assert stream["nacks"] > 0, stream
        assert stream["retransmitted"] >= len(proxy.dropped) * 0.5, (stream, proxy.dropped)
        # decoding keeps pace with the loss-free subscriber
        assert got_lossy >= 0.85 * got_clean, (got_lossy, got_clean)
        assert got_clean > 40
    finally:
        proxy.close()
