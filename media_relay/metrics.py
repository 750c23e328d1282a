"""Prometheus metrics of the relay: `RelayCollector(relay)` for one relay (the signaling app
registers one for its in-process relay in the registry it serves at /metrics), and COLLECTOR,
in the default registry, for every running relay in this process.

The hot path only increments plain integer attributes; this collector reads them when
Prometheus scrapes, so forwarding a packet never touches a metrics lock.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from media_relay.control import LocalRelay

_relays: weakref.WeakSet[LocalRelay] = weakref.WeakSet()


def track_relay(relay: LocalRelay) -> None:
    _relays.add(relay)


def untrack_relay(relay: LocalRelay) -> None:
    _relays.discard(relay)


class RelayCollector(Collector):
    def __init__(self, relay: LocalRelay | None = None) -> None:
        self._relay = weakref.ref(relay) if relay is not None else None

    def _selected(self) -> list[LocalRelay]:
        if self._relay is None:
            return list(_relays)
        relay = self._relay()
        return [relay] if relay is not None else []

    def collect(self) -> Iterator[Any]:
        rooms = GaugeMetricFamily("etapalvelu_relay_rooms", "Rooms open in the media relay")
        participants = GaugeMetricFamily(
            "etapalvelu_relay_participants", "Participants connected to the media relay"
        )
        received = CounterMetricFamily(
            "etapalvelu_relay_rtp_received_packets", "RTP packets received from publishers"
        )
        forwarded = CounterMetricFamily(
            "etapalvelu_relay_rtp_forwarded_packets", "RTP packets sent to subscribers"
        )
        forwarded_bytes = CounterMetricFamily(
            "etapalvelu_relay_rtp_forwarded_bytes", "RTP bytes sent to subscribers"
        )
        retransmitted = CounterMetricFamily(
            "etapalvelu_relay_retransmitted_packets", "Packets resent from the NACK cache"
        )
        nacks = CounterMetricFamily("etapalvelu_relay_nacks", "NACKs received from subscribers")
        plis = CounterMetricFamily(
            "etapalvelu_relay_plis", "Key-frame requests (PLI or FIR) sent to publishers"
        )
        dropped = CounterMetricFamily(
            "etapalvelu_relay_dropped_packets", "Packets dropped, by reason", labels=["reason"]
        )
        feedback = CounterMetricFamily(
            "etapalvelu_relay_transport_feedback_packets",
            "Transport Feedback (transport-wide congestion control) sent to publishers",
        )
        ignored = CounterMetricFamily(
            "etapalvelu_relay_ignored_slow_subscribers",
            "Times a subscriber far below the others stopped holding a publisher down (REMB)",
        )
        room_count = participant_count = 0
        totals = {"received": 0, "forwarded": 0, "bytes": 0, "resent": 0, "nacks": 0, "plis": 0}
        totals.update(feedback=0, ignored=0)
        drops: dict[str, int] = {}
        for relay in self._selected():
            for room in relay.rooms.values():
                room_count += 1
                for participant in room.participants.values():
                    participant_count += 1 if participant.connected else 0
                    totals["received"] += participant.rtp_received
                    totals["nacks"] += participant.nacks_received
                    for reason, count in participant.drops.counts.items():
                        drops[reason] = drops.get(reason, 0) + count
                    window = participant.transport_cc
                    totals["feedback"] += window.feedback_packets if window is not None else 0
                    for track in participant.published.values():
                        totals["plis"] += track.plis_sent + track.firs_sent
                        totals["ignored"] += track.ignored_slow_subscriber
                    for stream in participant.forwarded:
                        totals["forwarded"] += stream.packets
                        totals["bytes"] += stream.bytes
                        totals["resent"] += stream.retransmitted
        rooms.add_metric([], room_count)
        participants.add_metric([], participant_count)
        received.add_metric([], totals["received"])
        forwarded.add_metric([], totals["forwarded"])
        forwarded_bytes.add_metric([], totals["bytes"])
        retransmitted.add_metric([], totals["resent"])
        nacks.add_metric([], totals["nacks"])
        plis.add_metric([], totals["plis"])
        for reason, count in sorted(drops.items()):
            dropped.add_metric([reason], count)
        feedback.add_metric([], totals["feedback"])
        ignored.add_metric([], totals["ignored"])
        yield from (
            rooms,
            participants,
            received,
            forwarded,
            forwarded_bytes,
            retransmitted,
            nacks,
            plis,
            dropped,
            feedback,
            ignored,
        )


COLLECTOR = RelayCollector()
REGISTRY.register(COLLECTOR)
