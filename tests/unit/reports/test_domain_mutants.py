"""Reports rules pinned where mutation testing (bench/mutation.py, docs/testing.md) found mutants the other
unit tests let live: each denial's message (what the API's 403 body says), the slice every role starts from, how a
boolean cell is written; period labels, bounds and tilings; every setting and its refusal; each request refusal's
field and message; and exact figures.

bench/mutation.py runs only tests/unit/reports/test_domain*.py, so some rules that test_periods_and_ranges.py or the
service tests also touch are pinned here again, at the domain level."""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crm_common.errors import CrmError
from services.reports import domain as d
from services.reports.domain import (
    ALL, DateRange, InvalidPeriod, Period, PeriodKind, ReportAccessDenied, ReportSettings, Slice, check_access,
    default_slice, format_cell, scope_for,
)
from services.reports.domain import book, entries, ranges
from services.reports.domain import counters as c
from services.reports.domain.periods import is_range_label


@pytest.mark.parametrize("call, args, message", [
    (scope_for, ("manager", "m1", None), "a manager without a team has no reports to see"),
    (scope_for, ("guest", "g1", "east"), "unknown role 'guest'"),
    (check_access, ("manager", "m1", "east", Slice(team="east"), "team"), "only an admin may compare teams"),
    (check_access, ("rep", "r1", "east", Slice(rep="r1"), "rep"), "a rep may not compare reps"),
    (check_access, ("rep", "r1", "east", Slice(team="east")), "a rep sees only their own figures"),
    (check_access, ("manager", "m1", "east", Slice(team="west")), "a manager sees only their own team"),
])
def test_each_denial_says_why(call, args, message):
    with pytest.raises(ReportAccessDenied) as denied:
        call(*args)
    assert (denied.value.message, denied.value.status) == (message, 403)


def test_every_role_starts_from_its_own_scope():
    assert [default_slice("rep", "r1", "east"), default_slice("manager", "m1", "east"),
            default_slice("admin", "a1", None)] == [Slice(rep="r1"), Slice(team="east"), Slice()]


def test_booleans_are_written_true_and_false():
    assert (format_cell(True), format_cell(False)) == ("true", "false")


# --- periods.py ------------------------------------------------------------------------------------------------
UTC = timezone.utc
KINDS = "day, week, month, quarter, half, year"


def refusal(call, *args, error=CrmError, **kwargs):
    with pytest.raises(error) as refused:
        call(*args, **kwargs)
    return refused.value.field, refused.value.message


def test_the_utc_day_does_not_depend_on_the_machine_zone(monkeypatch):
    # 02:00 UTC on July 1st is still June 30th in New York: the bucket is the UTC day all the same
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert d.utc_date(datetime(2026, 7, 1, 2, 0, tzinfo=UTC)) == date(2026, 7, 1)
        assert d.period_start("month", datetime(2026, 7, 1, 2, 0, tzinfo=UTC)) == date(2026, 7, 1)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("kind, shown", [("decade", "'decade'"), (PeriodKind.RANGE, "'range'"), (None, "None")])
def test_an_unknown_kind_is_refused_naming_the_kinds(kind, shown):
    assert refusal(d.period_start, kind, date(2026, 1, 1), error=InvalidPeriod) == (
        "period", f"unknown period kind {shown}; use one of {KINDS}")


@pytest.mark.parametrize("kind, moment, label", [
    ("quarter", date(2026, 2, 14), "2026-Q1"), ("quarter", date(2026, 11, 30), "2026-Q4"),
    ("half", date(2026, 1, 1), "2026-H1"), ("half", date(2026, 6, 30), "2026-H1"),
    ("half", date(2026, 7, 1), "2026-H2"), ("half", date(2026, 12, 31), "2026-H2"),
    ("year", date(2026, 7, 14), "2026"), ("month", date(2026, 7, 14), "2026-07"),
])
def test_quarter_half_and_year_labels(kind, moment, label):
    assert d.format_period(kind, moment) == label
    assert Period.containing(kind, moment).label == label


@pytest.mark.parametrize("label, kind, start, end", [
    ("2026-H1", PeriodKind.HALF, date(2026, 1, 1), date(2026, 7, 1)),
    ("2026-H2", PeriodKind.HALF, date(2026, 7, 1), date(2027, 1, 1)),
    ("2026", PeriodKind.YEAR, date(2026, 1, 1), date(2027, 1, 1)),
    (" 2026-q4 ", PeriodKind.QUARTER, date(2026, 10, 1), date(2027, 1, 1)),
    ("1900", PeriodKind.YEAR, date(1900, 1, 1), date(1901, 1, 1)),       # the first year accepted
    ("2999-12-31", PeriodKind.DAY, date(2999, 12, 31), date(3000, 1, 1)),  # the last day accepted
    ("2999", PeriodKind.YEAR, date(2999, 1, 1), date(3000, 1, 1)),
])
def test_half_year_and_year_labels_parse(label, kind, start, end):
    period = d.parse_period(label)
    assert (period.kind, period.start, period.end) == (kind, start, end)


@pytest.mark.parametrize("label", ["1899", "1899-12-31", "3000", "3000-01", "2026-02-30", "2026-H3", "H1"])
def test_labels_outside_1900_to_2999_or_impossible_are_refused_naming_the_forms(label):
    assert refusal(d.parse_period, label, error=InvalidPeriod) == (
        "period", f"bad period {label!r}; use 2026-07-14, 2026-W27, 2026-07, 2026-Q3, 2026-H2 or 2026")


def test_a_period_keeps_its_kind_as_the_enum_and_refuses_a_start_that_is_not_one():
    period = Period("month", date(2026, 7, 1))
    assert period.kind is PeriodKind.MONTH and period == Period(PeriodKind.MONTH, date(2026, 7, 1))
    assert refusal(Period, "month", date(2026, 7, 2), error=InvalidPeriod) == (
        "period", "2026-07-02 does not start a month")


def test_a_period_contains_its_first_day_and_not_its_end():
    july = d.parse_period("2026-07")
    assert july.contains(date(2026, 7, 1)) and not july.contains(date(2026, 6, 30))
    assert not july.contains(date(2026, 8, 1))


def test_a_range_of_one_day_and_the_refusal_of_an_empty_one():
    one = DateRange(date(2026, 5, 1), date(2026, 5, 2))
    assert (one.days, one.last_day, one.label, str(one)) == (1, date(2026, 5, 1), "2026-05-01..2026-05-01",
                                                            "2026-05-01..2026-05-01")
    assert refusal(DateRange, date(2026, 5, 1), date(2026, 5, 1), error=InvalidPeriod) == (
        "period", "a range ends after it starts, not 2026-05-01..2026-05-01")
    assert one.kind is PeriodKind.RANGE


def test_a_range_contains_both_its_days_only():
    span = DateRange(date(2026, 5, 1), date(2026, 5, 4))
    assert [span.contains(date(2026, 5, n)) for n in (1, 2, 3, 4)] == [True, True, True, False]
    assert span.contains(datetime(2026, 5, 3, 23, 59, tzinfo=UTC)) and not span.contains(date(2026, 4, 30))


@pytest.mark.parametrize("label, tiles", [
    ("2026-02-10..2026-05-20", [
        "2026-02-10", "2026-02-11", "2026-02-12", "2026-02-13", "2026-02-14", "2026-02-15", "2026-W08",
        "2026-02-23", "2026-02-24", "2026-02-25", "2026-02-26", "2026-02-27", "2026-02-28", "2026-03", "2026-04",
        "2026-05-01", "2026-05-02", "2026-05-03", "2026-W19", "2026-W20", "2026-05-18", "2026-05-19",
        "2026-05-20"]),
    ("2025-07-01..2026-12-31", ["2025-H2", "2026"]),
    ("2026-04-01..2026-09-30", ["2026-Q2", "2026-Q3"]),
    ("2026-06-01..2026-06-07", ["2026-W23"]),                 # a week that is the whole range
    ("2026-05-31..2026-06-08", ["2026-05-31", "2026-W23", "2026-06-08"]),
    ("2026-06-29..2026-07-05", ["2026-06-29", "2026-06-30", "2026-07-01", "2026-07-02", "2026-07-03",
                                "2026-07-04", "2026-07-05"]),  # W27 crosses into July: days instead
    ("2026-05-25..2026-05-31", ["2026-W22"]),                 # a week that ends on the month's last day
    ("2026-07-01..2026-07-01", ["2026-07-01"]),
    ("2026-01..2026-01", ["2026-01"]),
])
def test_a_range_is_tiled_exactly(label, tiles):
    got = d.parse_range(label).tiles()
    assert [t.label for t in got] == tiles
    assert all(isinstance(t, Period) for t in got)


def test_range_labels():
    assert d.parse_range(" 2026-02..2026-05 ") == DateRange(date(2026, 2, 1), date(2026, 6, 1))
    assert d.parse_range("2026-W27..2026-07-10") == DateRange(date(2026, 6, 29), date(2026, 7, 11))
    assert (is_range_label("2026-02..2026-05"), is_range_label("2026-02")) == (True, False)
    assert refusal(d.parse_range, "2026-02", error=InvalidPeriod) == (
        "period", "bad range '2026-02'; use 2026-02-10..2026-05-20")
    assert refusal(d.parse_range, "2026-02..2026-05..2026-06", error=InvalidPeriod) == (  # split at the first ".."
        "period", "bad period '2026-05..2026-06'; use 2026-07-14, 2026-W27, 2026-07, 2026-Q3, 2026-H2 or 2026")
    assert refusal(d.parse_range, "2026-05..2026-02", error=InvalidPeriod) == (
        "period", "a range ends after it starts, not 2026-05-01..2026-03-01")


# --- settings.py -----------------------------------------------------------------------------------------------

def test_report_settings_defaults():
    s = ReportSettings()
    assert (s.ack_sla, s.default_periods, s.max_periods, s.max_range_days, s.rebuild_wait_seconds) == (
        timedelta(hours=48), 12, 400, 366, 30.0)


@pytest.mark.parametrize("kwargs", [
    {"ack_sla": timedelta(minutes=1)}, {"default_periods": 1}, {"default_periods": 5, "max_periods": 5},
    {"max_range_days": 1}, {"rebuild_wait_seconds": 0},
])
def test_the_lowest_settings_accepted(kwargs):
    s = ReportSettings(**kwargs)
    assert all(getattr(s, k) == v for k, v in kwargs.items())


@pytest.mark.parametrize("kwargs, message", [
    ({"ack_sla": timedelta(0)}, "REPORTS_ACK_SLA_HOURS must be positive"),
    ({"ack_sla": timedelta(hours=-1)}, "REPORTS_ACK_SLA_HOURS must be positive"),
    ({"default_periods": 0}, "need 1 <= REPORTS_DEFAULT_PERIODS <= REPORTS_MAX_PERIODS"),
    ({"default_periods": 6, "max_periods": 5}, "need 1 <= REPORTS_DEFAULT_PERIODS <= REPORTS_MAX_PERIODS"),
    ({"max_range_days": 0}, "REPORTS_MAX_RANGE_DAYS must be at least 1"),
    ({"rebuild_wait_seconds": -0.5}, "REPORTS_REBUILD_WAIT_SECONDS cannot be negative"),
])
def test_each_bad_setting_is_refused_naming_its_variable(kwargs, message):
    with pytest.raises(ValueError) as refused:
        ReportSettings(**kwargs)
    assert str(refused.value) == message


