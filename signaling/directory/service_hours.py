"""Service hours: when an authority serves at an office (issue 17), as pure rules.

An authority's hours at one office are a weekly pattern ("mon-thu 09:00-15:00"), dated
exceptions (other hours on a date, or closed) and, unless switched off, closed on Finnish public
holidays. Every rule is wall-clock time in Europe/Helsinki: "09:00" is nine in the morning in
Finland whether it is EET (+02:00) or EEST (+03:00), so an instant is turned into a local date
and time only through zoneinfo, and a local time into an instant only through `local_moment`.

Written syntax (the CLI, the HTTP API and the admin page all use it):

    weekly     DAYS INTERVALS          mon-thu 09:00-15:00   fri 9-12,13-15   ma,ke 8.30-16
    exception  DATE INTERVALS          2026-12-23 09:00-12:00
    closed     DATE or DATE..DATE      2026-12-24            2026-07-01..2026-07-31

Days are English (mon … sun) or Finnish (ma … su) abbreviations, single, ranges or
comma-separated; times are H, HH:MM or HH.MM, an interval ends after it starts on the same day
("24:00" ends at midnight). Two intervals of one day may touch but not overlap.

No database here: `signaling/flow/office_offer.py` stores the rules and asks these questions.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

HELSINKI = ZoneInfo("Europe/Helsinki")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FINNISH_DAYS = ("ma", "ti", "ke", "to", "pe", "la", "su")
_DAY_INDEX = {name: i for names in (DAYS, FINNISH_DAYS) for i, name in enumerate(names)}
DAY_MINUTES = 24 * 60
# How far ahead `opens_at` looks; beyond it the line counts as not opening ("null").
HORIZON_DAYS = 56
MAX_SPEC = 200
MAX_CLOSED_RANGE_DAYS = 366

_TIME = re.compile(r"^(\d{1,2})(?:[:.](\d{2}))?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DASHES = str.maketrans({"–": "-", "—": "-"})


class HoursError(ValueError):
    """A rule that cannot be read; the message says which part and why."""


@dataclass(frozen=True, order=True)
class Interval:
    """Minutes from local midnight: start < end ≤ 1440."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= DAY_MINUTES:
            raise HoursError(f"interval {self.start}-{self.end}: must end after it starts")

    def text(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"

    def pair(self) -> list[str]:
        return [_clock(self.start), _clock(self.end)]


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


Day = tuple[Interval, ...]
Weekly = tuple[Day, Day, Day, Day, Day, Day, Day]
CLOSED_WEEK: Weekly = ((), (), (), (), (), (), ())


# --- parsing ----------------------------------------------------------------------------------


def _checked(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise HoursError(f"{what}: expected text")
    text = text.translate(_DASHES).strip()
    if not text:
        raise HoursError(f"{what}: empty")
    if len(text) > MAX_SPEC:
        raise HoursError(f"{what}: longer than {MAX_SPEC} characters")
    return text


def parse_time(text: str, *, end: bool = False) -> int:
    match = _TIME.match(text.strip())
    if match is None:
        raise HoursError(f"{text!r} is not a time (H, HH:MM or HH.MM)")
    hours, minutes = int(match.group(1)), int(match.group(2) or 0)
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise HoursError(f"{text!r} is not a time of day" + ("" if end else " (24:00 only ends)"))
    return hours * 60 + minutes


def parse_interval(text: str) -> Interval:
    start, dash, finish = text.partition("-")
    if not dash:
        raise HoursError(f"{text!r} is not an interval like 09:00-15:00")
    first, last = parse_time(start), parse_time(finish, end=True)
    if last <= first:
        raise HoursError(f"{text!r}: the interval must end after it starts, on the same day")
    return Interval(first, last)


def _merge_day(intervals: Iterable[Interval], what: str) -> Day:
    ordered = sorted(intervals)
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise HoursError(f"{what}: {before.text()} and {after.text()} overlap")
    return tuple(ordered)


def parse_intervals(text: str, what: str = "hours") -> Day:
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise HoursError(f"{what}: an empty interval in {text!r}")
    return _merge_day((parse_interval(p) for p in parts), what)


def parse_days(text: str) -> list[int]:
    days: list[int] = []
    for item in text.lower().split(","):
        first, dash, last = item.strip().partition("-")
        if first not in _DAY_INDEX or (dash and last not in _DAY_INDEX):
            raise HoursError(f"{item.strip()!r} is not a day or a range of days (mon-fri, ma-pe)")
        start = _DAY_INDEX[first]
        stop = _DAY_INDEX[last] if dash else start
        if stop < start:
            raise HoursError(f"{item.strip()!r}: a range goes from Monday towards Sunday")
        days.extend(range(start, stop + 1))
    if len(set(days)) != len(days):
        raise HoursError(f"{text!r} names a day twice")
    return days


def parse_weekly(specs: Iterable[str]) -> Weekly:
    """The weekly pattern of one or more specs ("mon-thu 09:00-15:00", "fri 9-12")."""
    per_day: list[list[Interval]] = [[] for _ in DAYS]
    for raw in specs:
        spec = _checked(raw, "weekly hours")
        days_text, _, hours_text = spec.partition(" ")
        if not hours_text.strip():
            raise HoursError(f"{spec!r}: give days and hours, e.g. 'mon-thu 09:00-15:00'")
        intervals = parse_intervals(hours_text.replace(" ", ""), spec)
        for day in parse_days(days_text):
            per_day[day].extend(intervals)
    days = tuple(_merge_day(per_day[i], f"{DAYS[i]}") for i in range(7))
    return days  # type: ignore[return-value]


def parse_date(text: str) -> date:
    text = text.strip()
    if not _DATE.match(text):
        raise HoursError(f"{text!r} is not a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HoursError(f"{text!r} is not a date of the calendar") from None


def parse_closed(raw: str) -> list[date]:
    """`2026-12-24` or a range `2026-07-01..2026-07-31` (both ends included)."""
    text = _checked(raw, "closed")
    first, dots, last = text.partition("..")
    start = parse_date(first)
    stop = parse_date(last) if dots else start
    if stop < start:
        raise HoursError(f"{text!r}: the range ends before it starts")
    if (stop - start).days >= MAX_CLOSED_RANGE_DAYS:
        raise HoursError(f"{text!r}: at most {MAX_CLOSED_RANGE_DAYS} days at once")
    return [start + timedelta(days=n) for n in range((stop - start).days + 1)]


def parse_exception(raw: str) -> tuple[date, Day]:
    """`2026-12-23 09:00-12:00[,13:00-15:00]`: other hours on that date."""
    text = _checked(raw, "exception")
    day_text, _, hours_text = text.partition(" ")
    if not hours_text.strip():
        raise HoursError(f"{text!r}: give a date and hours, e.g. '2026-12-23 09:00-12:00'")
    return parse_date(day_text), parse_intervals(hours_text.replace(" ", ""), text)


def format_day(intervals: Day) -> str:
    return ",".join(i.text() for i in intervals)


def weekly_groups(weekly: Weekly) -> list[tuple[list[int], Day]]:
    """Consecutive days with the same hours, in week order; closed days left out."""
    groups: list[tuple[list[int], Day]] = []
    for day, intervals in enumerate(weekly):
        if not intervals:
            continue
        if groups and groups[-1][0][-1] == day - 1 and groups[-1][1] == intervals:
            groups[-1][0].append(day)
        else:
            groups.append(([day], intervals))
    return groups


def format_weekly(weekly: Weekly) -> list[str]:
    """The pattern as specs `parse_weekly` reads back to the same pattern."""
    specs = []
    for days, intervals in weekly_groups(weekly):
        span = DAYS[days[0]] if len(days) == 1 else f"{DAYS[days[0]]}-{DAYS[days[-1]]}"
        specs.append(f"{span} {format_day(intervals)}")
    return specs


# --- Finnish public holidays --------------------------------------------------------------------


def easter_sunday(year: int) -> date:
    """Western Easter (the anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month = (h + leap - 7 * m + 114) // 31
    day = (h + leap - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def _weekday_between(year: int, month: int, first: int, weekday: int) -> date:
    start = date(year, month, first)
    return start + timedelta(days=(weekday - start.weekday()) % 7)


def finnish_public_holidays(year: int) -> dict[date, str]:
    """The days offices are closed in Finland: the public holidays (Act 1996/604 and the
    Church's calendar) plus Midsummer Eve and Christmas Eve, which are days off in practice."""
    easter = easter_sunday(year)
    midsummer_eve = _weekday_between(year, 6, 19, 4)  # Friday 19–25 June
    all_saints = _weekday_between(year, 10, 31, 5)  # Saturday 31 Oct – 6 Nov
    return {
        date(year, 1, 1): "Uudenvuodenpäivä",
        date(year, 1, 6): "Loppiainen",
        easter - timedelta(days=2): "Pitkäperjantai",
        easter: "Pääsiäispäivä",
        easter + timedelta(days=1): "2. pääsiäispäivä",
        date(year, 5, 1): "Vappu",
        easter + timedelta(days=39): "Helatorstai",
        easter + timedelta(days=49): "Helluntaipäivä",
        midsummer_eve: "Juhannusaatto",
        midsummer_eve + timedelta(days=1): "Juhannuspäivä",
        all_saints: "Pyhäinpäivä",
        date(year, 12, 6): "Itsenäisyyspäivä",
        date(year, 12, 24): "Jouluaatto",
        date(year, 12, 25): "Joulupäivä",
        date(year, 12, 26): "Tapaninpäivä",
    }


def public_holiday(day: date) -> str | None:
    return finnish_public_holidays(day.year).get(day)


# --- questions ----------------------------------------------------------------------------------


def local_moment(day: date, minutes: int) -> datetime:
    """The instant (aware, Helsinki) of `minutes` after local midnight of `day`.

    A time inside the spring-forward gap (03:00–04:00 on the last Sunday of March) does not
    exist; it is read with the winter offset, i.e. an hour later on the summer clock (03:30 →
    04:30+03:00). A time the autumn hour repeats is its first occurrence (fold 0)."""
    if minutes == DAY_MINUTES:
        day, minutes = day + timedelta(days=1), 0
    naive = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60)
    return naive.replace(tzinfo=HELSINKI).astimezone(UTC).astimezone(HELSINKI)


@dataclass(frozen=True)
class ServiceHours:
    weekly: Weekly = CLOSED_WEEK
    # Dated exceptions: other hours that day, or () for closed.
    dates: Mapping[date, Day] = field(default_factory=dict)
    # Closed on Finnish public holidays (a dated exception still wins).
    public_holidays: bool = True

    def intervals_on(self, day: date) -> Day:
        if day in self.dates:
            return self.dates[day]
        if self.public_holidays and public_holiday(day) is not None:
            return ()
        return self.weekly[day.weekday()]

    def windows(self, since: datetime, days: int) -> Iterator[tuple[datetime, datetime]]:
        """Opening windows as UTC instants from the local day before `since` on, touching
        ones (also across midnight) merged, in order.

        UTC because Python compares and subtracts two datetimes of the same tzinfo by their
        wall clocks, which is wrong across a DST change."""
        first = since.astimezone(HELSINKI).date() - timedelta(days=1)
        pending: tuple[datetime, datetime] | None = None
        for n in range(days + 2):
            day = first + timedelta(days=n)
            for interval in self.intervals_on(day):
                start = local_moment(day, interval.start).astimezone(UTC)
                end = local_moment(day, interval.end).astimezone(UTC)
                if pending is not None and start <= pending[1]:
                    pending = (pending[0], max(end, pending[1]))
                    continue
                if pending is not None:
                    yield pending
                pending = (start, end)
        if pending is not None:
            yield pending

    def window_at(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The opening window (Helsinki time) that `now` is in, or None."""
        now = now.astimezone(UTC)
        for start, end in self.windows(now, 2):
            if start <= now < end:
                return start.astimezone(HELSINKI), end.astimezone(HELSINKI)
            if start > now:
                break
        return None

    def is_open(self, now: datetime) -> bool:
        return self.window_at(now) is not None

    def opens_at(self, now: datetime, horizon_days: int = HORIZON_DAYS) -> datetime | None:
        """When service next opens after `now` (now itself when open); None within the
        horizon."""
        now = now.astimezone(UTC)
        for start, end in self.windows(now, horizon_days):
            if start <= now < end:
                return now.astimezone(HELSINKI)
            if start > now:
                return start.astimezone(HELSINKI)
        return None

    def next_change(self, now: datetime) -> datetime | None:
        """The closing time when open, else the opening time (None: none in the horizon)."""
        window = self.window_at(now)
        if window is not None:
            return window[1]
        return self.opens_at(now)

    def view(self, now: datetime) -> dict[str, Any]:
        """What the kiosk shows: the weekly pattern, today's hours, open now, next change."""
        today = now.astimezone(HELSINKI).date()
        window = self.window_at(now)
        opens = None if window is not None else self.opens_at(now)
        return {
            "always_open": False,
            "open_now": window is not None,
            "closes_at": window[1].isoformat() if window is not None else None,
            "opens_at": opens.isoformat() if opens is not None else None,
            "weekly": [
                {"days": days, "intervals": [i.pair() for i in intervals]}
                for days, intervals in weekly_groups(self.weekly)
            ],
            "today": [i.pair() for i in self.intervals_on(today)],
            # Today differs from the weekly pattern (an exception or a holiday).
            "today_special": self.intervals_on(today) != self.weekly[today.weekday()],
        }


ALWAYS_OPEN_VIEW: dict[str, Any] = {
    "always_open": True,
    "open_now": True,
    "closes_at": None,
    "opens_at": None,
    "weekly": [],
    "today": [],
    "today_special": False,
}
