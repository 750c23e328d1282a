"""The relay's figures in the default Prometheus registry (served at /metrics)."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from media_relay.control import LocalRelay
from tests.media_relay.conftest import Bridge, PatternTrack, wait_for


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    value = REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


async def test_metrics_follow_the_relay(relay: LocalRelay, bridge: Bridge) -> None:
    kiosk = bridge.peer("m", "kiosk", {"camera": PatternTrack()})
    await kiosk.join(["camera"])
    viewer = bridge.peer("m", "viewer")
    await viewer.join([])
    assert await wait_for(lambda: viewer.frames.get(("kiosk", "camera"), 0) >= 3, 10)
    relay.rooms["m"].participants["kiosk"]._on_rtp(b"\x80garbage")
    text = generate_latest(REGISTRY).decode()
    assert "etapalvelu_relay_rtp_forwarded_packets_total" in text
    assert sample("etapalvelu_relay_rooms") >= 1
    assert sample("etapalvelu_relay_participants") >= 2
    assert sample("etapalvelu_relay_rtp_forwarded_packets_total") > 0
    assert sample("etapalvelu_relay_rtp_received_packets_total") > 0
    assert sample("etapalvelu_relay_plis_total") >= 1
    assert sample("etapalvelu_relay_dropped_packets_total", {"reason": "malformed_rtp"}) >= 1
    await relay.stop()
    assert sample("etapalvelu_relay_rooms") == 0


def test_config_from_settings() -> None:
    from media_relay.control import RelayConfig
    from signaling.config import Settings

    config = RelayConfig.from_settings(
        Settings(
            relay_listen_address="127.0.0.1",
            ice_addresses=["127.0.0.1"],
            relay_port_min=40000,
            relay_port_max=40100,
            stun_urls=["stun:stun.example.fi:3478"],
        )
    )
    assert config.listen_address == "127.0.0.1"
    assert config.announced_addresses == ["127.0.0.1"]
    assert (config.port_min, config.port_max) == (40000, 40100)
    assert config.ice_servers == [{"urls": ["stun:stun.example.fi:3478"]}]
    wildcard = RelayConfig.from_settings(Settings(relay_listen_address="0.0.0.0"))
    assert wildcard.announced_addresses == []  # aioice gathers the host's addresses
    assert (wildcard.port_min, wildcard.port_max) == (0, 0)
    lone = RelayConfig.from_settings(Settings(relay_port_max=50000))
    assert (lone.port_min, lone.port_max) == (0, 0)
