"""Every place the relay reaches into aiortc 1.16 / aioice 0.13 internals, in one module.

aiortc has no raw-RTP API (aiortc #627, #449), so the relay:

* gathers its own ICE host candidates (`Connection.get_component_candidates` replaced per
  connection) to bind the configured listen address and port range and announce the
  configured addresses — aioice leaves 127.0.0.1 out;
* receives SRTP straight from the UDP socket: its `StunProtocol` subclass hands datagrams
  whose first byte says RTP/RTCP (RFC 7983 §7: 128–191) to the relay, which unprotects them
  with the DTLS transport's `_rx_srtp` session, bypassing aioice's queue, the DTLS receive
  task, `RtpPacket.parse`, the jitter buffer and the decoder;
* sends synchronously: the session's `_srtp` context (libsrtp's srtp_t, reached through
  pylibsrtp's cffi binding) goes to `media_relay.fastpath.Link`, which protects into a buffer
  of its own and `sendto`s on (a duplicate of) the nominated pair's UDP socket, in C — no
  copies, no pylibsrtp wrappers, no asyncio transport; pylibsrtp's own path remains the
  fallback (not connected yet, or a pair that is not plain UDP);
* drops the Sender Reports aiortc's idle senders emit (all zeros) — the relay writes its own.

tests/media_relay/test_aiortc_internals.py asserts each of these still exists, so an aiortc
upgrade fails loudly rather than silently.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import random
import socket
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from media_relay.fastpath import Link, Receiver, srtp_context, unprotect

logger = logging.getLogger(__name__)

RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
SEND_BUFFER_BYTES = 4 * 1024 * 1024

MediaHandler = Callable[[bytes], None]


class RelayStunProtocol(StunProtocol):
    """aioice's UDP protocol, with SRTP/SRTCP taken off the fast lane to `media_handler`."""

    media_handler: MediaHandler | None = None

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        handler = self.media_handler
        if handler is not None and isinstance(data, bytes) and len(data) > 1:
            first = data[0]
            if 127 < first < 192:
                handler(data)
                return
        super().datagram_received(data, addr)


