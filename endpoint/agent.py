"""The office's endpoint agent: publishes the document camera into the office's calls.

It logs in to the signaling server as the office's kiosk (socket.io `auth: {endpoint_id,
credential}`), learns of the office's current call (`flow:sync` after every connect, and the
`call:started` push), joins it as the kiosk's document camera (`call:join {call_id, device:
"document_camera"}`, participant `doccam-<endpoint_id>`), and answers the relay's offers: the
relay is always the offerer, and the agent attaches its document track to the offered
`document` transceiver (docs/signaling-events.md, docs/interfaces.md).

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
from media_relay.aiortc_client import RelayPeerClient

logger = logging.getLogger(__name__)

DOCUMENT_SOURCE = "document"
STILL_REQUEST_EVENT = "document_camera:still"


class DocumentPublisher:
    """One relay session publishing the document track (one per call)."""

    def __init__(
        self,
        source: FrameSource,
        *,
        ice_servers: list[dict[str, Any]],
        host_addresses: list[str] | None = None,
        size: tuple[int, int] = DEFAULT_SIZE,
        policy: RatePolicy | None = None,
        on_notice: Callable[[Notice], None] | None = None,
    ) -> None:
        self.source = source
        self.controller = RateController(policy)
        self.track = DocumentTrack(
            source, size=size, controller=self.controller, on_notice=on_notice)
        self.encoder = DetailVp8Encoder(self.controller)
        self.client = RelayPeerClient(
            {DOCUMENT_SOURCE: self.track}, ice_servers=ice_servers,
            host_addresses=host_addresses)

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
        track: MediaStreamTrack = self.track
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

    async def close(self) -> None:
        await self.client.close()
        self.track.stop()


@dataclass
class AgentOptions:
    server: str
    endpoint_id: int
    credential: str
    host_addresses: list[str] | None = None
    size: tuple[int, int] = DEFAULT_SIZE
    policy: RatePolicy = field(default_factory=RatePolicy)
    # Where stills go. None: into the current call through the encrypted document channel.
    still_sink: StillSink | None = None


class EndpointAgent:
    """Keeps the document camera in the office's current call, across calls and reconnects."""

    def __init__(self, options: AgentOptions, source: FrameSource) -> None:
        import aiohttp
        import socketio

        self.options = options
        self.source = source
        # Our own HTTP session, so that it is closed even when the first connect fails.
        # (Create the agent inside the running event loop.)
        self._http = aiohttp.ClientSession()
        self.sio = socketio.AsyncClient(reconnection=True, reconnection_delay_max=10,
                                        http_session=self._http, handle_sigint=False)
        self.call_id: int | None = None
        self.participant_id: str | None = None
        self.publisher: DocumentPublisher | None = None
        self.notices: list[Notice] = []
        self.joined = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Future[None]] = set()
        self.sio.on("connect", self._on_connect)
        self.sio.on("call:started", self._on_call_started)
        self.sio.on("call:offer", self._on_call_offer)
        self.sio.on("call:ended", self._on_call_ended)
        self.sio.on("call:replaced", self._on_call_replaced)
        # A still asked for by the clerk or the expert (a server push, when the server has it).
        self.sio.on(STILL_REQUEST_EVENT, self._on_still_request)
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
        async with self._lock:
            await self._drop_call(leave=True)
        await self.sio.shutdown()  # disconnects, or stops reconnection attempts
        await self._http.close()
        self.source.close()
        self._stopped.set()

    async def take_still(self, image_format: str = "png") -> Still | None:
        """A full-resolution still of the page now, to the configured sink or into the call.

        Returns None (and logs why) when there is no call, no frame yet or nowhere to send.
        """
        publisher = self.publisher
        if publisher is None:
            logger.warning("no still: the document camera is not in a call")
            return None
        sink = self.options.still_sink
        if sink is None:
            sink = await self._channel_sink()
        if sink is None:
            return None
        try:
            return await publisher.take_still(sink, image_format)
        except Exception:  # the channel's errors: the clerk may retry, the call goes on
            logger.exception("the still could not be delivered")
            return None

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

    # -- socket.io events

    async def _on_connect(self) -> None:
        logger.info("connected to %s as endpoint %s; waiting for the office's call",
                    self.options.server, self.options.endpoint_id)
        # After every connect and reconnect: what is the office's call now?
        # (Not awaited here: a socket.io handler must return before acks can arrive.)
        task = asyncio.ensure_future(self._sync())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sync(self) -> None:
        try:
            ack = await self._call("flow:sync", {})
        except AgentError as exc:
            logger.warning("flow:sync refused: %s", exc)
            return
        call = ack.get("call")
        if call and call.get("status") == "active":
            # After a reconnect the server routes offers to the new socket only once it has
            # joined again: join even if the media is still up (the relay then replaces the
            # old session; subscribers' streams continue).
            await self._join(int(call["id"]), rejoin=True)
        else:
            async with self._lock:
                await self._drop_call(leave=False)  # the call ended while we were away

    async def _on_call_started(self, data: dict[str, Any]) -> None:
        call = data.get("call") or {}
        if "id" in call:
            await self._join(int(call["id"]))

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

    async def _on_call_replaced(self, data: dict[str, Any]) -> None:
        async with self._lock:
            if data.get("call_id") == self.call_id:
                logger.warning("another document camera took over call %s", self.call_id)
                await self._drop_call(leave=False)

    # -- joining

    async def _join(self, call_id: int, *, rejoin: bool = False) -> None:
        async with self._lock:
            if self.call_id == call_id and self.publisher is not None and not rejoin:
                return
            stale: list[Any] = []
            if self.call_id == call_id:
                # The same call again: keep the old media up until the relay has replaced the
                # session. Closing it first would tell the relay that we left, and a late
                # "participant gone" could then mark the new session gone at the server.
                stale = [self.publisher, self.channel]
                self.publisher = self.channel = None
            else:
                await self._drop_call(leave=self.call_id is not None)  # another call: leave it
            try:
                ack = await self._call("call:join",
                                       {"call_id": call_id, "device": "document_camera"})
            except AgentError as exc:
                logger.warning("call:join %s refused: %s", call_id, exc)
                self.call_id = self.participant_id = None
                self.joined.clear()
                return
            finally:
                for item in stale:
                    if item is not None:
                        await item.close()
            publisher = DocumentPublisher(
                self.source, ice_servers=list(ack.get("ice_servers") or []),
                host_addresses=self.options.host_addresses, size=self.options.size,
                policy=self.options.policy, on_notice=self._on_notice)
            self.publisher = publisher
            self.call_id = call_id
            self.participant_id = str(ack.get("participant_id"))
            sdp = await publisher.handle_offer(ack["offer"])
            try:
                await self._call("call:answer", {"call_id": call_id, "sdp": sdp})
            except AgentError as exc:
                logger.warning("call:answer refused: %s", exc)
                await self._drop_call(leave=True)
                return
            logger.info("document camera joined call %s as %s", call_id, self.participant_id)
            self.joined.set()

    async def _drop_call(self, *, leave: bool) -> None:
        """Close this call's media; with `leave`, tell the server too. Caller holds the lock."""
        call_id, publisher, channel = self.call_id, self.publisher, self.channel
        self.call_id = None
        self.publisher = None
        self.participant_id = None
        self.channel = None
        self.joined.clear()
        if publisher is not None:
            await publisher.close()
        if channel is not None:
            await channel.close()
        if leave and call_id is not None and self.sio.connected:
            try:
                await self._call("call:leave", {"call_id": call_id})
            except AgentError as exc:
                logger.info("call:leave %s: %s", call_id, exc)

    def _on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)
        logger.warning("document camera: %s (%s)", notice.text("en"), notice.detail)

    async def _call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        ack = await self.sio.call(event, payload, timeout=15)
        if not isinstance(ack, dict) or not ack.get("ok"):
            error = ack.get("error") if isinstance(ack, dict) else None
            raise AgentError(event, error or {"code": "internal", "message": repr(ack)})
        return ack


class AgentError(Exception):
    def __init__(self, event: str, error: dict[str, Any]) -> None:
        super().__init__(f"{event}: {error.get('code')}: {error.get('message')}")
        self.event = event
        self.error = error
