"""A participant's side of the relay protocol in Python (aiortc): the endpoint agent, the
document camera, tests and the benchmark use it; browsers use static/js/relay-client.js.

The relay offers; the client attaches its local track for each offered `"direction": "send"`
m-line, answers, and reports remote tracks with their participant and source.

    client = RelayPeerClient({"camera": track}, ice_servers=[], host_addresses=["127.0.0.1"])
    offer = await relay.join(room, me, publish=["camera"])   # or over signaling
    sdp = await client.handle_offer(offer)                     # every offer, first and later
    await relay.answer(room, me, sdp)

Call lifecycle. aiortc 1.16 has no ICE restart and no "disconnected" state; a dead path
shows only when aioice's consent checks (RFC 7675: every 4-6 s, 6 failures in a row) give up,
about 30 s later, and then as connectionState "closed" (aiortc closes the whole connection when
its DTLS transport ends), not "failed". So a client given `on_failure` watches for itself:

* connectionState "failed", or "closed" that it did not ask for (the relay closed the session:
  DTLS close_notify; or the transport died) → failed at once;
* nothing at all received from the relay (SRTP/SRTCP/DTLS, counted by the DTLS transport) for
  `silence_timeout` seconds → "disconnected" (as an ICE "disconnected" would, should aiortc
  ever report one); still so `disconnected_grace` seconds later → failed. The relay sends a
  participant a receiver report (+ REMB) about once a second for each track it receives from
  it (media_relay/participant.py `tick`), and a subscriber its media and sender reports, so
  for a client that sends media, or once anything has arrived while connected, silence means
  the path is gone (a receive-only client with nothing to receive is never judged by it);
* not connected `connect_timeout` seconds after the first offer → failed.

`on_failure(reason)` is called once; the owner then joins the relay again (a fresh session:
the relay offers, so there is no ICE restart to try) with a new client. `SharedTrack` lets the
new client send the same local track without reopening it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy

from media_relay.aiortc_hooks import follow_send_codec, install_host_candidates
from media_relay.rtx import route_rtx_to_receivers

logger = logging.getLogger(__name__)

TrackCallback = Callable[[MediaStreamTrack, dict[str, Any]], None]
FailureCallback = Callable[[str], None]
TrackT = TypeVar("TrackT", bound=MediaStreamTrack)

# Health of a client (RelayPeerClient.health).
NEW = "new"
CONNECTED = "connected"
DISCONNECTED = "disconnected"
FAILED = "failed"
CLOSED = "closed"

SILENCE_TIMEOUT = 2.0
DISCONNECTED_GRACE = 3.0
CONNECT_TIMEOUT = 15.0
WATCH_INTERVAL = 0.5


class SharedTrack(Generic[TrackT]):
    """One local track sent by one peer connection after another (a rejoin), never reopened.

    aiortc's RTCRtpSender stops the track it sends when its RTP loop ends: the connection was
    closed, or a send failed on a dead transport (rtcrtpsender.RTCRtpSender._run_rtp). So a
    sender never holds the shared track itself but a `view()`, whose stop() ends only that
    view. Frames are taken one at a time: a frame being made when its view is cancelled (the
    old connection closing) is finished and dropped before the next view's starts, so the
    source never runs twice at once.
    """

    def __init__(self, track: TrackT) -> None:
        self.track = track
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[Any] | None = None

    def view(self) -> MediaStreamTrack:
        return _TrackView(self)

    async def next_frame(self) -> Any:
        await self._lock.acquire()
        try:
            pending = asyncio.ensure_future(self.track.recv())
        except BaseException:
            self._lock.release()
            raise
        self._pending = pending
        pending.add_done_callback(self._frame_done)
        return await asyncio.shield(pending)

    def _frame_done(self, pending: asyncio.Future[Any]) -> None:
        self._pending = None
        self._lock.release()
        if not pending.cancelled():
            pending.exception()  # retrieved: the view that asked may have gone

    def stop(self) -> None:
        self.track.stop()
        if self._pending is not None:
            self._pending.cancel()


class _TrackView(MediaStreamTrack):
    def __init__(self, shared: SharedTrack[Any]) -> None:
        super().__init__()
        self.kind = shared.track.kind
        self._shared = shared

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        return await self._shared.next_frame()


def ice_servers_from_dicts(servers: list[dict[str, Any]]) -> list[RTCIceServer]:
    """RTCIceServer objects from the JSON form (`{"urls", "username", "credential"}`)."""
    result = []
    for server in servers:
        result.append(
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
        )
    return result


class RelayPeerClient:
    def __init__(
        self,
        tracks: dict[str, MediaStreamTrack] | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        host_addresses: list[str] | None = None,
        on_track: TrackCallback | None = None,
        ice_transport_policy: str = "all",
        video_codecs: list[str] | None = None,
        on_failure: FailureCallback | None = None,
        silence_timeout: float = SILENCE_TIMEOUT,
        disconnected_grace: float = DISCONNECTED_GRACE,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        """`ice_servers` must be explicit (empty = none), or aiortc would use a public STUN
        server. `host_addresses`, when given, replace aioice's host candidates (which leave
        out loopback): tests pass ["127.0.0.1"]. `video_codecs` (e.g. ["video/H264"]) limits
        what this client answers for video, in order of preference. `on_failure` turns on the
        health watch (module docstring) and is called once, with the reason, when the session
        has failed."""
        from aiortc.rtcconfiguration import RTCIceTransportPolicy

        self.tracks = dict(tracks or {})
        self.video_codecs = [name.lower() for name in video_codecs] if video_codecs else None
        # senders restarted on a codec the relay narrowed us to (and, for tests, how far their
        # sequence numbers jump at such a restart: some publishers do)
        self.codec_restarts = 0
        self.codec_switch_jump = 0
        self.host_addresses = host_addresses
        self.on_track = on_track
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=ice_servers_from_dicts(ice_servers or []),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
                iceTransportPolicy=RTCIceTransportPolicy(ice_transport_policy),
            )
        )
        self.meta_by_mid: dict[str, dict[str, Any]] = {}
        self.remote_tracks: list[tuple[MediaStreamTrack, dict[str, Any]]] = []
        self._lock = asyncio.Lock()
        self.pc.on("track", self._on_track)
        # health (module docstring)
        self.on_failure = on_failure
        self.silence_timeout = silence_timeout
        self.disconnected_grace = disconnected_grace
        self.connect_timeout = connect_timeout
        self.health = NEW
        self.failure_reason: str | None = None
        self.disconnected_reason: str | None = None
        self._disconnected_at = 0.0
        self._closing = False
        self._watch_task: asyncio.Task[None] | None = None
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("iceconnectionstatechange", self._on_ice_state)

    # -- health

    @property
    def failed(self) -> bool:
        return self.health in (FAILED, CLOSED)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            if self.health == NEW:
                self.health = CONNECTED
        elif state == "failed":
            self.fail("connection_failed")
        elif state == "closed" and not self._closing:
            # aiortc closes the connection itself when its DTLS transport ends: the relay
            # closed the session (close_notify) or the ICE transport died (consent expired)
            self.fail("connection_closed")

    def _on_ice_state(self) -> None:
        state = self.pc.iceConnectionState
        if state == "failed":
            self.fail("ice_failed")
        elif state == "disconnected":  # not in aiortc 1.16; browsers have it
            self._disconnected("ice_disconnected")
        elif state in ("connected", "completed") and self.disconnected_reason == "ice_disconnected":
            self._reconnected()

    def _disconnected(self, reason: str) -> None:
        if self.health != CONNECTED:
            return
        self.health = DISCONNECTED
        self.disconnected_reason = reason
        self._disconnected_at = asyncio.get_running_loop().time()
        logger.info("relay session disconnected (%s); failing in %.1f s unless it recovers",
                    reason, self.disconnected_grace)

    def _reconnected(self) -> None:
        if self.health == DISCONNECTED:
            self.health = CONNECTED
            self.disconnected_reason = None
            logger.info("relay session recovered")

    def fail(self, reason: str) -> None:
        """Mark the session failed and tell `on_failure` (once)."""
        if self.health in (FAILED, CLOSED):
            return
        self.health = FAILED
        self.failure_reason = reason
        callback = self.on_failure
        logger.log(logging.WARNING if callback is not None else logging.DEBUG,
                   "relay session failed: %s", reason)
        if callback is not None:
            # not from inside aiortc's state handlers: the owner may close this connection
            asyncio.get_running_loop().call_soon(self._notify, callback, reason)

    @staticmethod
    def _notify(callback: FailureCallback, reason: str) -> None:
        try:
            callback(reason)
        except Exception:
            logger.exception("on_failure callback failed")

    async def wait_connected(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the session is connected (True) or has failed or timed out (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.health not in (CONNECTED, DISCONNECTED, FAILED, CLOSED):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return self.health in (CONNECTED, DISCONNECTED)

    async def packets_received(self) -> int | None:
        """Datagrams the DTLS transport has received from the relay (aiortc's transport
        stats: SRTP, SRTCP and DTLS, not STUN); None before there is a transport."""
        if not self.pc.getSenders() and not self.pc.getReceivers():
            return None
        report = await self.pc.getStats()
        counts = [
            int(getattr(stats, "packetsReceived", 0) or 0)
            for stats in report.values()
            if getattr(stats, "type", None) == "transport"
        ]
        return max(counts) if counts else None

    def _ensure_watch(self) -> None:
        if self.on_failure is not None and self._watch_task is None and not self._closing:
            self._watch_task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        last_count: int | None = None
        heard_at = started
        # Whether silence means anything: once something arrived while connected, or from the
        # start when this client sends media (the relay reports on every track it receives).
        armed = False
        while self.health not in (FAILED, CLOSED):
            await asyncio.sleep(WATCH_INTERVAL)
            now = loop.time()
            if self.health == NEW:
                if now - started >= self.connect_timeout:
                    self.fail("connect_timeout")
                continue
            try:
                count = await self.packets_received()
            except Exception:  # a connection being torn down under us
                logger.debug("transport stats unavailable", exc_info=True)
                count = None
            now = loop.time()
            if count is None:
                pass
            elif last_count is None:
                last_count, heard_at = count, now
                armed = self._sends_media()
            elif count != last_count:
                armed = True
                last_count, heard_at = count, now
                if self.disconnected_reason == "silence":
                    self._reconnected()
            elif armed and self.health == CONNECTED and now - heard_at >= self.silence_timeout:
                # counted from when the silence is seen, not backdated: a stalled event loop
                # (the datagrams wait in the socket) must not fail a live session
                self._disconnected("silence")
            disconnected_for = now - self._disconnected_at
            if self.health == DISCONNECTED and disconnected_for >= self.disconnected_grace:
                self.fail(self.disconnected_reason or "disconnected")

    def _sends_media(self) -> bool:
        return any(
            transceiver.sender.track is not None
            and transceiver.direction in ("sendonly", "sendrecv")
            for transceiver in self.pc.getTransceivers()
        )

    def _on_track(self, track: MediaStreamTrack) -> None:
        meta = self.meta(track)
        self.remote_tracks.append((track, meta))
        if self.on_track is not None:
            self.on_track(track, meta)

    def meta(self, track: MediaStreamTrack) -> dict[str, Any]:
        """Who and what a remote track carries now: the relay reuses an m-line (and so the
        track) for another participant's track after renegotiation."""
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track and transceiver.mid is not None:
                return dict(self.meta_by_mid.get(transceiver.mid, {"kind": track.kind}))
        return {"kind": track.kind}

    async def handle_offer(self, offer: dict[str, Any]) -> str:
        """Apply a relay offer and return the SDP answer to send back."""
        self._ensure_watch()
        async with self._lock:
            for item in offer.get("tracks", []):
                self.meta_by_mid[item["mid"]] = item
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=offer["sdp"], type="offer")
            )
            # aiortc drops RTX when two video m-lines share its payload type (camera + document)
            route_rtx_to_receivers(self.pc)
            for item in offer.get("tracks", []):
                if item.get("direction") != "send":
                    continue
                track = self.tracks.get(item["source"])
                transceiver = next(
                    (t for t in self.pc.getTransceivers() if t.mid == item["mid"]), None
                )
                if transceiver is None or track is None:
                    continue
                transceiver.direction = "sendonly"
                if transceiver.sender.track is not track:
                    transceiver.sender.replaceTrack(track)
            if self.video_codecs is not None:
                self._limit_video_codecs()
            if self.host_addresses is not None:
                install_host_candidates(self.pc, "", self.host_addresses, 0, 0)
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
            # the relay narrowed our codecs (codecs.converge): encode with the new one
            self.codec_restarts += await follow_send_codec(self.pc, self.codec_switch_jump)
            return str(self.pc.localDescription.sdp)

    def _limit_video_codecs(self) -> None:
        from aiortc import RTCRtpReceiver

        capabilities = RTCRtpReceiver.getCapabilities("video")
        assert capabilities is not None and self.video_codecs is not None
        chosen = [
            codec
            for name in self.video_codecs
            for codec in capabilities.codecs
            if codec.mimeType.lower() == name
        ]
        wanted = self.video_codecs
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind != "video":
                continue
            transceiver.setCodecPreferences(chosen)  # for later offers
            # aiortc fixed this answer's codecs in setRemoteDescription (from the
            # preferences then): narrow them the same way (RTCRtpTransceiver._codecs)
            transceiver._codecs = sorted(
                (c for c in transceiver._codecs if c.mimeType.lower() in wanted),
                key=lambda c: wanted.index(c.mimeType.lower()),
            )

    async def close(self) -> None:
        self._closing = True
        if self.health != FAILED:
            self.health = CLOSED
        task, self._watch_task = self._watch_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # shielded: aiortc shares one "closed" future between concurrent close() calls
        await asyncio.shield(self.pc.close())
