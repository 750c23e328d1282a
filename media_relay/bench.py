"""`etapalvelu bench relay`: the shipped relay service against a direct path and against Janus.

Processes:

* the relay under test: `etapalvelu relay`, the service a deployment runs (its process, its
  uvloop, its settings), started as a subprocess on loopback with a generated control secret
  and no Redis (media_relay/bench_service.py), driven through `RemoteRelay` over its
  WebSocket control API; with `--compare janus`, Debian's Janus (videoroom plugin) under the
  same load in the same run (media_relay/bench_janus.py), runs interleaved; with
  `--compare naive`, aiortc's MediaRelay with re-encoding senders (in-process, as before);
* a driver process that makes the control calls (join, answer; Janus's HTTP API);
* one publisher that behaves like a browser: Opus-sized audio at 50 packets/s sent at once,
  and a pre-encoded VP8 clip (encoded once up front: no encoder in the load generator) paced
  as Chromium's pacer paces (packets leave in 5 ms intervals at 2.5 × the target bitrate, so
  a frame's packets spread over a few ms), through its DTLS-SRTP session; it numbers its
  packets with transport-wide-cc when the relay offers it;
* N subscribers, each reading its sockets as a receiver does: woken by the event loop for
  every datagram (no polling), with kernel receive timestamps (SO_TIMESTAMPNS); each also has
  a plain UDP socket for the direct path.

Wire delay = kernel receive time at the subscriber − the publisher's clock just before
`sendto` (both CLOCK_REALTIME). For every packet the publisher also sends a datagram of the
same size straight to each subscriber (the peer-to-peer baseline, same moment, same size);
the added latency is the per-packet difference of the two. Delivered packets are counted at
the subscribers. CPU per packet = the relay process's CPU time (all threads, schedstat) over
the measured window / the packets the subscribers received.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

FPS = 30
VIDEO_BITRATE = 800_000
PACING_FACTOR = 2.5  # Chromium's pacer: 2.5 × the target bitrate ...
PACING_INTERVAL = 0.005  # ... in 5 ms process intervals
AUDIO_INTERVAL = 0.02  # Opus, 20 ms frames: 50 packets/s
AUDIO_PAYLOAD = 120
MAX_PAYLOAD = 1100
TAIL = struct.Struct("!II")  # packet id, magic
MAGIC = 0x45544150
ROOM = "bench"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
DESIGNS = {
    "relay": "etapalvelu relay (the shipped service)",
    "janus": "Janus videoroom (Debian)",
    "naive": "aiortc MediaRelay, decode + re-encode per subscriber",
}
SWEEP = (1, 5, 10)


# ----------------------------------------------------------------------------- media


def encode_clip(
    seconds: float = 2.0, width: int = 640, height: int = 360
) -> list[tuple[bytes, bool]]:
    """A VP8 clip of a moving pattern, encoded once: [(frame bytes, is key frame)]."""
    import av
    import numpy as np

    codec = av.CodecContext.create("libvpx", "w")
    codec.width = width
    codec.height = height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = 800_000
    codec.framerate = FPS  # type: ignore[assignment]
    codec.time_base = __import__("fractions").Fraction(1, FPS)
    codec.gop_size = int(seconds * FPS)
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    frames: list[tuple[bytes, bool]] = []
    yy, xx = np.mgrid[0:height, 0:width]
    for index in range(int(seconds * FPS)):
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0] = (xx + 4 * index) % 256
        image[..., 1] = (yy + 2 * index) % 256
        image[..., 2] = ((xx // 40 + yy // 40 + index // 5) % 2) * 200
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = index
        for packet in codec.encode(frame):
            frames.append((bytes(packet), bool(packet.is_keyframe)))
    for packet in codec.encode(None):
        frames.append((bytes(packet), bool(packet.is_keyframe)))
    return frames


def packetize_vp8(frame: bytes) -> list[bytes]:
    """RFC 7741 payloads: a 1-byte descriptor (S on the first packet, partition 0)."""
    chunks = [frame[i : i + MAX_PAYLOAD] for i in range(0, len(frame), MAX_PAYLOAD)] or [b""]
    return [(b"\x10" if i == 0 else b"\x00") + chunk for i, chunk in enumerate(chunks)]


def rtp_packet(
    seq: int,
    ts: int,
    ssrc: int,
    payload_type: int,
    marker: bool,
    payload: bytes,
    transport_seq: int | None = None,
    extension_id: int = 0,
) -> bytes:
    """Plain RTP; with `transport_seq`, a one-byte header extension element carrying it
    (transport-wide-cc at `extension_id`)."""
    second = payload_type | (0x80 if marker else 0)
    if transport_seq is None:
        return struct.pack("!BBHII", 0x80, second, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload
    header = struct.pack("!BBHII", 0x90, second, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    element = struct.pack("!HHBHx", 0xBEDE, 1, (extension_id << 4) | 1, transport_seq & 0xFFFF)
    return header + element + payload


def keep_transport_cc(answer: str) -> str:
    """The answer of a publisher that keeps the relay's offer of transport-wide-cc."""
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
    from aiortc.sdp import SessionDescription

    from media_relay.codecs import TRANSPORT_CC_ID
    from media_relay.transport_cc import TRANSPORT_CC_URI

    description = SessionDescription.parse(answer)
    for media in description.media:
        if media.direction in ("sendonly", "sendrecv"):
            media.rtp.headerExtensions.append(
                RTCRtpHeaderExtensionParameters(id=TRANSPORT_CC_ID, uri=TRANSPORT_CC_URI)
            )
    return str(description)


