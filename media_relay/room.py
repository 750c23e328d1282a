"""A room: participants, who is sent what, renegotiation, and the periodic work.

Every participant is sent every other participant's published tracks, except one that joined
with `subscribe=False` (publish only: it is sent nothing) or with a list of sources (it is sent
only those: `subscribe=["document"]`, a preview of the document camera). A change (join,
publish, unpublish, leave) re-plans the affected participants and sends each a new offer
through the listener; an offer waits until the previous one is answered (no glare, no
overlapping negotiations).

Codecs converge (`_converge_codecs`, codecs.converge): after every answer and every departure,
each published video track is checked against what its current subscribers' answers accept,
and a publisher that might send a codec one of them cannot take is renegotiated onto the
codecs all of them take. The relay never transcodes; when no codec suits all, the track is
marked `codec_conflict` and left alone.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiortc import clock

from media_relay.errors import RelayError
from media_relay.participant import Participant
from media_relay.speaker import ActiveSpeakerDetector

if TYPE_CHECKING:
    from media_relay.control import LocalRelay
    from media_relay.forwarding import PublishedTrack

logger = logging.getLogger(__name__)

SOURCES = ("audio", "camera", "document", "screen")
TICK_SECONDS = 0.25
REPORT_EVERY_TICKS = 4  # sender reports and REMB about once a second
MAX_PARTICIPANT_ID = 128


# glibc keeps the memory of ended calls in its heap (RSS stayed at its peak when calls ended);
# malloc_trim gives the free part back to the system. It takes a few ms for a ~100 MB heap, on
# the loop, so it runs once, TRIM_DELAY after a room closes (after a burst of closes: once),
# and at most once per TRIM_INTERVAL.
TRIM_DELAY = 1.0
TRIM_INTERVAL = 10.0
_trim_state: dict[str, Any] = {"last": -math.inf, "timer": None, "loop": None}


def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _malloc_trim()


def return_freed_memory_soon() -> None:
    """Schedule one malloc_trim (see TRIM_DELAY); no-op where there is none or no loop."""
    if _MALLOC_TRIM is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if _trim_state["timer"] is not None and _trim_state["loop"] is loop:
        return  # one is due (a timer of a loop that has ended never fires: replaced)
    now = time.monotonic()
    due = max(now + TRIM_DELAY, _trim_state["last"] + TRIM_INTERVAL)
    _trim_state["loop"] = loop
    _trim_state["timer"] = loop.call_later(due - now, _trim)


def _trim() -> None:
    _trim_state["timer"] = None
    _trim_state["last"] = time.monotonic()
    _MALLOC_TRIM(0)


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise RelayError("bad_source", f"unknown source {source!r}; expected one of {SOURCES}")
    return source


class Room:
    def __init__(self, room_id: str, relay: LocalRelay) -> None:
        self.room_id = room_id
        self.relay = relay
        self.participants: dict[str, Participant] = {}
        self.speaker = ActiveSpeakerDetector()
        self._tick_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    # -- membership

    async def join(
        self, participant_id: str, publish: list[str], subscribe: bool | Sequence[str] = True
    ) -> dict[str, Any]:
        if not isinstance(participant_id, str) or not 0 < len(participant_id) <= MAX_PARTICIPANT_ID:
            raise RelayError("bad_participant", "participant_id must be a non-empty string")
        sources = [check_source(source) for source in dict.fromkeys(publish)]
        previous = self.participants.pop(participant_id, None)
        participant = Participant(
            self.room_id, participant_id, self.relay.config, self._participant_gone
        )
        if isinstance(subscribe, bool):
            participant.subscribe = subscribe
        else:
            participant.sources = frozenset(check_source(s) for s in subscribe)
            participant.subscribe = bool(participant.sources)
        if previous is not None:
            # a reconnect: keep the published tracks so subscribers' streams stay continuous
            participant.adopt_published(previous.published)
            previous.published = {}
            await previous.close()
        for source in sources:
            participant.ensure_published(source)
        for source in list(participant.published):
            if source not in sources:
                participant.unpublish(source)
        self.participants[participant_id] = participant
        self._ensure_tick()
        async with participant._lock:
            participant.plan(self._wanted_by(participant))
            offer = await participant.create_offer()
        self._renegotiate_others(participant_id)
        return offer

    async def answer(self, participant_id: str, sdp: str) -> None:
        participant = self._participant(participant_id)
        async with participant._lock:
            need_keyframe = await participant.apply_answer(sdp)
            # streams this answer made receivable start at once (forwarding.start_stream);
            # the other tracks (a publisher's codec switch) ask their publisher
            started = set()
            for stream in participant.forwarded:
                track = stream.track
                if track is not None and stream.active and stream.waiting_keyframe:
                    track.start_stream(stream)
                    started.add(id(track))
            for track in need_keyframe:
                if id(track) not in started:
                    track.request_keyframe()
            if participant.renegotiate_pending:
                participant.renegotiate_pending = False
                self._spawn(self._send_offer(participant))
        # a subscriber's answer says what it takes; a publisher's, what it may send
        self._converge_codecs()

    async def publish(self, participant_id: str, source: str) -> None:
        participant = self._participant(participant_id)
        check_source(source)
        if source in participant.published:
            return
        participant.ensure_published(source)
        self._renegotiate(participant)
        self._renegotiate_others(participant_id)

    async def unpublish(self, participant_id: str, source: str) -> None:
        participant = self._participant(participant_id)
        check_source(source)
        if participant.unpublish(source) is None:
            return
        self._renegotiate(participant)
        self._renegotiate_others(participant_id)

    async def leave(self, participant_id: str) -> None:
        participant = self.participants.pop(participant_id, None)
        if participant is None:
            return
        for track in participant.published.values():
            track.close()
        await participant.close()
        self.speaker.forget(participant_id)
        self._renegotiate_others(participant_id)
        self._converge_codecs()  # a conflict may be gone, or a narrowing possible now

    async def close(self) -> None:
        self.closed = True
        if self._tick_task is not None:
            self._tick_task.cancel()
            await asyncio.gather(self._tick_task, return_exceptions=True)
            self._tick_task = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for participant in list(self.participants.values()):
            for track in participant.published.values():
                track.close()
            await participant.close()
        self.participants.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return_freed_memory_soon()

    # -- negotiation

    def _wanted_by(self, participant: Participant) -> list[PublishedTrack]:
        if not participant.subscribe:
            return []  # publish only
        return [
            track
            for other in self.participants.values()
            if other is not participant
            for track in other.published.values()
            if participant.sources is None or track.source in participant.sources
        ]

    def _converge_codecs(self) -> None:
        """Renegotiate each publisher whose video a current subscriber could not decode onto
        the codecs every subscriber takes (Participant.converge_codecs decides)."""
        for publisher in list(self.participants.values()):
            for source, track in list(publisher.published.items()):
                if track.kind != "video":
                    continue
                accepted = [
                    names
                    for other in self.participants.values()
                    if other is not publisher
                    for names in (other.accepted_codecs(track),)
                    if names is not None
                ]
                if publisher.converge_codecs(source, accepted):
                    self._renegotiate(publisher)

    def _renegotiate_others(self, participant_id: str) -> None:
        for other in list(self.participants.values()):
            if other.participant_id != participant_id:
                self._renegotiate(other)

    def _renegotiate(self, participant: Participant) -> None:
        if participant.negotiating:
            participant.renegotiate_pending = True
            return
        self._spawn(self._send_offer(participant))

    async def _send_offer(self, participant: Participant, force: bool = False) -> None:
        async with participant._lock:
            current = self.participants.get(participant.participant_id)
            if participant.closed or current is not participant:
                return
            if participant.negotiating:
                participant.renegotiate_pending = True
                return
            if not participant.plan(self._wanted_by(participant)) and not force:
                return  # nothing to tell it
            try:
                offer = await participant.create_offer()
            except Exception:
                if participant.closed or participant.pc.signalingState == "closed":
                    return  # it left, or its connection ended, meanwhile: nobody to offer to
                raise
        try:
            await self.relay.listener.on_offer(self.room_id, participant.participant_id, offer)
        except Exception:
            logger.warning(
                "relay: delivering an offer to %s/%s failed",
                self.room_id,
                participant.participant_id,
                exc_info=True,
            )

    # -- faults

    def _participant_gone(self, participant: Participant, reason: str) -> None:
        if self.participants.get(participant.participant_id) is not participant:
            return
        if participant.gone_reason is not None:
            return
        participant.gone_reason = reason
        self._spawn(self._drop(participant, reason))

    async def _drop(self, participant: Participant, reason: str) -> None:
        if self.participants.get(participant.participant_id) is not participant:
            return
        logger.info("relay: %s/%s gone (%s)", self.room_id, participant.participant_id, reason)
        await self.leave(participant.participant_id)
        await self.relay.listener.on_participant_gone(
            self.room_id, participant.participant_id, reason
        )

    # -- periodic work

    def _ensure_tick(self) -> None:
        if self._tick_task is None and not self.closed:
            self._tick_task = asyncio.ensure_future(self._run_tick())

    async def _run_tick(self) -> None:
        count = 0
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            interval = now - last
            last = now
            count += 1
            try:
                self._tick(now, interval, count % REPORT_EVERY_TICKS == 0)
            except Exception:
                logger.exception("relay: room %s tick failed", self.room_id)

    def _tick(self, now: float, interval: float, reports: bool) -> None:
        ntp_now = clock.current_ntp_time()
        timeout = self.relay.config.connect_timeout
        silence = self.relay.config.silence_timeout
        for participant in list(self.participants.values()):
            participant.tick(now, interval, ntp_now, reports)
            if participant.negotiating and now - participant.negotiation_started > timeout:
                self._participant_gone(participant, "timeout")
            elif not participant.ever_connected and now - participant.created > timeout:
                self._participant_gone(participant, "timeout")
            elif participant.connected and not participant.expects_media():
                # Only inactive m-lines: nothing (not even RTCP) flows to be heard; ICE
                # consent checks watch the link. The silence clock starts when media does.
                participant.last_heard = now
            elif participant.connected and now - participant.last_heard > silence:
                # browsers and aiortc send RTCP at least every few seconds, even receive-only
                self._participant_gone(participant, "timeout")
        speaker = self.speaker.update(
            [
                track
                for participant in self.participants.values()
                for track in participant.published.values()
                if track.kind == "audio"
            ],
            now,
        )
        if speaker is not None:
            self._spawn(self.relay.listener.on_active_speaker(self.room_id, speaker))

    # -- helpers

    def _participant(self, participant_id: str) -> Participant:
        participant = self.participants.get(participant_id)
        if participant is None:
            raise RelayError(
                "unknown_participant", f"{participant_id!r} is not in room {self.room_id!r}"
            )
        return participant

    def _spawn(self, coro: Any) -> None:
        task = self.relay._spawn(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stats(self) -> dict[str, Any]:
        return {
            "participants": {
                pid: participant.stats() for pid, participant in self.participants.items()
            },
            "active_speaker": self.speaker.current,
        }
