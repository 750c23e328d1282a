"""`etapalvelu bench relay --calls N | --find-knee | --first-media | --soak SECONDS`.

N concurrent 2-party calls through one relay process. Processes (forked, so the imports and
the pre-encoded clip are paid once):

* the relay: the shipped service, `etapalvelu relay` (media_relay/bench_service.py starts it
  as bench.py does), driven through its control API (media_relay/remote.RemoteRelay, one
  WebSocket per client process); or, with `--calls-in-process`, `LocalRelay` on uvloop in a
  forked process driven over pipes (which also offers cProfile and tracemalloc hooks).
  Unpinned unless `--pin`. With the service, packets per CPU second are counted at the
  subscribers (delivered), not at the relay.
* several client processes, each holding many call legs. A leg is an aiortc peer connection
  (ICE, DTLS-SRTP, renegotiation) that, once connected, sends pre-encoded media itself:
  audio 50 packets/s and a VP8 clip at ~800 kbit/s, a frame's packets spread over a few ms
  (3 per ms), through the relay's C `Link` (protect + sendto); a PLI/FIR from the relay makes
  its next frame the clip's key frame, as an encoder would. Each leg reads its own socket when
  it is readable (as receivers do) with kernel receive timestamps (SO_TIMESTAMPNS).

Both legs of a call live in one client process, so a packet's delay is computed where it
arrives: kernel receive time − the publishing leg's clock just before `sendto` (both
CLOCK_REALTIME). The direct path baseline: every 8th video packet is also sent, same size,
from the same process straight to a plain socket of that process (read the same way).
Loss: packets sent in the measured window that never arrived (counted once each).

First media: for each subscribing leg, answer sent → first video RTP packet decrypted by
it, and → the last packet of the first key frame (the first decodable frame).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import resource
import socket
import struct
import sys
import time
import weakref
from array import array
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from media_relay.bench import (
    FPS,
    SCM_TIMESTAMPNS,
    SO_TIMESTAMPNS,
    encode_clip,
    packetize_vp8,
    percentiles,
    pin,
    receive,
)

AUDIO_INTERVAL = 0.02
AUDIO_PAYLOAD = 90  # Opus at ~32 kbit/s
VIDEO_PER_MS = 3  # a frame's packets: 3 per millisecond (Chromium's pacer: a few ms a frame)
RING = 4096  # send times kept per stream (~27 s of video)
MASK = RING - 1
TAIL = struct.Struct("!HH")  # the publisher's sequence number, magic
MAGIC = 0x4554
DIRECT_EVERY = 8
KNEE_LOSS = 0.001
KNEE_P99_US = 5000.0
CLIP_SECONDS = 10.0  # the natural key-frame interval of the publishers


# ----------------------------------------------------------------------------- helpers


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ----------------------------------------------------------------------------- relay process


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def relay_process(conns: list[Connection], cpus: set[int] | None) -> None:
    import uvloop

    pin(cpus)
    uvloop.run(_relay_main(conns))


async def _relay_main(conns: list[Connection]) -> None:
    from media_relay.control import LocalRelay, RelayConfig

    relay = LocalRelay(
        RelayConfig(
            listen_address="127.0.0.1",
            announced_addresses=["127.0.0.1"],
            transport_cc=False,  # the service's default (relay_transport_cc off)
        )
    )
    owner: dict[str, Connection] = {}
    gone: list[str] = []

    class Listener:
        async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
            conn = owner.get(room_id)
            if conn is not None:
                conn.send(
                    {"event": "offer", "room": room_id, "pid": participant_id, "offer": offer}
                )

        async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
            gone.append(f"{room_id}/{participant_id}:{reason}")

        async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
            return None

    relay.set_listener(Listener())
    await relay.start()
    gc.freeze()  # the imported libraries' objects live forever
    stop = asyncio.Event()
    tasks: set[asyncio.Task[Any]] = set()

    def forwarded() -> int:
        total = 0
        for room in relay.rooms.values():
            for participant in room.participants.values():
                total += sum(stream.packets for stream in participant.forwarded)
        return total

    async def handle(conn: Connection, request: dict[str, Any]) -> None:
        op = request["op"]
        reply: Any
        try:
            if op == "join":
                owner[request["room"]] = conn
                reply = await relay.join(request["room"], request["pid"], request["publish"])
            elif op == "answer":
                await relay.answer(request["room"], request["pid"], request["sdp"])
                reply = {"ok": True}
            elif op == "close_room":
                await relay.close_room(request["room"])
                owner.pop(request["room"], None)
                reply = {"ok": True}
            elif op == "probe":
                if request.get("collect"):
                    gc.collect()
                trim_ms = None
                if request.get("trim"):
                    import ctypes

                    started = time.perf_counter()
                    ctypes.CDLL("libc.so.6").malloc_trim(0)
                    trim_ms = round((time.perf_counter() - started) * 1000, 2)
                reply = {
                    "cpu": cpu_seconds(),
                    "wall": time.time(),
                    "rss_kb": _rss_kb(),
                    "forwarded": forwarded(),
                    "rooms": len(relay.rooms),
                    "gone": len(gone),
                    "trim_ms": trim_ms,
                }
            elif op == "profile":
                reply = _profile(request.get("start", False))
            elif op == "memory":
                reply = _memory_top(request.get("start", False))
            elif op == "stop":
                stop.set()
                reply = {"ok": True}
            else:
                reply = {"error": f"unknown op {op}"}
        except Exception as exc:
            reply = {"error": repr(exc)}
        conn.send({"id": request["id"], "reply": reply})

    async def serve(conn: Connection) -> None:
        while not stop.is_set():
            try:
                request = await receive(conn)
            except EOFError:
                return
            task = asyncio.ensure_future(handle(conn, request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    servers = [asyncio.ensure_future(serve(conn)) for conn in conns]
    await stop.wait()
    await relay.stop()
    for task in servers:
        task.cancel()
    os._exit(0)


_profiler: Any = None


def _profile(start: bool) -> Any:
    """cProfile of the relay process: start, or stop and the 30 functions with most own time."""
    import cProfile
    import io
    import pstats

    global _profiler
    if start:
        _profiler = cProfile.Profile()
        _profiler.enable()
        return {"ok": True}
    if _profiler is None:
        return ""
    _profiler.disable()
    out = io.StringIO()
    pstats.Stats(_profiler, stream=out).sort_stats("tottime").print_stats(30)
    _profiler = None
    return out.getvalue()


def _memory_top(start: bool) -> Any:
    """tracemalloc: start tracing, or the 15 largest allocation sites since."""
    import tracemalloc

    if start:
        tracemalloc.start(1)
        return {"ok": True}
    if not tracemalloc.is_tracing():
        return []
    snapshot = tracemalloc.take_snapshot()
    top = snapshot.statistics("lineno")[:15]
    return [(str(stat.traceback[0]), stat.size, stat.count) for stat in top]


# ----------------------------------------------------------------------------- client side


class RelayChannel:
    """Requests to the relay process over a pipe; offers it pushes go to their leg."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._next = 0
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self.offer_handlers: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        asyncio.get_running_loop().add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        while self.conn.poll():
            message = self.conn.recv()
            if "event" in message:
                handler = self.offer_handlers.get((message["room"], message["pid"]))
                if handler is not None:
                    task = asyncio.ensure_future(handler(message["offer"]))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                continue
            future = self._waiting.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message["reply"])

    async def request(self, op: str, **fields: Any) -> Any:
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        self.conn.send({"id": self._next, "op": op, **fields})
        reply = await asyncio.wait_for(future, 60)
        if isinstance(reply, dict) and "error" in reply:
            raise RuntimeError(reply["error"])
        return reply


