"""PacketCache: the NACK ring, its age limit and its `hold` bound (memory per call)."""

from __future__ import annotations

import pytest

from media_relay.packet_cache import PacketCache


def test_hold_bounds_what_the_ring_keeps_across_wraparound() -> None:
    cache = PacketCache(16, 10.0, hold=4)
    for seq in range(65530, 65536 + 6):  # wraps to 0..5
        cache.store(seq & 0xFFFF, bytes([seq & 0xFF]), 1.0)
    held = [seq for seq in range(65536) if cache.get(seq, 1.0) is not None]
    assert held == [2, 3, 4, 5]
    assert cache.entry(5) == (bytes([5]), 1.0)
    assert cache.entry(1) is None
    assert sum(packet is not None for packet in cache._packets) == 4  # let go, not just hidden


def test_age_limits_get_but_not_entry() -> None:
    cache = PacketCache(8, 1.0)
    cache.store(7, b"x", 10.0)
    assert cache.get(7, 10.5) == b"x"
    assert cache.get(7, 11.5) is None
    assert cache.entry(7) == (b"x", 10.0)


@pytest.mark.parametrize(("size", "hold"), [(12, None), (8, 0), (8, 9)])
def test_bad_sizes_are_refused(size: int, hold: int | None) -> None:
    with pytest.raises(ValueError):
        PacketCache(size, 1.0, hold=hold)
