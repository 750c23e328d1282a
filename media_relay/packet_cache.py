"""Recently forwarded packets of one published stream, to answer NACKs (RFC 4585 §6.2.1).

A ring indexed by sequence number: storing is one list assignment of the bytes object the
relay already holds (no copy); a slot is valid only if its sequence number still matches.
"""

from __future__ import annotations

import time


class PacketCache:
    __slots__ = ("_mask", "_max_age", "_packets", "_seqs", "_times")

    def __init__(self, size: int = 1024, max_age: float = 2.0) -> None:
        if size & (size - 1):
            raise ValueError("size must be a power of two")
        self._mask = size - 1
        self._packets: list[bytes | None] = [None] * size
        self._seqs = [-1] * size
        self._times = [0.0] * size
        self._max_age = max_age

    def store(self, seq: int, packet: bytes, now: float) -> None:
        slot = seq & self._mask
        self._packets[slot] = packet
        self._seqs[slot] = seq
        self._times[slot] = now

    def get(self, seq: int, now: float | None = None) -> bytes | None:
        slot = seq & self._mask
        if self._seqs[slot] != seq:
            return None
        if now is None:
            now = time.monotonic()
        if now - self._times[slot] > self._max_age:
            return None
        return self._packets[slot]

    def clear(self) -> None:
        size = self._mask + 1
        self._packets = [None] * size
        self._seqs = [-1] * size
