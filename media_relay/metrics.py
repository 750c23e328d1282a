"""Prometheus metrics of the relay: `RelayCollector(relay)` for one relay (the signaling app
registers one for its in-process relay in the registry it serves at /metrics), and COLLECTOR,
in the default registry, for every running relay in this process (a relay node serves it:
one relay, running for the life of the process).

The hot path only increments plain integer attributes; collectors read them when Prometheus
scrapes, so forwarding a packet never touches a metrics lock.

Counters stay monotonic although the objects that count go away (a participant leaves or
reconnects, a track is unpublished, a room closes): each relay has a `RelayLedger` that holds
on to the participants and tracks it has seen and, once one is no longer in the relay, adds
its final counts to the relay's running totals and lets it go. The ledger sweeps when
Prometheus scrapes and every `SWEEP_SECONDS` while the relay runs, so a departed participant
is held (not freed) for at most that long; one that joins and leaves between two sweeps is
not counted (it lived under a second).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from media_relay.control import LocalRelay
    from media_relay.forwarding import PublishedTrack
    from media_relay.participant import Participant

SWEEP_SECONDS = 1.0

_relays: weakref.WeakSet[LocalRelay] = weakref.WeakSet()  # running relays


@dataclass
class Counts:
    """Monotonic relay counters (the `_total` metrics)."""

    received: int = 0
    forwarded: int = 0
    bytes: int = 0
    resent: int = 0
    nacks: int = 0
    plis: int = 0
    feedback: int = 0
    ignored: int = 0
    drops: dict[str, int] = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        self.received += other.received
        self.forwarded += other.forwarded
        self.bytes += other.bytes
        self.resent += other.resent
        self.nacks += other.nacks
        self.plis += other.plis
        self.feedback += other.feedback
        self.ignored += other.ignored
        for reason, count in other.drops.items():
            self.drops[reason] = self.drops.get(reason, 0) + count

    def add_participant(self, participant: Participant) -> None:
        """What a participant counts itself (its published tracks are counted apart)."""
        self.received += participant.rtp_received
        self.nacks += participant.nacks_received
        for reason, count in participant.drops.counts.items():
            self.drops[reason] = self.drops.get(reason, 0) + count
        window = participant.transport_cc
        self.feedback += window.feedback_packets if window is not None else 0
        for stream in participant.forwarded:
            self.forwarded += stream.packets
            self.bytes += stream.bytes
            self.resent += stream.retransmitted

    def add_track(self, track: PublishedTrack) -> None:
        self.plis += track.plis_sent + track.firs_sent
        self.ignored += track.ignored_slow_subscriber


@dataclass
class Snapshot:
    rooms: int
    participants: int  # connected ones
    counts: Counts


class RelayLedger:
    """One relay's counters: live objects summed at each read, departed ones absorbed."""

    def __init__(self) -> None:
        self.gone = Counts()
        # objects seen and not yet absorbed, by id (held strongly so their final counts can
        # be read after they leave the relay)
        self._participants: dict[int, Participant] = {}
        self._tracks: dict[int, PublishedTrack] = {}
        self._timer: asyncio.TimerHandle | None = None

    def sweep(self, relay: LocalRelay) -> Snapshot:
        live = Counts()
        room_count = connected = 0
        participants: dict[int, Participant] = {}
        tracks: dict[int, PublishedTrack] = {}
        for room in relay.rooms.values():
            room_count += 1
            for participant in room.participants.values():
                participants[id(participant)] = participant
                connected += 1 if participant.connected else 0
                live.add_participant(participant)
                for track in participant.published.values():
                    tracks[id(track)] = track
                    live.add_track(track)
        for key, participant in self._participants.items():
            if key not in participants:
                self.gone.add_participant(participant)
        for key, track in self._tracks.items():
            if key not in tracks:
                # a reconnect hands the tracks to the new participant: they are still live
                self.gone.add_track(track)
        self._participants = participants
        self._tracks = tracks
        live.add(self.gone)
        return Snapshot(room_count, connected, live)

    def start_sweeping(self, relay: LocalRelay) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a relay driven synchronously in a test): sweeps on scrape only
        ref = weakref.ref(relay)

        def tick() -> None:
            target = ref()
            if target is None:
                self._timer = None
                return
            self.sweep(target)
            self._timer = loop.call_later(SWEEP_SECONDS, tick)

        self._timer = loop.call_later(SWEEP_SECONDS, tick)

    def stop_sweeping(self, relay: LocalRelay) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.sweep(relay)  # the relay's rooms are closed: everything is absorbed now


_ledgers: weakref.WeakKeyDictionary[LocalRelay, RelayLedger] = weakref.WeakKeyDictionary()


def ledger_of(relay: LocalRelay) -> RelayLedger:
    ledger = _ledgers.get(relay)
    if ledger is None:
        ledger = _ledgers[relay] = RelayLedger()
    return ledger