def test_settings_are_read_from_reports_variables_in_their_units():
    s = ReportSettings.from_settings({
        "REPORTS_ACK_SLA_HOURS": "1.5", "REPORTS_DEFAULT_PERIODS": "6", "REPORTS_MAX_PERIODS": "50",
        "REPORTS_MAX_RANGE_DAYS": "31", "REPORTS_REBUILD_WAIT_SECONDS": "2.5", "REPORTS_DATABASE_URL": "x"})
    assert (s.ack_sla, s.default_periods, s.max_periods, s.max_range_days, s.rebuild_wait_seconds) == (
        timedelta(minutes=90), 6, 50, 31, 2.5)
    assert ReportSettings.from_settings({}) == ReportSettings() == ReportSettings.from_settings(
        {"REPORTS_ACK_SLA_HOURS": "", "REPORTS_MAX_PERIODS": "", "REPORTS_REBUILD_WAIT_SECONDS": ""})


# --- requests.py -----------------------------------------------------------------------------------------------
TODAY = date(2026, 8, 10)


def test_the_slice_asked_for_or_the_callers_own():
    assert refusal(d.requested_slice, "east", "r1", "admin", "a1", None) == ("rep", "give team or rep, not both")
    assert d.requested_slice("east", None, "admin", "a1", None) == d.Slice(team="east")
    assert d.requested_slice(None, "r1", "admin", "a1", None) == d.Slice(rep="r1")
    assert d.requested_slice("", None, "rep", "r2", "west") == d.Slice(rep="r2")
    assert d.requested_slice(None, None, "manager", "m1", "east") == d.Slice(team="east")
    assert d.requested_slice(None, None, "admin", "a1", None) == ALL


@pytest.mark.parametrize("scope, breakdown", [
    (ALL, "team"), (ALL, "rep"), (d.Slice(team="east"), "rep"), (d.Slice(rep="r1"), "tier"),
    (d.Slice(team="east"), "lifecycle"), (d.Slice(rep="r1"), "industry"),
])
def test_breakdowns_allowed(scope, breakdown):
    assert d.check_breakdown(scope, breakdown) is None


@pytest.mark.parametrize("scope, breakdown, message", [
    (d.Slice(team="east"), "team", "breakdown=team lists every team: drop the team and rep filters"),
    (d.Slice(rep="r1"), "team", "breakdown=team lists every team: drop the team and rep filters"),
    (d.Slice(rep="r1"), "rep", "breakdown=rep goes with a team filter or none, not a rep"),
])
def test_breakdowns_refused(scope, breakdown, message):
    assert refusal(d.check_breakdown, scope, breakdown) == ("breakdown", message)


def test_coverage_bars_and_scope_names():
    assert [d.coverage_bars(True, None, None), d.coverage_bars(True, "east", None), d.coverage_bars(True, None, "r1"),
            d.coverage_bars(False, None, None)] == ["team", "rep", "rep", "rep"]
    assert [d.scope_json(d.Slice(team="east")), d.scope_json(d.Slice(rep="r1")), d.scope_json(ALL)] == [
        {"team": "east"}, {"rep": "r1"}, {}]
    assert [d.scope_label(d.Slice(team="east")), d.scope_label(d.Slice(rep="r1")), d.scope_label(ALL)] == [
        "team east", "rep r1", "all customers"]


def test_period_of_names_the_parameter_and_bounds_ranges():
    assert d.period_of("2026-07", "period") == d.parse_period("2026-07")
    assert d.period_of("2026-01-01..2027-01-01", "period") == DateRange(date(2026, 1, 1), date(2027, 1, 2))  # 366
    assert refusal(d.period_of, "July", "to") == (
        "to", "bad period 'July'; use 2026-07-14, 2026-W27, 2026-07, 2026-Q3, 2026-H2 or 2026")
    assert type(pytest.raises(CrmError, d.period_of, "July", "to").value) is CrmError
    assert refusal(d.period_of, "2026-01-01..2027-01-02", "period") == (
        "period", "the range 2026-01-01..2027-01-02 is 367 days long; at most 366 (longer: use period_kind=year "
                  "or half)")
    short = ReportSettings(max_range_days=10)
    assert d.period_of("2026-01-01..2026-01-10", "p", short).days == 10
    assert refusal(d.period_of, "2026-01-01..2026-01-11", "p", short) == (
        "p", "the range 2026-01-01..2026-01-11 is 11 days long; at most 10 (longer: use period_kind=year or half)")
    assert refusal(d.period_of, "2026-05..2026-02", "from") == (
        "from", "a range ends after it starts, not 2026-05-01..2026-03-01")


def test_a_custom_range_needs_both_ends_in_order():
    s = ReportSettings()
    assert d.date_range("2026-02", "2026-05-20", s) == DateRange(date(2026, 2, 1), date(2026, 5, 21))
    assert d.date_range("2026-05-20", "2026-05-20", s).days == 1
    for first, last, field in ((None, "2026-05-20", "from"), ("", "2026-05-20", "from"), ("2026-02-10", None, "to"),
                               ("2026-02-10", "", "to")):
        assert refusal(d.date_range, first, last, s) == (
            field, f"a custom range needs both from and to (dates, both included); {field} is missing")
    assert refusal(d.date_range, None, None, s)[0] == "from"
    assert refusal(d.date_range, "2026-05-21", "2026-05-20", s) == (
        "from", "from (2026-05-21) is after to (2026-05-20)")
    assert refusal(d.date_range, "2026-06", "2026-05", s) == ("from", "from (2026-06) is after to (2026-05)")
    assert refusal(d.date_range, "2026-01-01..2026-02-01", "2026-03-01", s) == (
        "from", "from is one date or period label, not a range (2026-01-01..2026-02-01)")
    assert refusal(d.date_range, "2026-01-01", "2026-03-01..2026-03-02", s) == (
        "to", "to is one date or period label, not a range (2026-03-01..2026-03-02)")
    assert refusal(d.date_range, "2026-02-30", "2026-03-01", s)[0] == "from"
    assert refusal(d.date_range, "2026-02-01", "2026-02-x", s)[0] == "to"
    assert refusal(d.date_range, "2026-01-01", "2026-01-11", ReportSettings(max_range_days=10)) == (
        "to", "the range 2026-01-01..2026-01-11 is 11 days long; at most 10 (longer: use period_kind=year or half)")


def test_the_periods_of_a_table():
    s = ReportSettings(default_periods=3)
    labels = lambda *args: [p.label for p in d.period_range(*args)]  # noqa: E731
    assert labels("month", None, None, TODAY, s) == ["2026-06", "2026-07", "2026-08"]
    assert labels("week", None, None, TODAY, s) == ["2026-W31", "2026-W32", "2026-W33"]
    assert labels("quarter", None, "2026-05-20", TODAY, s) == ["2025-Q4", "2026-Q1", "2026-Q2"]
    assert labels("month", None, None, TODAY, ReportSettings()) == [
        "2025-09", "2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05",
        "2026-06", "2026-07", "2026-08"]
    assert labels("week", "2026-05-01", "2026-05", TODAY, s) == [
        "2026-W18", "2026-W19", "2026-W20", "2026-W21", "2026-W22"]
    assert labels("month", "2026-02-10", None, TODAY, s) == [
        "2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07", "2026-08"]
    assert labels("day", "2026-08-10", None, TODAY, s) == ["2026-08-10"]
    assert labels("day", "2026-05-31", "2026-05", TODAY, s) == ["2026-05-31"]
    assert d.period_range("range", "2026-02-10", "2026-05-20", TODAY, s) == [
        DateRange(date(2026, 2, 10), date(2026, 5, 21))]


def test_the_periods_of_a_table_refused():
    s = ReportSettings(default_periods=1, max_periods=3)
    assert refusal(d.period_range, "month", "2026-06", "2026-05", TODAY, s) == (
        "from", "from (2026-06) is after to (2026-05)")
    assert refusal(d.period_range, "month", "2026-09", None, TODAY, s) == (
        "from", "from (2026-09) is after to (2026-08-10)")
    assert refusal(d.period_range, "day", "2026-08-11", None, TODAY, s)[0] == "from"
    assert [p.label for p in d.period_range("month", "2026-06", None, TODAY, s)] == ["2026-06", "2026-07", "2026-08"]
    assert refusal(d.period_range, "month", "2026-05", None, TODAY, s) == (
        "from", "4 month periods asked; at most 3 at once")
    assert refusal(d.period_range, "month", "2026-05..2026-06", None, TODAY, s) == (
        "from", "from is one date or period label, not a range (2026-05..2026-06)")
    assert refusal(d.period_range, "month", None, "2026-05..2026-06", TODAY, s)[0] == "to"


def test_the_as_of_day():
    assert d.as_of_day(None, TODAY) == TODAY and d.as_of_day(TODAY, TODAY) == TODAY
    assert d.as_of_day(date(1900, 1, 1), TODAY) == date(1900, 1, 1)
    assert refusal(d.as_of_day, date(1899, 12, 31), TODAY) == ("as_of", "as_of 1899-12-31 is before 1900")
    assert refusal(d.as_of_day, date(2026, 8, 11), TODAY) == (
        "as_of", "as_of 2026-08-11 is in the future (today is 2026-08-10)")


def test_the_dashboard_period():
    assert d.dashboard_period(None, TODAY, TODAY) == d.parse_period("2026-Q3")           # live: this quarter
    assert d.dashboard_period(None, date(2026, 6, 30), TODAY) == d.parse_period("2026-Q2")  # Q2 ended by then
    assert d.dashboard_period(None, date(2026, 6, 29), TODAY) == d.parse_period("2026-Q1")
    assert d.dashboard_period(None, date(2026, 7, 1), TODAY) == d.parse_period("2026-Q2")
    assert d.dashboard_period("2026-07", TODAY, TODAY) == d.parse_period("2026-07")
    assert d.dashboard_period("2026-08-10", TODAY, TODAY) == d.parse_period("2026-08-10")  # starts on as_of
    assert d.dashboard_period("2026-Q2", date(2026, 6, 30), TODAY) == d.parse_period("2026-Q2")
    assert d.dashboard_period("2026-08-01", date(2026, 8, 1), TODAY) == d.parse_period("2026-08-01")
    assert d.dashboard_period(None, TODAY, TODAY, "2026-07-01", "2026-08-31") == DateRange(
        date(2026, 7, 1), date(2026, 9, 1))                                               # live: may still run
    assert d.dashboard_period(None, date(2026, 5, 31), TODAY, "2026-04-01", "2026-05-31") == DateRange(
        date(2026, 4, 1), date(2026, 6, 1))
    assert d.dashboard_period("2026-01-01..2026-01-10", TODAY, TODAY) == DateRange(date(2026, 1, 1),
                                                                                  date(2026, 1, 11))