class ServiceChannel:
    """The same requests to the relay service (`etapalvelu relay`) through its control API
    (media_relay.remote.RemoteRelay, one WebSocket per client process)."""

    def __init__(self, node_id: str, url: str, secret: str) -> None:
        from media_relay.remote import RemoteRelay

        self.relay = RemoteRelay(node_id, url, secret, timeout=60.0)
        self.relay.set_listener(self)
        self.offer_handlers: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {}

    async def start(self) -> None:
        await self.relay.start()

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        handler = self.offer_handlers.get((room_id, participant_id))
        if handler is not None:
            await handler(offer)

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        return None

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        return None

    async def request(self, op: str, **fields: Any) -> Any:
        if op == "join":
            return await self.relay.join(fields["room"], fields["pid"], fields["publish"])
        if op == "answer":
            await self.relay.answer(fields["room"], fields["pid"], fields["sdp"])
            return {"ok": True}
        if op == "close_room":
            await self.relay.close_room(fields["room"])
            return {"ok": True}
        if op == "rooms":
            return await self.relay.rooms_open()
        raise RuntimeError(f"unknown op {op}")


class SendRing:
    """Send times by sequence number, and whether each was sent in the measured window
    (1) and has arrived (2)."""

    __slots__ = ("flags", "sent_in_window", "seqs", "times")

    def __init__(self) -> None:
        self.seqs = array("i", [-1]) * RING
        self.times = array("q", [0]) * RING
        self.flags = bytearray(RING)
        self.sent_in_window = 0


class Stats:
    """What one client process measured in the window."""

    def __init__(self) -> None:
        self.delays: array[float] = array("f")
        self.received = 0
        self.direct: array[float] = array("f")
        # senders mark packets while `marking`; receivers count marked ones while `counting`
        self.marking = False
        self.counting = False