# ----------------------------------------------------------------------------- helpers


class Placement(NamedTuple):
    """Which CPUs the relay under test and the load generator (publisher, subscribers,
    driver) may run on; None: the kernel's choice among all."""

    relay: set[int] | None
    load: set[int] | None
    cpus: list[int]

    def describe(self) -> str:
        if self.relay is None or self.load is None:
            return (
                f"unpinned: relay and load generator on any of CPUs {self.cpus} (kernel's choice)"
            )
        return (
            f"pinned: relay on CPU {sorted(self.relay)}, load generator on CPU {sorted(self.load)}"
        )


def place(pin_cpus: bool) -> Placement:
    """Unpinned by default, as a relay node runs unless its operator pins it; `--pin` gives
    the relay the last CPU to itself and the load generator the others."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin_cpus or len(cpus) < 2:
        return Placement(None, None, cpus)
    return Placement({cpus[-1]}, set(cpus[:-1]), cpus)


def pin(cpus: set[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "max": round(ordered[-1], 1)}


async def call(conn: Connection, request: dict[str, Any]) -> Any:
    """A request over a pipe, without blocking the event loop."""
    conn.send(request)
    reply = await receive(conn)
    if isinstance(reply, dict) and "error" in reply:
        raise RuntimeError(reply["error"])
    return reply


async def receive(conn: Connection) -> Any:
    """The next message of a pipe, waiting on its fd in the loop (no executor threads)."""
    if not conn.poll():
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = conn.fileno()

        def on_readable() -> None:
            loop.remove_reader(fd)
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, on_readable)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
    return conn.recv()


async def wait_connected(pc: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while pc.connectionState != "connected":
        if time.monotonic() > deadline or pc.connectionState in ("failed", "closed"):
            raise RuntimeError(f"connection state {pc.connectionState}")
        await asyncio.sleep(0.02)


def expect(conn: Connection, seconds: float = 120.0) -> Any:
    """The next message from a child process; a hung child fails the run instead of hanging it."""
    if not conn.poll(seconds):
        raise RuntimeError("a benchmark process stopped answering")
    reply = conn.recv()
    if isinstance(reply, dict) and "error" in reply:
        raise RuntimeError(reply["error"])
    return reply


def _child(main: Callable[[], Any], report: Connection | None) -> None:
    """Run a child's main; its failure goes to the coordinator, not to a silent exit."""
    try:
        main()
    except BaseException as exc:  # reported, then the child ends
        if report is not None:
            with contextlib.suppress(Exception):
                report.send({"error": f"{type(exc).__name__}: {exc}"})
        os._exit(1)
    os._exit(0)


# ----------------------------------------------------------------------------- driver


class Server(NamedTuple):
    """What the driver needs to reach the relay under test."""

    design: str
    url: str = ""
    secret: str = ""
    node_id: str = ""


def driver_process(server: Server, conns: list[Connection], cpus: set[int] | None) -> None:
    """The control side: joins and answers for the load processes, over pipes. For the naive
    design it is also the relay (in-process, on uvloop, as before)."""
    pin(cpus)
    if server.design == "naive":
        import uvloop

        _child(lambda: uvloop.run(_driver_main(server, conns)), conns[0])
    else:
        _child(lambda: asyncio.run(_driver_main(server, conns)), conns[0])


class _Quiet:
    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        return None

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        return None

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        return None


