"""The office's endpoint agent: publishes the document camera into the office's calls.

It logs in to the signaling server as the office's kiosk (socket.io `auth: {endpoint_id,
credential}`), learns of the office's current call (`flow:sync` after every connect, and the
`call:started` push), joins it as the kiosk's document camera (`call:join {call_id, device:
"document_camera"}`, participant `doccam-<endpoint_id>`), and answers the relay's offers: the
relay is always the offerer, and the agent attaches its document track to the offered
`document` transceiver (docs/signaling-events.md, docs/interfaces.md).

It stays in the call across failures (README "The agent"): when its relay session fails
(`RelayPeerClient` health: connection failed or closed under it, or nothing heard from the
relay for a while) it joins the same call again with a fresh session, with backoff, until the
call ends or another camera replaces it; after every socket.io (re)connect it syncs and joins
again. The document track (camera, pipeline, rate control) lives as long as the call: each
session sends a view of it (`SharedTrack`), so a rejoin reopens nothing.

The media side (`DocumentPublisher`) knows nothing of socket.io: tests and the benchmark drive
it straight against `media_relay.control.LocalRelay`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender

from document_camera.encoder import DetailVp8Encoder, install_encoder, negotiated_codec
from document_camera.notices import Notice
from document_camera.rate_control import RateController, RatePolicy
from document_camera.sources import FrameSource
from document_camera.stills import Still, StillSink, take_still
from document_camera.track import DEFAULT_SIZE, DocumentTrack
from document_camera.zoom import Region
from media_relay.aiortc_client import (
    CONNECT_TIMEOUT,
    DISCONNECTED_GRACE,
    SILENCE_TIMEOUT,
    FailureCallback,
    RelayPeerClient,
    SharedTrack,
)

logger = logging.getLogger(__name__)

DOCUMENT_SOURCE = "document"
STILL_REQUEST_EVENT = "document_camera:still"
REGION_EVENT = "document_camera:region"  # remote zoom (signaling/in_call/document_view.py)
# a large sheet, tile by tile (signaling/in_call/stitch_requests.py, endpoint/stitch_session.py)
STITCH_EVENT = "document_camera:stitch"
STITCH_CANCEL_EVENT = "document_camera:stitch_cancel"

# outcomes of EndpointAgent._join
JOINED = "joined"
RETRY = "retry"  # not now (relay down, socket gone, timeout): try again later
GONE = "gone"  # the call is not ours any more (ended, replaced, refused)
# refusals worth another try; anything else (forbidden, conflict: the call ended…) is final
TRANSIENT_CODES = frozenset({"unavailable", "internal", "rate_limited", "timeout", "disconnected"})
# a session that stayed up this long ends a run of rejoins: the next failure rejoins at once
STABLE_AFTER = 30.0


class DocumentPublisher:
    """One relay session publishing the document track.

    `shared`: the document track of an earlier session of the same call, sent again as it is
    (camera, pipeline, rate control and the stills' last frame carry on); by default a new
    track. Each session has its own encoder, so its first frame is a key frame.
    `on_failure` and the timeouts: `RelayPeerClient`'s health watch.
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        ice_servers: list[dict[str, Any]],
        host_addresses: list[str] | None = None,
        size: tuple[int, int] = DEFAULT_SIZE,
        policy: RatePolicy | None = None,
        on_notice: Callable[[Notice], None] | None = None,
        shared: SharedTrack[DocumentTrack] | None = None,
        on_failure: FailureCallback | None = None,
        silence_timeout: float = SILENCE_TIMEOUT,
        disconnected_grace: float = DISCONNECTED_GRACE,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.source = source
        if shared is None:
            track = DocumentTrack(
                source, size=size, controller=RateController(policy), on_notice=on_notice)
            shared = SharedTrack(track)
        self.shared = shared
        self.track = shared.track
        self.controller = self.track.controller
        self.encoder = DetailVp8Encoder(self.controller)
        # what this session's sender holds: aiortc stops it when the session ends
        self._view = shared.view()
        self.client = RelayPeerClient(
            {DOCUMENT_SOURCE: self._view}, ice_servers=ice_servers,
            host_addresses=host_addresses, on_failure=on_failure,
            silence_timeout=silence_timeout, disconnected_grace=disconnected_grace,
            connect_timeout=connect_timeout)

    async def handle_offer(self, offer: dict[str, Any]) -> str:
        """Apply a relay offer (first or renegotiation); returns the SDP answer."""
        sdp = await self.client.handle_offer(offer)
        # Before returning (no await in between) the sender has not encoded a frame yet:
        # DTLS still has to connect.
        sender = self._document_sender()
        if sender is not None:
            mid = next((t.mid for t in self.client.pc.getTransceivers() if t.sender is sender),
                       None)
            codec = negotiated_codec(sdp, mid)
            if codec == "video/vp8":
                install_encoder(sender, self.encoder)
            else:
                logger.warning("document track negotiated %s; using aiortc's encoder", codec)
        return sdp

    def _document_sender(self) -> RTCRtpSender | None:
        track: MediaStreamTrack = self._view
        for transceiver in self.client.pc.getTransceivers():
            if transceiver.sender.track is track:
                return transceiver.sender
        return None

    async def take_still(self, sink: StillSink, image_format: str = "png") -> Still | None:
        """The latest camera frame as a full-resolution still, delivered to `sink`."""
        frame = self.track.last_raw
        if frame is None:
            return None
        return await take_still(frame, sink, image_format=image_format,
                                source=self.source.description)

    async def close(self, *, keep_track: bool = False) -> None:
        """End this session; the document track too unless `keep_track` (a rejoin)."""
        await self.client.close()
        self._view.stop()
        if not keep_track:
            self.shared.stop()


@dataclass
class AgentOptions:
    server: str
    endpoint_id: int
    credential: str
    host_addresses: list[str] | None = None
    size: tuple[int, int] = DEFAULT_SIZE
    policy: RatePolicy = field(default_factory=RatePolicy)
    # What the office's documents need the expert to read (document_camera/guidance.py):
    # a camera below it raises CAMERA_TOO_COARSE to the clerk (document_camera:notice) in
    # every call it joins.
    camera_target: str = "text-10pt"
    # Stills always go into the current call through the encrypted document channel (the
    # kiosk and the expert receive them); nothing is written to the agent's disk. An observer
    # is handed each still after it went into the call (tests, monitoring); it is no
    # alternative destination.
    still_observer: StillSink | None = None
    # Call lifecycle: nothing heard from the relay for `media_silence` s makes the session
    # "disconnected"; still so `disconnected_grace` s later, or failed/closed under us, or not
    # connected `connect_timeout` s after joining: the agent joins the call again, at once and
    # then after rejoin_delay, 2×, 4×… up to rejoin_delay_max between attempts.
    media_silence: float = SILENCE_TIMEOUT
    disconnected_grace: float = DISCONNECTED_GRACE
    connect_timeout: float = CONNECT_TIMEOUT
    rejoin_delay: float = 1.0
    rejoin_delay_max: float = 5.0
    # after the server itself closed the socket.io connection (python-socketio then does not
    # reconnect by itself): first attempt after this, doubling up to reconnect_delay_max
    reconnect_delay: float = 1.0
    reconnect_delay_max: float = 10.0


class EndpointAgent:
    """Keeps the document camera in the office's current call, across calls, reconnects and
    failed relay sessions."""

    def __init__(self, options: AgentOptions, source: FrameSource) -> None:
        import aiohttp
        import socketio

        self.options = options
        self.source = source
        from endpoint.stitch_session import SerializedSource

        # The document track and a stitch session both read the camera, one at a time.
        self.camera_source = SerializedSource(source)
        # Our own HTTP session, so that it is closed even when the first connect fails.
        # (Create the agent inside the running event loop.)
        self._http = aiohttp.ClientSession()
        self.sio = socketio.AsyncClient(reconnection=True, reconnection_delay_max=10,
                                        http_session=self._http, handle_sigint=False)
        # The call the camera belongs to: joined, or being joined again after a failure.
        self.call_id: int | None = None
        self.participant_id: str | None = None
        # How many times the server had moved the call to another relay node at our last join.
        self.relay_epoch = 0
        # The current relay session (None while joining again).
        self.publisher: DocumentPublisher | None = None
        self.notices: list[Notice] = []
        self.camera_size: tuple[int, int] | None = None  # the camera's frames, once seen
        self.joined = asyncio.Event()
        # Lifecycle counters: joins of the same call after the first one, and why sessions
        # failed (RelayPeerClient reasons), oldest first.
        self.rejoins = 0
        self.media_failures: list[str] = []
        self._camera: SharedTrack[DocumentTrack] | None = None  # the call's document track
        self._lock = asyncio.Lock()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Future[None]] = set()
        self._keeper: asyncio.Task[None] | None = None  # _keep_joined
        self._streak = 0  # join attempts since the last session that stayed up
        self._recovered_at = -STABLE_AFTER
        self._reconnecter: asyncio.Task[None] | None = None
        self._connection_lost: asyncio.Future[None] | None = None
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("call:started", self._on_call_started)
        self.sio.on("call:offer", self._on_call_offer)
        self.sio.on("call:ended", self._on_call_ended)
        self.sio.on("call:replaced", self._on_call_replaced)
        self.sio.on("call:relay_moved", self._on_relay_moved)
        # A still asked for by the clerk or the expert (a server push, when the server has it).
        self.sio.on(STILL_REQUEST_EVENT, self._on_still_request)
        # The region of the page the expert looks at (remote zoom), or null for all of it.
        self.sio.on(REGION_EVENT, self._on_region)
        # Stitching a large sheet, guided tile by tile; one at a time, a new request replaces it.
        self.sio.on(STITCH_EVENT, self._on_stitch)
        self.sio.on(STITCH_CANCEL_EVENT, self._on_stitch_cancel)
        self.stitch: Any = None  # endpoint.stitch_session.StitchSession, the latest
        self._stitch_task: asyncio.Task[str] | None = None
        self.channel: Any = None  # endpoint.document_channel.DocumentChannel of the call

    async def start(self) -> None:
        await self.sio.connect(
            self.options.server,
            auth={"endpoint_id": self.options.endpoint_id,
                  "credential": self.options.credential},
            transports=["websocket"],
            wait_timeout=10,
        )

    async def run_forever(self) -> None:
        await self.start()
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._keeper, self._reconnecter):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        async with self._lock:
            await self._drop_call(leave=True)
        if self._stitch_task is not None:  # cancelled by _drop_call: let it say so first
            await asyncio.gather(self._stitch_task, return_exceptions=True)
        await self.sio.shutdown()  # disconnects, or stops reconnection attempts
        await self._http.close()
        self.source.close()
        self._stopped.set()

    async def take_still(self, image_format: str = "png") -> Still | None:
        """A full-resolution still of the page now, sent into the call (end-to-end encrypted,
        to the kiosk and the expert), then shown to the observer if one is configured.

        Returns None (and logs why) when there is no call, no frame yet or the document
        channel cannot deliver. Works while the relay session is being replaced too: stills
        do not go through it.
        """
        camera = self._camera
        if self.call_id is None or camera is None:
            logger.warning("no still: the document camera is not in a call")
            return None
        frame = camera.track.last_raw
        if frame is None:
            return None
        sink = await self._channel_sink()
        if sink is None:
            return None
        try:
            still = await take_still(frame, sink, image_format=image_format,
                                     source=self.source.description)
        except Exception:  # the channel's errors: the clerk may retry, the call goes on
            logger.exception("the still could not be delivered")
            return None
        observer = self.options.still_observer
        if observer is not None:
            try:
                await observer.deliver(still)
            except Exception:
                logger.exception("the still observer failed")
        return still

    async def _channel_sink(self) -> StillSink | None:
        from endpoint.still_delivery import ChannelStillSink

        if self.channel is None and self.call_id is not None:
            from endpoint.document_channel import DocumentChannel

            channel = DocumentChannel(self.sio, self.options.server, self.call_id,
                                      device="document_camera")
            try:
                await channel.start()
            except Exception:
                logger.exception("the document channel could not start")
                await channel.close()
                return None
            self.channel = channel
        return ChannelStillSink(self.channel) if self.channel is not None else None

    async def _on_still_request(self, data: dict[str, Any]) -> None:
        if data.get("call_id") == self.call_id:
            await self.take_still(str(data.get("format") or "png"))

    async def _on_region(self, data: dict[str, Any]) -> None:
        """Remote zoom: show this region of the page (from the camera's full resolution), or
        the whole page for `region: null`. The server checked it; a bad one changes nothing."""
        if not isinstance(data, dict) or data.get("call_id") != self.call_id:
            return
        camera = self._camera
        if camera is None:
            return
        raw = data.get("region")
        try:
            region = None if raw is None else Region.parse(raw)
        except ValueError as exc:
            logger.warning("document camera: region refused: %s", exc)
            return
        camera.track.set_region(region)

    async def _on_stitch(self, data: dict[str, Any]) -> None:
        """Guide the clerk through the tiles of `sheet` and send the stitched sheet into the
        call (endpoint/stitch_session.py). The server checked the request."""
        from endpoint.stitch_session import StitchSession

        if not isinstance(data, dict) or data.get("call_id") != self.call_id:
            return
        call_id, camera = self.call_id, self._camera
        if call_id is None or camera is None:
            return
        previous = self._stitch_task
        if previous is not None and not previous.done():
            # A new request replaces the stitch under way; its "cancelled" goes out first.
            previous.cancel()
            await asyncio.gather(previous, return_exceptions=True)
            if self.call_id != call_id:
                return
        image_format = "png" if data.get("format") == "png" else "jpeg"
        try:
            session = StitchSession(
                call_id, str(data.get("sheet")), read=self.camera_source.read,
                report=self._stitch_progress, deliver=self._deliver_sheet,
                image_format=image_format, source=self.source.description)
        except ValueError as exc:
            logger.warning("document camera: stitch refused: %s", exc)
            return
        self.stitch = session
        self._stitch_task = asyncio.ensure_future(session.run())

    async def _on_stitch_cancel(self, data: dict[str, Any]) -> None:
        if isinstance(data, dict) and data.get("call_id") == self.call_id:
            self._cancel_stitch()

    def _cancel_stitch(self) -> None:
        task = self._stitch_task
        if task is not None and not task.done():
            task.cancel()

    async def _stitch_progress(self, payload: dict[str, Any]) -> None:
        await self._call("document_camera:stitch_progress", payload)

    async def _deliver_sheet(self, still: Still) -> None:
        """A stitched sheet into the call, as a still (raises when it cannot go)."""
        sink = await self._channel_sink()
        if sink is None:
            raise RuntimeError("the document channel is not available")
        await sink.deliver(still)
        observer = self.options.still_observer
        if observer is not None:
            try:
                await observer.deliver(still)
            except Exception:
                logger.exception("the still observer failed")

    # -- socket.io events

    async def _on_connect(self) -> None:
        logger.info("connected to %s as endpoint %s; waiting for the office's call",
                    self.options.server, self.options.endpoint_id)
        self._connection_lost = asyncio.get_running_loop().create_future()
        # After every connect and reconnect: what is the office's call now?
        # (Not awaited here: a socket.io handler must return before acks can arrive.)
        self._spawn(self._sync())

    async def _on_disconnect(self, reason: str = "") -> None:
        lost, self._connection_lost = self._connection_lost, None
        if lost is not None and not lost.done():
            lost.set_result(None)  # acks still awaited will never come (_call)
        logger.warning("disconnected from %s (%s)", self.options.server, reason or "?")
        import socketio

        # python-socketio reconnects by itself after a transport error, not when the server
        # closed the connection (idle sweep, restart behind a proxy, a revoked credential):
        # an unattended agent tries again itself (a revoked one is refused at connect).
        if (reason == socketio.AsyncClient.reason.SERVER_DISCONNECT and not self._stopping
                and (self._reconnecter is None or self._reconnecter.done())):
            self._reconnecter = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self.options.reconnect_delay
        while not self._stopping and not self.sio.connected:
            await asyncio.sleep(delay)
            if self._stopping or self.sio.connected:
                return
            try:
                await self.start()
            except Exception as exc:  # refused, unreachable, still disconnecting
                logger.warning("connecting again failed (%s); next attempt in %.0f s", exc,
                               min(delay * 2, self.options.reconnect_delay_max))
                delay = min(delay * 2, self.options.reconnect_delay_max)
            else:
                logger.info("connected again after the server closed the connection")

    async def _sync(self) -> None:
        delay = self.options.rejoin_delay
        while True:
            try:
                ack = await self._call("flow:sync", {})
                break
            except AgentError as exc:
                logger.warning("flow:sync refused: %s", exc)
                if not exc.transient or not self._socket_up() or self._stopping:
                    return  # a new connection syncs again
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.rejoin_delay_max)
        call = ack.get("call")
        if call and call.get("status") == "active":
            # After a reconnect the server routes offers to the new socket only once it has
            # joined again: join even if the media is still up (the relay then replaces the
            # old session; subscribers' streams continue).
            call_id = int(call["id"])
            if await self._join(call_id, rejoin=True) != GONE:
                self._keep(call_id)
        else:
            async with self._lock:
                await self._drop_call(leave=False)  # the call ended while we were away

    async def _on_call_started(self, data: dict[str, Any]) -> None:
        call = data.get("call") or {}
        if "id" in call:
            call_id = int(call["id"])
            if await self._join(call_id) != GONE:
                self._keep(call_id)

    async def _on_call_offer(self, data: dict[str, Any]) -> None:
        async with self._lock:
            if self.publisher is None or data.get("call_id") != self.call_id:
                return
            sdp = await self.publisher.handle_offer(data["offer"])
            try:
                await self._call("call:answer", {"call_id": self.call_id, "sdp": sdp})
            except AgentError as exc:
                logger.warning("call:answer refused: %s", exc)

    async def _on_call_ended(self, data: dict[str, Any]) -> None:
        async with self._lock:
            if data.get("call_id") == self.call_id:
                await self._drop_call(leave=False)

    async def _on_relay_moved(self, data: dict[str, Any]) -> None:
        """The call's relay node died or drains: the server placed the call on another node,
        which knows nothing of us until we join again (a fresh relay session)."""
        epoch = data.get("relay_epoch")
        if data.get("call_id") != self.call_id or self.call_id is None:
            return
        if isinstance(epoch, int) and epoch <= self.relay_epoch:
            return  # our last join already went to that node
        if isinstance(epoch, int):
            self.relay_epoch = epoch
        call_id = self.call_id
        logger.info("call %s moved to another relay node; joining again", call_id)
        if await self._join(call_id, rejoin=True, only_current=True) != GONE:
            self._keep(call_id)

    async def _on_call_replaced(self, data: dict[str, Any]) -> None:
        async with self._lock:
            if data.get("call_id") == self.call_id:
                logger.warning("another document camera took over call %s", self.call_id)
                await self._drop_call(leave=False)

    # -- joining

    async def _join(self, call_id: int, *, rejoin: bool = False, only_current: bool = False
                    ) -> str:
        """Join `call_id` (again with `rejoin`: a fresh relay session for the same call).
        `only_current`: only if it is still the camera's call (not ended or replaced
        meanwhile). Returns JOINED, RETRY or GONE."""
        async with self._lock:
            if self._stopping or (only_current and self.call_id != call_id):
                return GONE
            if self.call_id == call_id and self.publisher is not None and not rejoin:
                return JOINED
            stale: list[Any] = []
            again = self.call_id == call_id
            if again:
                # The same call again: keep the old media up until the relay has replaced the
                # session. Closing it first would tell the relay that we left, and a late
                # "participant gone" could then mark the new session gone at the server.
                stale = [self.publisher, self.channel]
                self.publisher = self.channel = None
            else:
                await self._drop_call(leave=self.call_id is not None)  # another call: leave it
                self.call_id = call_id
                self.relay_epoch = 0
            self.joined.clear()
            try:
                ack = await self._call("call:join",
                                       {"call_id": call_id, "device": "document_camera"})
            except AgentError as exc:
                logger.warning("call:join %s refused: %s", call_id, exc)
                if not exc.transient:
                    await self._drop_call(leave=False)
                    return GONE
                return RETRY
            finally:
                for item in stale:
                    if isinstance(item, DocumentPublisher):
                        await item.close(keep_track=True)
                    elif item is not None:
                        await item.close()
            if self._camera is None:
                self._camera = SharedTrack(DocumentTrack(
                    self.camera_source, size=self.options.size,
                    controller=RateController(self.options.policy), on_notice=self._on_notice))
            publisher: DocumentPublisher | None = None

            def on_failure(reason: str) -> None:
                self._on_media_failure(publisher, reason)

            publisher = DocumentPublisher(
                self.source, ice_servers=list(ack.get("ice_servers") or []),
                host_addresses=self.options.host_addresses, shared=self._camera,
                on_failure=on_failure, silence_timeout=self.options.media_silence,
                disconnected_grace=self.options.disconnected_grace,
                connect_timeout=self.options.connect_timeout)
            self.publisher = publisher
            self.participant_id = str(ack.get("participant_id"))
            if isinstance(ack.get("relay_epoch"), int):
                self.relay_epoch = max(self.relay_epoch, int(ack["relay_epoch"]))
            try:
                sdp = await publisher.handle_offer(ack["offer"])
                await self._call("call:answer", {"call_id": call_id, "sdp": sdp})
            except Exception as exc:
                logger.warning("answering the offer of call %s failed: %s", call_id, exc)
                if isinstance(exc, AgentError) and not exc.transient:
                    await self._drop_call(leave=True)
                    return GONE
                self.publisher = None
                await publisher.close(keep_track=True)
                return RETRY
            if again:
                self.rejoins += 1
            logger.info("document camera %s call %s as %s", "rejoined" if again else "joined",
                        call_id, self.participant_id)
            self.joined.set()
            self._spawn(self._check_camera(call_id))
            return JOINED

    async def _check_camera(self, call_id: int) -> None:
        """Camera guidance: once the track has a camera frame, tell the clerk when this
        camera's resolution cannot carry the office's target (document_camera/guidance.py)."""
        from document_camera.guidance import check_camera, parse_target

        camera = self._camera
        for _ in range(100):  # the first frame comes within a frame interval or two
            raw = camera.track.last_raw if camera is not None else None
            if raw is not None:
                break
            await asyncio.sleep(0.1)
        else:
            return
        height, width = raw.shape[:2]
        self.camera_size = (width, height)
        notice = check_camera((width, height), parse_target(self.options.camera_target))
        if notice is None or self.call_id != call_id:
            return
        self._on_notice(notice)
        try:
            await self._call("document_camera:notice", {
                "call_id": call_id, "code": str(notice.code), "detail": notice.detail})
        except Exception as exc:  # the call goes on; the log has the warning
            logger.warning("telling the clerk about the camera failed: %s", exc)

    def _on_media_failure(self, publisher: DocumentPublisher | None, reason: str) -> None:
        """A RelayPeerClient gave up on its session (called once per session)."""
        if publisher is None or publisher is not self.publisher or self.call_id is None:
            return  # an old session, closed or replaced already
        logger.warning("document camera: the relay session of call %s failed (%s); "
                       "joining again", self.call_id, reason)
        self.media_failures.append(reason)
        self.joined.clear()
        self._keep(self.call_id)

    def _keep(self, call_id: int) -> None:
        """Make sure `_keep_joined(call_id)` runs."""
        if self._stopping:
            return
        if self._keeper is not None and not self._keeper.done():
            return  # it looks at the current session each time round
        if asyncio.get_running_loop().time() - self._recovered_at >= STABLE_AFTER:
            self._streak = 0
        self._keeper = asyncio.ensure_future(self._keep_joined(call_id))

    def _backoff(self) -> float:
        return float(min(self.options.rejoin_delay * 2 ** (self._streak - 1),
                         self.options.rejoin_delay_max))

    async def _keep_joined(self, call_id: int) -> None:
        """Until the session of `call_id` is connected: wait for it, or (when there is none or
        it failed) join again, at once the first time, then with backoff. Ends when the call
        is no longer the camera's, and when the socket is down (its reconnect joins again)."""
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping and self.call_id == call_id:
                publisher = self.publisher
                if publisher is not None and not publisher.client.failed:
                    if await publisher.client.wait_connected(self.options.connect_timeout + 1):
                        if self.publisher is publisher:
                            self._recovered_at = loop.time()
                            return
                    elif not publisher.client.failed:
                        publisher.client.fail("connect_timeout")
                    continue
                if self._streak:
                    delay = self._backoff()
                    logger.info("joining call %s again in %.0f s", call_id, delay)
                    await asyncio.sleep(delay)
                    if self.publisher is not publisher:
                        continue  # joined meanwhile (flow:sync after a reconnect)
                if self._stopping or self.call_id != call_id:
                    return
                if not self._socket_up():
                    logger.info("call %s: waiting for the connection to join again", call_id)
                    return  # _on_connect → _sync joins
                self._streak += 1
                if await self._join(call_id, rejoin=True, only_current=True) == GONE:
                    return
        except Exception:
            logger.exception("keeping the document camera in call %s failed", call_id)

    async def _drop_call(self, *, leave: bool) -> None:
        """Close this call's media; with `leave`, tell the server too. Caller holds the lock."""
        call_id, publisher, channel = self.call_id, self.publisher, self.channel
        camera = self._camera
        self.call_id = None
        self.publisher = None
        self.participant_id = None
        self.channel = None
        self._camera = None
        self._cancel_stitch()
        self._streak = 0
        self.joined.clear()
        keeper = self._keeper
        if keeper is not None and keeper is not asyncio.current_task():
            keeper.cancel()  # it waits (backoff, connecting) for a call that is not ours now
        if publisher is not None:
            await publisher.close()
        if camera is not None:
            camera.stop()
        if channel is not None:
            await channel.close()
        if leave and call_id is not None and self._socket_up():
            try:
                await self._call("call:leave", {"call_id": call_id})
            except AgentError as exc:
                logger.info("call:leave %s: %s", call_id, exc)

    def _on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)
        logger.warning("document camera: %s (%s)", notice.text("en"), notice.detail)

    def _socket_up(self) -> bool:
        """Connected (from the connect event on: `sio.connected` turns true only later)."""
        lost = self._connection_lost
        return lost is not None and not lost.done()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """An acknowledged event; AgentError on refusal, timeout or a lost connection (the
        ack of a call in flight then never comes: python-socketio drops its callbacks)."""
        import socketio

        lost = self._connection_lost
        if lost is None or lost.done():
            raise AgentError(event, {"code": "disconnected", "message": "not connected"})
        call = asyncio.ensure_future(self.sio.call(event, payload, timeout=15))
        try:
            await asyncio.wait({call, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not call.done():
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)
        if call.cancelled():
            raise AgentError(event, {"code": "disconnected", "message": "connection lost"})
        try:
            ack = call.result()
        except socketio.exceptions.TimeoutError as exc:
            raise AgentError(event, {"code": "timeout", "message": "no answer"}) from exc
        except socketio.exceptions.SocketIOError as exc:
            raise AgentError(event, {"code": "disconnected", "message": str(exc)}) from exc
        if not isinstance(ack, dict) or not ack.get("ok"):
            error = ack.get("error") if isinstance(ack, dict) else None
            raise AgentError(event, error or {"code": "internal", "message": repr(ack)})
        return ack


class AgentError(Exception):
    def __init__(self, event: str, error: dict[str, Any]) -> None:
        super().__init__(f"{event}: {error.get('code')}: {error.get('message')}")
        self.event = event
        self.error = error

    @property
    def transient(self) -> bool:
        """Worth trying again later (relay down, no connection, no answer)."""
        return str(self.error.get("code")) in TRANSIENT_CODES