class Leg:
    """One participant of a call: publishes audio + camera, receives the other leg's."""

    def __init__(
        self,
        process: ClientProcess,
        room: str,
        name: str,
        clip: list[tuple[list[bytes], bool]],
        publish: bool = True,
    ) -> None:
        self.process = process
        self.publish = publish
        self.room = room
        self.name = name
        self.clip = clip
        self.peer: Leg | None = None
        self.client: Any = None
        self.link: Any = None
        self.sock: socket.socket | None = None
        self.protocol: Any = None
        self.rings = {"audio": SendRing(), "video": SendRing()}
        self.seq = {"audio": random.getrandbits(15), "video": random.getrandbits(15)}
        self.ssrc = {"audio": 0, "video": 0}
        self.pt = {"audio": 111, "video": 97}
        self.kind_by_pt: dict[int, str] = {}
        self.offset_by_ssrc: dict[int, tuple[str, int]] = {}
        self.video_index = 0
        self.video_ts = random.getrandbits(32)
        self.audio_ts = random.getrandbits(32)
        self.queue: list[tuple[bytes, bool, int]] = []
        self.sending = False
        self.closed = False
        self.timers: list[asyncio.TimerHandle] = []
        self.packets_out = 0
        # first media (time.time_ns)
        self.answered_ns = 0
        self.connected_ns = 0
        self.first_video_ns = 0
        self.keyframe_ts: int | None = None
        self.first_keyframe_ns = 0
        self.keyframe_seen = asyncio.get_running_loop().create_future()

    # -- connection

    async def join(self) -> None:
        from media_relay.aiortc_client import RelayPeerClient
        from media_relay.aiortc_hooks import SilentTrack

        channel = self.process.channel
        tracks: dict[str, Any] = {"audio": SilentTrack("audio"), "camera": SilentTrack("video")}
        self.client = RelayPeerClient(
            tracks if self.publish else {},
            ice_servers=[],
            host_addresses=["127.0.0.1"],
        )
        channel.offer_handlers[(self.room, self.name)] = self.handle_offer
        offer = await channel.request(
            "join",
            room=self.room,
            pid=self.name,
            publish=["audio", "camera"] if self.publish else [],
        )
        await self.handle_offer(offer)

    async def handle_offer(self, offer: dict[str, Any]) -> None:
        from media_relay.aiortc_hooks import dtls_transport

        if self.closed:
            return
        sdp = await self.client.handle_offer(offer)
        dtls = dtls_transport(self.client.pc)
        if dtls is not None and dtls not in self.process.hooked:
            self.process.hooked.add(dtls)
            # first media, and no decoding in aiortc, until the socket is taken over
            dtls._handle_rtp_data = self._on_plain_rtp  # type: ignore[method-assign]
        for transceiver in self.client.pc.getTransceivers():
            codecs = [
                c for c in transceiver._codecs if c.mimeType.lower() != f"{transceiver.kind}/rtx"
            ]
            if codecs:
                self.kind_by_pt[codecs[0].payloadType] = transceiver.kind
            if transceiver.direction == "sendonly" and codecs:
                self.pt[transceiver.kind] = codecs[0].payloadType
                self.ssrc[transceiver.kind] = transceiver.sender._ssrc
                transceiver.sender._send_keyframe = self.force_keyframe
        if not self.answered_ns:
            self.answered_ns = time.time_ns()
        await self.process.channel.request("answer", room=self.room, pid=self.name, sdp=sdp)

    async def wait_connected(self, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while self.client.pc.connectionState != "connected":
            if time.monotonic() > deadline or self.client.pc.connectionState in (
                "failed",
                "closed",
            ):
                raise RuntimeError(f"{self.room}/{self.name}: {self.client.pc.connectionState}")
            await asyncio.sleep(0.002)
        self.connected_ns = time.time_ns()

    def start_sending(self) -> None:
        from media_relay.aiortc_hooks import SrtpLink, dtls_transport

        dtls = dtls_transport(self.client.pc)
        assert dtls is not None
        self.link = SrtpLink(dtls)
        if not self.link.bind():
            raise RuntimeError("no nominated pair to send on")
        self.sending = True
        loop = asyncio.get_running_loop()
        start = loop.time() + random.random() * 0.02
        self.timers.append(loop.call_at(start, self._audio_tick, start))
        self.timers.append(loop.call_at(start + 0.005, self._video_tick, start + 0.005))

    def take_over_socket(self) -> None:
        """Read the socket ourselves (kernel timestamps); STUN, DTLS and RTCP go to aiortc."""
        pair = self.link.connection._nominated[1]
        self.protocol = pair.protocol
        wrapped = self.protocol.transport.get_extra_info("socket")
        loop: Any = asyncio.get_running_loop()
        loop._remove_reader(wrapped.fileno())
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, fileno=os.dup(wrapped.fileno()))
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock = sock
        loop.add_reader(sock.fileno(), self._readable)

    async def close(self) -> None:
        self.closed = True
        self.sending = False
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        if self.sock is not None:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.link is not None:
            self.link.close_socket()
        self.process.channel.offer_handlers.pop((self.room, self.name), None)
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.close(), 5)
            except Exception:
                pass

    def first_media(self) -> tuple[float, float, float]:
        """ms from the answer to: the first video packet, the first whole key frame, and the
        connection up as this client saw it (polled every 2 ms)."""
        return (
            (self.first_video_ns - self.answered_ns) / 1e6,
            (self.first_keyframe_ns - self.answered_ns) / 1e6,
            (self.connected_ns - self.answered_ns) / 1e6,
        )

    # -- sending

    def force_keyframe(self) -> None:
        """PLI/FIR from the relay: the next frame is the clip's key frame."""
        self.video_index = 0

    def _send(self, kind: str, payload: bytes, marker: bool, ts: int) -> None:
        seq = self.seq[kind] & 0xFFFF
        self.seq[kind] = seq + 1
        pt = self.pt[kind] | (0x80 if marker else 0)
        packet = struct.pack("!BBHII", 0x80, pt, seq, ts & 0xFFFFFFFF, self.ssrc[kind])
        packet += payload + TAIL.pack(seq, MAGIC)
        ring = self.rings[kind]
        slot = seq & MASK
        now = time.time_ns()
        ring.seqs[slot] = seq
        ring.times[slot] = now
        if self.process.stats.marking:
            ring.flags[slot] = 1
            ring.sent_in_window += 1
        else:
            ring.flags[slot] = 0
        self.link.native.send(packet)
        self.packets_out += 1
        if kind == "video" and seq % DIRECT_EVERY == 0 and self.process.stats.marking:
            self.process.send_direct(len(packet) + 26)  # + SRTP tag (10) + UDP/IP (not counted)

    def _audio_tick(self, due: float) -> None:
        if not self.sending:
            return
        self._send("audio", b"\x00" * AUDIO_PAYLOAD, False, self.audio_ts)
        self.audio_ts += 960
        loop = asyncio.get_running_loop()
        due = max(due + AUDIO_INTERVAL, loop.time())
        self.timers[0] = loop.call_at(due, self._audio_tick, due)

    def _video_tick(self, due: float) -> None:
        if not self.sending:
            return
        payloads, _key = self.clip[self.video_index]
        self.video_index = (self.video_index + 1) % len(self.clip)
        last = len(payloads) - 1
        self.queue.extend((p, i == last, self.video_ts) for i, p in enumerate(payloads))
        self.video_ts += 90000 // FPS
        self._drain()
        loop = asyncio.get_running_loop()
        due = max(due + 1 / FPS, loop.time())
        self.timers[1] = loop.call_at(due, self._video_tick, due)

    def _drain(self) -> None:
        if not self.sending:
            return
        batch, self.queue = self.queue[:VIDEO_PER_MS], self.queue[VIDEO_PER_MS:]
        for payload, marker, ts in batch:
            self._send("video", payload, marker, ts)
        if self.queue:
            asyncio.get_running_loop().call_later(0.001, self._drain)

    # -- receiving

    async def _on_plain_rtp(self, data: bytes, arrival_time_ms: int = 0) -> None:
        """aiortc decrypted an RTP packet (before the socket is ours): first media."""
        self._note_plain(data, time.time_ns())

    def _note_plain(self, data: bytes, now_ns: int) -> None:
        from media_relay import packets

        header = packets.parse_rtp_header(data)
        if header is None:
            return
        kind = self.kind_by_pt.get(header.payload_type)
        if kind is None:
            return
        if header.ssrc not in self.offset_by_ssrc and len(data) >= 16:
            in_seq, magic = TAIL.unpack_from(data, len(data) - TAIL.size)
            if magic == MAGIC:
                offset = (header.sequence_number - in_seq) & 0xFFFF
                self.offset_by_ssrc[header.ssrc] = (kind, offset)
        if kind != "video":
            return
        if not self.first_video_ns:
            self.first_video_ns = now_ns
        if self.keyframe_ts is None and packets.is_vp8_keyframe_start(
            data, header.payload_start, header.payload_end
        ):
            self.keyframe_ts = header.timestamp
        if self.keyframe_ts == header.timestamp and header.marker and not self.first_keyframe_ns:
            self.first_keyframe_ns = now_ns
            if not self.keyframe_seen.done():
                self.keyframe_seen.set_result(None)

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        peer = self.peer
        stats = self.process.stats
        space = socket.CMSG_SPACE(16)
        while True:
            try:
                data, ancillary, _flags, address = sock.recvmsg(2048, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(data) < 12 or not 127 < data[0] < 192 or 191 < data[1] < 224:
                self.protocol.datagram_received(data, address)  # STUN, DTLS, SRTCP
                continue
            ssrc = int.from_bytes(data[8:12], "big")
            known = self.offset_by_ssrc.get(ssrc)
            if known is None:
                try:
                    plain = self.link.dtls._rx_srtp.unprotect(data)
                except Exception:
                    continue
                self._note_plain(plain, time.time_ns())
                known = self.offset_by_ssrc.get(ssrc)
                if known is None:
                    continue
            if peer is None or not stats.counting:
                continue
            kind, offset = known
            in_seq = (int.from_bytes(data[2:4], "big") - offset) & 0xFFFF
            ring = peer.rings[kind]
            slot = in_seq & MASK
            if ring.seqs[slot] != in_seq or ring.flags[slot] != 1:
                continue
            ring.flags[slot] = 2
            kernel_ns = 0
            for level, kind_, value in ancillary:
                if level == socket.SOL_SOCKET and kind_ == SCM_TIMESTAMPNS:
                    secs, nanos = struct.unpack("qq", value[:16])
                    kernel_ns = secs * 1_000_000_000 + nanos
            stats.received += 1
            if kernel_ns:
                stats.delays.append((kernel_ns - ring.times[slot]) / 1000)


class ClientProcess:
    def __init__(self, relay: Any, clip: list[tuple[list[bytes], bool]]) -> None:
        self.channel: Any = (
            RelayChannel(relay) if isinstance(relay, Connection) else ServiceChannel(*relay)
        )
        self.clip = clip
        self.calls: dict[str, tuple[Leg, Leg]] = {}
        self.hooked: weakref.WeakSet[Any] = weakref.WeakSet()
        self.stats = Stats()
        self.first_media: list[tuple[float, ...]] = []
        self.failures: list[str] = []
        loop = asyncio.get_running_loop()
        self.direct_out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.direct_out.setblocking(False)
        self.direct_in = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.direct_in.bind(("127.0.0.1", 0))
        self.direct_in.setblocking(False)
        self.direct_in.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.direct_address = self.direct_in.getsockname()
        loop.add_reader(self.direct_in.fileno(), self._direct_readable)

    def send_direct(self, size: int) -> None:
        payload = struct.pack("!q", time.time_ns()).ljust(size, b"\0")
        try:
            self.direct_out.sendto(payload, self.direct_address)
        except OSError:
            pass

    def _direct_readable(self) -> None:
        space = socket.CMSG_SPACE(16)
        while True:
            try:
                data, ancillary, _flags, _address = self.direct_in.recvmsg(2048, space)
            except (BlockingIOError, InterruptedError):
                return
            if not self.stats.counting or len(data) < 8:
                continue
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                    secs, nanos = struct.unpack("qq", value[:16])
                    sent = struct.unpack_from("!q", data, 0)[0]
                    self.stats.direct.append((secs * 1_000_000_000 + nanos - sent) / 1000)

    async def open_call(self, call_id: str, gap: float) -> None:
        """Leg a joins and publishes; `gap` later leg b joins (the new subscriber)."""
        a = Leg(self, call_id, "a", self.clip)
        b = Leg(self, call_id, "b", self.clip)
        a.peer, b.peer = b, a
        self.calls[call_id] = (a, b)
        try:
            await a.join()
            await a.wait_connected()
            a.start_sending()
            await asyncio.sleep(gap)
            await b.join()
            await b.wait_connected()
            b.start_sending()
            for leg in (a, b):
                # the first key frame through aiortc's path (first media), then the socket is ours
                try:
                    await asyncio.wait_for(asyncio.shield(leg.keyframe_seen), 5.0)
                except TimeoutError:
                    self.failures.append(f"{call_id}/{leg.name}: no key frame in 5 s")
                leg.take_over_socket()
            if b.first_video_ns and b.first_keyframe_ns:
                self.first_media.append(b.first_media())
        except Exception as exc:
            self.failures.append(f"{call_id}: {exc!r}")

    async def fan_out(self, room: str, subscribers: int, gaps: list[float]) -> None:
        """One publisher, then `subscribers` receive-only legs joining one after another
        `gaps` apart (as subscribers join a publisher): each one's first media."""
        publisher = Leg(self, room, "publisher", self.clip)
        legs = [publisher]
        try:
            await publisher.join()
            await publisher.wait_connected()
            publisher.start_sending()
            for index in range(subscribers):
                await asyncio.sleep(gaps[index])
                leg = Leg(self, room, f"subscriber{index}", self.clip, publish=False)
                legs.append(leg)
                await leg.join()
                await leg.wait_connected()
                try:
                    await asyncio.wait_for(asyncio.shield(leg.keyframe_seen), 5.0)
                except TimeoutError:
                    self.failures.append(f"{room}/{leg.name}: no key frame in 5 s")
                    continue
                self.first_media.append(leg.first_media())
        except Exception as exc:
            self.failures.append(f"{room}: {exc!r}")
        finally:
            publisher.sending = False
            await self.channel.request("close_room", room=room)
            await asyncio.gather(*(leg.close() for leg in legs))

    async def close_call(self, call_id: str) -> None:
        legs = self.calls.pop(call_id, None)
        if legs is None:
            return
        for leg in legs:
            leg.sending = False
        await self.channel.request("close_room", room=call_id)
        await asyncio.gather(*(leg.close() for leg in legs))


async def _open_calls(process: ClientProcess, calls: list[str], gap: float, parallel: int) -> None:
    limit = asyncio.Semaphore(parallel)

    async def one(call_id: str) -> None:
        async with limit:
            await process.open_call(call_id, gap)

    await asyncio.gather(*(one(call_id) for call_id in calls))


async def _client_main(relay: Any, control: Connection, clip: Any) -> None:
    process = ClientProcess(relay, clip)
    if isinstance(process.channel, ServiceChannel):
        await process.channel.start()
    while True:
        command = await receive(control)
        op = command["op"]
        if op == "open":
            before = len(process.first_media)
            failures = len(process.failures)
            await _open_calls(process, command["calls"], command["gap"], command.get("parallel", 4))
            control.send(
                {
                    "first_media": process.first_media[before:],
                    "failures": process.failures[failures:],
                    "calls": len(process.calls),
                }
            )
        elif op == "fan_out":
            before = len(process.first_media)
            failures = len(process.failures)
            await process.fan_out(command["room"], command["subscribers"], command["gaps"])
            control.send(
                {
                    "first_media": process.first_media[before:],
                    "failures": process.failures[failures:],
                }
            )
        elif op == "close":
            await asyncio.gather(*(process.close_call(c) for c in command["calls"]))
            control.send({"calls": len(process.calls)})
        elif op == "measure":
            control.send(await _measure(process, command["seconds"]))
        elif op == "rooms":
            control.send(await process.channel.request("rooms"))
        elif op == "exit":
            control.send({"ok": True})
            os._exit(0)


async def _measure(process: ClientProcess, seconds: float) -> dict[str, Any]:
    """Mark what is sent for `seconds`; count marked packets arriving until 0.5 s after."""
    legs = [leg for pair in process.calls.values() for leg in pair]
    for leg in legs:
        for ring in leg.rings.values():
            ring.sent_in_window = 0
            ring.flags[:] = bytes(RING)
    stats = Stats()
    process.stats = stats
    stats.marking = stats.counting = True
    await asyncio.sleep(seconds)
    stats.marking = False
    sent = sum(ring.sent_in_window for leg in legs for ring in leg.rings.values())
    await asyncio.sleep(0.5)
    stats.counting = False
    return {
        "sent": sent,
        "received": stats.received,
        "delays": stats.delays,
        "direct": stats.direct,
        "legs": len(legs),
    }


def client_process(relay: Any, control: Connection, clip: Any, cpus: set[int] | None) -> None:
    pin(cpus)
    asyncio.run(_client_main(relay, control, clip))


# ----------------------------------------------------------------------------- coordinator


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


class CallsBench:
    """The relay process, the client processes, and the calls open through them."""

    def __init__(
        self, client_processes: int = 3, pin_relay: bool = False, service: bool = False
    ) -> None:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        clip = [(packetize_vp8(frame), key) for frame, key in encode_clip(CLIP_SECONDS)]
        cpus = sorted(os.sched_getaffinity(0))
        relay_cpus = {cpus[-1]} if pin_relay and len(cpus) > 1 else None
        load_cpus = set(cpus[:-1]) if relay_cpus else None
        self.processes: list[Any] = []
        self.service: Any = None
        self._probe_id = 0
        ends: list[Any]
        if service:
            # the shipped relay node, `etapalvelu relay`, as bench.py starts it
            from media_relay.bench_service import RelayService

            self.service = RelayService(lambda: pin(relay_cpus), None)
            self.service.start()
            address = (self.service.node_id, self.service.url, self.service.secret)
            ends = [address] * client_processes
        else:
            pipes = [context.Pipe() for _ in range(client_processes + 1)]
            self.relay = context.Process(
                target=relay_process, args=([p[0] for p in pipes], relay_cpus), daemon=True
            )
            self.relay.start()
            self.processes.append(self.relay)
            self._probe_conn = pipes[-1][1]
            ends = [pipe[1] for pipe in pipes[:-1]]
        self.controls: list[Connection] = []
        for index in range(client_processes):
            control, child = context.Pipe()
            process = context.Process(
                target=client_process, args=(ends[index], child, clip, load_cpus), daemon=True
            )
            process.start()
            self.processes.append(process)
            self.controls.append(control)
        self.open_calls: list[tuple[int, str]] = []  # (client, call id), oldest first
        self._next_call = 0
        self.first_media: list[tuple[float, ...]] = []
        self.failures: list[str] = []
        where = f"pinned to CPU {sorted(relay_cpus or [])}" if relay_cpus else "unpinned"
        kind = "`etapalvelu relay` service" if service else "LocalRelay on uvloop, forked"
        self.placement = f"{kind}, {where}"

    def relay_request(self, op: str, **fields: Any) -> Any:
        if self.service is not None:
            if op == "probe":
                return self._service_probe()
            return [] if op == "memory" else ""  # the service has no such hooks
        self._probe_id += 1
        self._probe_conn.send({"id": self._probe_id, "op": op, **fields})
        if not self._probe_conn.poll(60):
            raise RuntimeError("the relay process stopped answering")
        return self._probe_conn.recv()["reply"]

    def _service_probe(self) -> dict[str, Any]:
        from media_relay.bench_service import process_cpu_seconds

        pid = self.service.pid
        rss_kb = 0
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss_kb = int(line.split()[1])
        self.controls[0].send({"op": "rooms"})
        rooms = self._gather([self.controls[0]], 30)[0]
        return {
            "cpu": process_cpu_seconds(pid),
            "wall": time.time(),
            "rss_kb": rss_kb,
            "forwarded": None,  # counted at the subscribers instead
            "rooms": len(rooms),
            "gone": 0,
            "trim_ms": None,
        }

    def probe(self, collect: bool = False, trim: bool = False) -> dict[str, Any]:
        return dict(self.relay_request("probe", collect=collect, trim=trim))

    def _gather(self, controls: list[Connection], timeout: float) -> list[Any]:
        replies = []
        deadline = time.monotonic() + timeout
        for control in controls:
            if not control.poll(max(0.1, deadline - time.monotonic())):
                raise RuntimeError("a client process stopped answering")
            replies.append(control.recv())
        return replies

    def open(self, count: int, gap: float = 0.2, parallel: int = 4) -> None:
        """Open `count` more calls, spread over the client processes."""
        per_client: dict[int, list[str]] = {}
        for _ in range(count):
            client = self._next_call % len(self.controls)
            call_id = f"call-{self._next_call}"
            self._next_call += 1
            per_client.setdefault(client, []).append(call_id)
            self.open_calls.append((client, call_id))
        for client, calls in per_client.items():
            self.controls[client].send(
                {"op": "open", "calls": calls, "gap": gap, "parallel": parallel}
            )
        for reply in self._gather([self.controls[c] for c in per_client], 60 + 2 * count):
            self.first_media.extend(reply["first_media"])
            self.failures.extend(reply["failures"])

    def close(self, count: int | None = None, newest: bool = True) -> None:
        """Close `count` calls (all by default): the newest, or the oldest."""
        if count is None:
            count = len(self.open_calls)
        if newest:
            closing = self.open_calls[len(self.open_calls) - count :]
            self.open_calls = self.open_calls[: len(self.open_calls) - count]
        else:
            closing, self.open_calls = self.open_calls[:count], self.open_calls[count:]
        per_client: dict[int, list[str]] = {}
        for client, call_id in closing:
            per_client.setdefault(client, []).append(call_id)
        for client, calls in per_client.items():
            self.controls[client].send({"op": "close", "calls": calls})
        self._gather([self.controls[c] for c in per_client], 60 + len(closing))

    def measure(self, seconds: float) -> dict[str, Any]:
        calls = len(self.open_calls)
        before = self.probe()
        for control in self.controls:
            control.send({"op": "measure", "seconds": seconds})
        replies = self._gather(self.controls, seconds + 30)
        after = self.probe()
        sent = sum(r["sent"] for r in replies)
        received = sum(r["received"] for r in replies)
        delays = [d for r in replies for d in r["delays"]]
        direct = [d for r in replies for d in r["direct"]]
        cpu = after["cpu"] - before["cpu"]
        wall = after["wall"] - before["wall"]
        if after["forwarded"] is None:  # the service: packets delivered at the subscribers
            forwarded = received * wall / seconds if seconds else 0
        else:
            forwarded = after["forwarded"] - before["forwarded"]
        relay_path = percentiles(delays)
        direct_path = percentiles(direct)
        share = cpu / wall if wall > 0 else 0.0
        loss = 1 - received / sent if sent else 1.0
        return {
            "calls": calls,
            "seconds": seconds,
            "sent_pps": round(sent / seconds),
            "loss": round(max(loss, 0.0), 5),
            "latency_us": relay_path,
            "direct_path_us": direct_path,
            "added_latency_us": {
                key: round(relay_path[key] - direct_path[key], 1)
                for key in ("p50", "p99")
                if relay_path[key] == relay_path[key] and direct_path[key] == direct_path[key]
            },
            "relay_cpu_share": round(share, 3),
            "cpu_pct_per_call": round(100 * share / calls, 3) if calls else None,
            "cpu_us_per_packet": round(cpu * 1e6 / forwarded, 1) if forwarded else None,
            "forwarded_pps": round(forwarded / wall) if wall > 0 else 0,
            "relay_rss_mb": round(after["rss_kb"] / 1024, 1),
            "relay_gone": after["gone"],
        }

    def ok(self, figures: dict[str, Any]) -> bool:
        p99 = figures["latency_us"]["p99"]
        return figures["loss"] < KNEE_LOSS and p99 == p99 and p99 < KNEE_P99_US

    def stop(self) -> None:
        for control in self.controls:
            try:
                control.send({"op": "exit"})
            except OSError:
                pass
        if self.service is not None:
            self.service.stop()
        else:
            try:
                self._probe_conn.send({"id": 0, "op": "stop"})
            except OSError:
                pass
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=2)


