"""Free slots (issue 17), as pure rules: the experts' availability ∩ the office's service hours,
cut into slots of the authority's length, minus what is already booked.

A slot is free while some expert who is available for the whole slot has no live appointment
overlapping it. Every rule is Helsinki wall-clock time (signaling/directory/service_hours.py), and
every
instant here is UTC: a slot of 30 minutes is 30 real minutes also on the nights the clocks
change. Slots are cut from the start of each window (09:00, 09:30, …), so an authority's slots
line up for every expert whose availability starts on the same grid.

No database here: signaling/booking/booking.py loads the rules and the booked times and asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from signaling.directory.service_hours import ServiceHours

Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class Booked:
    """An expert's live appointment, [starts_at, ends_at)."""

    expert_id: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    ends_at: datetime
    # Experts free for the whole slot, in the order they should be given work.
    experts: tuple[int, ...]


def _windows(hours: ServiceHours, start: datetime, end: datetime) -> list[Window]:
    days = (end - start).days + 2
    result = []
    for w_start, w_end in hours.windows(start, days):
        if w_end <= start:
            continue
        if w_start >= end:
            break
        result.append((max(w_start, start), min(w_end, end)))
    return result


def intersect(first: Sequence[Window], second: Sequence[Window]) -> list[Window]:
    """The instants in both lists of sorted, disjoint windows."""
    result: list[Window] = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            result.append((start, end))
        if first[i][1] <= second[j][1]:
            i += 1
        else:
            j += 1
    return result


def cut(windows: Iterable[Window], length: timedelta) -> list[Window]:
    """Whole slots of `length` from the start of each window."""
    slots = []
    for start, end in windows:
        at = start
        while at + length <= end:
            slots.append((at, at + length))
            at += length
    return slots


def free_slots(
    availability: Mapping[int, ServiceHours],
    office_hours: ServiceHours | None,
    booked: Iterable[Booked],
    length: timedelta,
    start: datetime,
    end: datetime,
    not_before: datetime | None = None,
) -> list[Slot]:
    """The free slots in [start, end): `availability` maps expert id → his weekly hours for
    this authority; `office_hours` None means the office serves the authority at all times.
    Slots are cut from the windows as clipped by `start` (give a local midnight to keep the
    grid), and those starting before `not_before` are left out."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start or length <= timedelta(0):
        return []
    office = _windows(office_hours, start, end) if office_hours is not None else [(start, end)]
    busy: dict[int, list[Booked]] = {}
    for item in booked:
        busy.setdefault(item.expert_id, []).append(item)
    load = {expert: len(items) for expert, items in busy.items()}
    per_start: dict[datetime, tuple[datetime, list[int]]] = {}
    for expert, hours in availability.items():
        windows = intersect(_windows(hours, start, end), office)
        for slot_start, slot_end in cut(windows, length):
            if not_before is not None and slot_start < not_before:
                continue
            clash = any(
                b.starts_at < slot_end and slot_start < b.ends_at for b in busy.get(expert, ())
            )
            if clash:
                continue
            entry = per_start.setdefault(slot_start, (slot_end, []))
            entry[1].append(expert)
    return [
        # The least booked expert first, then by id: work spreads evenly and predictably.
        Slot(at, slot_end, tuple(sorted(experts, key=lambda e: (load.get(e, 0), e))))
        for at, (slot_end, experts) in sorted(per_start.items())
    ]


__all__ = ["Booked", "Slot", "cut", "free_slots", "intersect"]