async def _driver_main(server: Server, conns: list[Connection]) -> None:
    backend: Any
    janus: Any = None
    handles: dict[str, int] = {}
    if server.design == "relay":
        from media_relay.bench_service import remote_relay

        backend = remote_relay(server.node_id, server.url, server.secret)
        backend.set_listener(_Quiet())
        await backend.start()
    elif server.design == "janus":
        from media_relay.bench_janus import JanusVideoRoom

        janus = backend = JanusVideoRoom(server.url)
        await janus.start()
    else:
        from media_relay.control import RelayConfig
        from media_relay.naive_relay import NaiveRelay

        backend = NaiveRelay(
            RelayConfig(listen_address="127.0.0.1", announced_addresses=["127.0.0.1"])
        )
        await backend.start()
    gc.freeze()
    stop = asyncio.Event()

    async def serve(conn: Connection) -> None:
        while not stop.is_set():
            try:
                request = await receive(conn)
            except EOFError:
                return
            op = request["op"]
            try:
                reply: Any = {"ok": True}
                if op == "join" and janus is not None:
                    handles[request["pid"]], sdp = await janus.subscribe()
                    reply = {"type": "offer", "sdp": sdp}
                elif op == "join":
                    reply = await backend.join(ROOM, request["pid"], request["publish"])
                elif op == "answer" and janus is not None:
                    await janus.start_subscriber(handles[request["pid"]], request["sdp"])
                elif op == "answer":
                    await backend.answer(ROOM, request["pid"], request["sdp"])
                elif op == "offer" and janus is not None:
                    reply = {"type": "answer", "sdp": await janus.publish(request["sdp"])}
                elif op == "stop":
                    stop.set()
                else:
                    reply = {"error": f"unknown op {op}"}
            except Exception as exc:  # the caller gets it
                reply = {"error": repr(exc)}
            conn.send(reply)

    tasks = [asyncio.ensure_future(serve(conn)) for conn in conns]
    await stop.wait()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(backend.stop(), 5)
    for task in tasks:
        task.cancel()


# ----------------------------------------------------------------------------- publisher


class Outgoing(NamedTuple):
    """One media stream of the publisher as negotiated."""

    ssrc: int
    payload_type: int


def _streams(pc: Any) -> dict[str, Outgoing]:
    streams: dict[str, Outgoing] = {}
    for transceiver in pc.getTransceivers():
        if transceiver.direction not in ("sendonly", "sendrecv") or not transceiver._codecs:
            continue
        codec = next(c for c in transceiver._codecs if c.name.lower() != "rtx")
        streams[transceiver.kind] = Outgoing(transceiver.sender._ssrc, codec.payloadType)
    return streams


def _offered_transport_cc(sdp: str) -> int | None:
    from media_relay.transport_cc import TRANSPORT_CC_URI

    for line in sdp.splitlines():
        if line.startswith("a=extmap:") and TRANSPORT_CC_URI in line:
            return int(line[len("a=extmap:") :].split()[0].split("/")[0])
    return None


def publisher_process(
    design: str,
    driver: Connection,
    control: Connection,
    clip: Any,
    cpus: set[int] | None,
    transport_cc: bool,
    host: str,
) -> None:
    pin(cpus)
    _child(
        lambda: asyncio.run(_publisher_main(design, driver, control, clip, transport_cc, host)),
        control,
    )


async def _connect_publisher(
    design: str, driver: Connection, transport_cc: bool, host: str
) -> tuple[Any, int | None]:
    """A connected publisher peer connection and the transport-cc extension ID to number
    packets with (None: not numbered)."""
    from aiortc import (
        MediaStreamTrack,
        RTCConfiguration,
        RTCPeerConnection,
        RTCSessionDescription,
    )

    from media_relay.aiortc_client import RelayPeerClient
    from media_relay.aiortc_hooks import SilentTrack, install_host_candidates

    if design == "janus":  # Janus expects the publisher to offer, as a browser does
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(SilentTrack("audio"), direction="sendonly")
        pc.addTransceiver(SilentTrack("video"), direction="sendonly")
        install_host_candidates(pc, host, [host], 0, 0)
        await pc.setLocalDescription(await pc.createOffer())
        reply = await call(
            driver, {"op": "offer", "pid": "publisher", "sdp": pc.localDescription.sdp}
        )
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        await wait_connected(pc)
        extension = _offered_transport_cc(reply["sdp"]) if transport_cc else None
        return pc, extension
    tracks: dict[str, MediaStreamTrack] = {"camera": SilentTrack("video")}
    if design == "relay":  # the naive relay carries one video source only
        tracks = {"audio": SilentTrack("audio"), **tracks}
    client = RelayPeerClient(tracks, ice_servers=[], host_addresses=[host])
    offer = await call(driver, {"op": "join", "pid": "publisher", "publish": list(tracks)})
    sdp = await client.handle_offer(offer)
    extension = _offered_transport_cc(offer["sdp"]) if transport_cc else None
    if extension is not None:
        sdp = keep_transport_cc(sdp)
    await call(driver, {"op": "answer", "pid": "publisher", "sdp": sdp})
    await wait_connected(client.pc)
    return client.pc, extension