def test_the_dashboard_period_refused():
    both = "give period, or from and to (a custom range), not both"
    assert refusal(d.dashboard_period, "2026-Q1", TODAY, TODAY, "2026-01-01", "2026-01-31") == ("period", both)
    assert refusal(d.dashboard_period, "2026-Q1", TODAY, TODAY, None, "2026-01-31") == ("period", both)
    assert refusal(d.dashboard_period, "2026-Q1", TODAY, TODAY, "2026-01-01") == ("period", both)
    assert refusal(d.dashboard_period, "2026-Q2", date(2026, 6, 29), TODAY) == (
        "period", "2026-Q2 had not ended by 2026-06-29: its figures would include later events; ask for an ended "
                  "period or leave as_of out")
    assert refusal(d.dashboard_period, None, date(2026, 5, 1), TODAY, "2026-04-01", "2026-05-20") == (
        "period", "2026-04-01..2026-05-20 had not ended by 2026-05-01: its figures would include later events; ask "
                  "for an ended period or leave as_of out")
    assert refusal(d.dashboard_period, "2026-Q4", TODAY, TODAY) == ("period", "2026-Q4 starts after 2026-08-10")
    assert refusal(d.dashboard_period, "2026-08-11", TODAY, TODAY) == ("period", "2026-08-11 starts after 2026-08-10")
    assert refusal(d.dashboard_period, None, TODAY, TODAY, "2026-01-01", None) == (
        "to", "a custom range needs both from and to (dates, both included); to is missing")
    assert refusal(d.dashboard_period, "July", TODAY, TODAY)[0] == "period"
    assert refusal(d.dashboard_period, "2026-01-01..2026-01-11", TODAY, TODAY, None, None,
                   ReportSettings(max_range_days=10))[0] == "period"
    assert refusal(d.dashboard_period, None, TODAY, TODAY, "2026-01-01", "2026-01-11",
                   ReportSettings(max_range_days=10))[0] == "to"
    assert refusal(d.dashboard_period, None, TODAY, TODAY, "2025-01-01", "2026-01-02")[0] == "to"


def test_an_empty_none_row_is_left_out():
    rows = [{"tier": "A", "n": 2, "label": "x"},
            {"tier": "(none)", "n": 0, "m": None, "attribute": "tier", "from": "A", "to": "B"}]
    columns = ("n", "m", "attribute", "from", "to")
    assert d.without_empty_none(rows, "tier", columns) == rows[:1]
    assert d.without_empty_none(rows, "tier", iter(columns)) == rows[:1]
    assert d.without_empty_none(rows, None, columns) == rows
    held = rows[:1] + [{"tier": "(none)", "n": 1}]
    assert d.without_empty_none(held, "tier", ("n",)) == held
    labelled = rows[:1] + [{"tier": "(none)", "n": 0, "label": "x"}]
    assert d.without_empty_none(labelled, "tier", ("n", "label")) == labelled
    for column in ("attribute", "from", "to"):
        assert d.without_empty_none(rows[:1] + [{"tier": "(none)", column: "x"}], "tier", (column,)) == rows[:1]
    two = rows + [{"tier": "(none)", "n": 3}]
    assert d.without_empty_none(two, "tier", ("n",)) == two


# --- figures.py: every figure of a team's row, read in that team's slice (test_domain.py's July history) --------
@pytest.fixture  # per test: mutmut only runs a mutant against the tests that called the function (a module
def july_counters():  # fixture calls counter_updates in its first test only)
    from tests.unit.reports.test_domain import history
    store = d.InMemoryCounters()
    for fact in history().facts:
        store.apply(d.counter_updates(fact))
    return store


JULY = d.parse_period("2026-07")


def test_the_headline_row_of_team_east(july_counters):
    # c1 c2 active and c3 dormant on July 1st, c3 churns; buys: c1 250.50 (repeat), c2 99.99 and 10.01 (repeat),
    # c6 500.00; talks c1 c2 c3 post-sale (4, 5, 2; c3's a complaint), c6 pre-sale; tasks t1 t2 (missed) t3 t4
    # (skipped: no customer due); c6 won after 21.5 days; alerts a2 (late, lost) a3 (false alarm, in time) a4
    # (48h: in time, recovered); scores on August 1st c1 90, c2 60, c3 30 (c6 archived)
    assert d.headline_figures(july_counters, JULY, d.Slice(team="east")) == {
        "period": "2026-07", "active_base_at_start": 3, "churned": 1, "churn_rate": 1 / 3, "retention_rate": 1 - 1 / 3,
        "purchases": 4, "revenue": Decimal("860.50"), "buyers": 3, "repeat_buyers": 2, "repurchase_rate": 2 / 3,
        "interactions": 4, "interactions_pre_sale": 1, "interactions_post_sale": 3, "average_satisfaction": 11 / 3,
        "complaints": 1, "tasks_came_due": 4, "tasks_missed": 1, "missed_followup_rate": 0.25, "customers_due": 2,
        "customers_touched": 2, "followup_coverage": 1.0, "won": 1, "lost": 0, "win_rate": 1.0,
        "average_cycle_days": 21.5, "alerts_raised": 3, "alerts_handled_in_time": 2, "handled_in_time_rate": 2 / 3,
        "alerts_recovered": 1, "alerts_lost": 1, "recovery_rate": 0.5, "average_health_score_at_end": 60.0}


def test_the_headline_row_of_team_west(july_counters):
    # c5 the only active one on July 1st, churned (twice: once); c5's 40.00 a repeat (06-20 came late); c4 two
    # pre-sale talks; t5 missed, t6 done (c4 touched of c5 c4); c4 won after 23 days, c7 lost; a1 in time, lost;
    # scores on August 1st c4 50, c5 20
    assert d.headline_figures(july_counters, JULY, d.Slice(team="west")) == {
        "period": "2026-07", "active_base_at_start": 1, "churned": 1, "churn_rate": 1.0, "retention_rate": 0.0,
        "purchases": 1, "revenue": Decimal("40.00"), "buyers": 1, "repeat_buyers": 1, "repurchase_rate": 1.0,
        "interactions": 2, "interactions_pre_sale": 2, "interactions_post_sale": 0, "average_satisfaction": None,
        "complaints": 0, "tasks_came_due": 2, "tasks_missed": 1, "missed_followup_rate": 0.5, "customers_due": 2,
        "customers_touched": 1, "followup_coverage": 0.5, "won": 1, "lost": 1, "win_rate": 0.5,
        "average_cycle_days": 23.0, "alerts_raised": 1, "alerts_handled_in_time": 1, "handled_in_time_rate": 1.0,
        "alerts_recovered": 0, "alerts_lost": 1, "recovery_rate": 0.0, "average_health_score_at_end": 35.0}


def test_alert_summaries_per_team(july_counters):
    assert d.alert_summary(july_counters, JULY, d.Slice(team="west")) == d.AlertSummary(
        raised=1, handled=1, handled_in_time=1, escalated=0, recovered=0, lost=1, false_alarm=0)
    assert d.alert_summary(july_counters, JULY, d.Slice(team="east")) == d.AlertSummary(
        raised=3, handled=3, handled_in_time=2, escalated=1, recovered=1, lost=1, false_alarm=1)


def test_a_lifecycle_left_out_of_a_distribution_counts_zero(july_counters):
    # on August 1st east has c1 c2 active and c3 churned; only "active" is asked for
    assert d.distribution(july_counters, JULY.end, "lifecycle", ["active", "churned"], d.Slice(team="east"),
                          lifecycles=("active",)) == {"active": 2, "churned": 0}
    assert d.distribution(july_counters, JULY.end, "lifecycle", ["active", "churned"], d.Slice(team="east")) == {
        "active": 2, "churned": 1}


# --- counters.py: what one fact counts, read back from the buckets it lands in ---------------------------------
EAST_R1 = d.Dims("east", "r1", "A", "active", "retail")


def counted(*facts, **options):
    store = d.InMemoryCounters()
    for fact in facts:
        store.apply(d.counter_updates(fact, **options))
    return store


def flows(store, period, slice_=ALL):
    """Every non-zero counter of one bucket and slice, by metric."""
    return {k.metric: v for k, v in store.values.items() if v and k.period_kind is period.kind
            and k.period_start == period.start and k.dimension == slice_.dimension
            and k.dimension_value == slice_.value}


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_an_interaction_counts_its_phase_satisfaction_and_complaint():
    fact = d.InteractionFact("i1", "k1", "complaint", "post_sale", at("2026-07-02T10:00"), 2, EAST_R1)
    assert flows(counted(fact), JULY, d.Slice(team="east")) == {
        "interactions": 1, "interactions:post_sale": 1, "satisfaction.sum": 2, "satisfaction.count": 1,
        "complaints": 1}
    plain = d.InteractionFact("i2", "k1", "call", "pre_sale", at("2026-07-02T10:00"), None, EAST_R1)
    assert flows(counted(plain), JULY) == {"interactions": 1, "interactions:pre_sale": 1}


@pytest.mark.parametrize("event, on_time, counts", [
    ("overdue", False, {"tasks.overdue": 1}),
    ("completed", True, {"tasks.came_due": 1, "tasks.completed": 1, "tasks.completed_on_time": 1,
                         "followup.customers_due": 1, "followup.customers_touched": 1}),
    ("completed", False, {"tasks.came_due": 1, "tasks.completed": 1, "followup.customers_due": 1,
                          "followup.customers_touched": 1}),
    ("skipped", True, {"tasks.came_due": 1, "tasks.skipped": 1}),   # no touch was due after all
    ("missed", True, {"tasks.came_due": 1, "tasks.missed": 1, "followup.customers_due": 1}),
])
def test_a_task_counts_once_when_it_settles(event, on_time, counts):
    fact = d.TaskFact("t1", "k1", d.TaskEvent(event), at("2026-07-09T09:00"), EAST_R1, on_time)
    assert flows(counted(fact), JULY, d.Slice(rep="r1")) == counts


def test_a_customer_is_due_and_touched_once_however_many_tasks():
    facts = [d.TaskFact(t, "k1", d.TaskEvent.COMPLETED, at(f"2026-07-{day}"), EAST_R1, True)
             for t, day in (("t1", "02"), ("t2", "20"))]
    assert flows(counted(*facts), JULY) == {"tasks.came_due": 2, "tasks.completed": 2, "tasks.completed_on_time": 2,
                                            "followup.customers_due": 1, "followup.customers_touched": 1}


def test_a_stage_counts_each_customer_once_and_a_win_its_cycle():
    into = lambda stage, when, first=None: d.StageChangeFact("k1", None, stage, at(when), EAST_R1,  # noqa: E731
                                                              first and at(first))
    assert flows(counted(into("proposal", "2026-07-02"), into("proposal", "2026-07-09")), JULY) == {
        "stage.entered:proposal": 1}
    assert flows(counted(into("won", "2026-07-11T12:00", "2026-07-01")), JULY) == {
        "stage.entered:won": 1, "won.cycle_seconds": 10 * 86400 + 43200, "won.with_cycle": 1}
    # won the moment of the first contact: a cycle of 0 seconds, still counted
    assert flows(counted(into("won", "2026-07-01", "2026-07-01")), JULY) == {
        "stage.entered:won": 1, "won.with_cycle": 1}
    assert flows(counted(into("won", "2026-07-11")), JULY) == {"stage.entered:won": 1}      # no first contact
    assert flows(counted(into("won", "2026-07-11", "2026-07-12")), JULY) == {"stage.entered:won": 1}  # after it
    assert flows(counted(into("lost", "2026-07-11", "2026-07-01")), JULY) == {"stage.entered:lost": 1}
    assert flows(counted(into("proposal", "2026-07-11", "2026-07-01")), JULY) == {"stage.entered:proposal": 1}


def test_what_each_alert_event_counts():
    raised_at = at("2026-07-01T10:00")
    alert = lambda event, when, outcome=None, alert_id="a1": d.AlertFact(  # noqa: E731
        alert_id, "k1", d.AlertEvent(event), at(when), raised_at, EAST_R1, outcome)
    assert flows(counted(alert("raised", "2026-07-01T10:00")), JULY) == {"alerts.raised": 1}
    assert flows(counted(alert("escalated", "2026-07-02"), alert("escalated", "2026-07-03")), JULY) == {
        "alerts.escalated": 1}
    assert flows(counted(alert("escalated", "2026-07-02"), alert("escalated", "2026-07-03", alert_id="a2")),
                 JULY) == {"alerts.escalated": 2}
    assert flows(counted(alert("acknowledged", "2026-07-03T10:00"), alert("resolved", "2026-07-04", "lost")),
                 JULY) == {"alerts.handled": 1, "alerts.handled_in_time": 1, "alerts.resolved:lost": 1}
    assert flows(counted(alert("resolved", "2026-07-03T10:01", "recovered")), JULY) == {
        "alerts.handled": 1, "alerts.resolved:recovered": 1}
    with pytest.raises(ValueError) as refused:
        d.counter_updates(alert("resolved", "2026-07-04", "won"))
    assert str(refused.value) == "alert outcome must be one of ('recovered', 'lost', 'false_alarm'), not 'won'"


