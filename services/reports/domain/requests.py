"""What a report request asks for: its slice, its periods, its as-of day, and how the answer names them.

Each refusal is a 400 naming the parameter at fault.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Iterable

from crm_common.errors import CrmError

from .access import default_slice
from .counters import ALL, BREAKDOWN_DIMENSIONS, NONE_VALUE, Slice
from .periods import DateRange, InvalidPeriod, Period, is_range_label, parse_period, parse_range, periods_between
from .settings import ReportSettings

ONE_DAY = timedelta(days=1)


def requested_slice(team: str | None, rep: str | None, role: str, user_id: str, own_team: str | None) -> Slice:
    """The slice asked for; without a filter, the caller's own scope (access.check_access then rules on it)."""
    if team and rep:
        raise CrmError("give team or rep, not both", field="rep")
    if team:
        return Slice(team=team)
    if rep:
        return Slice(rep=rep)
    return default_slice(role, user_id, own_team)


def check_breakdown(scope: Slice, breakdown: str) -> None:
    """Teams are listed across everyone; reps across everyone or within one team."""
    if breakdown in {d.value for d in BREAKDOWN_DIMENSIONS}:
        return
    if scope != ALL and not (breakdown == "rep" and scope.team is not None):
        raise CrmError(f"breakdown={breakdown} lists every {breakdown}: drop the team and rep filters"
                       if breakdown == "team" else "breakdown=rep goes with a team filter or none, not a rep",
                       field="breakdown")


def coverage_bars(is_admin: bool, team: str | None, rep: str | None) -> str:
    """The coverage chart has a bar per rep of a team; an admin looking at everyone gets one per team."""
    return "team" if is_admin and not team and not rep else "rep"


def scope_json(slice_: Slice) -> dict:
    return {k: v for k, v in (("team", slice_.team), ("rep", slice_.rep)) if v is not None}


def scope_label(slice_: Slice) -> str:
    if slice_.team is not None:
        return f"team {slice_.team}"
    if slice_.rep is not None:
        return f"rep {slice_.rep}"
    return "all customers"


def period_of(label: str, field: str, settings: ReportSettings | None = None) -> Period | DateRange:
    """A period label, or a range label "2026-02-10..2026-05-20" (at most `max_range_days` long)."""
    try:
        period = parse_range(label) if is_range_label(label) else parse_period(label)
    except InvalidPeriod as exc:
        raise CrmError(exc.message, field=field) from None
    if isinstance(period, DateRange):
        check_range_length(period, settings or ReportSettings(), field)
    return period


def check_range_length(span: DateRange, settings: ReportSettings, field: str) -> None:
    if span.days > settings.max_range_days:
        raise CrmError(f"the range {span.label} is {span.days} days long; at most {settings.max_range_days} "
                       f"(longer: use period_kind=year or half)", field=field)


def date_range(first: str | None, last: str | None, settings: ReportSettings) -> DateRange:
    """A custom range from the start of `from` to the end of `to` (dates, or any period labels), both needed."""
    for value, field in ((first, "from"), (last, "to")):
        if not value:
            raise CrmError(f"a custom range needs both from and to (dates, both included); {field} is missing",
                           field=field)
    start, end = _bucket_of(first, "from").start, _bucket_of(last, "to").end
    if start >= end:
        raise CrmError(f"from ({first}) is after to ({last})", field="from")
    span = DateRange(start, end)
    check_range_length(span, settings, "to")
    return span


def _bucket_of(label: str, field: str) -> Period:
    period = period_of(label, field)
    if isinstance(period, DateRange):
        raise CrmError(f"{field} is one date or period label, not a range ({label})", field=field)
    return period


def period_range(kind: str, first: str | None, last: str | None, today: date,
                 settings: ReportSettings) -> list[Period] | list[DateRange]:
    """Periods of `kind` from the one holding `from` to the one holding the end of `to` (labels or dates);
    without `from`, the last `default_periods` of them. Kind "range": the one custom range from-to."""
    if kind == "range":
        return [date_range(first, last, settings)]
    last_day = _bucket_of(last, "to").end - ONE_DAY if last else today
    if first:
        first_day = _bucket_of(first, "from").start
    else:
        first_day = Period.containing(kind, last_day).start
        for _ in range(settings.default_periods - 1):
            first_day = Period.containing(kind, first_day - ONE_DAY).start
    if first_day > last_day:
        raise CrmError(f"from ({first}) is after to ({last or today})", field="from")
    periods = periods_between(kind, first_day, last_day)
    if len(periods) > settings.max_periods:
        raise CrmError(f"{len(periods)} {kind} periods asked; at most {settings.max_periods} at once",
                       field="from")
    return periods


def as_of_day(value: date | None, today: date) -> date:
    """The day whose end the stocks are taken at: today unless given, never in the future."""
    if value is None:
        return today
    if value.year < 1900:
        raise CrmError(f"as_of {value} is before 1900", field="as_of")
    if value > today:
        raise CrmError(f"as_of {value} is in the future (today is {today})", field="as_of")
    return value


def dashboard_period(label: str | None, as_of: date, today: date, first: str | None = None,
                     last: str | None = None, settings: ReportSettings | None = None) -> Period | DateRange:
    """Live (as_of today) the period may still be running: its figures are so far (default: this
    quarter). For a past as_of the period must have ended by then (default: the last quarter that
    had), or later events would leak into it. `from` and `to` give a custom range instead."""
    stocks_at = as_of + ONE_DAY
    settings = settings or ReportSettings()
    if label and (first or last):
        raise CrmError("give period, or from and to (a custom range), not both", field="period")
    if first or last:
        period = date_range(first, last, settings)
    elif label:
        period = period_of(label, "period", settings)
    elif as_of >= today:
        period = Period.containing("quarter", as_of)
    else:
        period = Period.containing("quarter", Period.containing("quarter", stocks_at).start - ONE_DAY)
    if as_of < today and period.end > stocks_at:
        raise CrmError(f"{period.label} had not ended by {as_of}: its figures would include later events; "
                       f"ask for an ended period or leave as_of out", field="period")
    if period.start > as_of:
        raise CrmError(f"{period.label} starts after {as_of}", field="period")
    return period


def without_empty_none(rows: list[dict], breakdown: str | None, columns: Iterable[str]) -> list[dict]:
    """"(none)" is listed once something was counted there, possibly only until the customer's creation
    arrived and moved it: leave it out when it holds nothing in these periods."""
    columns = tuple(columns)
    if breakdown and all(_empty(r, columns) for r in rows if r[breakdown] == NONE_VALUE):
        return [r for r in rows if r[breakdown] != NONE_VALUE]
    return rows


def _empty(row: dict, columns: Iterable[str]) -> bool:
    return all(row.get(c) in (None, 0) or (isinstance(row.get(c), str) and c in ("attribute", "from", "to"))
               for c in columns)