async def _publisher_main(
    design: str,
    driver: Connection,
    control: Connection,
    clip: list[tuple[bytes, bool]],
    transport_cc: bool,
    host: str,
) -> None:
    from media_relay.aiortc_hooks import dtls_transport

    pc, extension = await _connect_publisher(design, driver, transport_cc, host)
    streams = _streams(pc)
    dtls = dtls_transport(pc)
    assert dtls is not None
    pair = dtls.transport._connection._nominated[1]
    relay_sock = pair.protocol.transport
    relay_addr = pair.remote_addr
    protect = dtls._tx_srtp.protect
    control.send({"ready": True, "streams": sorted(streams), "transport_cc": extension is not None})

    go = await receive(control)
    direct = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    direct.bind((host, 0))
    direct.setblocking(False)
    direct_addrs = [(host, port) for port in go["direct_ports"]]
    packetized = [packetize_vp8(frame) for frame, _key in clip]
    tagged = design != "naive"  # a forwarding relay keeps the payload: a tail can ride in it
    video = streams["video"]
    audio = streams.get("audio")

    relay_sent: dict[int, int] = {}
    direct_sent: dict[tuple[int, int], int] = {}
    frame_first: dict[int, int] = {}
    counters = {"video_seq": 1000, "audio_seq": 5000, "transport_seq": 0, "packet_id": 0}
    clock = time.time_ns

    def send(stream: Outgoing, seq: int, ts: int, marker: bool, payload: bytes) -> int:
        counters["packet_id"] += 1
        packet_id = counters["packet_id"]
        body = payload + TAIL.pack(packet_id, MAGIC) if tagged else payload
        number = None
        if extension is not None:
            number = counters["transport_seq"]
            counters["transport_seq"] += 1
        data = protect(
            rtp_packet(
                seq, ts, stream.ssrc, stream.payload_type, marker, body, number, extension or 0
            )
        )
        now = clock()
        relay_sock.sendto(data, relay_addr)
        relay_sent[packet_id] = now
        probe = TAIL.pack(packet_id, MAGIC).ljust(len(data), b"\0")
        for index, address in enumerate(direct_addrs):
            now = clock()
            direct.sendto(probe, address)
            direct_sent[(index, packet_id)] = now
        return packet_id

    # Chromium's pacer (IntervalBudget without underuse build-up): every interval the budget
    # is min(left, 0) + rate × elapsed; packets leave while it is positive. Audio is not paced.
    rate = PACING_FACTOR * VIDEO_BITRATE / 8
    queue: collections.deque[tuple[int, int, bool, bytes, int]] = collections.deque()
    start = time.monotonic() + 0.05
    end = start + go["seconds"]
    frame_index = 0
    audio_index = 0
    next_tick = start
    last_tick = start
    budget = 0.0
    while True:
        now = time.monotonic()
        if now >= end and not queue:
            break
        while audio is not None and now < end and start + audio_index * AUDIO_INTERVAL <= now:
            payload = bytes([audio_index & 0xFF]) * AUDIO_PAYLOAD
            send(audio, counters["audio_seq"], audio_index * 960, False, payload)
            counters["audio_seq"] += 1
            audio_index += 1
        while now < end and start + frame_index / FPS <= now:
            payloads = packetized[frame_index % len(packetized)]
            ts = frame_index * (90000 // FPS)
            for position, payload in enumerate(payloads):
                last = position == len(payloads) - 1
                queue.append(
                    (counters["video_seq"], ts, last, payload, frame_index if position == 0 else -1)
                )
                counters["video_seq"] += 1
            frame_index += 1
        if now >= next_tick:
            budget = min(budget, 0.0) + rate * (now - last_tick)
            last_tick = now
            while queue and budget > 0:
                seq, ts, marker, payload, first_of = queue.popleft()
                packet_id = send(video, seq, ts, marker, payload)
                budget -= len(payload) + 40
                if first_of >= 0:
                    frame_first[first_of] = packet_id
            next_tick += PACING_INTERVAL
        due = [next_tick]
        if now < end:
            due.append(start + frame_index / FPS)
            if audio is not None:
                due.append(start + audio_index * AUDIO_INTERVAL)
        delay = min(due) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    control.send({"relay_sent": relay_sent, "direct_sent": direct_sent, "frame_first": frame_first})
    await receive(control)
    await pc.close()


# ----------------------------------------------------------------------------- subscriber


def subscriber_process(
    design: str,
    name: str,
    driver: Connection,
    control: Connection,
    cpus: set[int] | None,
    host: str,
) -> None:
    pin(cpus)
    _child(lambda: asyncio.run(_subscriber_main(design, name, driver, control, host)), control)


def _read_timestamped(sock: socket.socket, handle: Callable[[bytes, int, Any], None]) -> None:
    """Drain a socket with recvmsg, passing each datagram with its kernel receive time (ns)."""
    space = socket.CMSG_SPACE(16)
    while True:
        try:
            data, ancillary, _flags, address = sock.recvmsg(2048, space)
        except (BlockingIOError, InterruptedError):
            return
        kernel_ns = 0
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= 16:
                seconds, nanos = struct.unpack("qq", value[:16])
                kernel_ns = seconds * 1_000_000_000 + nanos
        handle(data, kernel_ns, address)


async def _connect_subscriber(design: str, name: str, driver: Connection, host: str) -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from media_relay.aiortc_client import RelayPeerClient
    from media_relay.aiortc_hooks import install_host_candidates

    offer = await call(driver, {"op": "join", "pid": name, "publish": []})
    if design == "janus":
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        install_host_candidates(pc, host, [host], 0, 0)
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = pc.localDescription.sdp
    else:
        client = RelayPeerClient({}, ice_servers=[], host_addresses=[host])
        sdp = await client.handle_offer(offer)
        pc = client.pc
    await call(driver, {"op": "answer", "pid": name, "sdp": sdp})
    await wait_connected(pc)
    return pc


async def _subscriber_main(
    design: str, name: str, driver: Connection, control: Connection, host: str
) -> None:
    from media_relay.aiortc_hooks import dtls_transport

    pc = await _connect_subscriber(design, name, driver, host)
    dtls = dtls_transport(pc)
    assert dtls is not None
    pair = dtls.transport._connection._nominated[1]
    protocol = pair.protocol
    # asyncio hands out a TransportSocket wrapper without recvmsg: use the same fd directly
    wrapped = protocol.transport.get_extra_info("socket")
    relay_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, fileno=os.dup(wrapped.fileno()))
    relay_sock.setblocking(False)
    relay_sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    relay_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    unprotect = dtls._rx_srtp.unprotect
    loop: Any = asyncio.get_running_loop()

    relay_seen: dict[int, int] = {}  # packet id (or frame index) -> kernel ns
    direct_seen: dict[int, int] = {}
    state = {"measure": False, "received": 0}
    tagged = design != "naive"

    def on_relay(data: bytes, kernel_ns: int, address: Any) -> None:
        if len(data) < 12 or not 127 < data[0] < 192:
            protocol.datagram_received(data, address)  # STUN consent checks, DTLS
            return
        if 192 <= data[1] <= 223:
            return  # RTCP: sender reports
        if not state["measure"]:
            return
        try:
            plain = unprotect(data)
        except Exception:  # not ours to judge; it is simply not counted
            return
        state["received"] += 1
        if tagged:
            packet_id, magic = TAIL.unpack_from(plain, len(plain) - TAIL.size)
            if magic == MAGIC:
                relay_seen.setdefault(packet_id, kernel_ns)
        else:
            frame = struct.unpack_from("!I", plain, 4)[0] // (90000 // FPS)
            relay_seen.setdefault(frame, kernel_ns)

    def on_direct(data: bytes, kernel_ns: int, address: Any) -> None:
        if len(data) >= TAIL.size:
            packet_id, magic = TAIL.unpack_from(data, 0)
            if magic == MAGIC:
                direct_seen.setdefault(packet_id, kernel_ns)

    # Take the relay socket over from asyncio's datagram transport (recvmsg gives the kernel
    # timestamps) and read both sockets as a receiver does: woken by the loop per datagram.
    loop._remove_reader(wrapped.fileno())
    direct = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    direct.bind((host, 0))
    direct.setblocking(False)
    direct.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    direct.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    loop.add_reader(relay_sock.fileno(), _read_timestamped, relay_sock, on_relay)
    loop.add_reader(direct.fileno(), _read_timestamped, direct, on_direct)
    control.send({"ready": True, "direct_port": direct.getsockname()[1]})

    await receive(control)  # measurement starts
    state["measure"] = True
    control.send({"ok": True})
    await receive(control)  # measurement over
    _read_timestamped(relay_sock, on_relay)
    _read_timestamped(direct, on_direct)
    state["measure"] = False
    control.send(
        {"relay_seen": relay_seen, "direct_seen": direct_seen, "received": state["received"]}
    )
    await receive(control)
    loop.remove_reader(relay_sock.fileno())
    loop.remove_reader(direct.fileno())
    await pc.close()