def test_a_repeat_purchase_counts_when_the_second_purchase_is():
    dims = EAST_R1
    later = d.PurchaseFact("k1", "p2", Decimal("10.00"), at("2026-07-03"), dims, at("2026-06-10"))
    store = counted(later)
    assert flows(store, JULY) == {"purchases": 1, "revenue": Decimal("10.00"), "buyers": 1, "repeat_buyers": 1}
    # backdated before the known first: the old first (July 6th) becomes the repeat, in July
    earlier = d.PurchaseFact("k1", "p3", Decimal("60.00"), at("2026-06-20"), dims, at("2026-07-06"))
    store = counted(earlier)
    assert flows(store, d.parse_period("2026-06")) == {"purchases": 1, "revenue": Decimal("60.00"), "buyers": 1}
    assert flows(store, JULY) == {"repeat_buyers": 1}
    two = [d.PurchaseFact("k1", f"p{n}", Decimal("1.00"), at(f"2026-07-{n:02d}"), dims, at("2026-06-10"))
           for n in (3, 4)]
    assert flows(counted(*two), JULY) == {"purchases": 2, "revenue": Decimal("2.00"), "buyers": 1,
                                          "repeat_buyers": 1}


def state(**dims):
    return d.CustomerState(replace(EAST_R1, **dims), 50)


def test_a_tier_or_lifecycle_move_is_counted_where_the_customer_came_from():
    store = counted(d.CustomerChangeFact("k1", at("2026-07-05"), state(), state(tier="B", lifecycle="dormant")))
    assert {m: v for m, v in flows(store, JULY, d.Slice(team="east", tier="A")).items() if m.startswith("moved")} == {
        "moved.tier:A>B": 1, "moved.lifecycle:active>dormant": 1}
    assert not any(m.startswith("moved") for m in flows(store, JULY, d.Slice(team="east", tier="B")))


def test_a_first_tier_or_lifecycle_is_no_move():
    for before, after in ((state(tier=None), state()), (state(), state(tier=None)),
                          (state(lifecycle=None), state()), (state(), state(lifecycle=None))):
        store = counted(d.CustomerChangeFact("k1", at("2026-07-05"), before, after))
        assert not [k for k in store.values if k.metric.startswith("moved")], (before, after)


def test_churn_is_counted_once_in_the_slices_left():
    churn = d.CustomerChangeFact("k1", at("2026-07-05"), state(), state(lifecycle="churned"))
    back = d.CustomerChangeFact("k1", at("2026-07-06"), state(lifecycle="churned"), state())
    again = d.CustomerChangeFact("k1", at("2026-07-07"), state(), state(lifecycle="churned"))
    store = counted(churn, back, again)
    assert flows(store, JULY, d.Slice(lifecycle="active"))["churned"] == 1
    assert "churned" not in flows(store, JULY, d.Slice(lifecycle="churned"))
    still = d.CustomerChangeFact("k1", at("2026-07-08"), state(lifecycle="churned"),
                                 d.CustomerState(replace(EAST_R1, lifecycle="churned"), 10))
    assert "churned" not in flows(counted(still), JULY)


def test_anything_else_is_not_a_fact():
    with pytest.raises(TypeError) as refused:
        d.counter_updates("purchase")
    assert str(refused.value) == "not a reports fact: str"


def test_which_metrics_count_distinct_entities():
    assert [d.is_distinct(m) for m in ("buyers", "repeat_buyers", "churned", "followup.customers_due",
                                       "stage.entered:won", "alerts.resolved:lost", "alerts.handled")] == [True] * 7
    assert [d.is_distinct(m) for m in ("purchases", "revenue", "interactions", "tasks.came_due", "customers:active",
                                       "won.cycle_seconds")] == [False] * 6


def test_slice_values_escape_the_separator_and_the_escape():
    assert d.Slice(team="a|b").value == "a\\|b" and d.Slice(team="a\\b").value == "a\\\\b"
    assert d.Slice(team="a\\|b", tier="A").value == "a\\\\\\|b|A"


def test_slice_refusals_say_why():
    with pytest.raises(ValueError) as refused:
        d.Slice(team="east", rep="r1")
    assert str(refused.value) == "a slice has at most one scope: team or rep"
    with pytest.raises(ValueError) as refused:
        d.Slice(tier="A", industry="food")
    assert str(refused.value) == "a slice has at most one breakdown: tier, lifecycle or industry"


def test_the_twelve_slices_of_a_fact():
    S = d.Slice
    assert d.slices_for(d.Dims("east", "r1", "A", None, "retail")) == [
        S(), S(tier="A"), S(lifecycle="(none)"), S(industry="retail"),
        S(team="east"), S(team="east", tier="A"), S(team="east", lifecycle="(none)"),
        S(team="east", industry="retail"),
        S(rep="r1"), S(rep="r1", tier="A"), S(rep="r1", lifecycle="(none)"), S(rep="r1", industry="retail")]
    assert d.slices_for(d.Dims())[4:6] == [S(team="(none)"), S(team="(none)", tier="(none)")]
    assert d.slices_for(d.Dims())[8] == S(rep="(none)")
    assert [s for s in d.slices_for(EAST_R1) if s.lifecycle] == [
        S(lifecycle="active"), S(team="east", lifecycle="active"), S(rep="r1", lifecycle="active")]


def test_revenue_is_stored_in_cents_and_read_back_to_the_cent():
    assert (c.to_stored("revenue", Decimal("12.34")), c.to_stored("purchases", 3)) == (1234, 3)
    assert [str(c.from_stored("revenue", n)) for n in (1234, 5, 100)] == ["12.34", "0.05", "1.00"]
    assert c.from_stored("purchases", 7) == 7


def test_a_range_adds_its_tiles_up_and_counts_distinct_entities_once(july_counters):
    june_july = DateRange(date(2026, 6, 1), date(2026, 8, 1))
    # purchases: June c1 100.00, c5 60.00; July c1 250.50, c2 99.99, c5 40.00, c6 500.00, c2 10.01
    assert july_counters.flow("purchases", june_july) == 7
    assert july_counters.flow("revenue", june_july) == Decimal("1060.50")
    assert july_counters.flow("buyers", june_july) == 4                          # c1 c2 c5 c6 (months: 2 + 4)
    assert july_counters.flow("buyers", june_july, d.Slice(team="east")) == 3    # c1 c2 c6
    mid = DateRange(date(2026, 6, 15), date(2026, 7, 6))                         # c5 06-20, c1 07-03, c2 07-04
    assert (july_counters.flow("purchases", mid), july_counters.flow("buyers", mid)) == (3, 3)
    assert july_counters.flow("purchases", mid, d.Slice(team="west")) == 1


# --- ranges.py: the distinct marks an item leaves, and counting them over a range --------------------------------
MARK_DIMS = {"team": "east", "rep": "r1", "tier": "(none)", "lifecycle": "active", "industry": "retail"}
COUNTED_DIMS = dict(MARK_DIMS, tier=None)


def test_a_purchase_marks_its_buyer_and_a_repeat_its_repeat_buyer_on_its_day():
    purchase = book.Record("x1", "purchase", at("2026-07-03T10:00"), "p1", {"amount_base": "10.00"})
    assert ranges.record_marks("k1", purchase, {"dims": COUNTED_DIMS, "repeat": True}) == [
        ranges.Mark("buyers", "k1", date(2026, 7, 3), MARK_DIMS),
        ranges.Mark("repeat_buyers", "k1", date(2026, 7, 3), MARK_DIMS)]
    assert ranges.record_marks("k1", purchase, {"dims": COUNTED_DIMS, "repeat": False}) == [
        ranges.Mark("buyers", "k1", date(2026, 7, 3), MARK_DIMS)]
    assert ranges.record_marks("k1", purchase, None) == []     # not counted (yet): no marks


def test_a_task_marks_the_customer_under_the_assignees_team():
    task = book.Record("x2", "task", at("2026-07-09T10:00"), "t1",
                       {"event": "missed", "assignee": "r2", "team": "west"})
    assert ranges.record_marks("k1", task, {"dims": dict(COUNTED_DIMS, rep="r2", team="west")}) == [
        ranges.Mark("followup.customers_due", "k1", date(2026, 7, 9), dict(MARK_DIMS, rep="r2", team="west"))]


def test_an_alert_marks_the_alert_and_an_interaction_nothing():
    alert = book.Record("x3", "alert", at("2026-07-02"), "a1",
                        {"event": "escalated", "happened_at": "2026-07-02T00:00:00+00:00"})
    assert ranges.record_marks("k1", alert, {"dims": COUNTED_DIMS, "raised_at": "2026-07-01T10:00:00+00:00",
                                             "sla": 172800}) == [
        ranges.Mark("alerts.escalated", "a1", date(2026, 7, 1), MARK_DIMS)]
    talk = book.Record("x4", "interaction", at("2026-07-02"), "i1",
                       {"kind": "call", "phase": "pre_sale", "rep": "r1", "team": "east"})
    assert ranges.record_marks("k1", talk, {"dims": COUNTED_DIMS}) == []


def test_a_churn_marks_the_slices_the_customer_left():
    change = book.Change("c1", at("2026-07-05"), 1, {"lifecycle": "churned"})
    counted = {"before": dict(COUNTED_DIMS, score=50), "after": dict(COUNTED_DIMS, lifecycle="churned", score=50)}
    assert ranges.change_marks("k1", change, counted) == [ranges.Mark("churned", "k1", date(2026, 7, 5), MARK_DIMS)]
    moved = {"before": dict(COUNTED_DIMS, score=50), "after": dict(COUNTED_DIMS, tier="A", score=50)}
    assert ranges.change_marks("k1", change, moved) == []
    created = {"before": None, "after": dict(COUNTED_DIMS, lifecycle="churned", score=50)}
    assert ranges.change_marks("k1", change, created) == []
    assert ranges.change_marks("k1", change, None) == [] and ranges.change_marks("k1", change, {}) == []


def test_a_mark_matches_the_slices_it_was_counted_in():
    assert [ranges.matches(MARK_DIMS, s) for s in (
        ALL, d.Slice(team="east"), d.Slice(rep="r1", tier="(none)"), d.Slice(industry="retail"),
        d.Slice(team="west"), d.Slice(rep="r2"), d.Slice(lifecycle="churned"), d.Slice(tier="A"))] == [
        True, True, True, True, False, False, False, False]
    assert ranges.matches({}, d.Slice(team="(none)")) and not ranges.matches({}, d.Slice(team="east"))


