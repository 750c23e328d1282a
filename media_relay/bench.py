"""`etapalvelu bench relay`: the relay against a direct path and against the naive design.

Processes (forked from this one, so the aiortc import is paid once):

* the relay under test, on uvloop, driven over a pipe (join / answer / probe);
* one publisher sending a pre-encoded VP8 clip (encoded once up front) as RTP through its
  DTLS-SRTP session: no encoder in the load generator; like Chromium, it numbers its packets
  with the transport-wide-cc header extension (its answer keeps the relay's offer of it), so
  the relay records every arrival and sends Transport Feedback every 50 ms
  (`--no-transport-cc`: neither);
* N subscribers, each reading its relay socket itself with kernel receive timestamps
  (SO_TIMESTAMPNS), and a second plain UDP socket for the direct path.

Wire delay = kernel receive time at the subscriber − the publisher's clock just before
`sendto` (both CLOCK_REALTIME). For every packet the publisher also sends a datagram of the
same size straight to each subscriber (the peer-to-peer baseline, same moment, same size);
the relay's added latency is the per-packet difference of the two. Relay CPU comes from the
relay process's rusage over the measured window; saturation floods the relay and divides
forwarded packets by the relay's CPU seconds.

The baseline is the same run against aiortc's MediaRelay with re-encoding senders; its
packets are new frames, so they are matched to published frames by RTP timestamp (its
senders' timestamp origin is pinned to 0) and timed per frame (first packet).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

FPS = 30
VIDEO_PT = 97  # VP8 in the relay's offers (aiortc's payload type table, same on every leg)
MAX_PAYLOAD = 1100
TAIL = struct.Struct("!II")  # packet id, magic
MAGIC = 0x45544150
ROOM = "bench"
POLL_SECONDS = 0.02
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS


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
    seq: int, ts: int, ssrc: int, marker: bool, payload: bytes, transport_seq: int | None = None
) -> bytes:
    """Plain RTP; with `transport_seq`, a one-byte header extension element carrying it
    (transport-wide-cc, at the ID the relay offers)."""
    second = VIDEO_PT | (0x80 if marker else 0)
    if transport_seq is None:
        return struct.pack("!BBHII", 0x80, second, seq, ts, ssrc) + payload
    from media_relay.codecs import TRANSPORT_CC_ID

    header = struct.pack("!BBHII", 0x90, second, seq, ts, ssrc)
    element = struct.pack("!HHBHx", 0xBEDE, 1, (TRANSPORT_CC_ID << 4) | 1, transport_seq & 0xFFFF)
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
    """Which CPUs the relay and the load generator (publisher, subscribers) run on."""

    relay: set[int] | None
    load: set[int] | None

    def describe(self) -> str:
        if self.relay is None or self.load is None:
            return "processes unpinned"
        return f"relay on CPU {sorted(self.relay)}, load generator on CPU {sorted(self.load)}"


def place(pin_cpus: bool) -> Placement:
    """The relay on a core of its own, as a relay node is deployed (a mediasoup worker per
    core). Unpinned, the kernel often wakes the relay on the publisher's CPU, where it waits
    out the publisher's burst: that measures the load generator, not the relay."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin_cpus or len(cpus) < 2:
        return Placement(None, None)
    return Placement({cpus[-1]}, set(cpus[:-1]))


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


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