# ----------------------------------------------------------------------------- coordinator


class Options(NamedTuple):
    seconds: float
    placement: Placement
    transport_cc: bool
    service_transport_cc: bool | None
    pure_python: bool
    janus_binary: str | None


def _start_server(design: str, options: Options) -> tuple[Any, Server]:
    """The relay under test as its own process: (handle with .pid and .stop(), Server)."""
    cpus = options.placement.relay

    def preexec() -> None:
        pin(cpus)

    if design == "relay":
        from media_relay.bench_service import RelayService

        extra = {"ETAPALVELU_RELAY_PURE_PYTHON": "1"} if options.pure_python else {}
        service = RelayService(preexec, options.service_transport_cc, extra)
        service.start()
        return service, Server("relay", service.url, service.secret, service.node_id)
    if design == "janus":
        from media_relay.bench_janus import JanusServer
        from media_relay.bench_service import NETNS_INTERFACE

        assert options.janus_binary is not None
        janus = JanusServer(options.janus_binary, NETNS_INTERFACE, preexec)
        janus.start()
        return janus, Server("janus", janus.url)
    return None, Server(design)


def client_host(design: str) -> str:
    """The address the publisher and subscribers use: Janus gathers only off loopback, so
    its clients use the private network's local address (same loopback device path)."""
    if design == "janus":
        from media_relay.bench_service import NETNS_ADDRESS

        return NETNS_ADDRESS
    return "127.0.0.1"


