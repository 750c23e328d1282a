"""Bad input is dropped and counted, never raised into the loop, never felt in another room;
leaving frees every task, socket, thread and object."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import socket
import threading

import pylibsrtp
import pytest

from media_relay.aiortc_hooks import dtls_transport
from media_relay.control import LocalRelay, RelayConfig
from media_relay.participant import Participant
from tests.media_relay.conftest import Bridge, PatternTrack, wait_for
from tests.media_relay.test_packets import make_rtp

pytestmark = pytest.mark.timeout(90)


def relay_ports(relay: LocalRelay, room: str, pid: str) -> list[int]:
    participant = relay.rooms[room].participants[pid]
    assert participant.link is not None
    return [p.local_candidate.port for p in participant.link.connection._protocols]


async def test_garbage_is_dropped_and_counted_without_disturbing_another_room(
    relay: LocalRelay, bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    # room A: the victim, with media flowing
    kiosk = bridge.peer("A", "kiosk", {"camera": PatternTrack()})
    await kiosk.join(["camera"])
    viewer = bridge.peer("A", "viewer")
    await viewer.join([])
    assert await wait_for(lambda: viewer.frames.get(("kiosk", "camera"), 0) >= 5, 10)
    # room B: the attacker, an authenticated participant
    attacker = bridge.peer("B", "attacker", {"camera": PatternTrack()})
    await attacker.join(["camera"])
    assert await wait_for(lambda: relay.rooms["B"].participants["attacker"].connected, 10)
    dtls = dtls_transport(attacker.client.pc)
    assert dtls is not None
    protect, protect_rtcp = dtls._tx_srtp.protect, dtls._tx_srtp.protect_rtcp
    pair = dtls.transport._connection._nominated[1]
    send = pair.protocol.transport.sendto
    target = pair.remote_addr
    rng = random.Random(7)

    def craft() -> bytes | None:
        choice = rng.randrange(6)
        if choice == 0:  # unknown SSRC
            return protect(make_rtp(ssrc=rng.getrandbits(32), seq=rng.randrange(65536)))
        if choice == 1:  # unknown payload type on a known SSRC
            sender = attacker.client.pc.getSenders()[0]
            seq = rng.randrange(65536)
            return protect(make_rtp(seq=seq, ssrc=sender._ssrc, pt=rng.choice([0, 8, 33, 127])))
        if choice == 2:  # RTCP garbage, authenticated
            return protect_rtcp(b"\x80\xc9\x00\x01" + rng.randbytes(rng.randrange(4, 80)))
        if choice == 3:  # truncated feedback
            return protect_rtcp(bytes([0x81, 205, 0, 5]) + rng.randbytes(8))
        if choice == 4:  # unauthenticated SRTP-looking bytes
            return bytes([0x80, 97]) + rng.randbytes(rng.randrange(10, 1400))
        return rng.randbytes(rng.randrange(1, 1500))  # anything at all

    frames_before = viewer.frames[("kiosk", "camera")]
    for burst in range(20):
        for _ in range(150):
            try:
                data = craft()
            except pylibsrtp.Error:  # libsrtp refused to protect it: nothing to send
                continue
            if data:
                send(data, target)
        # plain UDP garbage at the victim room's socket too (no SRTP keys)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for port in relay_ports(relay, "A", "kiosk"):
                raw.sendto(bytes([0x80]) + os.urandom(200), ("127.0.0.1", port))
                raw.sendto(os.urandom(64), ("127.0.0.1", port))
        await asyncio.sleep(0.02 if burst % 5 else 0.1)

    # the participant's own oversized and malformed datagrams, straight into the handler
    attacker_side = relay.rooms["B"].participants["attacker"]
    attacker_side._on_media(b"\x80" + b"\0" * 3000)
    attacker_side._on_rtp(b"\x80\x61")
    attacker_side._on_rtp(b"\x90\x61" + b"\0" * 14)  # extension header past the end
    attacker_side._on_rtcp(b"\x80")

    # a flood: far more packets in a second than any camera sends
    flood = protect(make_rtp(ssrc=0xBAD, seq=1))
    for _ in range(6000):
        send(flood, target)
        if _ % 500 == 0:
            await asyncio.sleep(0)

    assert await wait_for(
        lambda: viewer.frames.get(("kiosk", "camera"), 0) >= frames_before + 20, 10
    ), "the other room stalled"
    stats = await relay.stats()
    dropped = stats["rooms"]["B"]["participants"]["attacker"]["dropped"]
    for reason in (
        "unknown_ssrc",
        "unknown_payload_type",
        "srtp_unprotect",
        "oversized",
        "malformed_rtp",
        "malformed_rtcp",
        "flood",
    ):
        assert dropped.get(reason, 0) > 0, (reason, dropped)
    victim = stats["rooms"]["A"]["participants"]["kiosk"]["dropped"]
    assert victim.get("srtp_unprotect", 0) > 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert relay.rooms["B"].participants["attacker"].connected


async def test_port_range_and_announced_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    low, high = (base, base + 3) if base + 3 < 65535 else (base - 3, base)
    relay = LocalRelay(
        RelayConfig(
            listen_address="127.0.0.1",
            announced_addresses=["127.0.0.1"],
            port_min=low,
            port_max=high,
        )
    )
    await relay.start()
    try:
        offer = await relay.join("ports", "p", ["camera"])
        candidates = [line for line in offer["sdp"].splitlines() if "a=candidate" in line]
        assert len(candidates) == 1
        port = int(candidates[0].split()[5])
        assert low <= port <= high
        assert " 127.0.0.1 " in candidates[0]
    finally:
        await relay.stop()


def snapshot() -> dict[str, int]:
    gc.collect()
    kinds = {"RTCPeerConnection": 0, "Participant": 0, "PublishedTrack": 0, "ForwardedStream": 0}
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in kinds:
            kinds[name] += 1
    return {
        "tasks": len(asyncio.all_tasks()),
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        **kinds,
    }


async def test_no_leaks_after_100_joins_and_leaves(relay: LocalRelay, bridge: Bridge) -> None:
    # one long-lived viewer keeps the room's machinery busy throughout
    viewer = bridge.peer("L", "viewer")
    await viewer.join([])
    before: dict[str, int] = {}
    for cycle in range(-10, 100):
        name = f"p{cycle}"
        if cycle == 0:
            # after the first publishers came and went: the viewer now has its audio and
            # video m-lines, their tasks and decoder threads, which stay for reuse
            await asyncio.sleep(1.0)
            before = snapshot()
        if cycle % 10 == 0:
            # every tenth: a full connection with media
            peer = bridge.peer("L", name, {"camera": PatternTrack()})
            await peer.join(["camera"])
            assert await wait_for(lambda name=name: viewer.frames.get((name, "camera"), 0) >= 1, 10)
            await relay.leave("L", name)
            await peer.close()
            del bridge.peers[name]
        else:
            await relay.join("L", name, ["camera", "audio"])
            await relay.leave("L", name)
    await asyncio.sleep(1.0)  # renegotiations with the viewer settle
    assert await wait_for(lambda: not relay.rooms["L"].participants["viewer"].negotiating, 5)
    await asyncio.sleep(0.5)
    after = snapshot()
    assert after["Participant"] == before["Participant"], (before, after)
    assert after["PublishedTrack"] == before["PublishedTrack"], (before, after)
    assert after["RTCPeerConnection"] <= before["RTCPeerConnection"], (before, after)
    assert after["tasks"] <= before["tasks"] + 2, (before, after)
    assert after["fds"] <= before["fds"] + 2, (before, after)
    assert after["threads"] <= before["threads"] + 1, (before, after)
    # the viewer's m-lines were reused, not grown without bound
    assert len(relay.rooms["L"].participants["viewer"].forwarded) <= 2
    assert isinstance(relay.rooms["L"].participants["viewer"], Participant)
