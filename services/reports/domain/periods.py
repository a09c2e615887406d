"""Reporting periods, all in UTC: day, ISO week (Monday start), month, quarter, half-year, year,
and custom date ranges.

A period is identified by its kind and its first day; its end is exclusive
(the first day of the next period). Labels: "2026-07-14", "2026-W27",
"2026-07", "2026-Q3", "2026-H2", "2026" (weeks use the ISO year, so 2027-01-01
is in "2026-W53"; halves and years are calendar ones, weeks play no part in them).
A ``DateRange`` is any run of whole days, "2026-02-10..2026-05-20" (both days
included); ``tiles`` covers it with the coarsest period buckets that fit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import Enum

from crm_common.errors import CrmError


class PeriodKind(str, Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    HALF = "half"
    YEAR = "year"
    RANGE = "range"  # a custom run of days (DateRange): not a counter bucket


# the kinds every fact is counted in (one counter bucket each)
PERIOD_KINDS: tuple[PeriodKind, ...] = tuple(k for k in PeriodKind if k is not PeriodKind.RANGE)
_MONTHS = {PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.HALF: 6, PeriodKind.YEAR: 12}


class InvalidPeriod(CrmError, ValueError):
    """A period label or kind that does not parse (answered as 400)."""


def utc_date(moment: date | datetime) -> date:
    """The UTC calendar day of a moment; naive datetimes are taken as UTC already."""
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc)
        return moment.date()
    return moment


def _kind(kind: PeriodKind | str) -> PeriodKind:
    known = next((k for k in PERIOD_KINDS if k == kind), None)
    if known is None:
        raise InvalidPeriod(f"unknown period kind {getattr(kind, 'value', kind)!r}; use one of "
                            f"{', '.join(k.value for k in PERIOD_KINDS)}", field="period")
    return known


def _add_months(first_of_month: date, months: int) -> date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_start(kind: PeriodKind | str, moment: date | datetime) -> date:
    day = utc_date(moment)
    kind = _kind(kind)
    if kind is PeriodKind.DAY:
        return day
    if kind is PeriodKind.WEEK:
        return day - timedelta(days=day.weekday())
    months = _MONTHS[kind]
    return date(day.year, months * ((day.month - 1) // months) + 1, 1)


def period_end(kind: PeriodKind | str, moment: date | datetime) -> date:
    """Exclusive end: the first day of the period after the one holding `moment`."""
    kind = _kind(kind)
    start = period_start(kind, moment)
    if kind is PeriodKind.DAY:
        return start + timedelta(days=1)
    if kind is PeriodKind.WEEK:
        return start + timedelta(days=7)
    return _add_months(start, _MONTHS[kind])


def format_period(kind: PeriodKind | str, moment: date | datetime) -> str:
    kind = _kind(kind)
    start = period_start(kind, moment)
    if kind is PeriodKind.DAY:
        return start.isoformat()
    if kind is PeriodKind.WEEK:
        iso = start.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if kind is PeriodKind.MONTH:
        return f"{start.year}-{start.month:02d}"
    if kind is PeriodKind.QUARTER:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    if kind is PeriodKind.HALF:
        return f"{start.year}-H{(start.month - 1) // 6 + 1}"
    return f"{start.year}"


@dataclass(frozen=True, order=True)
class Period:
    kind: PeriodKind
    start: date

    def __post_init__(self):
        object.__setattr__(self, "kind", _kind(self.kind))
        if period_start(self.kind, self.start) != self.start:
            raise InvalidPeriod(f"{self.start} does not start a {self.kind.value}", field="period")

    @classmethod
    def containing(cls, kind: PeriodKind | str, moment: date | datetime) -> Period:
        return cls(_kind(kind), period_start(kind, moment))

    @property
    def end(self) -> date:
        return period_end(self.kind, self.start)

    @property
    def label(self) -> str:
        return format_period(self.kind, self.start)

    def next(self) -> Period:
        return Period(self.kind, self.end)

    def contains(self, moment: date | datetime) -> bool:
        return self.start <= utc_date(moment) < self.end

    def __str__(self) -> str:
        return self.label


def periods_between(kind: PeriodKind | str, first: date | datetime, last: date | datetime) -> list[Period]:
    """Every period from the one holding `first` to the one holding `last`, both included."""
    period, stop = Period.containing(kind, first), period_start(kind, last)
    periods = []
    while period.start <= stop:
        periods.append(period)
        period = period.next()
    return periods


ONE_DAY = timedelta(days=1)
# the buckets a range is tiled with, coarsest first (an ISO week only where it lies within one month,
# so the tiling gets back onto month starts)
_TILE_KINDS = (PeriodKind.YEAR, PeriodKind.HALF, PeriodKind.QUARTER, PeriodKind.MONTH, PeriodKind.WEEK,
               PeriodKind.DAY)


@dataclass(frozen=True, order=True)
class DateRange:
    """A custom run of whole UTC days: from `start` included to `end` excluded (label: both days included)."""
    start: date
    end: date

    kind = PeriodKind.RANGE

    def __post_init__(self):
        if self.end <= self.start:
            raise InvalidPeriod(f"a range ends after it starts, not {self.start}..{self.end}", field="period")

    @property
    def last_day(self) -> date:
        return self.end - ONE_DAY

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()}..{self.last_day.isoformat()}"

    def contains(self, moment: date | datetime) -> bool:
        return self.start <= utc_date(moment) < self.end

    def tiles(self) -> list[Period]:
        """The coarsest period buckets that cover the range exactly, in order: what additive figures sum."""
        tiles, cursor = [], self.start
        while cursor < self.end:
            for kind in _TILE_KINDS:
                end = period_end(kind, cursor)
                if period_start(kind, cursor) == cursor and end <= self.end and (
                        kind is not PeriodKind.WEEK or end <= period_end(PeriodKind.MONTH, cursor)):
                    tiles.append(Period(kind, cursor))
                    cursor = end
                    break
        return tiles

    def __str__(self) -> str:
        return self.label


def parse_range(label: str) -> DateRange:
    """"2026-02-10..2026-05-20": from the start of the first period to the end of the second, both included
    (any period labels: "2026-02..2026-05" is February to May)."""
    first, sep, last = label.strip().partition("..")
    if not sep:
        raise InvalidPeriod(f"bad range {label!r}; use 2026-02-10..2026-05-20", field="period")
    return DateRange(parse_period(first).start, parse_period(last).end)


def is_range_label(label: str) -> bool:
    return ".." in label


_LABELS = (
    (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), PeriodKind.DAY),
    (re.compile(r"(\d{4})-W(\d{2})"), PeriodKind.WEEK),
    (re.compile(r"(\d{4})-(\d{2})"), PeriodKind.MONTH),
    (re.compile(r"(\d{4})-Q([1-4])"), PeriodKind.QUARTER),
    (re.compile(r"(\d{4})-H([12])"), PeriodKind.HALF),
    (re.compile(r"(\d{4})"), PeriodKind.YEAR),
)
LABEL_FORMS = "2026-07-14, 2026-W27, 2026-07, 2026-Q3, 2026-H2 or 2026"


def parse_period(label: str) -> Period:
    """"2026-07-14" -> day, "2026-W27" -> ISO week, "2026-07" -> month, "2026-Q3" -> quarter,
    "2026-H2" -> half-year, "2026" -> year."""
    text = label.strip().upper()
    for pattern, kind in _LABELS:
        match = pattern.fullmatch(text)
        if not match:
            continue
        numbers = [int(group) for group in match.groups()]
        try:
            if kind is PeriodKind.DAY:
                start = date(*numbers)
            elif kind is PeriodKind.WEEK:
                start = date.fromisocalendar(numbers[0], numbers[1], 1)
            elif kind is PeriodKind.MONTH:
                start = date(numbers[0], numbers[1], 1)
            elif kind is PeriodKind.QUARTER:
                start = date(numbers[0], 3 * numbers[1] - 2, 1)
            elif kind is PeriodKind.HALF:
                start = date(numbers[0], 6 * numbers[1] - 5, 1)
            else:
                start = date(numbers[0], 1, 1)
        except ValueError:
            break
        if not 1900 <= start.year <= 2999:  # its neighbours (the default range, the end) must exist too
            break
        return Period(kind, start)
    raise InvalidPeriod(f"bad period {label!r}; use {LABEL_FORMS}", field="period")


def stock_plan(at: date) -> list[tuple[PeriodKind, date | None, date]]:
    """How to sum a stock as of the start of day `at` from few counter rows.

    A stock (e.g. customers per lifecycle) is kept as net flows per bucket; its
    value at `at` is the sum of all flows dated before `at`. Quarters, months and
    days nest, so that sum is: every quarter bucket before the quarter of `at`,
    the month buckets of that quarter before the month of `at`, and the day
    buckets of that month before `at`. Each entry is
    (kind, lowest period_start included or None for no bound, period_start excluded).
    """
    quarter, month = period_start(PeriodKind.QUARTER, at), period_start(PeriodKind.MONTH, at)
    return [(PeriodKind.QUARTER, None, quarter), (PeriodKind.MONTH, quarter, month), (PeriodKind.DAY, month, at)]