def run_design(design: str, subscribers: int, clip: Any, options: Options) -> dict[str, Any]:
    import multiprocessing

    from media_relay.bench_service import last_cpu, process_cpu_seconds

    context = multiprocessing.get_context("fork")
    placement = options.placement
    host = client_host(design)
    server, info = _start_server(design, options)
    processes: list[Any] = []
    driver_ends = [context.Pipe() for _ in range(subscribers + 2)]
    try:
        driver = context.Process(
            target=driver_process,
            args=(
                info,
                [pair[0] for pair in driver_ends],
                placement.relay if server is None else placement.load,
            ),
            daemon=True,
        )
        driver.start()
        processes.append(driver)
        relay_pid = server.pid if server is not None else driver.pid
        assert relay_pid is not None
        stop_conn = driver_ends[-1][1]

        pub_control, pub_child = context.Pipe()
        publisher = context.Process(
            target=publisher_process,
            args=(
                design,
                driver_ends[0][1],
                pub_child,
                clip,
                placement.load,
                options.transport_cc,
                host,
            ),
            daemon=True,
        )
        publisher.start()
        processes.append(publisher)
        pub_ready = expect(pub_control, 60)

        subs = []
        for index in range(subscribers):
            control, child = context.Pipe()
            process = context.Process(
                target=subscriber_process,
                args=(
                    design,
                    f"subscriber{index}",
                    driver_ends[index + 1][1],
                    child,
                    placement.load,
                    host,
                ),
                daemon=True,
            )
            process.start()
            processes.append(process)
            subs.append((control, expect(control, 60)))

        time.sleep(0.5)  # let the last negotiations and first key frame requests settle
        for control, _ in subs:
            control.send({"measure": True})
            expect(control)
        cpu_before = process_cpu_seconds(relay_pid)
        wall_before = time.monotonic()
        pub_control.send(
            {"seconds": options.seconds, "direct_ports": [r["direct_port"] for _, r in subs]}
        )
        published = expect(pub_control, options.seconds + 60)
        cpu_after = process_cpu_seconds(relay_pid)
        wall = time.monotonic() - wall_before
        relay_cpu_at_end = last_cpu(relay_pid)
        time.sleep(0.3)  # let the last packets arrive
        seen = []
        for control, _ in subs:
            control.send({"stop": True})
            seen.append(expect(control))
        result = summarize(design, published, seen)
        cpu = cpu_after - cpu_before
        received = sum(report["received"] for report in seen)
        result.update(
            {
                "design": DESIGNS[design],
                "subscribers": subscribers,
                "published_streams": pub_ready["streams"],
                "publisher_transport_cc": pub_ready["transport_cc"],
                "published_pps": round(len(published["relay_sent"]) / wall) if wall else 0,
                "received_packets": received,
                "received_pps": round(received / wall) if wall else 0,
                "relay_cpu_share": round(cpu / wall, 3) if wall else None,
                "cpu_us_per_packet": round(cpu * 1e6 / received, 1) if received else None,
                "relay_last_cpu": relay_cpu_at_end,
            }
        )
        for control, _ in subs:
            control.send({"exit": True})
        pub_control.send({"exit": True})
        stop_conn.send({"op": "stop"})
        return result
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=2)
        if server is not None:
            server.stop()


