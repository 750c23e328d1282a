"""The REMB policy (media_relay/bandwidth.py) as a pure function: follow the slowest
subscriber, stop following one that has been far below the others for too long, follow it
again once it recovers — checked step by step and over random histories."""

from __future__ import annotations

import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from media_relay.bandwidth import Choice, SlowSubscriberPolicy, choose_bitrate
from media_relay.forwarding import ForwardedStream, PublishedTrack

POLICY = SlowSubscriberPolicy(far_below=0.5, recovered=0.6, hold_limit=10.0, floor=50_000)


class Run:
    """Feeds a history of estimates to choose_bitrate the way PublishedTrack does."""

    def __init__(self, policy: SlowSubscriberPolicy = POLICY) -> None:
        self.policy = policy
        self.since: dict[str, float] = {}
        self.ignored: frozenset[str] = frozenset()
        self.ignored_count = 0

    def at(self, now: float, estimates: dict[str, int]) -> Choice:
        choice = choose_bitrate(estimates, self.since, self.ignored, now, self.policy)
        self.since, self.ignored = choice.slow_since, choice.ignored
        self.ignored_count += len(choice.newly_ignored)
        return choice


def test_nobody_reported() -> None:
    assert Run().at(0.0, {}) == Choice(None, None, frozenset(), {}, frozenset())


def test_a_single_subscriber_is_always_followed_above_the_floor() -> None:
    run = Run()
    for second in range(30):
        choice = run.at(float(second), {"a": 200_000})
        assert (choice.bitrate, choice.held_down_by, choice.ignored) == (200_000, "a", frozenset())
    assert run.at(31.0, {"a": 1}).bitrate == POLICY.floor


def test_follows_the_slowest_then_lets_go_after_the_limit_and_back_when_it_recovers() -> None:
    run = Run()
    fast = {"b": 2_000_000, "c": 1_800_000}
    for second in range(10):  # 10 s of being far below: still followed
        choice = run.at(float(second), {"a": 300_000, **fast})
        assert (choice.bitrate, choice.held_down_by) == (300_000, "a")
        assert choice.slow_since == {"a": 0.0}
    choice = run.at(10.0, {"a": 300_000, **fast})
    assert (choice.bitrate, choice.held_down_by, choice.ignored) == (
        1_800_000,
        "c",
        frozenset({"a"}),
    )
    assert choice.newly_ignored == {"a"} and run.ignored_count == 1
    choice = run.at(11.0, {"a": 1_000_000, **fast})  # 53 % of the others: not recovered yet
    assert choice.ignored == {"a"} and choice.newly_ignored == frozenset()
    choice = run.at(12.0, {"a": 1_200_000, **fast})  # 63 %: followed again
    assert (choice.bitrate, choice.held_down_by, choice.ignored) == (1_200_000, "a", frozenset())
    # dropping again starts a new 10 s
    for second in range(13, 23):
        assert run.at(float(second), {"a": 100_000, **fast}).held_down_by == "a"
    assert run.at(23.0, {"a": 100_000, **fast}).ignored == {"a"}
    assert run.ignored_count == 2


def test_a_short_dip_never_lets_go() -> None:
    run = Run()
    for second in range(60):
        slow = 300_000 if second % 12 < 9 else 1_500_000  # 9 s down, 3 s up
        choice = run.at(float(second), {"a": slow, "b": 2_000_000})
        assert choice.held_down_by == "a" and not choice.ignored
    assert run.ignored_count == 0


def test_a_subscriber_within_half_of_the_others_is_followed_forever() -> None:
    run = Run()
    for second in range(100):
        choice = run.at(float(second), {"a": 1_000_001, "b": 2_000_000})
        assert choice.bitrate == 1_000_001 and not choice.slow_since


def test_two_slow_of_three_the_slowest_is_let_go_not_both() -> None:
    run = Run()
    estimates = {"a": 100_000, "b": 150_000, "c": 1_000_000}
    for second in range(11):
        choice = run.at(float(second), estimates)
    # both are under half the median of the others, but only one of three may be ignored
    assert set(choice.slow_since) == {"a", "b"}
    assert (choice.ignored, choice.held_down_by, choice.bitrate) == ({"a"}, "b", 150_000)