class SilentTrack(MediaStreamTrack):
    """A track that never yields: keeps an aiortc sender's RTP task parked at zero cost.

    Without a track the sender polls every 20 ms; the relay sends on the sender's SSRC itself.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        return await self._never

    def stop(self) -> None:
        if not self._never.done():
            self._never.cancel()
        super().stop()


def _bind_host(listen_address: str, announced: str) -> str:
    """The address to bind for an announced one; "" binds the announced address itself."""
    if listen_address == "":
        return announced
    if listen_address not in ("0.0.0.0", "::"):
        return listen_address
    return "::" if ipaddress.ip_address(announced).version == 6 else "0.0.0.0"


async def _bind_udp(
    connection: Connection, host: str, port_min: int, port_max: int
) -> tuple[asyncio.DatagramTransport, RelayStunProtocol]:
    loop = asyncio.get_running_loop()
    if port_min == 0:
        ports = [0]
    else:
        ports = list(range(port_min, port_max + 1))
        start = random.randrange(len(ports))
        ports = ports[start:] + ports[:start]
    last_error: OSError | None = None
    for port in ports:
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: RelayStunProtocol(connection), local_addr=(host, port)
            )
        except OSError as exc:
            last_error = exc
            continue
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # key frames arrive as bursts of dozens of packets
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        return transport, protocol
    raise OSError(f"no free UDP port on {host} in {port_min}-{port_max}: {last_error}")


def install_host_candidates(
    pc: RTCPeerConnection,
    listen_address: str,
    announced_addresses: list[str],
    port_min: int,
    port_max: int,
) -> list[RelayStunProtocol]:
    """Replace candidate gathering of every ICE connection of `pc` not yet gathered.

    Returns a list that fills with the relay's UDP protocols as gathering happens.
    """
    protocols: list[RelayStunProtocol] = []
    for transceiver in pc.getTransceivers():
        gatherer = transceiver.sender.transport.transport.iceGatherer
        connection: Connection = gatherer._connection
        if getattr(connection, "_relay_gathering", False):
            continue

        async def gather(
            component: int,
            addresses: list[str],
            timeout: int = 5,  # noqa: ASYNC109 - aioice's signature
            connection: Connection = connection,
        ) -> list[Candidate]:
            candidates: list[Candidate] = []
            for announced in announced_addresses or addresses:
                host = _bind_host(listen_address, announced) if announced_addresses else announced
                transport, protocol = await _bind_udp(connection, host, port_min, port_max)
                port = transport.get_extra_info("sockname")[1]
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", announced),
                    component=component,
                    transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=announced,
                    port=port,
                    type="host",
                )
                candidates.append(protocol.local_candidate)
                connection._protocols.append(protocol)
                protocols.append(protocol)
            return candidates

        connection.get_component_candidates = gather  # type: ignore[method-assign]
        connection._relay_gathering = True  # type: ignore[attr-defined]
    return protocols


def dtls_transport(pc: RTCPeerConnection) -> RTCDtlsTransport | None:
    """The one (max-bundle) DTLS transport of `pc`, once a transceiver exists."""
    for transceiver in pc.getTransceivers():
        return transceiver.sender.transport
    return None


# libsrtp works in place: room for the largest datagram plus its authentication trailer.
_SRTP_BUFFER = 1600
_SRTP_TRAILER = 144  # SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN, as pylibsrtp reserves


class SrtpLink:
    """Synchronous SRTP send/receive on a connected aiortc DTLS transport."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self.connection: Connection = dtls.transport._connection
        # protect + sendto in C (media_relay/fastpath.py), shared by this participant's streams
        self.native = Link()
        # unprotect + parse + route + fanout in C, bound once the DTLS handshake keyed SRTP
        self.receiver = Receiver()
        self._send_errors = 0  # on the Python paths; the native link counts its own
        self.unprotect_errors = 0
        self._pending: set[asyncio.Future[None]] = set()
        self._pair: Any = None
        self._socket: socket.socket | None = None
        self._drop_idle_sender_reports()

    def _drop_idle_sender_reports(self) -> None:
        # RFC 3550 §6.4.1 says an SR carries the sender's NTP↔RTP mapping; aiortc's senders
        # with no media write zeros there, which breaks lip sync in the subscriber. The relay
        # writes the real ones through send_rtcp, so aiortc's are dropped here.
        original = self.dtls._send_rtp

        async def send_rtp(data: bytes) -> None:
            if len(data) > 1 and data[1] == 200:
                return
            await original(data)

        self.dtls._send_rtp = send_rtp  # type: ignore[method-assign]

    @property
    def ready(self) -> bool:
        return self.dtls._tx_srtp is not None and bool(self.connection._nominated)

    def unprotect_rtp(self, data: bytes) -> bytes | None:
        """Verify and decrypt one SRTP packet (until `receiver` is bound: the first one)."""
        plain = unprotect(srtp_context(self.dtls._rx_srtp), data)
        if plain is None:
            self.unprotect_errors += 1
        return plain

    def bind_receiver(self, tracks: dict[int, Any]) -> bool:
        """Bind the receive path to the DTLS transport's SRTP receive session and the
        participant's tracks by SSRC; False while there is no session yet."""
        session = self.dtls._rx_srtp
        if session is None:
            return False
        self.receiver.bind(srtp_context(session), session, tracks)
        return True

    def unprotect_rtcp(self, data: bytes) -> bytes | None:
        try:
            return self.dtls._rx_srtp.unprotect_rtcp(data)
        except (pylibsrtp.Error, ValueError, TypeError, AttributeError):
            self.unprotect_errors += 1
            return None

    def send_rtp(self, data: bytes | bytearray) -> None:
        """Protect and send one RTP packet; failures are counted, never raised."""
        if self.connection._nominated.get(1) is not self._pair:
            self.bind()
        if self.native.send(data) >= 0:
            return
        # not a plain UDP pair (TURN), or not connected: pylibsrtp and aioice's own path
        session = self.dtls._tx_srtp
        if session is None or len(data) > _SRTP_BUFFER - _SRTP_TRAILER:
            self._send_errors += 1
            return
        try:
            self._send(session.protect(bytes(data)))
        except (pylibsrtp.Error, ValueError, OSError):
            self._send_errors += 1

    def bind(self) -> bool:
        """Bind the native link to the nominated pair's socket once it is there (and again if
        the pair changed); True when `fanout` can send on it."""
        pair = self.connection._nominated.get(1)
        if pair is self._pair and self.native.bound:
            return True
        self.close_socket()
        session = self.dtls._tx_srtp
        if pair is None or session is None:
            return False
        self._pair = pair
        transport = getattr(pair.protocol, "transport", None)
        raw = transport.get_extra_info("socket") if transport is not None else None
        if not isinstance(pair.protocol, StunProtocol) or raw is None:
            return False  # e.g. a TURN allocation: the slower path of send_rtp only
        self._socket = socket.socket(raw.family, raw.type, fileno=os.dup(raw.fileno()))
        self._socket.setblocking(False)
        self.native.bind(srtp_context(session), session, self._socket, pair.remote_addr)
        return True

    def close_socket(self) -> None:
        self.native.unbind()  # before the fd is closed: C must never send on a reused number
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._pair = None

    @property
    def send_errors(self) -> int:
        return self._send_errors + int(self.native.send_errors)

    def send_rtcp(self, data: bytes) -> None:
        """Protect (SRTCP) and send one RTCP packet: in C on the nominated UDP pair (as RTP),
        else through pylibsrtp and aioice; failures are counted, never raised."""
        if self.connection._nominated.get(1) is not self._pair:
            self.bind()
        if self.native.send_rtcp(data) >= 0:
            return
        try:
            self._send(self.dtls._tx_srtp.protect_rtcp(data))
        except (pylibsrtp.Error, ValueError, AttributeError, OSError):
            self._send_errors += 1

    def _send(self, data: bytes) -> None:
        pair = self.connection._nominated.get(1)
        if pair is None:
            self._send_errors += 1
            return
        protocol = pair.protocol
        transport = getattr(protocol, "transport", None)
        if isinstance(protocol, StunProtocol) and transport is not None:
            transport.sendto(data, pair.remote_addr)
        else:  # e.g. a TURN allocation: aioice's own (async) path
            task = asyncio.ensure_future(protocol.send_data(data, pair.remote_addr))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)