def summarize(design: str, published: dict[str, Any], seen: list[dict[str, Any]]) -> dict[str, Any]:
    relay_sent: dict[int, int] = published["relay_sent"]
    direct_sent: dict[tuple[int, int], int] = published["direct_sent"]
    frame_first: dict[int, int] = published["frame_first"]
    relay_path: list[float] = []
    direct_path: list[float] = []
    added: list[float] = []
    expected = 0
    delivered = 0
    for index, report in enumerate(seen):
        direct_seen: dict[int, int] = report["direct_seen"]
        direct_delay = {
            pid: (kernel - direct_sent[(index, pid)]) / 1000
            for pid, kernel in direct_seen.items()
            if (index, pid) in direct_sent and kernel
        }
        direct_path.extend(direct_delay.values())
        if design == "naive":  # re-encoded: matched per frame, timed by its first packet
            items = [
                (frame_first.get(frame), kernel) for frame, kernel in report["relay_seen"].items()
            ]
            expected += len(frame_first)
        else:
            items = list(report["relay_seen"].items())
            expected += len(relay_sent)
        for pid, kernel in items:
            if pid is None or pid not in relay_sent or not kernel:
                continue
            delivered += 1
            delay = (kernel - relay_sent[pid]) / 1000
            relay_path.append(delay)
            if pid in direct_delay:
                added.append(delay - direct_delay[pid])
    return {
        "added_latency_us": percentiles(added),
        "relay_path_us": percentiles(relay_path),
        "direct_path_us": percentiles(direct_path),
        "delivered_ratio": round(delivered / expected, 4) if expected else 0.0,
        "_added": added,
    }


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or ours != ours or theirs != theirs or theirs <= 0:
        return None
    return round(ours / theirs, 2)