def first_media_figures(samples: list[tuple[float, ...]]) -> dict[str, Any]:
    packets_ms = [s[0] for s in samples]
    keyframe_ms = [s[1] for s in samples]
    connected_ms = [s[2] for s in samples]
    # after the connection came up: the relay's part (key frame, replay) without ICE/DTLS
    after_connect = [s[0] - s[2] for s in samples]
    return {
        "connected_p50": _pct(connected_ms, 0.5),
        "connected_p95": _pct(connected_ms, 0.95),
        "after_connected_p50": _pct(after_connect, 0.5),
        "after_connected_p95": _pct(after_connect, 0.95),
        "p50": _pct(packets_ms, 0.5),
        "p95": _pct(packets_ms, 0.95),
        "max": round(max(packets_ms), 1) if packets_ms else None,
        "keyframe_p50": _pct(keyframe_ms, 0.5),
        "keyframe_p95": _pct(keyframe_ms, 0.95),
        "keyframe_max": round(max(keyframe_ms), 1) if keyframe_ms else None,
        "samples": len(samples),
    }


def measure_first_media(bench: CallsBench, count: int) -> dict[str, Any]:
    """`count` new subscribers of one publisher (natural key frame every 10 s), joining one
    after another 0.05–0.6 s apart, one at a time (each waits for its first key frame)."""
    rng = random.Random(13)
    gaps = [1.0] + [rng.uniform(0.05, 0.6) for _ in range(count - 1)]
    control = bench.controls[0]
    control.send({"op": "fan_out", "room": "first-media", "subscribers": count, "gaps": gaps})
    reply = bench._gather([control], 60 + 6 * count)[0]
    bench.failures.extend(reply["failures"])
    return first_media_figures(reply["first_media"])


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(
    calls: int | None,
    find_knee: bool,
    seconds: float,
    first_media: int,
    soak: float,
    client_processes: int,
    max_calls: int,
    pin_relay: bool,
    memory: bool = False,
    profile: bool = False,
    service: bool = False,
) -> dict[str, Any]:
    load_before = os.getloadavg()
    bench = CallsBench(client_processes, pin_relay, service)
    result: dict[str, Any] = {"placement": bench.placement, "client_processes": client_processes}
    try:
        idle = bench.probe(collect=True)
        result["relay_rss_idle_mb"] = round(idle["rss_kb"] / 1024, 1)
        if first_media:
            _log(f"first media: {first_media} new subscribers, one at a time")
            result["first_media_ms"] = measure_first_media(bench, first_media)
            _log(f"  {result['first_media_ms']}")
        base = bench.probe(collect=True)
        if memory:
            bench.relay_request("memory", start=True)
        if profile:
            bench.relay_request("profile", start=True)
        steps: list[dict[str, Any]] = []
        peak: list[Any] = [0, None]  # most calls so far, RSS per call at that step

        def step(n: int) -> dict[str, Any]:
            have = len(bench.open_calls)
            if n > have:
                bench.open(n - have)
            elif n < have:
                bench.close(have - n)
            time.sleep(1.0)
            figures = bench.measure(seconds)
            with_calls = bench.probe(collect=True)
            # RSS per call from steps that grew the relay to a size it never had (memory of
            # closed calls is kept by the allocators for reuse: see rss_return and --soak)
            if n > peak[0]:
                peak[0] = n
                peak[1] = round((with_calls["rss_kb"] - base["rss_kb"]) / 1024 / n, 3)
            figures["rss_mb_per_call"] = peak[1]
            figures["ok"] = bench.ok(figures)
            steps.append(figures)
            _log(
                f"  {n} calls: loss {figures['loss']:.3%}, latency µs {figures['latency_us']}, "
                f"direct {figures['direct_path_us']}, relay CPU {figures['relay_cpu_share']:.0%} "
                f"({figures['cpu_pct_per_call']} %/call, {figures['cpu_us_per_packet']} µs/pkt), "
                f"RSS {figures['rss_mb_per_call']} MB/call -> {'ok' if figures['ok'] else 'over'}"
            )
            return figures

        if find_knee:
            _log("knee search (loss < 0.1 %, p99 < 5 ms)")
            good, bad = 0, 0
            n = 10
            while n <= max_calls:
                if step(n)["ok"]:
                    good = n
                    n *= 2
                else:
                    bad = n
                    break
            while bad and bad - good > max(2, good // 10):
                mid = (good + bad) // 2
                if step(mid)["ok"]:
                    good = mid
                else:
                    bad = mid
            result["knee_calls"] = good
            result["knee_bounded_by"] = bad or f">{max_calls} (max)"
            at_knee = next((s for s in steps if s["calls"] == good and s["ok"]), None)
            headline = at_knee or steps[-1]
        elif calls:
            _log(f"{calls} calls, {seconds} s measured")
            headline = step(calls)
            result["knee_calls"] = calls if headline["ok"] else None
        else:
            headline = None
        if memory:
            result["relay_memory_top"] = bench.relay_request("memory")
        if profile:
            _log(bench.relay_request("profile"))
        if headline is not None:
            for key in (
                "calls",
                "loss",
                "latency_us",
                "direct_path_us",
                "added_latency_us",
                "cpu_pct_per_call",
                "cpu_us_per_packet",
                "relay_cpu_share",
                "rss_mb_per_call",
                "sent_pps",
                "forwarded_pps",
            ):
                result[key] = headline[key]
            result["steps"] = [
                {k: s[k] for k in ("calls", "loss", "latency_us", "relay_cpu_share", "ok")}
                for s in steps
            ]
            before_close = bench.probe(collect=True)
            bench.close()
            time.sleep(1.0)
            after_close = bench.probe(collect=True)
            trimmed = bench.probe(collect=True, trim=True)
            result["rss_return"] = {
                "after_malloc_trim_mb": round(trimmed["rss_kb"] / 1024, 1),
                "malloc_trim_ms": trimmed["trim_ms"],
                "before_calls_mb": round(base["rss_kb"] / 1024, 1),
                "with_calls_mb": round(before_close["rss_kb"] / 1024, 1),
                "after_close_mb": round(after_close["rss_kb"] / 1024, 1),
                "rooms_left": after_close["rooms"],
            }
        if soak > 0:
            result["soak"] = run_soak(bench, soak, calls or 20)
            if memory:
                result["relay_memory_after_soak"] = bench.relay_request("memory")
        result["first_media_ms"] = result.get("first_media_ms") or first_media_figures(
            bench.first_media
        )
        result["failures"] = bench.failures[:10]
        result["failure_count"] = len(bench.failures)
    finally:
        bench.stop()
    result["load_average"] = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
    }
    return result