def test_a_subscriber_that_leaves_or_goes_quiet_is_forgotten() -> None:
    run = Run()
    for second in range(11):
        run.at(float(second), {"a": 100_000, "b": 2_000_000})
    assert run.ignored == {"a"}
    assert run.at(11.0, {"b": 2_000_000}).slow_since == {}
    # back later: a fresh 10 s
    assert run.at(12.0, {"a": 100_000, "b": 2_000_000}).held_down_by == "a"


ESTIMATE = st.integers(0, 5_000_000)
NAMES = ["a", "b", "c", "d", "e"]


@settings(max_examples=300, deadline=None)
@given(
    history=st.lists(
        st.tuples(
            st.floats(0.1, 4.0),  # seconds to the next call
            st.dictionaries(st.sampled_from(NAMES), ESTIMATE, max_size=5),
        ),
        min_size=1,
        max_size=60,
    ),
    hold_limit=st.floats(0.5, 15.0),
)
def test_invariants_over_any_history(
    history: list[tuple[float, dict[str, int]]], hold_limit: float
) -> None:
    policy = SlowSubscriberPolicy(hold_limit=hold_limit)
    run = Run(policy)
    now = 0.0
    below_since: dict[str, float] = {}  # recomputed here independently
    for step, estimates in history:
        now += step
        choice = run.at(now, estimates)
        if not estimates:
            assert choice.bitrate is None and choice.held_down_by is None
            below_since.clear()
            continue
        # the figure is a subscriber's estimate (or the floor), and no followed one is lower
        assert choice.held_down_by in estimates
        followed = {k: v for k, v in estimates.items() if k not in choice.ignored}
        assert choice.bitrate == max(policy.floor, min(followed.values()))
        assert estimates[choice.held_down_by] == min(followed.values())
        # never everyone, never a majority against one, never the fastest
        assert len(choice.ignored) <= max(1, (len(estimates) - 1) // 2)
        assert len(choice.ignored) < len(estimates) or not choice.ignored
        if len(estimates) > 1:
            assert max(estimates, key=lambda k: (estimates[k], k)) not in choice.ignored
        # far below by the definition, with the hysteresis, for every subscriber
        for key, value in estimates.items():
            others = [v for k, v in estimates.items() if k != key]
            if not others:
                below_since.pop(key, None)
                continue
            share = policy.recovered if key in below_since else policy.far_below
            if value < share * statistics.median(others):
                below_since.setdefault(key, now)
            else:
                below_since.pop(key, None)
        for key in list(below_since):
            if key not in estimates:
                del below_since[key]
        assert choice.slow_since == below_since
        # ignored only after being far below, without a break, for the whole limit
        for key in choice.ignored:
            assert now - below_since[key] >= hold_limit
        # and everyone far below that long is ignored, up to the cap, slowest first
        overdue = [k for k, t in below_since.items() if now - t >= hold_limit]
        cap = max(1, (len(estimates) - 1) // 2)
        assert len(choice.ignored) == min(cap, len(overdue))
        if choice.ignored and len(overdue) > cap:
            assert max(estimates[k] for k in choice.ignored) <= min(
                estimates[k] for k in overdue if k not in choice.ignored
            )


def test_published_track_applies_the_policy_and_counts() -> None:
    from media_relay import forwarding

    track = PublishedTrack("kiosk", "camera", "video")
    track.codecs = {97: "vp8"}
    streams: list[ForwardedStream] = []
    for name in ("slow", "fast"):
        stream = ForwardedStream("video", 0x100 + len(streams), lambda data: None, name)
        stream.payload_types = frozenset({97})
        stream.negotiated = stream.connected = True
        stream.attach(track)
        streams.append(stream)
    limit = forwarding.SLOW_SUBSCRIBER_POLICY.hold_limit
    for second in range(int(limit) + 2):
        streams[0].handle_remb(200_000, float(second))
        streams[1].handle_remb(3_000_000, float(second))
        bitrate = track.estimated_bitrate(float(second))
        stats = track.stats()
        if second < limit:
            assert bitrate == 200_000 and stats["held_down_by"] == "slow"
            assert stats["ignored_slow_subscriber"] == 0
        else:
            assert bitrate == 3_000_000 and stats["held_down_by"] == "fast"
            assert stats["ignored_subscribers"] == ["slow"]
            assert stats["ignored_slow_subscriber"] == 1
        assert stats["remb_upstream"] == bitrate
