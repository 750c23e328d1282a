"""The relay's counters stay monotonic while participants leave, reconnect and rooms close
(media_relay/metrics.py RelayLedger); real aiortc peers through a LocalRelay."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from media_relay import metrics
from media_relay.control import LocalRelay
from tests.media_relay.conftest import Bridge, PatternTrack, ToneTrack, wait_for

pytestmark = pytest.mark.timeout(60)

COUNTERS = (
    "etapalvelu_relay_rtp_received_packets_total",
    "etapalvelu_relay_rtp_forwarded_packets_total",
    "etapalvelu_relay_rtp_forwarded_bytes_total",
    "etapalvelu_relay_plis_total",
)


def read(registry: CollectorRegistry) -> dict[str, float]:
    return {name: registry.get_sample_value(name) or 0.0 for name in COUNTERS}


def never_fell(before: dict[str, float], after: dict[str, float]) -> None:
    for name in COUNTERS:
        assert after[name] >= before[name], (name, before[name], after[name])


async def test_counters_survive_leaving_reconnecting_and_closing(
    relay: LocalRelay, bridge: Bridge
) -> None:
    registry = CollectorRegistry()
    registry.register(metrics.RelayCollector(relay))
    kiosk = bridge.peer("room", "kiosk", {"camera": PatternTrack(), "audio": ToneTrack()})
    await kiosk.join(["camera", "audio"])
    viewer = bridge.peer("room", "viewer")
    await viewer.join([])
    assert await wait_for(lambda: viewer.frames.get(("kiosk", "camera"), 0) >= 10, 15)
    first = read(registry)
    assert first["etapalvelu_relay_rtp_forwarded_packets_total"] > 0
    assert first["etapalvelu_relay_plis_total"] >= 1

    # the only subscriber leaves: its forwarded streams go with it
    await relay.leave("room", "viewer")
    await viewer.close()
    assert relay.rooms["room"].participants.keys() == {"kiosk"}
    after_leave = read(registry)
    never_fell(first, after_leave)
    assert (
        after_leave["etapalvelu_relay_rtp_forwarded_packets_total"]
        >= first["etapalvelu_relay_rtp_forwarded_packets_total"]
    )

    # the kiosk reconnects (same id, a new participant object): what it received is kept
    await kiosk.close()
    again = bridge.peer("room", "kiosk", {"camera": PatternTrack()})
    await again.join(["camera"])
    after_reconnect = read(registry)
    never_fell(after_leave, after_reconnect)

    # the room closes; then the relay stops
    await asyncio.sleep(1.0)
    before_close = read(registry)
    await relay.close_room("room")
    after_close = read(registry)
    never_fell(before_close, after_close)
    assert registry.get_sample_value("etapalvelu_relay_rooms") == 0
    # the process-wide collector (what a relay node serves) holds them too
    process_wide = CollectorRegistry()
    process_wide.register(metrics.RelayCollector())
    totals = read(process_wide)
    for name in COUNTERS:
        assert totals[name] >= after_close[name]
    await relay.stop()
    never_fell(after_close, read(registry))


async def test_a_relay_collector_skips_a_remote_relay() -> None:
    from media_relay.remote import RemoteRelay

    registry = CollectorRegistry()
    registry.register(metrics.RelayCollector(RemoteRelay("n", "ws://127.0.0.1:9/control", "s")))
    assert registry.get_sample_value("etapalvelu_relay_rooms") == 0
    assert registry.get_sample_value("etapalvelu_relay_rtp_forwarded_packets_total") == 0