async def wait_connected(pc: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while pc.connectionState != "connected":
        if time.monotonic() > deadline or pc.connectionState in ("failed", "closed"):
            raise RuntimeError(f"connection state {pc.connectionState}")
        await asyncio.sleep(0.02)


# ----------------------------------------------------------------------------- relay process


def relay_process(
    design: str, conns: list[Connection], cpus: set[int] | None, pure_python: bool
) -> None:
    import uvloop

    pin(cpus)
    if pure_python:
        os.environ["ETAPALVELU_RELAY_PURE_PYTHON"] = "1"
    uvloop.run(_relay_main(design, conns))


async def _relay_main(design: str, conns: list[Connection]) -> None:
    from media_relay import fastpath
    from media_relay.control import LocalRelay, RelayConfig
    from media_relay.naive_relay import NaiveRelay

    config = RelayConfig(
        listen_address="127.0.0.1",
        announced_addresses=["127.0.0.1"],
        max_participant_pps=10_000_000,  # the saturation phase floods on purpose
    )
    relay: Any = NaiveRelay(config) if design == "baseline" else LocalRelay(config)
    await relay.start()
    # the imported libraries' objects live forever: keep full collections from walking them
    gc.freeze()
    stop = asyncio.Event()

    def forwarded() -> int:
        if design == "baseline":
            return int(relay.packets_sent())
        total = 0
        for room in relay.rooms.values():
            for participant in room.participants.values():
                total += sum(stream.packets for stream in participant.forwarded)
                if participant.link is not None:  # handed to sendto but refused
                    total -= participant.link.send_errors
        return total

    def feedback() -> int:
        """Transport Feedback packets the relay sent (transport-wide-cc)."""
        total = 0
        for room in getattr(relay, "rooms", {}).values():
            for participant in room.participants.values():
                window = getattr(participant, "transport_cc", None)
                total += window.feedback_packets if window is not None else 0
        return total

    async def serve(conn: Connection) -> None:
        while not stop.is_set():
            try:
                request = await receive(conn)
            except EOFError:
                return
            op = request["op"]
            try:
                if op == "join":
                    reply: Any = await relay.join(ROOM, request["pid"], request["publish"])
                elif op == "answer":
                    await relay.answer(ROOM, request["pid"], request["sdp"])
                    reply = {"ok": True}
                elif op == "probe":
                    reply = {
                        "forwarded": forwarded(),
                        "feedback": feedback(),
                        "cpu": cpu_seconds(),
                        "wall": time.time(),
                        "native": fastpath.NATIVE,
                    }
                elif op == "stop":
                    stop.set()
                    reply = {"ok": True}
                else:
                    reply = {"error": f"unknown op {op}"}
            except Exception as exc:
                reply = {"error": repr(exc)}
            conn.send(reply)

    tasks = [asyncio.ensure_future(serve(conn)) for conn in conns]
    await stop.wait()
    await relay.stop()
    for task in tasks:
        task.cancel()
    os._exit(0)  # executor threads blocked in recv must not hold the process


# ----------------------------------------------------------------------------- publisher


def publisher_process(
    design: str,
    relay: Connection,
    control: Connection,
    clip: Any,
    cpus: set[int] | None,
    transport_cc: bool = True,
) -> None:
    pin(cpus)
    asyncio.run(_publisher_main(design, relay, control, clip, transport_cc))


async def _publisher_main(
    design: str,
    relay: Connection,
    control: Connection,
    clip: list[tuple[bytes, bool]],
    transport_cc: bool = True,
) -> None:
    from media_relay.aiortc_client import RelayPeerClient
    from media_relay.aiortc_hooks import SilentTrack, SrtpLink, dtls_transport

    client = RelayPeerClient(
        {"camera": SilentTrack("video")}, ice_servers=[], host_addresses=["127.0.0.1"]
    )
    offer = await call(relay, {"op": "join", "pid": "publisher", "publish": ["camera"]})
    sdp = await client.handle_offer(offer)
    numbered = transport_cc and design != "baseline"
    if numbered:
        sdp = keep_transport_cc(sdp)
    await call(relay, {"op": "answer", "pid": "publisher", "sdp": sdp})
    await wait_connected(client.pc)
    dtls = dtls_transport(client.pc)
    assert dtls is not None
    link = SrtpLink(dtls)
    sender = next(t.sender for t in client.pc.getTransceivers() if t.direction == "sendonly")
    ssrc = sender._ssrc
    pair = link.connection._nominated[1]
    relay_sock = pair.protocol.transport
    relay_addr = pair.remote_addr
    protect = dtls._tx_srtp.protect
    control.send({"ready": True})

    go = await receive(control)
    direct = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    direct.bind(("127.0.0.1", 0))
    direct.setblocking(False)
    direct_addrs = [("127.0.0.1", port) for port in go["direct_ports"]]
    packetized = [(packetize_vp8(frame), key) for frame, key in clip]
    tagged = design != "baseline"  # the relay forwards bytes: a tail can ride in the payload

    relay_sent: dict[int, int] = {}
    direct_sent: dict[tuple[int, int], int] = {}
    frame_first: dict[int, int] = {}
    seq = 1000
    transport_seq = 0 if numbered else None
    packet_id = 0
    start = time.monotonic() + 0.05
    end = start + go["seconds"]
    frame_index = 0
    clock = time.time_ns
    while time.monotonic() < end:
        due = start + frame_index / FPS
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        payloads, _key = packetized[frame_index % len(packetized)]
        ts = (frame_index * (90000 // FPS)) & 0xFFFFFFFF
        for position, payload in enumerate(payloads):
            packet_id += 1
            body = payload + TAIL.pack(packet_id, MAGIC) if tagged else payload
            last = position == len(payloads) - 1
            packet = rtp_packet(seq & 0xFFFF, ts, ssrc, last, body, transport_seq)
            seq += 1
            if transport_seq is not None:
                transport_seq += 1
            data = protect(packet)
            now = clock()
            relay_sock.sendto(data, relay_addr)
            relay_sent[packet_id] = now
            if position == 0:
                frame_first[frame_index] = packet_id
            probe = TAIL.pack(packet_id, MAGIC).ljust(len(data), b"\0")
            for index, address in enumerate(direct_addrs):
                now = clock()
                direct.sendto(probe, address)
                direct_sent[(index, packet_id)] = now
        frame_index += 1
    control.send({"relay_sent": relay_sent, "direct_sent": direct_sent, "frame_first": frame_first})

    # saturation: as fast as this process can protect and send, for the relay to forward
    flood = await receive(control)
    sent = 0
    if flood["seconds"] > 0:
        payloads = [p for frame in packetized[1:4] for p in frame[0]]
        raw = relay_sock.get_extra_info("socket")
        flood_sock = socket.socket(raw.family, raw.type, fileno=os.dup(raw.fileno()))
        end = time.monotonic() + flood["seconds"]
        while time.monotonic() < end:
            for _ in range(20):
                for payload in payloads:
                    packet = rtp_packet(seq & 0xFFFF, seq * 10, ssrc, False, payload, transport_seq)
                    if transport_seq is not None:
                        transport_seq += 1
                    try:
                        flood_sock.sendto(protect(packet), relay_addr)
                    except BlockingIOError:
                        pass
                    seq += 1
                    sent += 1
            await asyncio.sleep(0)
        flood_sock.close()
    control.send({"flood_sent": sent})
    await receive(control)
    os._exit(0)


# ----------------------------------------------------------------------------- subscriber


def subscriber_process(
    design: str,
    name: str,
    index: int,
    relay: Connection,
    control: Connection,
    cpus: set[int] | None,
) -> None:
    pin(cpus)
    asyncio.run(_subscriber_main(design, name, index, relay, control))


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


async def _subscriber_main(
    design: str, name: str, index: int, relay: Connection, control: Connection
) -> None:
    from media_relay.aiortc_client import RelayPeerClient
    from media_relay.aiortc_hooks import dtls_transport

    client = RelayPeerClient({}, ice_servers=[], host_addresses=["127.0.0.1"])
    offer = await call(relay, {"op": "join", "pid": name, "publish": []})
    sdp = await client.handle_offer(offer)
    await call(relay, {"op": "answer", "pid": name, "sdp": sdp})
    await wait_connected(client.pc)
    dtls = dtls_transport(client.pc)
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
    state = {"measure": True, "received": 0}
    tagged = design != "baseline"

    def on_relay(data: bytes, kernel_ns: int, address: Any) -> None:
        if len(data) < 12 or not 127 < data[0] < 192:
            protocol.datagram_received(data, address)  # STUN consent checks, DTLS
            return
        if 192 <= data[1] <= 223:
            return  # RTCP: sender reports
        state["received"] += 1
        if not state["measure"]:
            return
        try:
            plain = unprotect(data)
        except Exception:
            return
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
    # timestamps), and read both sockets every POLL_SECONDS instead of on every packet: the
    # kernel stamps arrival anyway, and subscribers woken per packet would take the CPU
    # from the relay mid-fan-out (2 cores, 7 processes), adding their wake-ups to its latency.
    loop._remove_reader(wrapped.fileno())
    direct = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    direct.bind(("127.0.0.1", 0))
    direct.setblocking(False)
    direct.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    direct.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)

    def poll() -> None:
        if not state["measure"]:
            return  # the flood: leave the CPU to the relay and the publisher, let the kernel drop
        _read_timestamped(relay_sock, on_relay)
        _read_timestamped(direct, on_direct)
        loop.call_later(POLL_SECONDS, poll)

    poll()
    control.send({"ready": True, "direct_port": direct.getsockname()[1]})

    await receive(control)  # measurement over
    _read_timestamped(relay_sock, on_relay)
    _read_timestamped(direct, on_direct)
    state["measure"] = False
    control.send({"relay_seen": relay_seen, "direct_seen": direct_seen})
    await receive(control)  # saturation over
    control.send({"received": state["received"]})
    await receive(control)
    os._exit(0)


# ----------------------------------------------------------------------------- floor


def echo_process(port_out: Connection, cpus: set[int] | None) -> None:
    """A uvloop process that sends every datagram on at once: the wake-up floor."""
    import uvloop

    pin(cpus)

    async def main() -> None:
        loop = asyncio.get_running_loop()

        class Forward(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport: Any = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                self.transport.sendto(data, ("127.0.0.1", struct.unpack_from("!H", data, 0)[0]))

        transport, _ = await loop.create_datagram_endpoint(Forward, local_addr=("127.0.0.1", 0))
        port_out.send(transport.get_extra_info("sockname")[1])
        await receive(port_out)
        os._exit(0)

    uvloop.run(main())


def measure_floor(placement: Placement, seconds: float = 2.0, rate: int = 100) -> dict[str, float]:
    """Wire delay through a Python process that does nothing but send the datagram on: what
    any Python relay pays for being woken on this machine, before doing any work. Placed on
    the CPUs the relay gets, sent from the load generator's."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    process = context.Process(target=echo_process, args=(child, placement.relay), daemon=True)
    process.start()
    own = os.sched_getaffinity(0)
    pin(placement.load)
    try:
        if not parent.poll(30):
            raise RuntimeError("the echo process did not start")
        port = parent.recv()
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sink.settimeout(1.0)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        header = struct.pack("!H", sink.getsockname()[1])
        delays: list[float] = []
        for _ in range(int(seconds * rate)):
            payload = header + b"\0" * 1000
            sent = time.time_ns()
            sender.sendto(payload, ("127.0.0.1", port))
            try:
                _data, ancillary, _flags, _addr = sink.recvmsg(2048, socket.CMSG_SPACE(16))
            except TimeoutError:
                continue
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                    secs, nanos = struct.unpack("qq", value[:16])
                    delays.append((secs * 1_000_000_000 + nanos - sent) / 1000)
            time.sleep(1 / rate)
        sink.close()
        sender.close()
        parent.send("exit")
        return percentiles(delays)
    finally:
        os.sched_setaffinity(0, own)
        process.join(timeout=3)
        if process.is_alive():
            process.kill()


# ----------------------------------------------------------------------------- coordinator


def expect(conn: Connection, seconds: float = 120.0) -> Any:
    """The next message from a child process; a hung child fails the run instead of hanging it."""
    if not conn.poll(seconds):
        raise RuntimeError("a benchmark process stopped answering")
    return conn.recv()


def run_design(
    design: str,
    subscribers: int,
    seconds: float,
    flood_seconds: float,
    clip: Any,
    placement: Placement,
    pure_python: bool = False,
    transport_cc: bool = True,
) -> dict[str, Any]:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    relay_ends = [context.Pipe() for _ in range(subscribers + 2)]
    processes = []
    relay_proc = context.Process(
        target=relay_process,
        args=(design, [pair[0] for pair in relay_ends], placement.relay, pure_python),
        daemon=True,
    )
    relay_proc.start()
    processes.append(relay_proc)
    probe_conn = relay_ends[-1][1]
    try:
        pub_control, pub_child = context.Pipe()
        publisher = context.Process(
            target=publisher_process,
            args=(design, relay_ends[0][1], pub_child, clip, placement.load, transport_cc),
            daemon=True,
        )
        publisher.start()
        processes.append(publisher)
        if not pub_control.poll(60):
            raise RuntimeError("the publisher did not connect")
        expect(pub_control)

        subs = []
        for index in range(subscribers):
            control, child = context.Pipe()
            process = context.Process(
                target=subscriber_process,
                args=(
                    design,
                    f"subscriber{index}",
                    index,
                    relay_ends[index + 1][1],
                    child,
                    placement.load,
                ),
                daemon=True,
            )
            process.start()
            processes.append(process)
            if not control.poll(60):
                raise RuntimeError(f"subscriber {index} did not connect")
            subs.append((control, expect(control)))

        time.sleep(0.3)
        probe_conn.send({"op": "probe"})
        before = expect(probe_conn)
        pub_control.send({"seconds": seconds, "direct_ports": [r["direct_port"] for _, r in subs]})
        published = expect(pub_control)
        probe_conn.send({"op": "probe"})
        after = expect(probe_conn)
        time.sleep(0.3)  # let the last packets arrive
        seen = []
        for control, _ in subs:
            control.send({"stop": True})
            seen.append(expect(control))

        result = summarize(design, published, seen, before, after)
        result["fast_path"] = "C" if before.get("native") else "Python"
        wall = after["wall"] - before["wall"]
        if design != "baseline" and wall > 0:
            sent = after.get("feedback", 0) - before.get("feedback", 0)
            result["transport_feedback_per_s"] = round(sent / wall, 1)

        if flood_seconds > 0:
            probe_conn.send({"op": "probe"})
            flood_before = expect(probe_conn)
        pub_control.send({"seconds": flood_seconds})
        expect(pub_control)
        if flood_seconds > 0:
            probe_conn.send({"op": "probe"})
            flood_after = expect(probe_conn)
            forwarded = flood_after["forwarded"] - flood_before["forwarded"]
            cpu = flood_after["cpu"] - flood_before["cpu"]
            wall = flood_after["wall"] - flood_before["wall"]
            result["saturation_pps"] = round(forwarded / cpu) if cpu > 0 else None
            result["saturation_wall_pps"] = round(forwarded / wall) if wall > 0 else None
            result["saturation_relay_cpu_share"] = round(cpu / wall, 2) if wall > 0 else None
        for control, _ in subs:
            control.send({"stop": True})
            expect(control)
        for control, _ in subs:
            control.send({"exit": True})
        pub_control.send({"exit": True})
        probe_conn.send({"op": "stop"})
        return result
    finally:
        for process in processes:
            process.join(timeout=3)
            if process.is_alive():
                process.kill()
                process.join(timeout=2)


def summarize(
    design: str,
    published: dict[str, Any],
    seen: list[dict[str, Any]],
    before: dict[str, Any],
    after: dict[str, Any],
) -> dict[str, Any]:
    relay_sent: dict[int, int] = published["relay_sent"]
    direct_sent: dict[tuple[int, int], int] = published["direct_sent"]
    frame_first: dict[int, int] = published["frame_first"]
    relay_path: list[float] = []
    direct_path: list[float] = []
    added: list[float] = []
    expected = 0
    received = 0
    for index, report in enumerate(seen):
        direct_seen: dict[int, int] = report["direct_seen"]
        direct_delay = {
            pid: (kernel - direct_sent[(index, pid)]) / 1000
            for pid, kernel in direct_seen.items()
            if (index, pid) in direct_sent and kernel
        }
        direct_path.extend(direct_delay.values())
        if design == "baseline":
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
            received += 1
            delay = (kernel - relay_sent[pid]) / 1000
            relay_path.append(delay)
            if pid in direct_delay:
                added.append(delay - direct_delay[pid])
    forwarded = after["forwarded"] - before["forwarded"]
    cpu = after["cpu"] - before["cpu"]
    wall = after["wall"] - before["wall"]
    return {
        "added_latency_us": percentiles(added),
        "relay_path_us": percentiles(relay_path),
        "direct_path_us": percentiles(direct_path),
        "forwarded_pps": round(forwarded / wall) if wall > 0 else 0,
        "cpu_us_per_packet": round(cpu * 1e6 / forwarded, 1) if forwarded else None,
        "relay_cpu_share": round(cpu / wall, 3) if wall > 0 else None,
        "delivered_ratio": round(received / expected, 4) if expected else 0.0,
        "published_pps": round(len(relay_sent) / wall) if wall > 0 else 0,
    }


def run(
    subscribers: int,
    seconds: float,
    flood_seconds: float,
    baseline: bool,
    pin_cpus: bool = True,
    pure_python: bool = False,
    transport_cc: bool = True,
) -> dict[str, Any]:
    clip = encode_clip()
    placement = place(pin_cpus)
    floor = measure_floor(placement)
    result = run_design(
        "relay", subscribers, seconds, flood_seconds, clip, placement, pure_python, transport_cc
    )
    result = {
        "subscribers": subscribers,
        "seconds": seconds,
        "placement": placement.describe(),
        "python_wakeup_floor_us": floor,
        "transport_cc": transport_cc,
        **result,
    }
    if baseline:
        naive = run_design("baseline", subscribers, seconds, 0, clip, placement)
        # it re-encodes: packets per relay CPU second at this load is the most it could do
        naive["saturation_pps"] = (
            round(1e6 / naive["cpu_us_per_packet"]) if naive.get("cpu_us_per_packet") else None
        )
        naive["design"] = "aiortc MediaRelay, decode + re-encode per subscriber"
        result["baseline"] = naive
    return result


def print_report(result: dict[str, Any], out: Any = sys.stdout) -> None:
    def line(label: str, figures: dict[str, Any]) -> str:
        lat = figures["added_latency_us"]
        return (
            f"{label:<9} added latency µs p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} "
            f"max {lat['max']} | forwarded {figures['forwarded_pps']} pkt/s | "
            f"CPU {figures['cpu_us_per_packet']} µs/pkt | saturation "
            f"{figures.get('saturation_pps')} pkt/s per core | delivered "
            f"{figures['delivered_ratio']:.1%}"
        )

    print(
        f"1 publisher -> {result['subscribers']} subscribers, {result['seconds']} s, "
        f"pre-encoded VP8 at {result['published_pps']} pkt/s in; relay fast path in "
        f"{result['fast_path']}; {result['placement']}; transport-cc "
        f"{'on' if result.get('transport_cc') else 'off'} "
        f"({result.get('transport_feedback_per_s', 0)} feedback packets/s)",
        file=out,
    )
    print(f"direct path (peer to peer) µs: {result['direct_path_us']}", file=out)
    print(
        "floor: a uvloop process that only sends each datagram on, µs: "
        f"{result['python_wakeup_floor_us']}",
        file=out,
    )
    print(f"relay path µs: {result['relay_path_us']}", file=out)
    print(line("relay", result), file=out)
    if "baseline" in result:
        base = result["baseline"]
        print(f"baseline path µs (per frame): {base['relay_path_us']}", file=out)
        print(line("baseline", base), file=out)
    print(json.dumps(result, sort_keys=True), file=out)


def _nan_safe(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items()}
    return value


def main(
    subscribers: int,
    seconds: float,
    flood_seconds: float,
    baseline: bool,
    pin_cpus: bool = True,
    pure_python: bool = False,
    transport_cc: bool = True,
) -> int:
    result = _nan_safe(
        run(subscribers, seconds, flood_seconds, baseline, pin_cpus, pure_python, transport_cc)
    )
    print_report(result)
    return 0


__all__ = ["main", "run", "statistics"]