def test_distinct_entities_over_a_range():
    west = dict(MARK_DIMS, team="west", rep="r3")
    marks = [ranges.Mark(metric, entity, date(2026, month, day), dims) for metric, entity, month, day, dims in (
        ("buyers", "k1", 7, 1, MARK_DIMS), ("buyers", "k1", 7, 20, MARK_DIMS), ("buyers", "k2", 7, 31, MARK_DIMS),
        ("buyers", "k3", 7, 5, west), ("repeat_buyers", "k4", 7, 5, MARK_DIMS), ("buyers", "k5", 8, 1, MARK_DIMS),
        ("buyers", "k6", 6, 30, MARK_DIMS))]
    july = (date(2026, 7, 1), date(2026, 8, 1))
    assert ranges.distinct_over(marks, "buyers", *july, ALL) == 3                    # k1 (twice) k2 k3
    assert ranges.distinct_over(marks, "buyers", *july, d.Slice(team="east")) == 2   # k1 k2
    assert ranges.distinct_over(marks, "buyers", *july, d.Slice(team="west")) == 1
    assert ranges.distinct_over(marks, "repeat_buyers", *july, ALL) == 1
    assert ranges.distinct_over(marks, "buyers", date(2026, 7, 2), date(2026, 7, 31), ALL) == 2   # k1 k3
    assert ranges.distinct_over(iter(marks), "buyers", date(2026, 6, 30), date(2026, 8, 2), ALL) == 5


# --- tables.py: each table's columns, the metrics it loads and its rows (team west in July, test_domain.py) ------
WEST_JULY_ROWS = {
    # c5 the one active customer on July 1st, churned by August 1st (c4 c7 potential)
    "churn": {"active_base_at_start": 1, "churned": 1, "churn_rate": 1.0, "retention_rate": 0.0},
    "repurchase": {"purchases": 1, "revenue": Decimal("40.00"), "buyers": 1, "repeat_buyers": 1,
                   "repurchase_rate": 1.0},
    # t5 overdue then missed, t6 completed on time
    "followups": {"tasks_came_due": 2, "tasks_completed": 1, "tasks_completed_on_time": 1, "tasks_skipped": 0,
                  "tasks_missed": 1, "tasks_overdue": 1, "missed_followup_rate": 0.5, "customers_due": 2,
                  "customers_touched": 1, "followup_coverage": 0.5},
    "interactions": {"interactions": 2, "interactions_pre_sale": 2, "interactions_post_sale": 0,
                     "satisfaction_ratings": 0, "average_satisfaction": None, "complaints": 0},
    "satisfaction": {"satisfaction_ratings": 0, "satisfaction_sum": 0, "average_satisfaction": None, "complaints": 0},
    # c4 first contact > needs analysis > proposal > won (23 days); c7 first contact > needs analysis (twice) > lost
    "funnel": {"entered_first_contact": 2, "entered_needs_analysis": 2, "entered_proposal": 1, "entered_won": 1,
               "entered_lost": 1, "conversion_needs_analysis": 1.0, "conversion_proposal": 0.5, "conversion_won": 1.0,
               "win_rate": 0.5, "wins_with_cycle": 1, "average_cycle_days": 23.0},
    "alerts": {"alerts_raised": 1, "alerts_handled": 1, "alerts_handled_in_time": 1, "handled_in_time_rate": 1.0,
               "alerts_escalated": 0, "alerts_recovered": 0, "alerts_lost": 1, "alerts_false_alarm": 0,
               "alerts_open": 0, "recovery_rate": 0.0},
    # scores: c5 20 on July 1st; c4 50 and c5 20 on August 1st
    "health": {"active_base_at_start": 1, "active_base_at_end": 0, "scored_customers_at_end": 2,
               "average_health_score_at_start": 20.0, "average_health_score_at_end": 35.0},
}


@pytest.mark.parametrize("name", sorted(WEST_JULY_ROWS))
def test_each_table_row_and_its_columns(name, july_counters):
    table = d.TABLES[name]
    rows = table.rows(july_counters, JULY, d.Slice(team="west"))
    assert rows == [WEST_JULY_ROWS[name]]
    assert table.columns == tuple(WEST_JULY_ROWS[name]) == tuple(rows[0]) and table.name == name


def test_the_summary_table_is_the_headline_row_without_its_period(july_counters):
    east = d.Slice(team="east")
    headline = d.headline_figures(july_counters, JULY, east)
    del headline["period"]
    assert d.TABLES["summary"].rows(july_counters, JULY, east) == [headline]
    assert d.TABLES["summary"].columns == d.HEADLINE_COLUMNS[1:]


def test_the_movements_table_has_a_row_per_move_tiers_first(july_counters):
    table = d.TABLES["movements"]
    assert table.columns == ("attribute", "from", "to", "moves")
    move = lambda attribute, old, new: {"attribute": attribute, "from": old, "to": new, "moves": 1}  # noqa: E731
    assert table.rows(july_counters, JULY, ALL) == [
        move("tier", "A", "B"), move("lifecycle", "active", "churned"), move("lifecycle", "at_risk", "churned"),
        move("lifecycle", "churned", "active"), move("lifecycle", "dormant", "churned")]
    assert table.rows(july_counters, JULY, d.Slice(team="east")) == [
        move("tier", "A", "B"), move("lifecycle", "dormant", "churned")]
    assert table.rows(july_counters, d.parse_period("2026-06"), ALL) == []


def test_each_table_loads_the_flows_it_reads_and_its_period_ends():
    metrics = {name: table.metrics for name, table in d.TABLES.items()}
    assert metrics["churn"] == ("churned",)
    assert metrics["repurchase"] == ("buyers", "purchases", "repeat_buyers", "revenue")
    assert metrics["satisfaction"] == ("complaints", "satisfaction.count", "satisfaction.sum")
    assert metrics["alerts"] == ("alerts.escalated", "alerts.handled", "alerts.handled_in_time", "alerts.raised",
                                 "alerts.resolved:false_alarm", "alerts.resolved:lost", "alerts.resolved:recovered")
    assert metrics["health"] == ()   # stocks only
    assert len(metrics["movements"]) == 6 + 30 and "moved.tier:A>B" in metrics["movements"]
    assert set(metrics["summary"]) >= {"churned", "revenue", "won.cycle_seconds", "alerts.resolved:lost"}
    assert d.TABLES["churn"].stock_dates(JULY) == [date(2026, 7, 1), date(2026, 8, 1)]
    assert d.TABLE_NAMES == ("summary", "churn", "repurchase", "followups", "interactions", "satisfaction", "funnel",
                             "alerts", "health", "movements")


def test_team_east_rows_with_skipped_tasks_ratings_and_no_loss(july_counters):
    # t1 done on time, t3 done late, t2 overdue then missed, t4 skipped; ratings 4, 5 and 2 (c3's complaint);
    # c6 first contact > proposal > won after 21.5 days, nobody lost in east
    east = d.Slice(team="east")
    rows = {name: d.TABLES[name].rows(july_counters, JULY, east) for name in ("followups", "satisfaction", "funnel",
                                                                               "interactions")}
    assert rows["followups"] == [{
        "tasks_came_due": 4, "tasks_completed": 2, "tasks_completed_on_time": 1, "tasks_skipped": 1,
        "tasks_missed": 1, "tasks_overdue": 1, "missed_followup_rate": 0.25, "customers_due": 2,
        "customers_touched": 2, "followup_coverage": 1.0}]
    assert rows["satisfaction"] == [{"satisfaction_ratings": 3, "satisfaction_sum": 11, "average_satisfaction": 11 / 3,
                                     "complaints": 1}]
    assert rows["interactions"] == [{"interactions": 4, "interactions_pre_sale": 1, "interactions_post_sale": 3,
                                     "satisfaction_ratings": 3, "average_satisfaction": 11 / 3, "complaints": 1}]
    assert rows["funnel"] == [{
        "entered_first_contact": 1, "entered_needs_analysis": 0, "entered_proposal": 1, "entered_won": 1,
        "entered_lost": 0, "conversion_needs_analysis": 0.0, "conversion_proposal": None, "conversion_won": 1.0,
        "win_rate": 1.0, "wins_with_cycle": 1, "average_cycle_days": 21.5}]


def test_average_satisfaction_per_rep(july_counters):
    # r1: c1 4 and c2 5; r2: c3 2
    assert (d.average_satisfaction(july_counters, JULY, d.Slice(rep="r1")),
            d.average_satisfaction(july_counters, JULY, d.Slice(rep="r2"))) == (4.5, 2.0)


# --- entries.py: what each event adds to its customer's book -----------------------------------------------------
PLUS_TWO = timezone(timedelta(hours=2))
SENT = datetime(2026, 7, 5, 12, 0, tzinfo=UTC)


def origin(name, event_id="e1"):
    return entries.Origin(name, event_id, SENT, "customers", 7)


def change(at_, rank, sets, event_id="e1"):
    return book.Change(event_id, at_, rank, sets, position=("customers", 7))


def record(record_id, kind, at_, entity, data):
    return book.Record(record_id, kind, at_, entity, data, position=("customers", 7))


def test_an_origin_stands_where_its_producer_numbered_it():
    assert origin("customer.created").position == ("customers", 7)
    assert entries.Origin("x", "e2", SENT).position == ("", 0)


def test_a_created_customer_and_the_stage_it_is_created_in():
    data = {"created_at": datetime(2026, 7, 1, 11, 0, tzinfo=PLUS_TWO), "team": "east", "owner_id": "r1",
            "tier": "B", "lifecycle": "new", "industry": "food", "pipeline_stage": "first_contact"}
    assert entries.customer_created(origin("customer.created"), data) == (
        [change(at("2026-07-01T09:00"), book.RANK_CREATED, {"exists": True, "team": "east", "rep": "r1", "tier": "B",
                                                            "lifecycle": "new", "industry": "food"})],
        [record("e1:stage", "stage", at("2026-07-01T09:00"), None, {"old_stage": None, "new_stage": "first_contact"})])
    bare = {"created_at": at("2026-07-01"), "tier": "C", "lifecycle": "potential", "pipeline_stage": None}
    assert entries.customer_created(origin("customer.created"), bare) == (
        [change(at("2026-07-01"), book.RANK_CREATED, {"exists": True, "team": None, "rep": None, "tier": "C",
                                                      "lifecycle": "potential", "industry": None})], [])


def test_an_update_sets_only_the_dimensions_it_changed_at_its_send_time():
    data = {"changed_fields": ["owner_id", "industry", "name"], "owner_id": "r2", "industry": "retail",
            "team": "west", "tier": "A", "lifecycle": "active", "name": "Acme"}
    assert entries.customer_updated(origin("customer.updated"), data) == (
        [change(SENT, book.RANK_CHANGE, {"rep": "r2", "industry": "retail"})], [])
    every = dict(data, changed_fields=["industry", "team", "owner_id", "tier", "lifecycle"])
    assert entries.customer_updated(origin("customer.updated"), every)[0][0].sets == {
        "industry": "retail", "team": "west", "rep": "r2", "tier": "A", "lifecycle": "active"}
    assert entries.customer_updated(origin("customer.updated"), {"changed_fields": ["name"], "name": "A"}) == ([], [])
    assert entries.customer_updated(origin("customer.updated"), {"industry": "food"}) == ([], [])


def test_attribute_events_are_dated_by_their_as_of():
    o = origin("x")
    assert entries.customer_archived(o, {"archived_at": at("2026-07-31T18:00")}) == (
        [change(at("2026-07-31T18:00"), book.RANK_ARCHIVED, {"archived": True})], [])
    assert entries.tier_changed(o, {"as_of": at("2026-07-05"), "new_tier": "B", "old_tier": "A"}) == (
        [change(at("2026-07-05"), book.RANK_CHANGE, {"tier": "B"})], [])
    assert entries.lifecycle_changed(o, {"as_of": at("2026-07-06"), "new_lifecycle": "churned"}) == (
        [change(at("2026-07-06"), book.RANK_CHANGE, {"lifecycle": "churned"})], [])
    assert entries.health_score_changed(o, {"as_of": at("2026-07-07"), "new_score": 42}) == (
        [change(at("2026-07-07"), book.RANK_CHANGE, {"score": 42})], [])
    # an owner change has no as_of: it happened when it was sent; without a team the team is unknown
    assert entries.owner_changed(o, {"new_owner_id": "r3", "new_team": "west"}) == (
        [change(SENT, book.RANK_CHANGE, {"rep": "r3", "team": "west"})], [])
    assert entries.owner_changed(o, {"new_owner_id": "r3"})[0][0].sets == {"rep": "r3", "team": None}


