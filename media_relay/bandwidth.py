"""Which subscriber a publisher's video follows: the REMB the relay passes upstream.

A publisher sends one encoding, so every subscriber of a track gets the same bitrate; each
subscriber's browser says what its downlink takes (REMB, draft-alvestrand-rmcat-remb) and
the relay passes one figure upstream once a second (with its receiver report). The policy:

* Follow the slowest subscriber: the publisher sends what every subscriber can receive.
* Unless one stays far below the others: a subscriber whose estimate is under `far_below`
  (50 %) of the median of the other subscribers' estimates for longer than `hold_limit`
  (10 s) stops holding the rest down; the publisher follows the next slowest. The ignored
  subscriber keeps receiving (its own congestion shows as loss, NACKs and key-frame
  requests) and is followed again once its estimate is back at `recovered` (60 %) of the
  others' median — the gap between the two shares keeps it from flapping. At most
  max(1, (n − 1) // 2) of n subscribers are ignored at once, the slowest first, so the
  relay never follows one fast subscriber against a slow majority.
* Never ask for less than `floor` (a REMB of 0 from a broken client must not stall a call).

`choose_bitrate` is a pure function of the estimates and the previous call's state; the
caller (forwarding.PublishedTrack.estimated_bitrate) keeps the state and the statistics.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class SlowSubscriberPolicy:
    far_below: float = 0.5
    recovered: float = 0.6
    hold_limit: float = 10.0
    floor: int = 50_000


class Choice(NamedTuple):
    """What to pass upstream, and the state for the next call."""

    bitrate: int | None  # None: no subscriber reported (send no REMB)
    held_down_by: str | None  # the subscriber whose estimate `bitrate` is
    ignored: frozenset[str]  # subscribers not followed now
    slow_since: dict[str, float]  # subscriber -> since when it has been far below the others
    newly_ignored: frozenset[str]  # ignored now and not at the previous call


def choose_bitrate(
    estimates: Mapping[str, int],
    slow_since: Mapping[str, float],
    ignored_before: frozenset[str],
    now: float,
    policy: SlowSubscriberPolicy,
) -> Choice:
    """`estimates`: subscriber -> its current estimate (bit/s); `slow_since` and
    `ignored_before`: the previous call's `slow_since` and `ignored`."""
    if not estimates:
        return Choice(None, None, frozenset(), {}, frozenset())
    since: dict[str, float] = {}
    for key, value in estimates.items():
        others = [other for name, other in estimates.items() if name != key]
        if not others:
            continue
        share = policy.recovered if key in slow_since else policy.far_below
        if value < share * statistics.median(others):
            since[key] = slow_since.get(key, now)
    overdue = sorted(
        (key for key, start in since.items() if now - start >= policy.hold_limit),
        key=lambda key: (estimates[key], key),
    )
    ignored = frozenset(overdue[: max(1, (len(estimates) - 1) // 2)])
    # the fastest subscriber is never below the median of the others: someone is followed
    followed = {key: value for key, value in estimates.items() if key not in ignored}
    slowest = min(followed, key=lambda key: (followed[key], key))
    return Choice(
        max(policy.floor, int(followed[slowest])),
        slowest,
        ignored,
        since,
        ignored - ignored_before,
    )