def track_relay(relay: LocalRelay) -> None:
    _relays.add(relay)
    ledger_of(relay).start_sweeping(relay)


def untrack_relay(relay: LocalRelay) -> None:
    _relays.discard(relay)
    ledger_of(relay).stop_sweeping(relay)


def _is_local(relay: Any) -> bool:
    from media_relay.control import LocalRelay

    return isinstance(relay, LocalRelay)


class RelayCollector(Collector):
    """One relay's figures (`relay` given; a RemoteRelay is skipped: its node exports its own),
    or those of every running relay of this process (no argument). A relay's counters never
    fall while it exists, stopped or not; the process-wide sum leaves a stopped relay out."""

    def __init__(self, relay: Any = None) -> None:
        self._relay = weakref.ref(relay) if relay is not None and _is_local(relay) else None
        self._all = relay is None

    def _snapshot(self) -> Snapshot:
        total = Snapshot(0, 0, Counts())
        if self._all:
            relays = [(relay, ledger_of(relay)) for relay in list(_relays)]
        else:
            relay = self._relay() if self._relay is not None else None
            relays = [(relay, ledger_of(relay))] if relay is not None else []
        for relay, ledger in relays:
            snapshot = ledger.sweep(relay)
            if relay.running:
                total.rooms += snapshot.rooms
                total.participants += snapshot.participants
            total.counts.add(snapshot.counts)
        return total

    def collect(self) -> Iterator[Any]:
        snapshot = self._snapshot()
        counts = snapshot.counts
        rooms = GaugeMetricFamily("etapalvelu_relay_rooms", "Rooms open in the media relay")
        rooms.add_metric([], snapshot.rooms)
        participants = GaugeMetricFamily(
            "etapalvelu_relay_participants", "Participants connected to the media relay"
        )
        participants.add_metric([], snapshot.participants)
        yield rooms
        yield participants
        simple: list[tuple[str, str, Callable[[Counts], int]]] = [
            ("rtp_received_packets", "RTP packets received from publishers", _get("received")),
            ("rtp_forwarded_packets", "RTP packets sent to subscribers", _get("forwarded")),
            ("rtp_forwarded_bytes", "RTP bytes sent to subscribers", _get("bytes")),
            ("retransmitted_packets", "Packets resent from the NACK cache", _get("resent")),
            ("nacks", "NACKs received from subscribers", _get("nacks")),
            ("plis", "Key-frame requests (PLI or FIR) sent to publishers", _get("plis")),
        ]
        for name, text, read in simple:
            family = CounterMetricFamily(f"etapalvelu_relay_{name}", text)
            family.add_metric([], read(counts))
            yield family
        dropped = CounterMetricFamily(
            "etapalvelu_relay_dropped_packets", "Packets dropped, by reason", labels=["reason"]
        )
        for reason, count in sorted(counts.drops.items()):
            dropped.add_metric([reason], count)
        yield dropped
        feedback = CounterMetricFamily(
            "etapalvelu_relay_transport_feedback_packets",
            "Transport Feedback (transport-wide congestion control) sent to publishers",
        )
        feedback.add_metric([], counts.feedback)
        yield feedback
        ignored = CounterMetricFamily(
            "etapalvelu_relay_ignored_slow_subscribers",
            "Times a subscriber far below the others stopped holding a publisher down (REMB)",
        )
        ignored.add_metric([], counts.ignored)
        yield ignored


def _get(name: str) -> Callable[[Counts], int]:
    return lambda counts: int(getattr(counts, name))


class NodeCollector(Collector):
    """A relay node's own figures (media_relay/node.py serves them with the default registry,
    which also holds COLLECTOR and the process collector's CPU seconds and memory)."""

    def __init__(self, describe: Callable[[], dict[str, Any]]) -> None:
        # describe() -> {"node_id", "site", "capacity", "draining", "connections"}
        self._describe = describe

    def collect(self) -> Iterator[Any]:
        node = self._describe()
        info = GaugeMetricFamily(
            "etapalvelu_relay_node_info", "This relay node", labels=["node_id", "site"]
        )
        info.add_metric([str(node["node_id"]), str(node.get("site") or "")], 1)
        capacity = GaugeMetricFamily(
            "etapalvelu_relay_node_capacity", "Participants this node is sized for"
        )
        capacity.add_metric([], node["capacity"])
        draining = GaugeMetricFamily(
            "etapalvelu_relay_node_draining", "1 while the node is draining (no new calls)"
        )
        draining.add_metric([], 1 if node["draining"] else 0)
        connections = GaugeMetricFamily(
            "etapalvelu_relay_node_control_connections", "Signaling processes connected"
        )
        connections.add_metric([], node["connections"])
        yield from (info, capacity, draining, connections)


COLLECTOR = RelayCollector()
REGISTRY.register(COLLECTOR)