def test_fact_records_of_purchases_interactions_and_stages():
    o = origin("x", "e9")
    assert entries.purchase_recorded(o, {"purchased_at": at("2026-07-03"), "purchase_id": "p1",
                                         "amount_base": "12.50"}) == (
        [], [record("e9", "purchase", at("2026-07-03"), "p1", {"amount_base": "12.50"})])
    assert entries.purchase_recorded(o, {"purchased_at": at("2026-07-03"), "purchase_id": "p1",
                                         "amount_base": 7})[1][0].data == {"amount_base": "7"}
    assert entries.interaction_logged(o, {"occurred_at": at("2026-07-02"), "interaction_id": "i1", "rep_id": "r1",
                                          "team": "east", "kind": "visit", "phase": "post_sale",
                                          "satisfaction": 5}) == (
        [], [record("e9", "interaction", at("2026-07-02"), "i1", {"rep": "r1", "team": "east", "kind": "visit",
                                                                  "phase": "post_sale", "satisfaction": 5})])
    assert entries.interaction_logged(o, {"occurred_at": at("2026-07-02"), "interaction_id": "i1", "rep_id": "r1",
                                          "kind": "call", "phase": "pre_sale"})[1][0].data == {
        "rep": "r1", "team": None, "kind": "call", "phase": "pre_sale", "satisfaction": None}
    assert entries.stage_changed(o, {"changed_at": at("2026-07-10"), "old_stage": "proposal", "new_stage": "won"}) == (
        [], [record("e9", "stage", at("2026-07-10"), None, {"old_stage": "proposal", "new_stage": "won"})])
    assert entries.stage_changed(o, {"changed_at": at("2026-07-10"), "new_stage": "first_contact"})[1][0].data == {
        "old_stage": None, "new_stage": "first_contact"}


@pytest.mark.parametrize("event", ["overdue", "completed", "skipped", "missed"])
def test_a_task_record_is_dated_by_its_due_time_and_names_its_outcome(event):
    data = {"due_at": at("2026-07-09"), "task_id": "t1", "assignee_id": "r1", "team": "east", "on_time": True}
    assert entries.task_settled(origin(f"task.{event}"), data) == ([], [record(
        "e1", "task", at("2026-07-09"), "t1", {"event": event, "assignee": "r1", "team": "east", "on_time": True})])
    bare = entries.task_settled(origin(f"task.{event}"), {"due_at": at("2026-07-09"), "task_id": "t1"})
    assert bare[1][0].data == {"event": event, "assignee": None, "team": None, "on_time": False}


def test_an_alert_record_is_dated_by_its_raise_when_the_event_carries_it():
    raised = datetime(2026, 7, 1, 12, 0, tzinfo=PLUS_TWO)
    assert entries.alert_event(origin("alert.raised"), {"alert_id": "a1", "raised_at": raised}) == ([], [record(
        "e1", "alert", at("2026-07-01T10:00"), "a1", {"event": "raised", "happened_at": "2026-07-01T10:00:00+00:00",
                                                       "raised_at": "2026-07-01T10:00:00+00:00", "outcome": None})])
    ack = entries.alert_event(origin("alert.acknowledged"), {"alert_id": "a1", "acknowledged_at": at("2026-07-02")})
    assert ack == ([], [record("e1", "alert", None, "a1", {"event": "acknowledged",
                                                           "happened_at": "2026-07-02T00:00:00+00:00",
                                                           "raised_at": None, "outcome": None})])
    assert entries.alert_event(origin("alert.escalated"), {"alert_id": "a1", "escalated_at": at("2026-07-03"),
                                                           "raised_at": raised})[1][0].data["happened_at"] == (
        "2026-07-03T00:00:00+00:00")
    resolved = entries.alert_event(origin("alert.resolved"), {"alert_id": "a1", "resolved_at": at("2026-07-04"),
                                                              "raised_at": raised, "outcome": "lost"})[1][0]
    assert (resolved.data["happened_at"], resolved.data["outcome"]) == ("2026-07-04T00:00:00+00:00", "lost")


# --- book.py (first pass: the record deltas and the time helpers; reconcile, Timeline, context_for not yet) -------
def record_flows(*pairs):
    store = d.InMemoryCounters()
    for rec, context in pairs:
        store.apply(book.record_deltas("k1", rec, context))
    return flows(store, JULY, d.Slice(team="east"))


def test_an_interaction_record_counts_as_its_fact():
    talk = book.Record("x1", "interaction", at("2026-07-02"), "i1", {"kind": "complaint", "phase": "post_sale",
                                                                      "satisfaction": 3, "rep": "r1", "team": "east"})
    assert record_flows((talk, {"dims": COUNTED_DIMS})) == {
        "interactions": 1, "interactions:post_sale": 1, "satisfaction.sum": 3, "satisfaction.count": 1,
        "complaints": 1}
    unrated = book.Record("x2", "interaction", at("2026-07-02"), None, {"kind": "call", "phase": "pre_sale"})
    assert record_flows((unrated, {"dims": COUNTED_DIMS})) == {"interactions": 1, "interactions:pre_sale": 1}


def test_a_task_record_counts_its_outcome_and_whether_on_time():
    done = lambda rid, on_time: book.Record(rid, "task", at("2026-07-09"), rid, dict(  # noqa: E731
        {"event": "completed", "assignee": "r1", "team": "east"}, **on_time))
    assert record_flows((done("t1", {"on_time": True}), {"dims": COUNTED_DIMS})) == {
        "tasks.came_due": 1, "tasks.completed": 1, "tasks.completed_on_time": 1, "followup.customers_due": 1,
        "followup.customers_touched": 1}
    assert "tasks.completed_on_time" not in record_flows((done("t1", {}), {"dims": COUNTED_DIMS}))


def test_a_purchase_record_counts_its_amount_and_a_repeat_in_its_own_bucket():
    buy = lambda rid: book.Record(rid, "purchase", at("2026-07-03"), rid, {"amount_base": "12.50"})  # noqa: E731
    assert record_flows((buy("p1"), {"dims": COUNTED_DIMS, "repeat": True})) == {
        "purchases": 1, "revenue": Decimal("12.50"), "buyers": 1, "repeat_buyers": 1}
    assert record_flows((buy("p1"), {"dims": COUNTED_DIMS, "repeat": False}),
                        (buy("p2"), {"dims": COUNTED_DIMS, "repeat": True})) == {
        "purchases": 2, "revenue": Decimal("25.00"), "buyers": 1, "repeat_buyers": 1}


def test_a_stage_record_counts_the_customer_once_and_a_win_from_its_first_contact():
    won = book.Record("s1", "stage", at("2026-07-11"), None, {"old_stage": "proposal", "new_stage": "won"})
    again = book.Record("s2", "stage", at("2026-07-12"), None, {"old_stage": "lost", "new_stage": "won"})
    context = {"dims": COUNTED_DIMS, "first_contact_at": "2026-07-01T00:00:00+00:00"}
    assert record_flows((won, context), (again, {"dims": COUNTED_DIMS, "first_contact_at": None})) == {
        "stage.entered:won": 1, "won.cycle_seconds": 10 * 86400, "won.with_cycle": 1}


def test_an_alert_record_counts_with_the_sla_it_was_first_counted_with():
    def alert(event, happened, outcome=None):
        return book.Record(f"{event}1", "alert", at("2026-07-01"), "a1",
                           {"event": event, "happened_at": happened, "outcome": outcome})
    context = {"dims": COUNTED_DIMS, "raised_at": "2026-07-01T00:00:00+00:00", "sla": 3600}
    assert record_flows((alert("acknowledged", "2026-07-01T02:00:00+00:00"), context)) == {"alerts.handled": 1}
    assert record_flows((alert("acknowledged", "2026-07-01T01:00:00+00:00"), context)) == {
        "alerts.handled": 1, "alerts.handled_in_time": 1}
    assert record_flows((alert("resolved", "2026-07-03T00:00:00+00:00", "lost"), context)) == {
        "alerts.handled": 1, "alerts.resolved:lost": 1}
    assert record_flows((alert("raised", "2026-07-01T00:00:00+00:00"), context)) == {"alerts.raised": 1}


def test_an_unknown_record_kind_is_refused():
    odd = book.Record("x", "visit", at("2026-07-01"), None, {})
    with pytest.raises(ValueError) as refused:
        book.record_deltas("k1", odd, {"dims": COUNTED_DIMS})
    assert str(refused.value) == "unknown record kind visit"


def test_a_change_counts_the_customers_score_in_the_health_stocks():
    change_ = book.Change("c1", at("2026-07-05"), book.RANK_CREATED, {})
    store = d.InMemoryCounters()
    store.apply(book.change_deltas("k1", change_, {"before": None, "after": dict(COUNTED_DIMS, score=70)}))
    assert (store.stock("health.sum", date(2026, 8, 1)), store.stock("health.scored", date(2026, 8, 1))) == (70, 1)
    assert store.stock("customers:active", date(2026, 8, 1), d.Slice(team="east")) == 1


def test_times_are_read_and_written_in_utc_whatever_the_machine_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert book.iso(datetime(2026, 7, 1, 12, 0, tzinfo=PLUS_TWO)) == "2026-07-01T10:00:00+00:00"
        assert book.iso(datetime(2026, 7, 1, 12, 0)) == "2026-07-01T12:00:00+00:00"   # naive: UTC already
        assert book.to_utc(datetime(2026, 7, 1, 12, 0)).tzinfo is UTC
        assert book.to_utc(datetime(2026, 7, 1, 12, 0, tzinfo=PLUS_TWO)).utcoffset() == timedelta(0)
        assert book.from_iso("2026-07-01T12:00:00+02:00").isoformat() == "2026-07-01T10:00:00+00:00"
        assert book.from_iso("2026-07-01T12:00:00").isoformat() == "2026-07-01T12:00:00+00:00"
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (book.iso(None), book.to_utc(None), book.from_iso(None)) == (None, None, None)