def run_soak(bench: CallsBench, seconds: float, calls: int) -> dict[str, Any]:
    """Calls coming and going for `seconds`: every second the oldest tenth closes and as many
    new ones open; RSS with `calls` open at the start (caches full) and at the end, and after
    all closed (the relay trims the allocator at most every 10 s when a room closes)."""
    _log(f"soak: {calls} calls, churn for {seconds} s")
    if len(bench.open_calls) < calls:
        bench.open(calls - len(bench.open_calls))
    time.sleep(6.0)  # the NACK caches full (384 video packets: 3.5 s), as in steady state
    start = bench.probe(collect=True)
    churn = max(1, calls // 10)
    end_at = time.monotonic() + seconds
    cycles = 0
    while time.monotonic() < end_at:
        bench.close(churn, newest=False)
        bench.open(churn)
        cycles += 1
        time.sleep(max(0.0, 1.0))
    time.sleep(1.0)
    end = bench.probe(collect=True)
    bench.close()
    time.sleep(1.0)
    empty = bench.probe(collect=True)
    trimmed = bench.probe(collect=True, trim=True)
    figures = {
        "seconds": seconds,
        "calls": calls,
        "calls_opened": cycles * churn,
        "start_rss_mb": round(start["rss_kb"] / 1024, 1),
        "end_rss_mb": round(end["rss_kb"] / 1024, 1),
        "change": round(end["rss_kb"] / start["rss_kb"] - 1, 3),
        "after_close_mb": round(empty["rss_kb"] / 1024, 1),
        "after_close_trimmed_mb": round(trimmed["rss_kb"] / 1024, 1),
        "rooms_left": empty["rooms"],
    }
    _log(f"  {figures}")
    return figures


def _nan_safe(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_safe(v) for v in value]
    return value


def print_report(result: dict[str, Any], out: Any = sys.stdout) -> None:
    result = _nan_safe(result)
    fm = result.get("first_media_ms") or {}
    print(
        f"relay ({result['placement']}), {result['client_processes']} client processes; "
        f"load average {result['load_average']}",
        file=out,
    )
    if fm.get("samples"):
        print(
            f"first media ms (answer -> first video packet): p50 {fm['p50']} p95 {fm['p95']} "
            f"max {fm['max']}; -> first whole key frame: p50 {fm['keyframe_p50']} "
            f"p95 {fm['keyframe_p95']} ({fm['samples']} subscribers)",
            file=out,
        )
    if "calls" in result:
        print(
            f"{result['calls']} calls: loss {result['loss']:.3%}, latency µs "
            f"{result['latency_us']} (direct path {result['direct_path_us']}), relay CPU "
            f"{result['cpu_pct_per_call']} % of a core per call, {result['cpu_us_per_packet']} "
            f"µs per forwarded packet, RSS {result['rss_mb_per_call']} MB per call; knee "
            f"{result.get('knee_calls')}",
            file=out,
        )
    if "rss_return" in result:
        print(f"RSS (MB) before / with calls / after they closed: {result['rss_return']}", file=out)
    if "soak" in result:
        print(f"soak: {result['soak']}", file=out)
    print(json.dumps(result, sort_keys=True), file=out)


def main(
    calls: int | None,
    find_knee: bool,
    seconds: float,
    first_media: int,
    soak: float,
    client_processes: int = 3,
    max_calls: int = 640,
    pin_relay: bool = False,
    memory: bool = False,
    profile: bool = False,
    service: bool = False,
) -> int:
    result = run(
        calls,
        find_knee,
        seconds,
        first_media,
        soak,
        client_processes,
        max_calls,
        pin_relay,
        memory,
        profile,
        service,
    )
    print_report(result)
    return 0


if __name__ == "__main__":  # quick runs while developing
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int)
    parser.add_argument("--find-knee", action="store_true")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--first-media", type=int, default=0)
    parser.add_argument("--soak", type=float, default=0.0)
    parser.add_argument("--client-processes", type=int, default=3)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--service", action="store_true")
    a = parser.parse_args()
    sys.exit(
        main(
            a.calls,
            a.find_knee,
            a.seconds,
            a.first_media,
            a.soak,
            a.client_processes,
            pin_relay=a.pin,
            memory=a.memory,
            profile=a.profile,
            service=a.service,
        )
    )


def main_from_args(args: Any) -> int:
    """`etapalvelu bench relay --calls N|knee [--find-knee] [--first-media K] [--soak S]`."""
    find_knee = bool(args.find_knee)
    calls: int | None = None
    if args.calls is not None:
        if args.calls == "knee":
            find_knee = True
        else:
            try:
                calls = int(args.calls)
            except ValueError:
                print("--calls takes a number of calls or 'knee'")
                return 2
            if calls < 1:
                print("--calls must be at least 1")
                return 2
    first_media = args.first_media
    if first_media is None:
        first_media = 20 if (calls or find_knee) else 0
    if first_media < 0 or args.soak < 0 or args.calls_seconds <= 0 or args.client_processes < 1:
        print(
            "--first-media and --soak must not be negative, --calls-seconds positive and "
            "--client-processes at least 1"
        )
        return 2
    return main(
        calls,
        find_knee,
        args.calls_seconds,
        first_media,
        args.soak,
        args.client_processes,
        pin_relay=bool(getattr(args, "pin", False)),
        service=not getattr(args, "calls_in_process", False),
    )
