"""A publish-only participant (`relay.join(..., subscribe=False)`, the document camera): it
sends its track to the others and is sent nothing of theirs, at join and after every later
change (someone joins, publishes, reconnects)."""

from __future__ import annotations

from typing import Any

from media_relay.control import LocalRelay
from tests.media_relay.conftest import Bridge, PatternTrack, ToneTrack, wait_for

ROOM = "publish-only"


def directions(sdp: str) -> list[str]:
    """The relay's side of each m-line (sendonly/sendrecv would carry others' media to it)."""
    names = ("sendonly", "sendrecv", "recvonly", "inactive")
    return [line.strip()[2:] for line in sdp.splitlines() if line.strip()[2:] in names]


def assert_publish_only(offer: dict[str, Any]) -> None:
    assert [(t["source"], t["direction"]) for t in offer["tracks"]] == [("document", "send")]
    found = directions(offer["sdp"])
    assert "sendonly" not in found and "sendrecv" not in found, found
    assert found.count("recvonly") == 1


async def test_publish_only_participant_is_sent_nothing(
    relay: LocalRelay, bridge: Bridge
) -> None:
    kiosk = bridge.peer(ROOM, "kiosk", {"camera": PatternTrack(), "audio": ToneTrack()})
    await kiosk.join(["camera", "audio"])

    offers: list[dict[str, Any]] = []
    camera = bridge.peer(ROOM, "doccam", {"document": PatternTrack()})
    original = bridge.on_offer

    async def spy(room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        if participant_id == "doccam":
            offers.append(offer)
        await original(room_id, participant_id, offer)

    bridge.on_offer = spy  # type: ignore[method-assign]
    first = await relay.join(ROOM, "doccam", ["document"], subscribe=False)
    assert_publish_only(first)
    await relay.answer(ROOM, "doccam", await camera.client.handle_offer(first))

    # Someone else joins and publishes more: the camera is still sent nothing.
    expert = bridge.peer(ROOM, "expert", {"camera": PatternTrack(), "audio": ToneTrack()})
    await expert.join(["camera", "audio"])
    await relay.publish(ROOM, "expert", "screen")
    assert await wait_for(lambda: expert.frames.get(("doccam", "document"), 0) >= 3, 20)
    assert await wait_for(lambda: kiosk.frames.get(("doccam", "document"), 0) >= 3, 20)
    for offer in offers:
        assert_publish_only(offer)
    stats = (await relay.stats())["rooms"][ROOM]["participants"]
    assert stats["doccam"]["subscribe"] is False
    assert stats["doccam"]["forwarded"] == []
    assert stats["expert"]["subscribe"] is True
    assert {s["from_participant_id"] for s in stats["expert"]["forwarded"]} >= {"kiosk", "doccam"}
    assert camera.frames == {}
    assert camera.client.remote_tracks == []

    # A reconnect (join again) stays publish-only.
    again = await relay.join(ROOM, "doccam", ["document"], subscribe=False)
    assert_publish_only(again)
    assert (await relay.stats())["rooms"][ROOM]["participants"]["doccam"]["forwarded"] == []
