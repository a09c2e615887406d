"""Half-years, years and custom date ranges: the period arithmetic, and distinct figures that stay exact.

A customer buying in Q1 and in Q3 is one buyer of the year, not two: half-year and year buckets are
counted like the others (each entity once per bucket), and a custom range counts distinct figures
from the items' distinct marks, never by adding buckets up. The history below is worked out by hand
in the comments; summing quarters or months would give another (larger) number each time.
"""
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st
from marshmallow import ValidationError
from sqlalchemy import select

from crm_common.auth import Principal
from crm_common.errors import CrmError
from crm_common.testing import api_request
from services.reports import domain as d
from services.reports.counter_table import SqlCounters
from services.reports.domain import DateRange, Period, PeriodKind, book, ranges
from services.reports.models import counters
from tests.unit.reports.histories import UTC, Events, feed, make_service, random_history

ADMIN = Principal("admin", "admin")
MGR_EAST = Principal("m-east", "manager", "east")


# ---------------------------------------------------------------- period arithmetic

@pytest.mark.parametrize("label, kind, start, end", [
    ("2026-H1", PeriodKind.HALF, date(2026, 1, 1), date(2026, 7, 1)),
    ("2026-H2", PeriodKind.HALF, date(2026, 7, 1), date(2027, 1, 1)),
    ("2026", PeriodKind.YEAR, date(2026, 1, 1), date(2027, 1, 1)),
    ("2028", PeriodKind.YEAR, date(2028, 1, 1), date(2029, 1, 1)),
])
def test_half_and_year_labels_parse_format_and_end(label, kind, start, end):
    period = d.parse_period(label)
    assert (period.kind, period.start, period.end, period.label) == (kind, start, end, label)
    assert d.format_period(kind, start) == label and period.next().start == end


def test_halves_and_years_hold_their_days_and_ignore_iso_weeks():
    assert Period.containing("half", date(2026, 6, 30)).label == "2026-H1"
    assert Period.containing("half", datetime(2026, 7, 1, 0, 0, tzinfo=UTC)).label == "2026-H2"
    # 2027-01-01 is in ISO week 2026-W53, but in the calendar year (and half) 2027
    assert d.format_period("week", date(2027, 1, 1)) == "2026-W53"
    assert Period.containing("year", date(2027, 1, 1)).label == "2027"
    assert Period.containing("half", date(2027, 1, 1)).label == "2027-H1"
    # 2024-12-30 is in 2025-W01, and in the year 2024
    assert Period.containing("year", date(2024, 12, 30)).label == "2024"
    assert [p.label for p in d.periods_between("half", date(2025, 11, 1), date(2027, 2, 1))] == \
        ["2025-H2", "2026-H1", "2026-H2", "2027-H1"]


@pytest.mark.parametrize("label", ["2026-H3", "2026-H0", "2026-h", "20266", "0999", "3000", "2026..",
                                   "2026-02-30..2026-03-01"])
def test_bad_half_year_and_range_labels_are_refused(label):
    with pytest.raises(d.InvalidPeriod):
        d.parse_range(label) if ".." in label else d.parse_period(label)


def test_a_range_includes_both_days_and_counts_leap_days():
    span = d.parse_range("2028-02-01..2028-02-29")
    assert (span.start, span.end, span.days, span.label) == \
        (date(2028, 2, 1), date(2028, 3, 1), 29, "2028-02-01..2028-02-29")
    assert d.parse_range("2027-02-01..2027-02-28").days == 28
    assert d.parse_range("2028..2028").days == 366
    assert d.parse_range("2026-02..2026-05").label == "2026-02-01..2026-05-31"
    assert span.contains(datetime(2028, 2, 29, 23, 59, tzinfo=UTC)) and not span.contains(date(2028, 3, 1))
    with pytest.raises(d.InvalidPeriod):
        DateRange(date(2026, 5, 2), date(2026, 5, 1))


def test_a_range_is_tiled_with_the_coarsest_buckets():
    tiles = d.parse_range("2026-02-10..2026-05-20").tiles()
    assert [t.label for t in tiles] == [
        "2026-02-10", "2026-02-11", "2026-02-12", "2026-02-13", "2026-02-14", "2026-02-15", "2026-W08",
        "2026-02-23", "2026-02-24", "2026-02-25", "2026-02-26", "2026-02-27", "2026-02-28", "2026-03", "2026-04",
        "2026-05-01", "2026-05-02", "2026-05-03", "2026-W19", "2026-W20", "2026-05-18", "2026-05-19", "2026-05-20"]
    assert [t.label for t in d.parse_range("2025-07-01..2026-12-31").tiles()] == ["2025-H2", "2026"]
    assert [t.label for t in d.parse_range("2026-04-01..2026-09-30").tiles()] == ["2026-Q2", "2026-Q3"]


