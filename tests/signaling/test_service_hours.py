"""The service-hour rules (signaling/directory/service_hours.py): parsing, DST, holidays,
opens_at."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.directory.service_hours import (
    CLOSED_WEEK,
    HELSINKI,
    HoursError,
    Interval,
    ServiceHours,
    easter_sunday,
    finnish_public_holidays,
    format_weekly,
    local_moment,
    parse_closed,
    parse_exception,
    parse_weekly,
)

KELA = parse_weekly(["mon-thu 09:00-15:00"])


def hel(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=HELSINKI)  # type: ignore[misc]


# --- parsing ------------------------------------------------------------------------------------


def test_weekly_pattern_reads_ranges_lists_and_finnish_days() -> None:
    weekly = parse_weekly(["mon-thu 09:00-15:00", "fri 9-12,13.30-15", "ma,la 18-24"])
    assert weekly[0] == (Interval(540, 900), Interval(1080, 1440))
    assert weekly[3] == (Interval(540, 900),)
    assert weekly[4] == (Interval(540, 720), Interval(810, 900))
    assert weekly[5] == (Interval(1080, 1440),)
    assert weekly[6] == ()
    assert format_weekly(weekly) == [
        "mon 09:00-15:00,18:00-24:00",
        "tue-thu 09:00-15:00",
        "fri 09:00-12:00,13:30-15:00",
        "sat 18:00-24:00",
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("mon-thu", "give days and hours"),
        ("mon-thu 15:00-09:00", "must end after it starts"),
        ("mon-thu 09:00-09:00", "must end after it starts"),
        ("mon-thu 9-15,14-16", "overlap"),
        ("thu-mon 9-15", "from Monday towards Sunday"),
        ("mon,mon 9-15", "names a day twice"),
        ("monday 9-15", "not a day"),
        ("mon 25:00-26:00", "not a time of day"),
        ("mon 24:00-24:30", "24:00 only ends"),
        ("mon 09:60-10:00", "not a time of day"),
        ("mon 0900-1000", "not a time"),
        ("mon 09:00", "not an interval"),
        ("mon 9-15,", "empty interval"),
        ("mon 9:5-10", "not a time"),
        ("x" * 201, "longer than 200"),
    ],
)
def test_weekly_garbage_is_refused_with_a_reason(spec: str, message: str) -> None:
    with pytest.raises(HoursError, match=message):
        parse_weekly([spec])


def test_two_specs_overlapping_on_one_day_are_refused() -> None:
    with pytest.raises(HoursError, match="overlap"):
        parse_weekly(["mon-fri 09:00-15:00", "fri 14:00-16:00"])


def test_every_truncation_of_a_spec_reads_or_fails_cleanly() -> None:
    spec = "mon-thu 09:00-15:00,16:00-18:30"
    for end in range(len(spec) + 1):
        try:
            weekly = parse_weekly([spec[:end]])
        except HoursError:
            continue
        # What does read is a real pattern that formats back to itself.
        assert parse_weekly(format_weekly(weekly)) == weekly


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_never_escapes_as_another_error(text: str) -> None:
    for parse in (lambda: parse_weekly([text]), lambda: parse_exception(text)):
        try:
            parse()
        except HoursError:
            pass


_minutes = st.integers(min_value=0, max_value=1440)


@st.composite
def weeks(draw: st.DrawFn) -> tuple[tuple[Interval, ...], ...]:
    days = []
    for _ in range(7):
        cuts = sorted(set(draw(st.lists(_minutes, max_size=6))))
        pairs = list(zip(cuts[::2], cuts[1::2], strict=False))
        days.append(tuple(Interval(a, b) for a, b in pairs if a < b))
    return tuple(days)


@settings(max_examples=200, deadline=None)
@given(weeks())
def test_format_and_parse_round_trip(weekly: tuple[tuple[Interval, ...], ...]) -> None:
    assert parse_weekly(format_weekly(weekly)) == weekly  # type: ignore[arg-type]


def test_closed_dates_and_ranges() -> None:
    assert parse_closed("2026-12-24") == [date(2026, 12, 24)]
    summer = parse_closed("2026-07-01..2026-07-31")
    assert summer[0] == date(2026, 7, 1) and summer[-1] == date(2026, 7, 31) and len(summer) == 31
    for bad, message in [
        ("2026-02-30", "not a date of the calendar"),
        ("2026-7-1", "not a date"),
        ("2026-07-31..2026-07-01", "ends before it starts"),
        ("2026-01-01..2027-06-01", "at most 366"),
        ("2026-12-24..", "not a date"),
    ]:
        with pytest.raises(HoursError, match=message):
            parse_closed(bad)


def test_exception_reads_a_date_and_hours() -> None:
    assert parse_exception("2026-12-23 09:00-12:00") == (date(2026, 12, 23), (Interval(540, 720),))
    with pytest.raises(HoursError, match="give a date and hours"):
        parse_exception("2026-12-23")


# --- holidays -----------------------------------------------------------------------------------


def test_easter_and_the_moving_finnish_holidays() -> None:
    assert easter_sunday(2026) == date(2026, 4, 5)
    assert easter_sunday(2027) == date(2027, 3, 28)
    holidays = finnish_public_holidays(2026)
    assert holidays[date(2026, 4, 3)] == "Pitkäperjantai"
    assert holidays[date(2026, 4, 6)] == "2. pääsiäispäivä"
    assert holidays[date(2026, 5, 14)] == "Helatorstai"
    assert holidays[date(2026, 6, 19)] == "Juhannusaatto"
    assert holidays[date(2026, 10, 31)] == "Pyhäinpäivä"
    assert holidays[date(2026, 12, 6)] == "Itsenäisyyspäivä"
    assert finnish_public_holidays(2027)[date(2027, 6, 25)] == "Juhannusaatto"


def test_a_holiday_closes_the_weekly_hours_unless_switched_off() -> None:
    good_friday_noon = hel(2026, 4, 3, 12, 0)  # a Friday
    hours = ServiceHours(parse_weekly(["mon-fri 09:00-15:00"]))
    assert not hours.is_open(good_friday_noon)
    # Closed Fri (Good Friday) and Mon (Easter Monday): opens on Tuesday.
    assert hours.opens_at(good_friday_noon) == hel(2026, 4, 7, 9, 0)
    assert ServiceHours(hours.weekly, public_holidays=False).is_open(good_friday_noon)


def test_a_dated_exception_wins_over_the_week_and_the_holiday() -> None:
    hours = ServiceHours(
        KELA,
        {date(2026, 12, 23): (Interval(540, 720),), date(2026, 12, 24): ()},
    )
    assert hours.is_open(hel(2026, 12, 23, 11, 59))  # a Wednesday, short day
    assert not hours.is_open(hel(2026, 12, 23, 12, 0))
    # 24th closed by exception, 25th and 26th holidays, then a Sunday: Monday the 28th.
    assert hours.opens_at(hel(2026, 12, 23, 12, 0)) == hel(2026, 12, 28, 9, 0)
    special = ServiceHours(KELA, {date(2026, 12, 6): (Interval(600, 660),)})
    assert special.is_open(hel(2026, 12, 6, 10, 30))  # Independence Day, opened on purpose


# --- time of day and DST -------------------------------------------------------------------------


def test_open_closed_boundaries_in_local_time() -> None:
    hours = ServiceHours(KELA)
    assert not hours.is_open(hel(2026, 11, 23, 8, 59, 59))
    assert hours.is_open(hel(2026, 11, 23, 9, 0))
    assert hours.is_open(hel(2026, 11, 23, 14, 59, 59))
    assert not hours.is_open(hel(2026, 11, 23, 15, 0))
    # The same instant written in UTC: 07:00Z is 09:00 in Helsinki in winter.
    assert hours.is_open(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 11, 23, 6, 59, tzinfo=UTC))


def test_opens_at_after_closing_and_over_the_weekend() -> None:
    hours = ServiceHours(KELA)
    thursday_evening = hel(2026, 11, 26, 15, 0)
    opens = hours.opens_at(thursday_evening)
    assert opens == hel(2026, 11, 30, 9, 0)
    assert opens is not None and opens.isoformat() == "2026-11-30T09:00:00+02:00"
    assert hours.next_change(hel(2026, 11, 26, 10, 0)) == hel(2026, 11, 26, 15, 0)
    assert hours.opens_at(hel(2026, 11, 26, 10, 0)) == hel(2026, 11, 26, 10, 0)


def test_never_opening_gives_none() -> None:
    assert ServiceHours(CLOSED_WEEK).opens_at(hel(2026, 11, 23, 9, 0)) is None
    summer = {date(2026, 6, 1) + timedelta(days=n): () for n in range(90)}
    assert ServiceHours(KELA, summer).opens_at(hel(2026, 6, 1, 8, 0)) is None
    assert ServiceHours(KELA, summer).opens_at(hel(2026, 6, 1, 8, 0), horizon_days=120) == hel(
        2026, 8, 31, 9, 0
    )


def test_spring_forward_last_sunday_of_march() -> None:
    # 2026-03-29: 03:00 EET becomes 04:00 EEST.
    sunday = ServiceHours(parse_weekly(["sun 02:00-05:00", "mon 09:00-15:00"]))
    assert local_moment(date(2026, 3, 29), 2 * 60).isoformat() == "2026-03-29T02:00:00+02:00"
    assert local_moment(date(2026, 3, 29), 5 * 60).isoformat() == "2026-03-29T05:00:00+03:00"
    # 03:30 does not exist: read an hour later on the summer clock.
    assert local_moment(date(2026, 3, 29), 210).isoformat() == "2026-03-29T04:30:00+03:00"
    # Two hours of real time, not three: 00:00Z-02:00Z.
    assert sunday.is_open(datetime(2026, 3, 29, 0, 0, tzinfo=UTC))
    assert sunday.is_open(datetime(2026, 3, 29, 1, 59, tzinfo=UTC))
    assert not sunday.is_open(datetime(2026, 3, 29, 2, 0, tzinfo=UTC))
    # The next morning is 09:00 summer time, i.e. 06:00Z.
    opens = sunday.opens_at(datetime(2026, 3, 29, 3, 0, tzinfo=UTC))
    assert opens is not None and opens.isoformat() == "2026-03-30T09:00:00+03:00"
    assert opens.astimezone(UTC) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
    # A Friday before and the Monday after: the same 09:00 wall clock, different UTC.
    hours = ServiceHours(KELA)
    assert hours.is_open(datetime(2026, 3, 26, 7, 0, tzinfo=UTC))  # 09:00 EET
    assert not hours.is_open(datetime(2026, 3, 30, 5, 59, tzinfo=UTC))  # 08:59 EEST
    assert hours.is_open(datetime(2026, 3, 30, 6, 0, tzinfo=UTC))  # 09:00 EEST


def test_fall_back_last_sunday_of_october() -> None:
    # 2026-10-25: 04:00 EEST becomes 03:00 EET; 03:00-04:00 happens twice.
    night = ServiceHours(parse_weekly(["sun 02:00-05:00"]), public_holidays=False)
    start, end = local_moment(date(2026, 10, 25), 120), local_moment(date(2026, 10, 25), 300)
    assert start.isoformat() == "2026-10-25T02:00:00+03:00"
    assert end.isoformat() == "2026-10-25T05:00:00+02:00"
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=4)  # real hours
    assert night.is_open(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 03:30 EEST
    assert night.is_open(datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 03:30 EET
    assert not night.is_open(datetime(2026, 10, 25, 3, 0, tzinfo=UTC))  # 05:00 EET
    hours = ServiceHours(KELA)
    opens = hours.opens_at(datetime(2026, 10, 23, 13, 0, tzinfo=UTC))  # Fri 16:00 EEST
    assert opens is not None and opens.isoformat() == "2026-10-26T09:00:00+02:00"


def test_hours_across_midnight_merge_into_one_window() -> None:
    hours = ServiceHours(parse_weekly(["mon 20:00-24:00", "tue 00:00-02:00"]))
    assert hours.next_change(hel(2026, 11, 23, 23, 0)) == hel(2026, 11, 24, 2, 0)
    assert hours.is_open(hel(2026, 11, 24, 1, 0))


def test_kiosk_view_says_today_and_the_pattern() -> None:
    hours = ServiceHours(
        parse_weekly(["mon-thu 09:00-15:00", "fri 09:00-12:00"]),
        {date(2026, 11, 24): (Interval(600, 720),)},
    )
    view = hours.view(hel(2026, 11, 24, 13, 0))
    assert view["open_now"] is False
    assert view["opens_at"] == "2026-11-25T09:00:00+02:00"
    assert view["today"] == [["10:00", "12:00"]] and view["today_special"] is True
    assert view["weekly"] == [
        {"days": [0, 1, 2, 3], "intervals": [["09:00", "15:00"]]},
        {"days": [4], "intervals": [["09:00", "12:00"]]},
    ]
