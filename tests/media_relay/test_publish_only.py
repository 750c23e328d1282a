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


async def test_a_source_filtered_subscriber_is_sent_only_those_sources(
    relay: LocalRelay, bridge: Bridge
) -> None:
    """`subscribe=["document"]`: the clerk's preview of the document camera gets the camera's
    picture, and nothing of the customer's or the expert's camera, audio or screen, at join
    and after later changes; it publishes nothing."""
    kiosk = bridge.peer(ROOM, "kiosk", {"camera": PatternTrack(), "audio": ToneTrack()})
    await kiosk.join(["camera", "audio"])
    camera = bridge.peer(ROOM, "doccam", {"document": PatternTrack()})
    offer = await relay.join(ROOM, "doccam", ["document"], subscribe=False)
    await relay.answer(ROOM, "doccam", await camera.client.handle_offer(offer))

    clerk = bridge.peer(ROOM, "clerk", {})
    first = await relay.join(ROOM, "clerk", [], subscribe=["document"])
    assert [(t["participant_id"], t["source"], t["direction"]) for t in first["tracks"]] == [
        ("doccam", "document", "recv")
    ], first["tracks"]
    await relay.answer(ROOM, "clerk", await clerk.client.handle_offer(first))
    expert = bridge.peer(ROOM, "expert", {"camera": PatternTrack(), "audio": ToneTrack()})
    await expert.join(["camera", "audio"])
    await relay.publish(ROOM, "expert", "screen")
    assert await wait_for(lambda: clerk.frames.get(("doccam", "document"), 0) >= 3, 20)
    assert await wait_for(lambda: expert.frames.get(("kiosk", "camera"), 0) >= 3, 20)
    assert set(clerk.frames) == {("doccam", "document")}, clerk.frames
    stats = (await relay.stats())["rooms"][ROOM]["participants"]
    assert {(s["from_participant_id"], s["source"]) for s in stats["clerk"]["forwarded"]} == {
        ("doccam", "document")
    }
    # Nobody is sent anything of the clerk's (he publishes nothing).
    assert all(pid != "clerk" for pid, _source in kiosk.frames)
