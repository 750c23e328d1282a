"""A source that stops (unpublished, or its publisher left) is taken out of every subscriber's
session: the relay sends them a new offer without it, so their pages stop showing it (the
expert stops sharing his screen; an interpreter leaves). Closing a published track detaches the
subscribers' streams at once, which once left the relay thinking nothing had changed."""

from __future__ import annotations

from typing import Any

from media_relay.control import LocalRelay
from tests.media_relay.conftest import Bridge, PatternTrack, ToneTrack, wait_for

ROOM = "unpublish"


def received(offer: dict[str, Any]) -> set[tuple[str, str]]:
    return {(t["participant_id"], t["source"]) for t in offer["tracks"] if t["direction"] == "recv"}


async def test_unpublish_and_leave_reach_the_subscribers(relay: LocalRelay, bridge: Bridge) -> None:
    kiosk = bridge.peer(ROOM, "kiosk", {"camera": PatternTrack(), "audio": ToneTrack()})
    await kiosk.join(["camera", "audio"])
    expert = bridge.peer(
        ROOM, "expert", {"camera": PatternTrack(), "audio": ToneTrack(), "screen": PatternTrack()}
    )
    await expert.join(["camera", "audio"])
    offers: list[dict[str, Any]] = []
    original = bridge.on_offer

    async def spy(room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        if participant_id == "kiosk":
            offers.append(offer)
        await original(room_id, participant_id, offer)

    bridge.on_offer = spy  # type: ignore[method-assign]
    await relay.publish(ROOM, "expert", "screen")
    assert await wait_for(lambda: kiosk.frames.get(("expert", "screen"), 0) >= 3, 20)
    assert ("expert", "screen") in received(offers[-1])

    await relay.unpublish(ROOM, "expert", "screen")
    assert await wait_for(lambda: ("expert", "screen") not in received(offers[-1]), 10)
    assert received(offers[-1]) == {("expert", "camera"), ("expert", "audio")}
    stats = (await relay.stats())["rooms"][ROOM]["participants"]["kiosk"]["forwarded"]
    assert {(s["from_participant_id"], s["source"]) for s in stats} == {
        ("expert", "camera"), ("expert", "audio")}

    # Shared again: the freed m-line is reused and the screen flows again.
    frames_before = kiosk.frames.get(("expert", "screen"), 0)
    await relay.publish(ROOM, "expert", "screen")
    assert await wait_for(lambda: kiosk.frames.get(("expert", "screen"), 0) > frames_before + 3,
                          20)

    # The expert leaves: the kiosk is offered nothing of his any more.
    count = len(offers)
    await relay.leave(ROOM, "expert")
    assert await wait_for(lambda: len(offers) > count and not received(offers[-1]), 10)
