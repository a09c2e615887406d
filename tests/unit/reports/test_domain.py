"""Reports domain: period math, fact -> counter mapping, figures checked by hand, access, CSV.

The main fixture is a small fixed history (June and July 2026, teams east and
west, reps r1 r2 in east, r3 in west). It is folded through counter_updates into
an InMemoryCounters, and every figure is compared with a number worked out by
hand in the comments.
"""
import csv
import io
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.reports import domain as d
from services.reports.domain import (
    ALL, AlertEvent, AlertFact, CustomerChangeFact, CustomerState, Dimension, Dims, InMemoryCounters,
    InteractionFact, Period, PeriodKind, PurchaseFact, Slice, StageChangeFact, TaskEvent, TaskFact,
)

UTC = timezone.utc
JUNE, JULY, AUGUST = d.parse_period("2026-06"), d.parse_period("2026-07"), d.parse_period("2026-08")


def at(text: str) -> datetime:
    """'2026-07-15' or '2026-07-15T10:00' as a UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class History:
    """Builds facts the way the reports service will: from its per-customer state rows."""

    def __init__(self):
        self.facts: list = []
        self.states: dict[str, CustomerState] = {}
        self.first_purchase: dict[str, datetime] = {}
        self.first_contact: dict[str, datetime] = {}
        self.raised: dict[str, datetime] = {}

    def dims(self, customer: str, **actor) -> Dims:
        return replace(self.states[customer].dims, **actor)

    def create(self, customer, when, *, team, rep, tier, lifecycle, industry, score=None):
        self.states[customer] = CustomerState(Dims(team, rep, tier, lifecycle, industry), score)
        self.facts.append(CustomerChangeFact(customer, at(when), None, self.states[customer]))

    def change(self, customer, when, score="same", **dims):
        before = self.states[customer]
        after = CustomerState(replace(before.dims, **dims), before.health_score if score == "same" else score)
        self.states[customer] = after
        self.facts.append(CustomerChangeFact(customer, at(when), before, after))

    def archive(self, customer, when):
        self.facts.append(CustomerChangeFact(customer, at(when), self.states.pop(customer), None))

    def purchase(self, customer, when, amount):
        previous_first = self.first_purchase.get(customer)
        self.first_purchase[customer] = min(filter(None, (previous_first, at(when))))
        self.facts.append(PurchaseFact(customer, f"p{len(self.facts)}", Decimal(amount), at(when),
                                       self.dims(customer), previous_first))

    def interaction(self, customer, when, rep, team, phase, kind="call", satisfaction=None):
        self.facts.append(InteractionFact(f"i{len(self.facts)}", customer, kind, phase, at(when), satisfaction,
                                          self.dims(customer, rep=rep, team=team)))

    def task(self, task, customer, due, event, assignee, team, on_time=False):
        self.facts.append(TaskFact(task, customer, TaskEvent(event), at(due),
                                   self.dims(customer, rep=assignee, team=team), on_time))

    def stage(self, customer, old, new, when):
        self.facts.append(StageChangeFact(customer, old, new, at(when), self.dims(customer),
                                          self.first_contact.get(customer)))
        if new == "first_contact":
            self.first_contact[customer] = at(when)

    def alert(self, alert, customer, event, when, outcome=None):
        self.raised.setdefault(alert, at(when))
        self.facts.append(AlertFact(alert, customer, AlertEvent(event), at(when), self.raised[alert],
                                    self.dims(customer), outcome))


def history() -> History:
    h = History()
    # --- June: the book when July starts -----------------------------------------
    h.create("c1", "2026-06-01", team="east", rep="r1", tier="A", lifecycle="active", industry="retail", score=80)
    h.create("c2", "2026-06-02", team="east", rep="r1", tier="B", lifecycle="active", industry="retail", score=60)
    h.create("c3", "2026-06-03", team="east", rep="r2", tier="B", lifecycle="dormant", industry="food", score=30)
    h.create("c4", "2026-06-04", team="west", rep="r3", tier="C", lifecycle="potential", industry="manufacturing")
    h.create("c5", "2026-06-05", team="west", rep="r3", tier="C", lifecycle="at_risk", industry="manufacturing",
             score=20)
    h.create("c7", "2026-06-06", team="west", rep="r3", tier="C", lifecycle="potential", industry="manufacturing")
    h.purchase("c1", "2026-06-10", "100.00")
    h.alert("a5", "c5", "raised", "2026-06-30T23:00")
    # --- July, in the order events arrive ----------------------------------------
    h.alert("a5", "c5", "acknowledged", "2026-07-01T01:00")             # 2h: in time, June cohort
    h.stage("c4", None, "first_contact", "2026-07-01T09:00")
    h.alert("a1", "c5", "raised", "2026-07-01T10:00")
    h.stage("c4", "first_contact", "needs_analysis", "2026-07-02")
    h.interaction("c1", "2026-07-02", "r1", "east", "post_sale", satisfaction=4)
    h.task("t1", "c1", "2026-07-02", "completed", "r1", "east", on_time=True)
    h.alert("a1", "c5", "acknowledged", "2026-07-02T09:00")             # 23h: in time
    h.alert("a1", "c5", "acknowledged", "2026-07-02T10:00")             # a second hand: still one alert
    h.purchase("c1", "2026-07-03", "250.50")                            # repeat (first was 06-10), tier A
    h.interaction("c2", "2026-07-03", "r1", "east", "post_sale", kind="visit", satisfaction=5)
    h.alert("a2", "c3", "raised", "2026-07-03T08:00")
    h.purchase("c2", "2026-07-04", "99.99")                             # c2's first
    h.change("c1", "2026-07-05", tier="B")                              # tier move A > B
    h.stage("c7", None, "first_contact", "2026-07-05")
    h.alert("a2", "c3", "escalated", "2026-07-05T08:00")
    h.purchase("c5", "2026-07-06", "40.00")                             # c5's first, so far
    h.purchase("c5", "2026-06-20", "60.00")                             # backdated: 07-06 becomes a repeat
    h.alert("a2", "c3", "acknowledged", "2026-07-06T08:00")             # 72h: late
    h.change("c2", "2026-07-08", rep="r2")                              # hand-over r1 > r2, same team
    h.stage("c7", "first_contact", "needs_analysis", "2026-07-08")
    h.stage("c7", "needs_analysis", "first_contact", "2026-07-09")      # back and forth: each stage
    h.interaction("c3", "2026-07-09", "r2", "east", "post_sale", kind="complaint", satisfaction=2)
    h.task("t2", "c2", "2026-07-09", "overdue", "r1", "east")       # r1 keeps c2's tasks
    h.create("c6", "2026-07-10", team="east", rep="r2", tier="C", lifecycle="new", industry="retail", score=70)
    h.stage("c6", None, "first_contact", "2026-07-10")
    h.stage("c4", "needs_analysis", "proposal", "2026-07-10")
    h.interaction("c4", "2026-07-10", "r3", "west", "pre_sale")
    h.alert("a3", "c1", "raised", "2026-07-10")
    h.stage("c7", "first_contact", "needs_analysis", "2026-07-11")      #   counts once a month
    h.interaction("c4", "2026-07-11", "r3", "west", "pre_sale", kind="meeting")
    h.alert("a3", "c1", "resolved", "2026-07-11", outcome="false_alarm")  # 24h, resolved without an ack
    h.change("c1", "2026-07-12", score=90)
    h.purchase("c6", "2026-07-12", "500.00")
    h.stage("c6", "first_contact", "proposal", "2026-07-12")
    h.interaction("c6", "2026-07-13", "r2", "east", "pre_sale", kind="email")
    h.change("c4", "2026-07-14", score=50)                              # first score
    h.change("c3", "2026-07-15T12:00", lifecycle="churned")
    h.alert("a2", "c3", "resolved", "2026-07-15T09:00", outcome="lost")
    h.task("t3", "c2", "2026-07-16", "completed", "r1", "east", on_time=False)
    h.stage("c7", "needs_analysis", "lost", "2026-07-18")
    h.task("t2", "c2", "2026-07-09", "missed", "r1", "east")
    h.change("c5", "2026-07-20", lifecycle="churned")
    h.alert("a1", "c5", "resolved", "2026-07-20T10:00", outcome="lost")
    h.purchase("c2", "2026-07-20", "10.01")                             # repeat, now owned by r2
    h.task("t4", "c3", "2026-07-20", "skipped", "r2", "east")
    h.task("t5", "c5", "2026-07-22", "overdue", "r3", "west")
    h.stage("c4", "proposal", "won", "2026-07-24T09:00")                # 23 days after 07-01 09:00
    h.change("c5", "2026-07-25", lifecycle="active")                    # won back...
    h.task("t5", "c5", "2026-07-22", "missed", "r3", "west")
    h.alert("a4", "c2", "raised", "2026-07-28")
    h.change("c5", "2026-07-28", lifecycle="churned")                   # ...and lost again
    h.task("t6", "c4", "2026-07-30", "completed", "r3", "west", on_time=True)
    h.alert("a4", "c2", "acknowledged", "2026-07-30")                   # exactly 48h: in time
    h.stage("c6", "proposal", "won", "2026-07-31T12:00")                # 21.5 days after 07-10 00:00
    h.archive("c6", "2026-07-31T18:00")
    # --- August --------------------------------------------------------------------
    h.task("t7", "c1", "2026-08-03", "completed", "r1", "east", on_time=True)
    h.alert("a4", "c2", "resolved", "2026-08-05", outcome="recovered")  # counted with its July raise
    return h


@pytest.fixture(scope="module")
def counters() -> InMemoryCounters:
    store = InMemoryCounters()
    for fact in history().facts:
        store.apply(d.counter_updates(fact))
    return store


EAST, WEST = Slice(team="east"), Slice(team="west")


# --- period math -------------------------------------------------------------------------
@pytest.mark.parametrize("kind, moment, start, end", [
    ("day", date(2026, 7, 14), date(2026, 7, 14), date(2026, 7, 15)),
    ("week", date(2026, 7, 1), date(2026, 6, 29), date(2026, 7, 6)),        # Wednesday -> Monday
    ("week", date(2027, 1, 1), date(2026, 12, 28), date(2027, 1, 4)),       # ISO week across year end
    ("month", date(2026, 12, 31), date(2026, 12, 1), date(2027, 1, 1)),
    ("month", date(2028, 2, 29), date(2028, 2, 1), date(2028, 3, 1)),
    ("quarter", date(2026, 3, 31), date(2026, 1, 1), date(2026, 4, 1)),
    ("quarter", date(2026, 4, 1), date(2026, 4, 1), date(2026, 7, 1)),
    ("quarter", date(2026, 12, 31), date(2026, 10, 1), date(2027, 1, 1)),
])
def test_period_start_and_exclusive_end(kind, moment, start, end):
    assert d.period_start(kind, moment) == start
    assert d.period_end(kind, moment) == end


def test_datetimes_are_bucketed_by_their_utc_day():
    # 01:00 on July 1st in UTC+2 is still June 30th in UTC
    plus_two = timezone(timedelta(hours=2))
    assert d.period_start("month", datetime(2026, 7, 1, 1, 0, tzinfo=plus_two)) == date(2026, 6, 1)
    assert d.period_start("day", datetime(2026, 7, 1, 23, 59)) == date(2026, 7, 1)  # naive = UTC


@pytest.mark.parametrize("label, kind, start", [
    ("2026-07-14", PeriodKind.DAY, date(2026, 7, 14)),
    ("2026-W27", PeriodKind.WEEK, date(2026, 6, 29)),
    ("2026-W53", PeriodKind.WEEK, date(2026, 12, 28)),  # 2026 starts on a Thursday: 53 ISO weeks
    ("2025-W01", PeriodKind.WEEK, date(2024, 12, 30)),  # week 1 of 2025 starts in 2024
    ("2026-07", PeriodKind.MONTH, date(2026, 7, 1)),
    ("2026-Q3", PeriodKind.QUARTER, date(2026, 7, 1)),
])
def test_labels_parse_and_format_back(label, kind, start):
    period = d.parse_period(label)
    assert (period.kind, period.start) == (kind, start)
    assert period.label == label == d.format_period(kind, start)


def test_week_label_uses_the_iso_year():
    assert d.format_period("week", date(2027, 1, 1)) == "2026-W53"
    assert d.format_period("week", date(2024, 12, 31)) == "2025-W01"


@pytest.mark.parametrize("label", ["2026-13", "2026-Q5", "2026-02-30", "2025-W53", "2026-W00", "July", ""])
def test_bad_labels_are_refused(label):
    with pytest.raises(d.InvalidPeriod):
        d.parse_period(label)


def test_bad_labels_are_value_errors_and_bad_kinds_refused():
    with pytest.raises(ValueError):
        d.parse_period("2026-7")
    with pytest.raises(d.InvalidPeriod):
        d.period_start("decade", date(2026, 1, 1))
    with pytest.raises(d.InvalidPeriod):  # a custom range is not a bucket: DateRange
        d.period_start("range", date(2026, 1, 1))
    with pytest.raises(d.InvalidPeriod):
        Period(PeriodKind.MONTH, date(2026, 7, 2))  # not a month start


def test_periods_between_includes_both_ends_and_crosses_years():
    months = d.periods_between("month", date(2026, 11, 15), datetime(2027, 2, 1, tzinfo=UTC))
    assert [p.label for p in months] == ["2026-11", "2026-12", "2027-01", "2027-02"]
    weeks = d.periods_between("week", date(2026, 12, 24), date(2027, 1, 5))
    assert [p.label for p in weeks] == ["2026-W52", "2026-W53", "2027-W01"]
    quarters = d.periods_between("quarter", date(2026, 2, 1), date(2026, 8, 1))
    assert [p.label for p in quarters] == ["2026-Q1", "2026-Q2", "2026-Q3"]
    assert d.periods_between("day", date(2026, 7, 2), date(2026, 7, 1)) == []


def test_period_helpers():
    july = d.parse_period("2026-07")
    assert july.next() == AUGUST and july.end == date(2026, 8, 1) and str(july) == "2026-07"
    assert july.contains(at("2026-07-31T23:59")) and not july.contains(date(2026, 8, 1))
    assert Period.containing("quarter", date(2026, 8, 15)).label == "2026-Q3"


def test_stock_plan_reads_few_rows():
    # quarters before Q3, months of Q3 before August, days of August before the 15th
    assert d.stock_plan(date(2026, 8, 15)) == [
        (PeriodKind.QUARTER, None, date(2026, 7, 1)),
        (PeriodKind.MONTH, date(2026, 7, 1), date(2026, 8, 1)),
        (PeriodKind.DAY, date(2026, 8, 1), date(2026, 8, 15)),
    ]


def test_stock_plan_sums_the_same_as_every_day_before(counters):
    def brute(metric, when):
        return sum(v for k, v in counters.values.items()
                   if k.metric == metric and k.period_kind is PeriodKind.DAY and k.dimension == "all"
                   and k.period_start < when)

    for when in (date(2026, 6, 1), date(2026, 6, 3), date(2026, 7, 1), date(2026, 7, 15), date(2026, 7, 31),
                 date(2026, 8, 1), date(2026, 10, 2), date(2027, 1, 1)):
        for metric in d.STOCK_METRICS:
            assert counters.stock(metric, when) == brute(metric, when), (metric, when)


# --- slices and keys ---------------------------------------------------------------------
def test_slice_encoding():
    assert (ALL.dimension, ALL.value) == ("all", "*")
    assert (Slice(team="east").dimension, Slice(team="east").value) == ("team", "east")
    crossed = Slice(rep="r1", industry="food|drink")
    assert (crossed.dimension, crossed.value) == ("rep.industry", "r1|food\\|drink")
    assert crossed.scope == (Dimension.REP, "r1")
    # escaping keeps different pairs apart
    assert Slice(team="a|b", tier="c").value != Slice(team="a", tier="b|c").value


def test_slice_allows_one_scope_and_one_breakdown():
    with pytest.raises(ValueError):
        Slice(team="east", rep="r1")
    with pytest.raises(ValueError):
        Slice(tier="A", industry="food")


def test_every_fact_moves_all_twelve_slices_in_every_period_kind():
    dims = Dims("east", "r1", "A", "active", None)
    fact = InteractionFact("i1", "c1", "complaint", "post_sale", at("2026-07-02T10:00"), 4, dims)
    deltas = d.counter_updates(fact)
    # interactions, interactions:post_sale, satisfaction sum and count, complaints: 5 metrics x 6 kinds
    # (day, week, month, quarter, half, year) x 12 slices
    assert len(deltas) == 5 * 6 * 12
    slices = {(x.key.dimension, x.key.dimension_value) for x in deltas}
    assert len(slices) == 12
    assert ("rep.industry", "r1|(none)") in slices and ("team.lifecycle", "east|active") in slices
    weeks = {x.key.period_start for x in deltas if x.key.period_kind is PeriodKind.WEEK}
    assert weeks == {date(2026, 6, 29)}
    assert {x.key.period_start for x in deltas if x.key.period_kind is PeriodKind.HALF} == {date(2026, 7, 1)}
    assert {x.key.period_start for x in deltas if x.key.period_kind is PeriodKind.YEAR} == {date(2026, 1, 1)}
    assert all(x.distinct_of is None for x in deltas)


def test_hand_over_moves_only_rep_slices():
    dims = Dims("east", "r1", "B", "active", "retail")
    before = CustomerState(dims, 60)
    fact = CustomerChangeFact("c2", at("2026-07-08"), before, replace(before, dims=replace(dims, rep="r2")))
    deltas = d.counter_updates(fact)
    assert {x.key.dimension for x in deltas} == {"rep", "rep.tier", "rep.lifecycle", "rep.industry"}
    # customers:active, health.sum, health.scored; out of 4 r1 slices, into 4 r2 slices; 6 period kinds
    assert len(deltas) == 3 * 8 * 6
    month = [x for x in deltas if x.key.period_kind is PeriodKind.MONTH and x.key.dimension == "rep"]
    assert {(x.key.metric, x.key.dimension_value, x.amount) for x in month} == {
        ("customers:active", "r1", -1), ("customers:active", "r2", 1),
        ("health.sum", "r1", -60), ("health.sum", "r2", 60),
        ("health.scored", "r1", -1), ("health.scored", "r2", 1)}


def test_distinct_deltas_name_the_entity():
    fact = PurchaseFact("c1", "p1", Decimal("10"), at("2026-07-03"), Dims(), None)
    buyers = [x for x in d.counter_updates(fact) if x.key.metric == "buyers"]
    assert buyers and all(x.distinct_of == "c1" and x.amount == 1 for x in buyers)
    store = InMemoryCounters()
    store.apply(d.counter_updates(fact))
    store.apply(d.counter_updates(replace(fact, purchase_id="p2", previous_first_purchase_at=at("2026-07-03"))))
    assert store.flow("purchases", JULY) == 2 and store.flow("buyers", JULY) == 1
    assert store.flow("repeat_buyers", JULY) == 1


def test_unknown_fact_is_refused():
    with pytest.raises(TypeError):
        d.counter_updates(object())


def test_vocabularies_match_the_contracts():
    from crm_common.contracts import alerts, fields, followups
    assert d.TIERS == fields.TIERS and d.LIFECYCLES == fields.LIFECYCLES
    assert d.PIPELINE_STAGES == fields.PIPELINE_STAGES
    assert d.counters.PHASES == followups.PHASES and d.counters.ALERT_OUTCOMES == alerts.ALERT_OUTCOMES


# --- figures on the fixed history ------------------------------------------------------------
def test_active_base_and_churn(counters):
    # active base on 07-01 = not potential, not churned: c1 active, c2 active, c3 dormant, c5 at_risk = 4
    # (c4, c7 potential; c6 arrives 07-10). east: c1 c2 c3 = 3, west: c5 = 1
    assert d.active_base(counters, date(2026, 7, 1)) == 4
    assert d.active_base(counters, date(2026, 7, 1), EAST) == 3
    assert d.active_base(counters, date(2026, 7, 1), WEST) == 1
    # 07-15 (start of day): c3 churns at noon that day, c6 (new) has arrived: c1 c2 c3 c5 c6 = 5
    assert d.active_base(counters, date(2026, 7, 15)) == 5
    # 08-01: c1 c2 active; c3 c5 churned; c6 archived = 2
    assert d.active_base(counters, date(2026, 8, 1)) == 2
    # churned in July, distinct: c3, c5 (c5 churned twice) = 2 -> 2/4
    assert counters.flow("churned", JULY) == 2
    assert d.churn_rate(counters, JULY) == 0.5
    assert d.retention_rate(counters, JULY) == 0.5
    assert d.churn_rate(counters, JULY, EAST) == pytest.approx(1 / 3)        # c3 of c1 c2 c3
    assert d.churn_rate(counters, JULY, WEST) == 1.0                         # c5 of c5
    assert d.churn_rate(counters, JULY, Slice(rep="r1")) == 0.0              # 0 of c1 c2
    assert d.churn_rate(counters, JULY, Slice(rep="r2")) == 1.0              # c3 of c3
    assert d.churn_rate(counters, JULY, Slice(tier="B")) == 0.5              # c3 of c2 c3
    # churn counts where the customer came from: c5 left at_risk (07-20) and active (07-28)
    assert d.churn_rate(counters, JULY, Slice(lifecycle="at_risk")) == 1.0   # c5 of c5
    assert d.churn_rate(counters, JULY, Slice(lifecycle="active")) == 0.5    # c5 of c1 c2
    # June started with nobody: no rate rather than a division by zero
    assert d.churn_rate(counters, JUNE) is None and d.retention_rate(counters, JUNE) is None


def test_distributions_and_movements(counters):
    aug1 = date(2026, 8, 1)
    # on 08-01: c1 B active, c2 B active, c3 B churned, c4 C potential, c5 C churned, c7 C potential (c6 archived)
    assert d.distribution(counters, aug1, "tier", list(d.TIERS)) == {"A": 0, "B": 3, "C": 3}
    assert d.distribution(counters, aug1, "lifecycle", list(d.LIFECYCLES)) == {
        "potential": 2, "new": 0, "active": 2, "dormant": 0, "at_risk": 0, "churned": 2}
    assert d.distribution(counters, aug1, "industry", ["retail", "food", "manufacturing"]) == {
        "retail": 2, "food": 1, "manufacturing": 3}
    assert d.distribution(counters, aug1, "tier", list(d.TIERS), scope=EAST) == {"A": 0, "B": 3, "C": 0}
    # the active base only, by tier: c1 c2
    assert d.distribution(counters, aug1, "tier", list(d.TIERS), lifecycles=d.ACTIVE_BASE_LIFECYCLES) == {
        "A": 0, "B": 2, "C": 0}
    # on 07-01: tier A was c1
    assert d.distribution(counters, date(2026, 7, 1), "tier", ["A"]) == {"A": 1}
    # hand-over 07-08: r2 had c3 on 07-01 and c2 c3 on 08-01
    assert d.distribution(counters, aug1, "lifecycle", ["active", "churned"], scope=Slice(rep="r2")) == {
        "active": 1, "churned": 1}
    assert d.movements(counters, JULY, "tier") == {("A", "B"): 1}
    assert d.movements(counters, JULY, "lifecycle") == {
        ("dormant", "churned"): 1, ("at_risk", "churned"): 1, ("churned", "active"): 1, ("active", "churned"): 1}
    assert d.movements(counters, JULY, "lifecycle", EAST) == {("dormant", "churned"): 1}
    assert d.movements(counters, JUNE, "tier") == {}


def test_average_health_score(counters):
    # 07-01: c1 80, c2 60, c3 30, c5 20 -> 190/4
    assert d.average_health_score(counters, date(2026, 7, 1)) == 47.5
    # 07-20: c1 90, c2 60, c3 30, c4 50, c5 20, c6 70 -> 320/6
    assert d.average_health_score(counters, date(2026, 7, 20)) == pytest.approx(320 / 6)
    # 08-01: c6 archived -> 250/5; east c1 90 c2 60 c3 30 -> 180/3; r3: c4 50 c5 20 -> 70/2
    assert d.average_health_score(counters, date(2026, 8, 1)) == 50.0
    assert d.average_health_score(counters, date(2026, 8, 1), EAST) == 60.0
    assert d.average_health_score(counters, date(2026, 8, 1), Slice(rep="r3")) == 35.0
    assert d.average_health_score(counters, date(2026, 6, 1)) is None


def test_purchases_and_repurchase(counters):
    # July buyers: c1 (07-03), c2 (07-04, 07-20), c5 (07-06), c6 (07-12) = 4
    # repeat buyers: c1 (first 06-10), c2 (07-20 after 07-04), c5 (07-06 after backdated 06-20) = 3
    assert counters.flow("buyers", JULY) == 4 and counters.flow("repeat_buyers", JULY) == 3
    assert d.repurchase_rate(counters, JULY) == 0.75
    assert counters.flow("purchases", JULY) == 5
    assert d.revenue(counters, JULY) == Decimal("900.50")   # 250.50 + 99.99 + 40.00 + 500.00 + 10.01
    # June: c1 100.00 and c5's backdated 60.00, both first purchases
    assert d.revenue(counters, JUNE) == Decimal("160.00") and d.repurchase_rate(counters, JUNE) == 0.0
    # r1 in July: c1 (repeat), c2's first -> 1/2; r2: c2's repeat after the hand-over, c6's first -> 1/2
    assert d.repurchase_rate(counters, JULY, Slice(rep="r1")) == 0.5
    assert d.repurchase_rate(counters, JULY, Slice(rep="r2")) == 0.5
    # tier A in July: c1's repeat on 07-03, before its move to B
    assert d.repurchase_rate(counters, JULY, Slice(tier="A")) == 1.0
    # week 28 (07-06..07-12): c5 (repeat via the backdated one), c6 (first) -> 1/2
    assert d.repurchase_rate(counters, d.parse_period("2026-W28")) == 0.5
    assert d.repurchase_rate(counters, d.parse_period("2026-Q3")) == 0.75
    assert d.repurchase_rate(counters, AUGUST) is None


def test_interactions_and_satisfaction(counters):
    # six touches: r1 two post-sale, r2 one post-sale (complaint) one pre-sale, r3 two pre-sale
    assert d.interaction_counts(counters, JULY) == d.InteractionCounts(6, 3, 3)
    assert d.interactions_per_rep(counters, JULY, ["r1", "r2", "r3"]) == {
        "r1": d.InteractionCounts(2, 0, 2), "r2": d.InteractionCounts(2, 1, 1), "r3": d.InteractionCounts(2, 2, 0)}
    assert d.average_satisfaction(counters, JULY) == pytest.approx(11 / 3)   # (4 + 5 + 2) / 3
    assert d.average_satisfaction(counters, JULY, WEST) is None              # nobody rated
    assert d.complaints(counters, JULY) == 1 and d.complaints(counters, JULY, WEST) == 0


def test_followups(counters):
    # due in July and settled: t1 c1 done, t2 c2 missed, t3 c2 done late, t4 c3 skipped, t5 c5 missed, t6 c4 done
    assert counters.flow("tasks.came_due", JULY) == 6 and counters.flow("tasks.missed", JULY) == 2
    assert d.missed_followup_rate(counters, JULY) == pytest.approx(2 / 6)
    assert counters.flow("tasks.completed_on_time", JULY) == 2 and counters.flow("tasks.overdue", JULY) == 2
    # customers due a touch (skipped excluded): c1 c2 c5 c4 = 4; touched: c1 c2 c4 = 3
    assert d.followup_coverage(counters, JULY) == 0.75
    assert d.followup_coverage(counters, JULY, Slice(rep="r1")) == 1.0      # c1 c2 of c1 c2
    assert d.followup_coverage(counters, JULY, Slice(rep="r2")) is None     # only a skipped task
    assert d.followup_coverage(counters, JULY, Slice(rep="r3")) == 0.5      # c4 of c5 c4
    assert d.missed_followup_rate(counters, JULY, Slice(rep="r2")) == 0.0   # 0 of t4
    assert d.followup_coverage(counters, AUGUST) == 1.0                     # t7
    assert d.missed_followup_rate(counters, JUNE) is None


def test_funnel_win_rate_and_cycle(counters):
    # entered in July, each customer once per stage: first_contact c4 c6 c7; needs_analysis c4 c7;
    # proposal c4 c6; won c4 c6; lost c7
    assert d.funnel(counters, JULY) == [
        d.FunnelStep("first_contact", 3, None), d.FunnelStep("needs_analysis", 2, pytest.approx(2 / 3)),
        d.FunnelStep("proposal", 2, 1.0), d.FunnelStep("won", 2, 1.0)]
    assert d.win_rate(counters, JULY) == pytest.approx(2 / 3)
    # c4: 07-01 09:00 -> 07-24 09:00 = 23 days; c6: 07-10 00:00 -> 07-31 12:00 = 21.5 days
    assert d.average_cycle_days(counters, JULY) == 22.25
    # east (c6 only): skipped needs_analysis, so proposal has no conversion from it
    assert [s.conversion for s in d.funnel(counters, JULY, EAST)] == [None, 0.0, None, 1.0]
    assert d.win_rate(counters, JULY, WEST) == 0.5 and d.average_cycle_days(counters, JULY, WEST) == 23.0
    assert d.win_rate(counters, JUNE) is None and d.average_cycle_days(counters, JUNE) is None


def test_alerts(counters):
    # raised in July: a1 (in time 23h, lost), a2 (escalated, late 72h, lost), a3 (in time 24h, false alarm),
    # a4 (in time at exactly 48h, recovered in August)
    assert d.alert_summary(counters, JULY) == d.AlertSummary(
        raised=4, handled=4, handled_in_time=3, escalated=1, recovered=1, lost=2, false_alarm=1)
    assert d.alert_summary(counters, JULY).open == 0
    assert d.handled_in_time_rate(counters, JULY) == 0.75
    assert d.recovery_rate(counters, JULY) == pytest.approx(1 / 3)
    assert d.handled_in_time_rate(counters, JULY, EAST) == pytest.approx(2 / 3)   # a3 a4 of a2 a3 a4
    assert d.recovery_rate(counters, JULY, WEST) == 0.0                           # a1 lost
    # June: a5, acknowledged after 2h and still open
    assert d.alert_summary(counters, JUNE).open == 1 and d.handled_in_time_rate(counters, JUNE) == 1.0
    assert d.recovery_rate(counters, JUNE) is None
    # week 27 (06-29..07-05) holds a5, a1 and a2 across the month boundary
    assert counters.flow("alerts.raised", d.parse_period("2026-W27")) == 3


def test_alert_sla_is_configurable():
    store = InMemoryCounters()
    for fact in history().facts:
        store.apply(d.counter_updates(fact, ack_sla=timedelta(hours=24)))
    # a1 23h and a3 24h stay in time, a4 at 48h no longer
    assert store.flow("alerts.handled_in_time", JULY) == 2


def test_headline_figures_row(counters):
    row = d.headline_figures(counters, JULY)
    assert tuple(row) == d.HEADLINE_COLUMNS
    assert row["period"] == "2026-07" and row["active_base_at_start"] == 4 and row["churn_rate"] == 0.5
    assert row["revenue"] == Decimal("900.50") and row["average_health_score_at_end"] == 50.0
    assert d.headline_figures(counters, JUNE)["churn_rate"] is None


def test_ratio_never_divides_by_zero():
    assert d.ratio(3, 0) is None and d.ratio(0, 0) is None and d.ratio(Decimal("1"), Decimal("4")) == 0.25


def test_empty_counters_give_no_rates():
    empty = InMemoryCounters()
    for figure in (d.churn_rate, d.retention_rate, d.repurchase_rate, d.followup_coverage, d.missed_followup_rate,
                   d.average_satisfaction, d.win_rate, d.average_cycle_days, d.handled_in_time_rate, d.recovery_rate):
        assert figure(empty, JULY) is None, figure.__name__
    assert d.average_health_score(empty, date(2026, 7, 1)) is None


# --- access ------------------------------------------------------------------------------
def test_scope_for_each_role():
    assert d.scope_for("rep", "r1", "east") == (Dimension.REP, "r1")
    assert d.scope_for("manager", "m1", "east") == (Dimension.TEAM, "east")
    assert d.scope_for("admin", "a1", None) is None
    assert d.default_slice("manager", "m1", "east") == EAST
    with pytest.raises(d.ReportAccessDenied):
        d.scope_for("manager", "m1", None)
    with pytest.raises(d.ReportAccessDenied):
        d.scope_for("guest", "g1", None)


@pytest.mark.parametrize("role, user, team, requested, breakdown, rep_team, allowed", [
    ("rep", "r1", "east", Slice(rep="r1"), None, None, True),
    ("rep", "r1", "east", Slice(rep="r1", tier="A"), "tier", None, True),
    ("rep", "r1", "east", Slice(rep="r2"), None, "east", False),       # another rep
    ("rep", "r1", "east", Slice(team="east"), None, None, False),      # the team's figures
    ("rep", "r1", "east", Slice(rep="r1"), "rep", None, False),        # a per-rep comparison
    ("rep", "r1", "east", ALL, None, None, False),
    ("manager", "m1", "east", EAST, "rep", None, True),                 # per rep of the own team
    ("manager", "m1", "east", Slice(rep="r2"), None, "east", True),
    ("manager", "m1", "east", Slice(rep="r3"), None, "west", False),
    ("manager", "m1", "east", WEST, None, None, False),
    ("manager", "m1", "east", ALL, "team", None, False),
    ("manager", "m1", "east", Slice(rep="r2"), "rep", "east", False),
    ("admin", "a1", None, ALL, "team", None, True),
    ("admin", "a1", None, Slice(rep="r3", industry="food"), None, None, True),
])
def test_check_access(role, user, team, requested, breakdown, rep_team, allowed):
    if allowed:
        d.check_access(role, user, team, requested, breakdown, rep_team)
    else:
        with pytest.raises(d.ReportAccessDenied) as denied:
            d.check_access(role, user, team, requested, breakdown, rep_team)
        assert denied.value.status == 403


# --- CSV ---------------------------------------------------------------------------------
def test_csv_header_order_quoting_and_crlf():
    rows = [{"team": 'East, "North"', "rate": 0.25, "revenue": Decimal("900.50"), "note": "two\nlines"},
            {"team": "west", "rate": None, "revenue": Decimal("1E+2")}]
    text = d.to_csv(rows, ["team", "revenue", "rate", "note"])
    assert text == ('team,revenue,rate,note\r\n'
                    '"East, ""North""",900.50,0.25,"two\nlines"\r\n'
                    'west,100,,\r\n')
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["team", "revenue", "rate", "note"], ['East, "North"', "900.50", "0.25", "two\nlines"],
        ["west", "100", "", ""]]


def test_csv_cells():
    assert d.format_cell(True) == "true" and d.format_cell(7) == "7"
    assert d.format_cell(date(2026, 7, 1)) == "2026-07-01" and d.format_cell(PeriodKind.WEEK) == "week"
    assert d.format_cell(float("nan")) == ""
    assert d.format_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and d.format_cell(-3) == "-3"


def test_csv_of_headline_figures(counters):
    text = d.to_csv([d.headline_figures(counters, p) for p in (JUNE, JULY)], d.HEADLINE_COLUMNS)
    lines = text.split("\r\n")
    assert lines[0].split(",")[:4] == ["period", "active_base_at_start", "churned", "churn_rate"]
    assert lines[1].startswith("2026-06,0,0,,,") and lines[2].startswith("2026-07,4,2,0.5,0.5,5,900.50,")
    assert len(lines) == 4 and lines[3] == ""
