"""Recently forwarded packets of one published stream, to answer NACKs (RFC 4585 §6.2.1).

A ring indexed by sequence number: storing is one list assignment of the bytes object the
relay already holds (no copy); a slot is valid only if its sequence number still matches.
Storing also lets go of the packet `hold` sequence numbers back, so the ring holds at most
`hold` packets however long the stream runs (memory per call: a full 1024-slot ring of video
was 1.2 MB per track, most of it older than any NACK can ask for).
"""

from __future__ import annotations

import time


class PacketCache:
    __slots__ = ("_hold", "_mask", "_max_age", "_packets", "_seqs", "_times")

    def __init__(self, size: int = 1024, max_age: float = 2.0, hold: int | None = None) -> None:
        if size & (size - 1):
            raise ValueError("size must be a power of two")
        if hold is None:
            hold = size
        if not 0 < hold <= size:
            raise ValueError("hold must be between 1 and size")
        self._hold = hold
        self._mask = size - 1
        self._packets: list[bytes | None] = [None] * size
        self._seqs = [-1] * size
        self._times = [0.0] * size
        self._max_age = max_age

    def store(self, seq: int, packet: bytes, now: float) -> None:
        mask = self._mask
        slot = seq & mask
        self._packets[slot] = packet
        self._seqs[slot] = seq
        self._times[slot] = now
        if self._hold <= mask:
            old = (seq - self._hold) & mask
            self._packets[old] = None
            self._seqs[old] = -1

    def get(self, seq: int, now: float | None = None) -> bytes | None:
        slot = seq & self._mask
        if self._seqs[slot] != seq:
            return None
        if now is None:
            now = time.monotonic()
        if now - self._times[slot] > self._max_age:
            return None
        return self._packets[slot]

    def entry(self, seq: int) -> tuple[bytes, float] | None:
        """The packet stored for `seq` and when it arrived, however old (None: not held)."""
        slot = seq & self._mask
        if self._seqs[slot] != seq:
            return None
        packet = self._packets[slot]
        return None if packet is None else (packet, self._times[slot])

    def clear(self) -> None:
        size = self._mask + 1
        self._packets = [None] * size
        self._seqs = [-1] * size