# -- the client side: an aiortc publisher following a codec switch (codecs.converge)

# aiortc's RTCRtpSender starts its RTP loop once, with the first negotiated codec, and never
# looks at a later answer; the relay may narrow a publisher's codecs (an H.264-only
# subscriber joined). A browser switches; an aiortc publisher must be told to.


async def follow_send_codec(pc: RTCPeerConnection, sequence_jump: int = 0) -> int:
    """Restart each running sender whose negotiated codec (its transceiver's first) is not the
    one its RTP loop encodes with, carrying on its sequence numbers and timestamp origin (its
    own SRTP context refuses to protect an index it has passed). `sequence_jump` skips ahead,
    as some publishers do at a switch (tests). Returns how many senders were restarted."""
    from aiortc.codecs import is_rtx

    restarted = 0
    for transceiver in pc.getTransceivers():
        sender: Any = transceiver.sender
        task = getattr(sender, "_RTCRtpSender__rtp_task", None)
        codecs = getattr(transceiver, "_codecs", None)
        if task is None or task.done() or not codecs:
            continue
        frame = task.get_coro().cr_frame
        running = frame.f_locals.get("codec") if frame is not None else None
        wanted = codecs[0]
        if running is None or running.payloadType == wanted.payloadType:
            continue
        carry_on = (
            (frame.f_locals["sequence_number"] + sequence_jump) & 0xFFFF,
            frame.f_locals["timestamp_origin"],
        )
        track = sender.track
        sender.replaceTrack(None)  # the cancelled loop stops the track it holds: hold none
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # it also drops the old encoder
        sender._RTCRtpSender__rtp_exited.clear()
        sender._RTCRtpSender__rtx_payload_type = next(
            (
                c.payloadType
                for c in codecs
                if is_rtx(c) and c.parameters.get("apt") == wanted.payloadType
            ),
            None,
        )
        sender.replaceTrack(track)
        sender._RTCRtpSender__rtp_task = _start_rtp_loop(sender, wanted, *carry_on)
        restarted += 1
    return restarted


def _start_rtp_loop(sender: Any, codec: Any, sequence_number: int, timestamp_origin: int) -> Any:
    """aiortc's RTP loop, starting at the given sequence number and timestamp origin: its first
    step draws both from these two module functions before any await, and call_soon runs the
    restoring callback right after that step (FIFO)."""
    from aiortc import rtcrtpsender

    saved = (rtcrtpsender.random_sequence_number, rtcrtpsender.random32)
    rtcrtpsender.random_sequence_number = lambda: sequence_number
    rtcrtpsender.random32 = lambda: timestamp_origin
    task = asyncio.ensure_future(sender._run_rtp(codec))

    def restore() -> None:
        rtcrtpsender.random_sequence_number, rtcrtpsender.random32 = saved

    asyncio.get_running_loop().call_soon(restore)
    return task