def _pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures of several runs of one design at one N: latency over all their packets."""
    added = [value for run in runs for value in run["_added"]]
    cpu = [run["cpu_us_per_packet"] for run in runs if run.get("cpu_us_per_packet") is not None]
    return {
        "runs": len(runs),
        "added_latency_us": percentiles(added),
        "cpu_us_per_packet": round(sum(cpu) / len(cpu), 1) if cpu else None,
        "delivered_ratio": round(min(run["delivered_ratio"] for run in runs), 4),
        "received_packets": sum(run["received_packets"] for run in runs),
    }


def run(
    counts: list[int],
    seconds: float,
    compare: list[str],
    runs: int,
    pin_cpus: bool = False,
    pure_python: bool = False,
    transport_cc: bool = True,
    service_transport_cc: bool | None = None,
    janus_binary: str | None = None,
    main_count: int = 5,
    out: Any = sys.stdout,
) -> dict[str, Any]:
    from media_relay import fastpath  # same build and environment as the service's

    clip = encode_clip()
    placement = place(pin_cpus)
    options = Options(
        seconds, placement, transport_cc, service_transport_cc, pure_python, janus_binary
    )
    designs = ["relay", *[d for d in compare if d in ("janus", "naive")]]
    print(f"placement: {placement.describe()}", file=out, flush=True)
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for round_index in range(runs):
        for count in counts:
            figures: dict[str, dict[str, Any]] = {}
            for design in designs:  # interleaved: ours, janus, ... in every round
                result = run_design(design, count, clip, options)
                results.setdefault((design, count), []).append(result)
                figures[design] = result
                print(run_line(round_index + 1, design, result), file=out, flush=True)
            if "janus" in figures:
                ours, theirs = figures["relay"], figures["janus"]
                p50 = _ratio(ours["added_latency_us"]["p50"], theirs["added_latency_us"]["p50"])
                p99 = _ratio(ours["added_latency_us"]["p99"], theirs["added_latency_us"]["p99"])
                cpu = _ratio(ours["cpu_us_per_packet"], theirs["cpu_us_per_packet"])
                print(
                    f"  run {round_index + 1} N={count}: ours/janus added latency p50 {p50} "
                    f"p99 {p99}, CPU/packet {cpu}",
                    file=out,
                    flush=True,
                )
    per_n: dict[str, Any] = {}
    for count in counts:
        entry: dict[str, Any] = {}
        for design in designs:
            entry[design] = _pooled(results[(design, count)])
        if "janus" in entry:
            ours, theirs = entry["relay"], entry["janus"]
            entry["ratio"] = {
                "p50": _ratio(ours["added_latency_us"]["p50"], theirs["added_latency_us"]["p50"]),
                "p99": _ratio(ours["added_latency_us"]["p99"], theirs["added_latency_us"]["p99"]),
                "cpu_us_per_packet": _ratio(ours["cpu_us_per_packet"], theirs["cpu_us_per_packet"]),
            }
        per_n[str(count)] = entry
    main_n = str(main_count if main_count in counts else counts[0])
    main_entry = per_n[main_n]
    last_ours = results[("relay", int(main_n))][-1]
    summary: dict[str, Any] = {
        "subscribers": int(main_n),
        "subscriber_counts": counts,
        "seconds": seconds,
        "runs": runs,
        "placement": placement.describe(),
        "pinned": placement.relay is not None,
        "relay": DESIGNS["relay"],
        "pacing": f"Chromium-like: {PACING_FACTOR} x {VIDEO_BITRATE // 1000} kbit/s in "
        f"{PACING_INTERVAL * 1000:.0f} ms intervals; audio {1 / AUDIO_INTERVAL:.0f} pkt/s unpaced",
        "transport_cc": transport_cc,
        "publisher_transport_cc": last_ours["publisher_transport_cc"],
        "relay_fast_path": "C" if fastpath.NATIVE and not pure_python else "Python",
        "added_latency_us": main_entry["relay"]["added_latency_us"],
        "cpu_us_per_packet": main_entry["relay"]["cpu_us_per_packet"],
        "delivered_ratio": main_entry["relay"]["delivered_ratio"],
        "received_packets": main_entry["relay"]["received_packets"],
        "published_pps": last_ours["published_pps"],
        "received_pps": last_ours["received_pps"],
        "direct_path_us": last_ours["direct_path_us"],
        "relay_path_us": last_ours["relay_path_us"],
        "janus_added_latency_us": (
            main_entry["janus"]["added_latency_us"] if "janus" in main_entry else None
        ),
        "janus_cpu_us_per_packet": (
            main_entry["janus"]["cpu_us_per_packet"] if "janus" in main_entry else None
        ),
        "per_n": per_n,
    }
    if "naive" in main_entry:
        summary["baseline"] = main_entry["naive"]
    return summary


def run_line(round_number: int, design: str, result: dict[str, Any]) -> str:
    lat = result["added_latency_us"]
    return (
        f"run {round_number} {design:<5} N={result['subscribers']:<2} added latency µs p50 "
        f"{lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']} | direct path p50 "
        f"{result['direct_path_us']['p50']} | published {result['published_pps']} pkt/s, "
        f"received {result['received_pps']} pkt/s, delivered {result['delivered_ratio']:.1%} | "
        f"CPU {result['cpu_us_per_packet']} µs/pkt ({result['relay_cpu_share']:.1%} of a core), "
        f"relay last on CPU {result['relay_last_cpu']}"
    )


def print_report(result: dict[str, Any], out: Any = sys.stdout) -> None:
    print(f"{result['relay']}; {result['placement']}; pacing {result['pacing']}", file=out)
    for count, entry in result["per_n"].items():
        for design, figures in entry.items():
            if design == "ratio":
                continue
            lat = figures["added_latency_us"]
            print(
                f"N={count:<2} {design:<5} added latency µs p50 {lat['p50']} p99 {lat['p99']} "
                f"(over {figures['runs']} runs) | CPU {figures['cpu_us_per_packet']} µs/pkt | "
                f"delivered ≥ {figures['delivered_ratio']:.1%}",
                file=out,
            )
        if "ratio" in entry:
            ratio = entry["ratio"]
            print(
                f"N={count:<2} ours/janus: p50 {ratio['p50']} p99 {ratio['p99']} "
                f"CPU/packet {ratio['cpu_us_per_packet']}",
                file=out,
            )
    print(json.dumps(_nan_safe(result), sort_keys=True), file=out, flush=True)


def _nan_safe(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [_nan_safe(v) for v in value]
    return value


def main(
    subscribers: int,
    seconds: float,
    compare: list[str] | None = None,
    sweep: bool = False,
    runs: int | None = None,
    pin_cpus: bool = False,
    pure_python: bool = False,
    transport_cc: bool = True,
    service_transport_cc: bool | None = None,
) -> int:
    compare = list(compare or [])
    counts = list(SWEEP) if sweep else [subscribers]
    janus: str | None = None
    if "janus" in compare:
        from media_relay.bench_janus import INSTALL_HINT, janus_binary, janus_version
        from media_relay.bench_service import enter_private_network

        janus = janus_binary()
        if janus is None:
            print(
                f"janus comparison skipped: `janus` is not installed ({INSTALL_HINT})", flush=True
            )
            compare.remove("janus")
        else:
            try:
                enter_private_network()
            except OSError as exc:
                print(f"janus comparison skipped: no private network namespace: {exc}", flush=True)
                compare.remove("janus")
                janus = None
            else:
                print(
                    f"janus {janus_version(janus)} at {janus}; this run is in a network "
                    "namespace of its own (Janus never gathers on a loopback interface: it "
                    "gets a local veth address, reached through the loopback device too)",
                    flush=True,
                )
    if runs is None:  # interleaved pairs when there is something to compare with
        runs = 2 if "janus" in compare else 1
    result = run(
        counts,
        seconds,
        compare,
        runs,
        pin_cpus,
        pure_python,
        transport_cc,
        service_transport_cc,
        janus,
        main_count=subscribers,
    )
    result["janus_version"] = None
    if janus is not None:
        from media_relay.bench_janus import janus_version

        result["janus_version"] = janus_version(janus)
    print_report(result)
    return 0


__all__ = ["main", "run"]