def test_the_window_reaches_back_to_the_year_or_the_iso_week():
    assert book.window_start(datetime(2026, 8, 15, 9, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)
    assert book.window_start(datetime(2027, 1, 2, tzinfo=UTC)) == datetime(2026, 12, 28, tzinfo=UTC)
    assert book.window_start(datetime(2026, 1, 1, 3, tzinfo=PLUS_TWO)) == datetime(2025, 12, 29, tzinfo=UTC)
    assert book.window_start(datetime(2026, 1, 5)) == datetime(2026, 1, 1, tzinfo=UTC)


def test_alert_records_wait_for_their_raise():
    ack = book.Record("e2", "alert", None, "a1", {"event": "acknowledged"})
    raised = book.Record("e1", "alert", at("2026-07-01"), "a1", {"event": "raised"})
    other = book.Record("e3", "alert", None, "a2", {"event": "escalated"})
    buy = book.Record("e4", "purchase", None, "p1", {})
    assert book.undated_alerts([ack, raised, other, buy]) == {"a1", "a2"}
    assert book.raises([ack, raised, other, buy]) == {"a1": at("2026-07-01")}
    dated = book.Record("e5", "alert", at("2026-07-02"), "a9", {"event": "raised"})
    book.date_by_raise([ack, other, buy, dated], book.raises([raised]))
    assert (ack.at, other.at, buy.at, dated.at) == (at("2026-07-01"), None, None, at("2026-07-02"))


CREATED_SETS = {"exists": True, "team": "east", "rep": "r1", "tier": "B", "lifecycle": "new", "industry": "food"}
AS_CREATED = {"team": "east", "rep": "r1", "tier": "B", "lifecycle": "new", "industry": "food", "score": None}


def a_timeline():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    tier = book.Change("c1", at("2026-07-05"), book.RANK_CHANGE, {"tier": "A"})
    score = book.Change("c2", at("2026-07-05"), book.RANK_CHANGE, {"score": 70})
    archived = book.Change("c3", at("2026-07-20"), book.RANK_ARCHIVED, {"archived": True})
    return book.Timeline([archived, score, created, tier])


def test_a_timeline_folds_changes_in_time_then_rank_order():
    timeline = a_timeline()
    assert [c.id for c in timeline.changes] == ["c0", "c1", "c2", "c3"]
    tiered, scored = dict(AS_CREATED, tier="A"), dict(AS_CREATED, tier="A", score=70)
    assert [timeline.counted(i) for i in range(4)] == [
        {"before": None, "after": AS_CREATED}, {"before": AS_CREATED, "after": tiered},
        {"before": tiered, "after": scored}, {"before": scored, "after": None}]
    assert (timeline.current, timeline.exists, timeline.archived) == (scored, True, True)


def test_a_timeline_answers_the_attributes_at_any_moment():
    timeline = a_timeline()
    assert timeline.attrs_at(at("2026-06-01")) == AS_CREATED            # before the creation: as created
    assert timeline.attrs_at(at("2026-07-04T23:59")) == AS_CREATED
    assert timeline.attrs_at(at("2026-07-05")) == dict(AS_CREATED, tier="A", score=70)   # a change at the moment
    assert book.Timeline([]).attrs_at(at("2026-07-05")) == dict.fromkeys(book.ATTRIBUTES)
    assert (book.Timeline([]).exists, book.Timeline([]).archived) == (False, False)


def test_changes_before_the_creation_arrive_and_a_restored_customer_counts_again():
    update = book.Change("u0", at("2026-06-20"), book.RANK_CHANGE, {"industry": "retail"})
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS, industry=None))
    restored = book.Change("r0", at("2026-07-10"), book.RANK_CHANGE, {"archived": False})
    archived = book.Change("a0", at("2026-07-05"), book.RANK_ARCHIVED, {"archived": True})
    again = book.Change("c9", at("2026-07-15"), book.RANK_CREATED, dict(CREATED_SETS, tier="C"))
    timeline = book.Timeline([update, created, archived, restored, again])
    as_created = dict(AS_CREATED, industry=None)
    assert timeline.attrs_at(at("2026-06-25")) == as_created           # the creation's attributes, not the update's
    assert timeline.attrs_at(at("2026-06-10")) == as_created
    assert timeline.counted(0) == {"before": None, "after": None}       # not a customer yet
    assert timeline.counted(2) == {"before": as_created, "after": None}
    assert timeline.counted(3) == {"before": None, "after": as_created}
    assert timeline.counted(4)["after"]["tier"] == "C" and (timeline.exists, timeline.archived) == (True, False)


def knowledge(**kwargs):
    return book.Knowledge(a_timeline(), **kwargs)


def test_the_context_of_each_record_kind():
    talk = book.Record("x1", "interaction", at("2026-07-02"), "i1", {"rep": "r9", "team": "west"})
    task = book.Record("x2", "task", at("2026-07-06"), "t1", {"assignee": "r8", "team": "west"})
    dims_then = {"team": "east", "rep": "r1", "tier": "B", "lifecycle": "new", "industry": "food"}
    k = knowledge()
    assert book.context_for(talk, k) == {"dims": dict(dims_then, rep="r9", team="west")}
    assert book.context_for(task, k) == {"dims": dict(dims_then, tier="A", rep="r8", team="west")}
    odd = book.Record("x9", "visit", at("2026-07-02"), None, {})
    with pytest.raises(ValueError) as refused:
        book.context_for(odd, k)
    assert str(refused.value) == "unknown record kind visit"


def test_a_purchase_after_the_first_one_is_a_repeat():
    first = book.Record("p1", "purchase", at("2026-07-02"), "p1", {})
    second = book.Record("p2", "purchase", at("2026-07-02"), "p2", {})   # same instant: ordered by id
    earlier = book.Record("p0", "purchase", at("2026-07-01"), "p0", {})
    k = knowledge(first_purchase=first.order)
    assert [book.context_for(r, k)["repeat"] for r in (first, second, earlier)] == [False, True, False]
    assert book.context_for(first, knowledge())["repeat"] is False
    assert book.context_for(first, k)["dims"]["tier"] == "B"


def test_a_stage_is_dated_from_the_last_first_contact_at_or_before_it():
    contacts = [book.Record(f"f{n}", "stage", at(f"2026-07-0{n}"), None, {}).order for n in (2, 6)]
    k = knowledge(first_contacts=contacts)
    stage = lambda when, rid="s": book.Record(rid, "stage", at(when), None, {})  # noqa: E731
    assert [book.context_for(stage(w), k)["first_contact_at"] for w in ("2026-07-01", "2026-07-03", "2026-07-09")] == [
        None, "2026-07-02T00:00:00+00:00", "2026-07-06T00:00:00+00:00"]
    assert book.context_for(stage("2026-07-02", "f2"), k)["first_contact_at"] == "2026-07-02T00:00:00+00:00"
    assert book.context_for(stage("2026-07-09"), k)["dims"]["tier"] == "A"


def test_an_alert_is_dated_by_its_raise_and_keeps_its_first_sla():
    ack = book.Record("e2", "alert", None, "a1", {"event": "acknowledged"})
    assert book.context_for(ack, knowledge()) is None                          # raise unknown: not counted yet
    k = knowledge(alert_raised={"a1": at("2026-07-06")}, ack_sla=timedelta(hours=2))
    assert book.record_time(ack, k) == at("2026-07-06")
    assert book.context_for(ack, k) == {"dims": {"team": "east", "rep": "r1", "tier": "A", "lifecycle": "new",
                                                 "industry": "food"},
                                        "raised_at": "2026-07-06T00:00:00+00:00", "sla": 7200}
    ack.applied = {"sla": 3600}
    assert book.context_for(ack, k)["sla"] == 3600
    dated = book.Record("e3", "alert", at("2026-07-02"), "a2", {"event": "raised"})
    assert book.record_time(dated, k) == at("2026-07-02")
    buy = book.Record("e4", "purchase", at("2026-07-03"), "a1", {})
    assert book.record_time(buy, k) == at("2026-07-03")


def test_what_new_items_make_recount():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    tier = book.Change("c1", at("2026-07-05"), book.RANK_CHANGE, {"tier": "A"})
    buy = book.Record("p1", "purchase", at("2026-07-03"), "p1", {})
    talk = book.Record("i1", "interaction", at("2026-07-02"), "i1", {})
    ack = book.Record("e2", "alert", None, "a1", {})
    assert book.recount_for([created], [buy]) == book.Recount(book.EPOCH, None, frozenset({"p1"}), frozenset())
    assert book.recount_for([tier], [buy, ack]) == book.Recount(at("2026-07-03"), None, frozenset({"p1", "e2"}),
                                                                 frozenset({"a1"}))
    assert book.recount_for([], [buy, talk]) == book.Recount(at("2026-07-02"), frozenset({"purchase"}),
                                                              frozenset({"p1", "i1"}), frozenset())
    assert book.recount_for([], [ack]) is None and book.recount_for([], []) is None
    assert book.recount_for([tier], []).since == at("2026-07-05")


# --- book.reconcile: counting a customer's book, then only what new entries change ----------------------------------
def amounts_store(outcome):
    return d.InMemoryCounters(values=dict(outcome.amounts))


def fact_flows(store, period, slice_=ALL):
    """flows() without the stocks and moves a change leaves in the same buckets."""
    return {m: v for m, v in flows(store, period, slice_).items() if not m.startswith(("customers:", "moved."))}


def purchase_record(rid, when):
    return book.Record(rid, "purchase", at(when), rid, {"amount_base": "12.50"})


def no_neighbours(start, end):
    return []


def test_the_first_count_of_a_book_applies_every_change_and_record():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    buy = purchase_record("p1", "2026-07-03")
    timeline = book.Timeline([created])
    k = book.Knowledge(timeline, first_purchase=buy.order)
    outcome = book.reconcile("k1", k, book.EPOCH, [buy], no_neighbours)
    assert (outcome.changes, outcome.records) == ([created], [buy])
    assert created.applied == {"before": None, "after": AS_CREATED}
    assert buy.applied == {"dims": {k_: v for k_, v in AS_CREATED.items() if k_ != "score"}, "repeat": False}
    assert outcome.values == {("team", "east"), ("rep", "r1"), ("industry", "food")}
    store = amounts_store(outcome)
    assert fact_flows(store, JULY) == {"purchases": 1, "revenue": Decimal("12.50"), "buyers": 1}
    assert store.stock("customers:new", date(2026, 8, 1), d.Slice(team="east")) == 1
    assert store.stock("customers:new", date(2026, 7, 1)) == 0
    # counted again with nothing new: nothing moves, nothing is rewritten
    again = book.reconcile("k1", k, book.EPOCH, [buy], no_neighbours)
    assert (again.amounts, again.changes, again.records, again.values) == ({}, [], [], outcome.values)


def test_a_late_change_moves_the_facts_after_it_to_their_slices():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    buy = purchase_record("p1", "2026-07-03")
    k = book.Knowledge(book.Timeline([created]), first_purchase=buy.order)
    book.reconcile("k1", k, book.EPOCH, [buy], no_neighbours)
    tier = book.Change("c1", at("2026-07-02"), book.RANK_CHANGE, {"tier": "A"})
    k = book.Knowledge(book.Timeline([created, tier]), first_purchase=buy.order)
    outcome = book.reconcile("k1", k, at("2026-07-02"), [buy], no_neighbours)
    assert (outcome.changes, outcome.records) == ([tier], [buy]) and buy.applied["dims"]["tier"] == "A"
    store = amounts_store(outcome)
    assert fact_flows(store, JULY) == {}                                       # everyone's figures unchanged
    assert fact_flows(store, JULY, d.Slice(tier="B")) == {"purchases": -1, "revenue": Decimal("-12.50"), "buyers": -1}
    assert fact_flows(store, JULY, d.Slice(tier="A")) == {"purchases": 1, "revenue": Decimal("12.50"), "buyers": 1}
    assert flows(store, JULY, d.Slice(team="east", tier="B"))["moved.tier:B>A"] == 1
    assert store.stock("customers:new", date(2026, 8, 1), d.Slice(tier="A")) == 1
    assert store.stock("customers:new", date(2026, 8, 1), d.Slice(tier="B")) == -1