@settings(max_examples=300, deadline=None)
@given(st.dates(date(2020, 1, 1), date(2030, 12, 31)), st.integers(1, 800))
def test_tiles_cover_any_range_exactly_once_in_order(first, days):
    span = DateRange(first, first + timedelta(days=days))
    tiles = span.tiles()
    assert tiles[0].start == span.start and tiles[-1].end == span.end
    assert all(a.end == b.start for a, b in zip(tiles, tiles[1:]))
    # a week never crosses a month boundary, so the tiling gets back onto month starts
    assert all(t.kind is not PeriodKind.WEEK or t.end <= d.period_end("month", t.start) for t in tiles)
    assert len(tiles) <= 6 + 3 + 6 + 2 + 2 + 1 + 1 + 6 + 3 + 6 + 2 * (days // 366 + 1)


def test_window_start_reaches_back_to_the_year_or_the_iso_week():
    assert book.window_start(datetime(2026, 8, 15, 9, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)
    # 2027-01-02 lies in 2026-W53 (from 2026-12-28), whose bucket starts before the year
    assert book.window_start(datetime(2027, 1, 2, tzinfo=UTC)) == datetime(2026, 12, 28, tzinfo=UTC)


def test_range_requests_are_checked_naming_the_field():
    today, s = date(2026, 8, 10), d.ReportSettings()
    assert d.period_range("range", "2026-02-10", "2026-05-20", today, s) == [d.parse_range("2026-02-10..2026-05-20")]
    for first, last, field in (("2026-05-21", "2026-05-20", "from"), (None, "2026-05-20", "from"),
                               ("2026-02-10", None, "to"), ("2025-01-01", "2026-01-02", "to"),
                               ("2026-02-30", "2026-03-01", "from"), ("2026-02-01", "2026-02-x", "to"),
                               ("2026-01-01..2026-02-01", "2026-03-01", "from")):
        with pytest.raises(CrmError) as err:
            d.period_range("range", first, last, today, s)
        assert err.value.field == field, (first, last)
    assert d.period_range("range", "2028-01-01", "2028-12-31", today, s)[0].days == 366  # a leap year fits
    with pytest.raises(CrmError) as err:
        d.dashboard_period("2026-Q1", date(2026, 8, 10), today, "2026-01-01", "2026-01-31")
    assert err.value.field == "period"
    with pytest.raises(CrmError) as err:  # a range still running on a past as_of would mix in later events
        d.dashboard_period(None, date(2026, 5, 1), today, "2026-04-01", "2026-05-20")
    assert err.value.field == "period"


# ---------------------------------------------------------------- exact distinct figures, by hand

def _history():
    """2025, team east (reps r1, r2). Purchases: k1 2025-02-10 and 2025-08-20 (Q1, Q3); k2 2025-03-05, 03-20
    and 05-02 (Q1 twice, Q2); k3 2025-04-15 (Q2). k4 churns in February, comes back in March, churns again
    in September. k1 has tasks due (and completed) on 2025-02-12 and 2025-04-03."""
    h = Events()
    h.rep("r1", "east")
    h.rep("r2", "east")
    for customer, rep in (("k1", "r1"), ("k2", "r1"), ("k3", "r2"), ("k4", "r2")):
        h.create(customer, "2025-01-02T09:00:00", team="east", rep=rep, tier="B", lifecycle="active", industry="food")
    for customer, when, amount in (("k1", "2025-02-10T10:00:00", "100.00"), ("k1", "2025-08-20T10:00:00", "50.00"),
                                   ("k2", "2025-03-05T10:00:00", "10.00"), ("k2", "2025-03-20T10:00:00", "20.00"),
                                   ("k2", "2025-05-02T10:00:00", "30.00"), ("k3", "2025-04-15T10:00:00", "40.00")):
        h.purchase(customer, when, amount)
    h.lifecycle("k4", "2025-02-20T00:00:00", "active", "churned")
    h.lifecycle("k4", "2025-03-10T00:00:00", "churned", "active")
    h.lifecycle("k4", "2025-09-01T00:00:00", "active", "churned")
    h.task("k1-t1", "k1", "2025-02-12T09:00:00", "completed", "r1", "east", on_time=True)
    h.task("k1-t2", "k1", "2025-04-03T09:00:00", "completed", "r1", "east", on_time=True)
    return h.items


@pytest.fixture(scope="module")
def year_book(tmp_path_factory):
    service = make_service(tmp_path_factory.mktemp("year"))
    feed(service, _history())
    return service


def _rows(service, figure, principal=ADMIN, **query):
    if "from_" in query:
        query["from"] = query.pop("from_")
    return service.figure(api_request(principal, "GET", query=query), figure)


def test_the_year_counts_each_buyer_once(year_book):
    year = _rows(year_book, "repurchase", period_kind="year", from_="2025", to="2025")["rows"]
    # buyers: k1, k2, k3 = 3 (the quarters would add up to Q1 k1 k2 + Q2 k2 k3 + Q3 k1 = 5)
    # repeat buyers: k2 (03-20, 05-02), k1 (08-20) = 2 (quarters: Q1 k2 + Q2 k2 + Q3 k1 = 3)
    assert [(r["period"], r["purchases"], r["buyers"], r["repeat_buyers"]) for r in year] == [("2025", 6, 3, 2)]
    assert year[0]["repurchase_rate"] == pytest.approx(2 / 3) and year[0]["revenue"] == d.counters.Decimal("250.00")
    quarters = _rows(year_book, "repurchase", period_kind="quarter", from_="2025-Q1", to="2025-Q4")["rows"]
    assert sum(r["buyers"] for r in quarters) == 5 and sum(r["repeat_buyers"] for r in quarters) == 3


def test_the_halves_count_each_buyer_once(year_book):
    halves = {r["period"]: r for r in _rows(year_book, "repurchase", period_kind="half", from_="2025-01-01",
                                             to="2025-12-31")["rows"]}
    # H1: buyers k1 k2 k3 = 3 (quarters: 2 + 2), repeat k2 = 1 (quarters: 1 + 1); H2: k1 buys, a repeat
    assert (halves["2025-H1"]["buyers"], halves["2025-H1"]["repeat_buyers"]) == (3, 1)
    assert (halves["2025-H2"]["buyers"], halves["2025-H2"]["repeat_buyers"]) == (1, 1)


def test_churn_and_follow_ups_of_the_year_count_each_customer_once(year_book):
    churn = _rows(year_book, "churn", period_kind="year", from_="2025", to="2025")["rows"][0]
    assert churn["churned"] == 1            # k4 churned in February and in September: one customer
    followups = _rows(year_book, "followups", period_kind="year", from_="2025", to="2025")["rows"][0]
    assert (followups["tasks_came_due"], followups["customers_due"], followups["customers_touched"]) == (2, 1, 1)


def test_a_custom_range_is_one_row_with_exact_distinct_figures(year_book):
    table = _rows(year_book, "repurchase", period_kind="range", from_="2025-02-10", to="2025-05-20")
    assert (table["period_kind"], table["from"], table["to"]) == ("range", "2025-02-10", "2025-05-20")
    [row] = table["rows"]
    # purchases k1 02-10, k2 03-05 03-20 05-02, k3 04-15 = 5, revenue 100 + 10 + 20 + 30 + 40 = 200
    # buyers k1 k2 k3 = 3 (months: Feb k1 + Mar k2 + Apr k3 + May k2 = 4); repeat: k2 = 1 (months: Mar + May = 2)
    assert (row["period"], row["purchases"], row["revenue"], row["buyers"], row["repeat_buyers"]) == \
        ("2025-02-10..2025-05-20", 5, d.counters.Decimal("200.00"), 3, 1)
    assert row["repurchase_rate"] == pytest.approx(1 / 3)
    by_rep = {r["rep"]: r for r in _rows(year_book, "repurchase", MGR_EAST, period_kind="range", from_="2025-02-10",
                                          to="2025-05-20", breakdown="rep")["rows"]}
    assert (by_rep["r1"]["buyers"], by_rep["r1"]["repeat_buyers"], by_rep["r2"]["buyers"]) == (2, 1, 1)
    followups = _rows(year_book, "followups", period_kind="range", from_="2025-02-01", to="2025-04-30")["rows"][0]
    assert (followups["tasks_came_due"], followups["customers_due"]) == (2, 1)  # k1 due in Feb and in April
    churn = _rows(year_book, "churn", period_kind="range", from_="2025-02-01", to="2025-09-30")["rows"][0]
    assert churn["churned"] == 1 and churn["active_base_at_start"] == 4


def test_the_dashboard_takes_a_year_a_half_or_a_range(year_book):
    board = year_book.dashboard(api_request(ADMIN, "GET", query={"from": "2025-02-10", "to": "2025-05-20"}))
    assert board["period"] == {"label": "2025-02-10..2025-05-20", "kind": "range", "start": date(2025, 2, 10),
                               "end": date(2025, 5, 21), "complete": True}
    assert (board["figures"]["buyers"], board["figures"]["repeat_buyers"], board["figures"]["purchases"]) == (3, 1, 5)
    same = year_book.dashboard(api_request(ADMIN, "GET", query={"period": "2025-02-10..2025-05-20"}))
    assert same["figures"] == board["figures"]
    year = year_book.dashboard(api_request(ADMIN, "GET", query={"period": "2025", "as_of": "2025-12-31"}))
    assert (year["period"]["kind"], year["figures"]["buyers"], year["figures"]["churned"]) == ("year", 3, 1)
    half = year_book.dashboard(api_request(ADMIN, "GET", query={"period": "2025-H1"}))
    assert half["figures"]["buyers"] == 3
    for query, field in (({"from": "2025-02-10"}, "to"), ({"period": "2025-H3"}, "period"),
                         ({"from": "2024-01-01", "to": "2025-06-30"}, "to"),
                         ({"period": "2025", "from": "2025-01-01", "to": "2025-01-31"}, "period")):
        with pytest.raises(CrmError) as err:
            year_book.dashboard(api_request(ADMIN, "GET", query=query))
        assert err.value.field == field, query
    with pytest.raises(ValidationError) as err:
        year_book.figure(api_request(ADMIN, "GET", query={"period_kind": "decade"}), "churn")
    assert "period_kind" in err.value.messages


# ---------------------------------------------------------------- marks agree with the counters

@pytest.mark.parametrize("seed", [3, 11])
def test_a_range_over_one_bucket_is_that_bucket(tmp_path, seed):
    """For generated histories: every distinct counter of a month, quarter, half and year equals the range of
    its days counted from the marks, in every slice: the marks count what the counters count."""
    service = make_service(tmp_path)
    feed(service, random_history(seed))
    with service.store() as uow:
        src = SqlCounters(uow.session)
        rows = uow.session.execute(select(counters).where(counters.c.value != 0)).all()
        checked = 0
        for row in rows:
            if row.period_kind not in ("month", "quarter", "half", "year") or not d.is_distinct(row.metric):
                continue
            period = Period(row.period_kind, row.period_start)
            slice_ = _slice(row.dimension, row.dimension_value)
            assert src.flow(row.metric, DateRange(period.start, period.end), slice_) == row.value, row
            checked += 1
    assert checked > 100


def _slice(dimension: str, value: str) -> d.Slice:
    if dimension == "all":
        return d.ALL
    return d.Slice(**dict(zip(dimension.split("."), _split(value))))


def _split(value: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in value:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


def test_marks_of_a_purchase_follow_its_context():
    record = book.Record("e1", book.PURCHASE, datetime(2026, 3, 5, 10, tzinfo=UTC), "p1", {"amount_base": "5.00"})
    context = {"dims": {"team": "east", "rep": "r1", "tier": "A", "lifecycle": "active", "industry": None},
               "repeat": True}
    marks = ranges.record_marks("k1", record, context)
    assert sorted(m.metric for m in marks) == ["buyers", "repeat_buyers"]
    assert {(m.entity, m.day, m.dims["industry"]) for m in marks} == {("k1", date(2026, 3, 5), "(none)")}
    assert ranges.record_marks("k1", record, None) == []
    assert ranges.distinct_over(marks, "buyers", date(2026, 3, 1), date(2026, 4, 1), d.Slice(team="east")) == 1
    assert ranges.distinct_over(marks, "buyers", date(2026, 3, 1), date(2026, 4, 1), d.Slice(tier="B")) == 0


def test_the_metrics_a_range_counts_exactly_are_the_distinct_ones():
    """is_distinct decides what a range sums and what it counts from marks: it names exactly the metrics
    whose deltas count an entity once per key."""
    dims = d.Dims("east", "r1", "A", "active", "food")
    when = datetime(2026, 3, 5, 10, tzinfo=UTC)
    state = d.CustomerState(dims, 50)
    facts = [
        d.PurchaseFact("k1", "p1", d.counters.Decimal("5.00"), when, dims, when - timedelta(days=3)),
        d.TaskFact("t1", "k1", d.TaskEvent.COMPLETED, when, dims, True),
        d.TaskFact("t2", "k1", d.TaskEvent.OVERDUE, when, dims),
        d.StageChangeFact("k1", "proposal", "won", when, dims, when - timedelta(days=9)),
        d.AlertFact("a1", "k1", d.AlertEvent.RAISED, when, when, dims),
        d.AlertFact("a1", "k1", d.AlertEvent.ESCALATED, when, when, dims),
        d.AlertFact("a1", "k1", d.AlertEvent.RESOLVED, when, when, dims, "lost"),
        d.CustomerChangeFact("k1", when, state, d.CustomerState(d.Dims("east", "r1", "B", "churned", "food"), 50)),
        d.InteractionFact("i1", "k1", "complaint", "pre_sale", when, 3, dims),
    ]
    deltas = [delta for fact in facts for delta in d.counter_updates(fact)]
    assert {x.key.metric for x in deltas if x.distinct_of is not None} == \
        {x.key.metric for x in deltas if d.is_distinct(x.key.metric)}
    assert {"buyers", "repeat_buyers", "churned", "followup.customers_due", "stage.entered:won",
            "alerts.resolved:lost", "alerts.escalated"} <= {x.key.metric for x in deltas if d.is_distinct(x.key.metric)}
