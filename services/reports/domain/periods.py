"""Reporting periods, all in UTC: day, ISO week (Monday start), month, quarter.

A period is identified by its kind and its first day; its end is exclusive
(the first day of the next period). Labels: "2026-07-14", "2026-W27",
"2026-07", "2026-Q3" (weeks use the ISO year, so 2027-01-01 is in "2026-W53").
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


PERIOD_KINDS: tuple[PeriodKind, ...] = tuple(PeriodKind)


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
    try:
        return PeriodKind(kind)
    except ValueError:
        raise InvalidPeriod(f"unknown period kind {kind!r}; use one of "
                            f"{', '.join(k.value for k in PeriodKind)}", field="period") from None


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
    if kind is PeriodKind.MONTH:
        return day.replace(day=1)
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def period_end(kind: PeriodKind | str, moment: date | datetime) -> date:
    """Exclusive end: the first day of the period after the one holding `moment`."""
    kind = _kind(kind)
    start = period_start(kind, moment)
    if kind is PeriodKind.DAY:
        return start + timedelta(days=1)
    if kind is PeriodKind.WEEK:
        return start + timedelta(days=7)
    return _add_months(start, 1 if kind is PeriodKind.MONTH else 3)


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
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


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


_LABELS = (
    (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), PeriodKind.DAY),
    (re.compile(r"(\d{4})-W(\d{2})"), PeriodKind.WEEK),
    (re.compile(r"(\d{4})-(\d{2})"), PeriodKind.MONTH),
    (re.compile(r"(\d{4})-Q([1-4])"), PeriodKind.QUARTER),
)


def parse_period(label: str) -> Period:
    """"2026-07-14" -> day, "2026-W27" -> ISO week, "2026-07" -> month, "2026-Q3" -> quarter."""
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
            else:
                start = date(numbers[0], 3 * numbers[1] - 2, 1)
        except ValueError:
            break
        if not 1900 <= start.year <= 2999:  # its neighbours (the default range, the end) must exist too
            break
        return Period(kind, start)
    raise InvalidPeriod(f"bad period {label!r}; use 2026-07-14, 2026-W27, 2026-07 or 2026-Q3", field="period")


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