def test_a_second_purchase_counts_its_buyer_only_in_buckets_the_first_did_not():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    first, second = purchase_record("p1", "2026-07-03"), purchase_record("p2", "2026-07-20")
    k = book.Knowledge(book.Timeline([created]), first_purchase=first.order)
    book.reconcile("k1", k, book.EPOCH, [first], no_neighbours)
    asked = []

    def neighbours(start, end):
        asked.append((start, end))
        return [first]

    outcome = book.reconcile("k1", k, second.at, [second], neighbours)
    assert asked == [(datetime(2026, 1, 1, tzinfo=UTC), second.at)]           # back to the year's start
    assert outcome.changes == [] and outcome.records == [second] and second.applied["repeat"] is True
    store = amounts_store(outcome)
    # k1 was a July buyer already
    assert fact_flows(store, JULY) == {"purchases": 1, "revenue": Decimal("12.50"), "repeat_buyers": 1}
    assert fact_flows(store, d.parse_period("2026-07-20")) == {"purchases": 1, "revenue": Decimal("12.50"), "buyers": 1,
                                                           "repeat_buyers": 1}
    assert fact_flows(store, d.parse_period("2026-W30"))["buyers"] == 1          # a new week for k1
    # without the first purchase as a neighbour k1 would be counted a buyer of July twice
    alone = book.reconcile("k1", k, second.at, [purchase_record("p2", "2026-07-20")], no_neighbours)
    assert fact_flows(amounts_store(alone), JULY)["buyers"] == 1


def test_a_fact_moved_out_of_a_bucket_uncounts_its_customer_only_when_no_other_item_keeps_it():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    first, second = purchase_record("p1", "2026-07-03"), purchase_record("p2", "2026-07-20")
    k = book.Knowledge(book.Timeline([created]), first_purchase=first.order)
    book.reconcile("k1", k, book.EPOCH, [first, second], no_neighbours)
    assert second.applied["repeat"] is True
    tier = book.Change("c1", at("2026-07-10"), book.RANK_CHANGE, {"tier": "A"})   # moves p2 only
    k = book.Knowledge(book.Timeline([created, tier]), first_purchase=first.order)
    outcome = book.reconcile("k1", k, tier.at, [second], lambda start, end: [first])
    store = amounts_store(outcome)
    # tier B keeps k1 as a July buyer through p1; tier A gains it
    assert fact_flows(store, JULY, d.Slice(tier="B")) == {"purchases": -1, "revenue": Decimal("-12.50"),
                                                     "repeat_buyers": -1}
    assert fact_flows(store, JULY, d.Slice(tier="A")) == {"purchases": 1, "revenue": Decimal("12.50"), "buyers": 1,
                                                     "repeat_buyers": 1}


def test_an_unchanged_item_recounted_keeps_its_customer_in_a_bucket_another_item_leaves():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    first, second = purchase_record("p1", "2026-07-03"), purchase_record("p2", "2026-07-20")
    k = book.Knowledge(book.Timeline([created]), first_purchase=first.order)
    book.reconcile("k1", k, book.EPOCH, [first, second], no_neighbours)
    tier = book.Change("c1", at("2026-07-10"), book.RANK_CHANGE, {"tier": "A"})
    k = book.Knowledge(book.Timeline([created, tier]), first_purchase=first.order)
    # recounted from July 3rd: p1 counts as before, p2 moves to tier A
    outcome = book.reconcile("k1", k, first.at, [first, second], no_neighbours)
    assert outcome.records == [second]
    assert fact_flows(amounts_store(outcome), JULY, d.Slice(tier="B")) == {
        "purchases": -1, "revenue": Decimal("-12.50"), "repeat_buyers": -1}


def test_a_late_change_recounts_the_later_changes_in_their_new_slices():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    active = book.Change("c2", at("2026-07-10"), book.RANK_CHANGE, {"lifecycle": "active"})
    k = book.Knowledge(book.Timeline([created, active]))
    book.reconcile("k1", k, book.EPOCH, [], no_neighbours)
    tier = book.Change("c1", at("2026-07-05"), book.RANK_CHANGE, {"tier": "A"})
    k = book.Knowledge(book.Timeline([created, tier, active]))
    outcome = book.reconcile("k1", k, tier.at, [], no_neighbours)
    assert outcome.changes == [tier, active] and active.applied["before"]["tier"] == "A"
    store = amounts_store(outcome)
    assert flows(store, JULY, d.Slice(tier="B"))["moved.lifecycle:new>active"] == -1
    assert flows(store, JULY, d.Slice(tier="A"))["moved.lifecycle:new>active"] == 1
    assert store.stock("customers:active", date(2026, 8, 1), d.Slice(tier="B")) == -1
    assert store.stock("customers:active", date(2026, 8, 1), d.Slice(tier="A")) == 1
    assert store.stock("customers:active", date(2026, 8, 1)) == 0


def test_a_second_churn_in_a_month_counts_the_customer_once_there():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS, lifecycle="active"))
    churn = book.Change("c1", at("2026-07-05"), book.RANK_CHANGE, {"lifecycle": "churned"})
    back = book.Change("c2", at("2026-07-08"), book.RANK_CHANGE, {"lifecycle": "active"})
    k = book.Knowledge(book.Timeline([created, churn, back]))
    book.reconcile("k1", k, book.EPOCH, [], no_neighbours)
    again = book.Change("c3", at("2026-07-20"), book.RANK_CHANGE, {"lifecycle": "churned"})
    k = book.Knowledge(book.Timeline([created, churn, back, again]))
    store = amounts_store(book.reconcile("k1", k, again.at, [], no_neighbours))
    assert "churned" not in flows(store, JULY)                         # k1 churned in July already (07-05)
    assert flows(store, d.parse_period("2026-07-20"))["churned"] == 1
    assert flows(store, d.parse_period("2026-W30"))["churned"] == 1


def test_the_values_a_recount_meets_and_an_alert_waiting_for_its_raise():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS, industry=None))
    k = book.Knowledge(book.Timeline([created]))
    assert book.reconcile("k1", k, book.EPOCH, [], no_neighbours).values == {
        ("team", "east"), ("rep", "r1"), ("industry", "(none)")}
    talk = book.Record("i1", "interaction", at("2026-07-02"), "i1", {"kind": "call", "phase": "pre_sale",
                                                                      "rep": "r9", "team": "west"})
    waiting = book.Record("e2", "alert", None, "a1", {"event": "acknowledged",
                                                      "happened_at": "2026-07-02T00:00:00+00:00"})
    outcome = book.reconcile("k1", k, talk.at, [talk, waiting], no_neighbours)
    assert outcome.values == {("team", "west"), ("rep", "r9"), ("industry", "(none)")}
    assert outcome.records == [talk] and waiting.applied is None and waiting.at is None
    k = book.Knowledge(book.Timeline([created]), alert_raised={"a1": at("2026-07-01T12:00")})
    outcome = book.reconcile("k1", k, at("2026-07-01T12:00"), [waiting], no_neighbours)
    assert outcome.records == [waiting] and waiting.at == at("2026-07-01T12:00")
    assert fact_flows(amounts_store(outcome), JULY) == {"alerts.handled": 1, "alerts.handled_in_time": 1}


def test_two_alerts_handled_in_one_recount_count_twice():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    acks = [book.Record(f"e{n}", "alert", at("2026-07-02"), f"a{n}",
                        {"event": "acknowledged", "happened_at": "2026-07-02T01:00:00+00:00"}) for n in (1, 2)]
    k = book.Knowledge(book.Timeline([created]))
    outcome = book.reconcile("k1", k, book.EPOCH, acks, no_neighbours)
    assert fact_flows(amounts_store(outcome), JULY) == {"alerts.handled": 2, "alerts.handled_in_time": 2}


def test_two_items_leaving_a_bucket_another_keeps():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    buys = [purchase_record(f"p{n}", f"2026-07-{day}") for n, day in ((1, "03"), (2, "20"), (3, "25"))]
    k = book.Knowledge(book.Timeline([created]), first_purchase=buys[0].order)
    book.reconcile("k1", k, book.EPOCH, buys, no_neighbours)
    tier = book.Change("c1", at("2026-07-10"), book.RANK_CHANGE, {"tier": "A"})
    k = book.Knowledge(book.Timeline([created, tier]), first_purchase=buys[0].order)
    outcome = book.reconcile("k1", k, buys[0].at, buys, no_neighbours)
    assert fact_flows(amounts_store(outcome), JULY, d.Slice(tier="B")) == {
        "purchases": -2, "revenue": Decimal("-25.00"), "repeat_buyers": -1}   # k1 stays a buyer of B (p1)


def churn_book(first_churn="2026-07-05"):
    created = book.Change("c0", at("2025-12-01"), book.RANK_CREATED, dict(CREATED_SETS, lifecycle="active"))
    churn = book.Change("c1", at(first_churn), book.RANK_CHANGE, {"lifecycle": "churned"})
    back = book.Change("c2", at(first_churn) + timedelta(days=3), book.RANK_CHANGE, {"lifecycle": "active"})
    changes = [created, churn, back]
    book.reconcile("k1", book.Knowledge(book.Timeline(changes)), book.EPOCH, [], no_neighbours)
    return changes


def test_a_churn_recounted_unchanged_still_counts_its_customer():
    changes = churn_book()
    same_team = book.Change("x", at("2026-07-02"), book.RANK_CHANGE, {"team": "east"})    # changes nothing
    again = book.Change("c3", at("2026-07-20"), book.RANK_CHANGE, {"lifecycle": "churned"})
    k = book.Knowledge(book.Timeline([*changes, same_team, again]))
    outcome = book.reconcile("k1", k, same_team.at, [], no_neighbours)
    assert outcome.changes == [same_team, again]
    store = amounts_store(outcome)
    assert "churned" not in flows(store, JULY) and flows(store, d.parse_period("2026-07-20"))["churned"] == 1


def test_a_churn_at_the_very_start_of_the_year_counts_for_the_year():
    changes = churn_book("2026-01-01")
    again = book.Change("c3", at("2026-01-20"), book.RANK_CHANGE, {"lifecycle": "churned"})
    k = book.Knowledge(book.Timeline([*changes, again]))
    store = amounts_store(book.reconcile("k1", k, again.at, [], no_neighbours))
    assert "churned" not in flows(store, d.parse_period("2026")) and "churned" not in flows(
        store, d.parse_period("2026-01"))
    assert flows(store, d.parse_period("2026-01-20"))["churned"] == 1


def test_a_churn_moved_by_a_late_change_leaves_a_bucket_an_earlier_churn_keeps():
    changes = churn_book()
    again = book.Change("c3", at("2026-07-20"), book.RANK_CHANGE, {"lifecycle": "churned"})
    book.reconcile("k1", book.Knowledge(book.Timeline([*changes, again])), again.at, [], no_neighbours)
    tier = book.Change("c4", at("2026-07-10"), book.RANK_CHANGE, {"tier": "A"})
    k = book.Knowledge(book.Timeline([*changes, tier, again]))
    store = amounts_store(book.reconcile("k1", k, tier.at, [], no_neighbours))
    assert "churned" not in flows(store, JULY, d.Slice(tier="B"))            # the 07-05 churn keeps k1 there
    assert flows(store, JULY, d.Slice(tier="A"))["churned"] == 1


def test_a_waiting_alert_is_left_alone_when_other_records_are_recounted():
    created = book.Change("c0", at("2026-07-01"), book.RANK_CREATED, dict(CREATED_SETS))
    waiting = book.Record("e2", "alert", None, "a1", {"event": "acknowledged",
                                                      "happened_at": "2026-07-02T00:00:00+00:00"})
    buy = purchase_record("p1", "2026-07-03")
    k = book.Knowledge(book.Timeline([created]), first_purchase=buy.order)
    outcome = book.reconcile("k1", k, buy.at, [waiting, buy], no_neighbours)
    assert outcome.records == [buy] and fact_flows(amounts_store(outcome), JULY)["buyers"] == 1
