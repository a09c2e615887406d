"""Reports service through its entrypoints (nameko worker_factory, real SQLite, fixed clock).

The history is the one of tests/unit/reports/test_domain.py (June and July 2026,
teams east and west, reps r1 r2 in east, r3 in west; histories.py builds it),
published as the events the producers emit and fed to the one consuming entrypoint
(``apply_events``) the way the consumer hands them over (envelope in, contract-
validated), one event per batch here (test_batches.py: in batches). Each figure is
then read over the HTTP handlers and compared with the number worked out by hand in
the comments (the domain test shows the same arithmetic). Then: the same history fed again changes
nothing; fed in any order, or rebuilt from a replay, gives the same counters.
"""
import csv
import io
import random
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date
from decimal import Decimal
from unittest.mock import MagicMock

import pytest
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from crm_common.auth import Principal
from crm_common.db import EventFailed, make_engine
from crm_common.migrations import upgrade
from crm_common.errors import CrmError, EventRejected, Forbidden, NotFound
from crm_common.testing import api_request
from services.reports import counter_table, models, projections
from services.reports.domain import ReportSettings
from tests.unit.reports.histories import (
    HISTORY, Events, counters_of, feed, history, make_service, random_history,
)

ADMIN = Principal("admin", "admin")
MGR_EAST = Principal("m-east", "manager", "east")
MGR_WEST = Principal("m-west", "manager", "west")
R1 = Principal("r1", "rep", "east")
R2 = Principal("r2", "rep", "east")


def request(principal, query=None, method="GET"):
    return api_request(principal, method, query=query)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    service = make_service(tmp_path_factory.mktemp("live"))
    feed(service, HISTORY)
    return service


def table(service, figure, principal=ADMIN, **query):
    if "from_" in query:
        query["from"] = query.pop("from_")
    return service.figure(request(principal, {"period_kind": "month", "from": "2026-06", "to": "2026-08", **query}),
                          figure)


def rows(service, figure, principal=ADMIN, key="period", **query):
    """{period: row} or, with a breakdown, {(period, value): row}."""
    result = table(service, figure, principal, **query)
    breakdown = query.get("breakdown")
    return {(r["period"], r[breakdown]) if breakdown else r[key]: r for r in result["rows"]}


# ---------------------------------------------------------------- every figure, by hand

def test_churn_and_retention(live):
    churn = rows(live, "churn")
    # active base on 07-01: c1 active, c2 active, c3 dormant, c5 at_risk = 4; churned in July, distinct: c3, c5
    assert (churn["2026-07"]["active_base_at_start"], churn["2026-07"]["churned"]) == (4, 2)
    assert churn["2026-07"]["churn_rate"] == 0.5 and churn["2026-07"]["retention_rate"] == 0.5
    # June started with nobody: no rate rather than a division by zero
    assert churn["2026-06"]["churn_rate"] is None and churn["2026-06"]["retention_rate"] is None
    # 08-01: c1 c2 active; c3 c5 churned; c6 archived
    assert churn["2026-08"]["active_base_at_start"] == 2
    by_team = rows(live, "churn", breakdown="team")
    assert by_team[("2026-07", "east")]["churn_rate"] == pytest.approx(1 / 3)   # c3 of c1 c2 c3
    assert by_team[("2026-07", "west")]["churn_rate"] == 1.0                   # c5 of c5
    by_rep = rows(live, "churn", breakdown="rep")
    assert by_rep[("2026-07", "r1")]["churn_rate"] == 0.0 and by_rep[("2026-07", "r2")]["churn_rate"] == 1.0
    assert rows(live, "churn", breakdown="tier")[("2026-07", "B")]["churn_rate"] == 0.5   # c3 of c2 c3
    by_lifecycle = rows(live, "churn", breakdown="lifecycle")
    # counted where the customer came from: c5 left at_risk (07-20) and active (07-28)
    assert by_lifecycle[("2026-07", "at_risk")]["churn_rate"] == 1.0
    assert by_lifecycle[("2026-07", "active")]["churn_rate"] == 0.5


def test_distributions_as_of_a_day(live):
    def dist(dimension, principal=ADMIN, **query):
        result = live.distribution(request(principal, {"dimension": dimension, "as_of": "2026-07-31", **query}))
        return {v["value"]: v["customers"] for v in result["values"]}

    # end of 07-31: c1 B active, c2 B active, c3 B churned, c4 C potential, c5 C churned, c7 C potential
    assert dist("tier") == {"A": 0, "B": 3, "C": 3}
    assert dist("lifecycle") == {"potential": 2, "new": 0, "active": 2, "dormant": 0, "at_risk": 0, "churned": 2}
    assert dist("industry") == {"food": 1, "manufacturing": 3, "retail": 2}
    assert dist("tier", team="east") == {"A": 0, "B": 3, "C": 0}
    assert dist("tier", base="active") == {"A": 0, "B": 2, "C": 0}            # the active base only: c1 c2
    assert dist("lifecycle", MGR_EAST, rep="r2") == {"potential": 0, "new": 0, "active": 1, "dormant": 0,
                                                    "at_risk": 0, "churned": 1}  # c2 (since 07-08) and c3
    # end of 06-30: tier A was c1; c2 c3 B; c4 c5 c7 C
    assert dist("tier", as_of="2026-06-30") == {"A": 1, "B": 2, "C": 3}
    # a rep sees their own book only
    assert dist("tier", R1) == {"A": 0, "B": 1, "C": 0}                       # c1 (c2 moved to r2)


def test_movements(live):
    moves = table(live, "movements", from_="2026-07")["rows"]
    july = {(r["attribute"], r["from"], r["to"]): r["moves"] for r in moves if r["period"] == "2026-07"}
    assert july == {("tier", "A", "B"): 1, ("lifecycle", "at_risk", "churned"): 1,
                    ("lifecycle", "active", "churned"): 1, ("lifecycle", "churned", "active"): 1,
                    ("lifecycle", "dormant", "churned"): 1}
    east = table(live, "movements", team="east", from_="2026-07", to="2026-07")["rows"]
    assert [(r["attribute"], r["from"], r["to"], r["moves"]) for r in east] == [
        ("tier", "A", "B", 1), ("lifecycle", "dormant", "churned", 1)]                # c1, c3


def test_health(live):
    health = rows(live, "health")
    # 07-01: c1 80, c2 60, c3 30, c5 20 -> 190/4; 08-01: c1 90 c2 60 c3 30 c4 50 c5 20 (c6 archived) -> 250/5
    assert health["2026-06"]["average_health_score_at_end"] == 47.5
    assert health["2026-07"]["average_health_score_at_end"] == 50.0
    assert health["2026-07"]["scored_customers_at_end"] == 5
    assert rows(live, "health", team="east")["2026-07"]["average_health_score_at_end"] == 60.0   # 180/3
    assert rows(live, "health", rep="r3")["2026-07"]["average_health_score_at_end"] == 35.0      # 70/2
    assert health["2026-06"]["average_health_score_at_start"] is None


def test_purchases_and_repurchase(live):
    buys = rows(live, "repurchase")
    # July buyers: c1, c2, c5, c6 = 4; repeat: c1 (first 06-10), c2 (07-20 after 07-04), c5 (07-06 after 06-20)
    assert (buys["2026-07"]["buyers"], buys["2026-07"]["repeat_buyers"]) == (4, 3)
    assert buys["2026-07"]["repurchase_rate"] == 0.75 and buys["2026-07"]["purchases"] == 5
    assert buys["2026-07"]["revenue"] == Decimal("900.50")     # 250.50 + 99.99 + 40.00 + 500.00 + 10.01
    assert buys["2026-06"]["revenue"] == Decimal("160.00") and buys["2026-06"]["repurchase_rate"] == 0.0
    assert buys["2026-08"]["repurchase_rate"] is None
    by_rep = rows(live, "repurchase", breakdown="rep")
    assert by_rep[("2026-07", "r1")]["repurchase_rate"] == 0.5   # c1 repeat, c2's first
    assert by_rep[("2026-07", "r2")]["repurchase_rate"] == 0.5   # c2's repeat after the hand-over, c6's first
    assert rows(live, "repurchase", breakdown="tier")[("2026-07", "A")]["repurchase_rate"] == 1.0  # c1 on 07-03
    weeks = rows(live, "repurchase", period_kind="week", from_="2026-W28", to="2026-W28")
    assert weeks["2026-W28"]["repurchase_rate"] == 0.5           # c5 (repeat via the backdated one), c6 (first)
    quarter = rows(live, "repurchase", period_kind="quarter", from_="2026-Q3", to="2026-Q3")
    assert quarter["2026-Q3"]["repurchase_rate"] == 0.75


def test_interactions_and_satisfaction(live):
    talks = rows(live, "interactions")["2026-07"]
    assert (talks["interactions"], talks["interactions_pre_sale"], talks["interactions_post_sale"]) == (6, 3, 3)
    assert talks["average_satisfaction"] == pytest.approx(11 / 3) and talks["complaints"] == 1   # (4+5+2)/3
    per_rep = rows(live, "interactions", breakdown="rep")
    july = {rep: per_rep[("2026-07", rep)] for rep in ("r1", "r2", "r3")}
    assert {rep: (row["interactions_pre_sale"], row["interactions_post_sale"]) for rep, row in july.items()} == {"r1": (0, 2), "r2": (1, 1), "r3": (2, 0)}
    west = rows(live, "satisfaction", team="west")["2026-07"]
    assert west["average_satisfaction"] is None and west["complaints"] == 0   # nobody rated


def test_followups(live):
    july = rows(live, "followups")["2026-07"]
    # due in July and settled: t1 done, t2 missed, t3 done late, t4 skipped, t5 missed, t6 done
    assert (july["tasks_came_due"], july["tasks_missed"], july["tasks_completed_on_time"]) == (6, 2, 2)
    assert july["missed_followup_rate"] == pytest.approx(2 / 6) and july["tasks_overdue"] == 2
    # customers due a touch (skipped excluded): c1 c2 c5 c4; touched: c1 c2 c4
    assert july["followup_coverage"] == 0.75
    by_rep = rows(live, "followups", breakdown="rep")
    assert by_rep[("2026-07", "r1")]["followup_coverage"] == 1.0
    r2 = by_rep[("2026-07", "r2")]
    assert r2["followup_coverage"] is None and r2["missed_followup_rate"] == 0.0   # only a skipped task
    assert by_rep[("2026-07", "r3")]["followup_coverage"] == 0.5
    assert rows(live, "followups")["2026-08"]["followup_coverage"] == 1.0     # t7
    assert rows(live, "followups")["2026-06"]["missed_followup_rate"] is None


def test_funnel(live):
    july = rows(live, "funnel")["2026-07"]
    # entered in July, each customer once per stage: first_contact c4 c6 c7; needs_analysis c4 c7; proposal c4 c6;
    # won c4 c6; lost c7
    assert [july[f"entered_{s}"] for s in ("first_contact", "needs_analysis", "proposal", "won", "lost")] == \
        [3, 2, 2, 2, 1]
    assert july["conversion_needs_analysis"] == pytest.approx(2 / 3) and july["conversion_won"] == 1.0
    assert july["win_rate"] == pytest.approx(2 / 3)
    assert july["average_cycle_days"] == 22.25   # c4 07-01 09:00 -> 07-24 09:00 = 23; c6 07-10 -> 07-31 12:00 = 21.5
    east = rows(live, "funnel", team="east")["2026-07"]
    assert [east[f"conversion_{s}"] for s in ("needs_analysis", "proposal", "won")] == [0.0, None, 1.0]
    west = rows(live, "funnel", team="west")["2026-07"]
    assert west["win_rate"] == 0.5 and west["average_cycle_days"] == 23.0


def test_alerts(live):
    alerts = rows(live, "alerts")
    july = alerts["2026-07"]
    # raised in July: a1 (in time 23h, lost), a2 (escalated, late 72h, lost), a3 (in time 24h, false alarm),
    # a4 (in time at exactly 48h, recovered in August)
    assert [july[k] for k in ("alerts_raised", "alerts_handled", "alerts_handled_in_time", "alerts_escalated",
                              "alerts_recovered", "alerts_lost", "alerts_false_alarm", "alerts_open")] == \
        [4, 4, 3, 1, 1, 2, 1, 0]
    assert july["handled_in_time_rate"] == 0.75 and july["recovery_rate"] == pytest.approx(1 / 3)
    assert rows(live, "alerts", team="east")["2026-07"]["handled_in_time_rate"] == pytest.approx(2 / 3)
    assert rows(live, "alerts", team="west")["2026-07"]["recovery_rate"] == 0.0
    june = alerts["2026-06"]   # a5, acknowledged after 2h and still open
    assert (june["alerts_open"], june["handled_in_time_rate"], june["recovery_rate"]) == (1, 1.0, None)
    week = rows(live, "alerts", period_kind="week", from_="2026-W27", to="2026-W27")["2026-W27"]
    assert week["alerts_raised"] == 3    # a5, a1 and a2 across the month boundary


def test_dashboard_live_and_as_of_a_past_day(live):
    board = live.dashboard(request(MGR_EAST, {"period": "2026-07"}))
    assert board["scope"] == {"team": "east"} and board["period"]["complete"] is True
    figures = board["figures"]
    assert (figures["active_base_at_start"], figures["churned"]) == (3, 1)
    assert figures["revenue"] == Decimal("860.50")   # east in July: 250.50 + 99.99 + 10.01 + 500.00
    assert [s["entered"] for s in board["funnel"]] == [1, 0, 1, 1]          # c6: first_contact, proposal, won
    assert board["alerts"]["raised"] == 3 and board["movements"]["tier"] == [{"from": "A", "to": "B", "moves": 1}]
    assert board["base"]["stocks_at"] == date(2026, 8, 11) and board["base"]["by_tier"] == {"A": 0, "B": 3, "C": 0}
    # the default: this quarter so far
    assert live.dashboard(request(ADMIN))["period"] == {"label": "2026-Q3", "kind": "quarter",
                                                        "start": date(2026, 7, 1), "end": date(2026, 10, 1),
                                                        "complete": False}
    # as of 2026-07-19 (end of day): the base on 07-20 - c1 90, c2 60, c3 30, c4 50, c5 20, c6 70 -> 320/6;
    # the default period is the last quarter ended by then (Q2)
    past = live.dashboard(request(ADMIN, {"as_of": "2026-07-19"}))
    assert past["period"]["label"] == "2026-Q2" and past["base"]["stocks_at"] == date(2026, 7, 20)
    assert past["base"]["average_health_score"] == pytest.approx(320 / 6)
    # c1 c2 c5 c6: c3 churned on 07-15, c5's churn is dated 07-20 itself, so not in yet
    assert past["base"]["active_base"] == 4 and past["base"]["by_lifecycle"]["churned"] == 1
    june = live.dashboard(request(ADMIN, {"as_of": "2026-07-19", "period": "2026-06"}))
    assert june["figures"]["revenue"] == Decimal("160.00") and june["alerts"]["open"] == 1
    # a period still running on a past as_of would mix in later events
    with pytest.raises(CrmError) as refused:
        live.dashboard(request(ADMIN, {"as_of": "2026-07-19", "period": "2026-07"}))
    assert refused.value.field == "period"
    with pytest.raises(CrmError) as future:
        live.dashboard(request(ADMIN, {"as_of": "2026-09-01"}))
    assert future.value.field == "as_of"


# ---------------------------------------------------------------- redelivery, any order, rebuild

def test_redelivery_changes_nothing(tmp_path):
    service = make_service(tmp_path)
    assert feed(service, HISTORY) == [[e] for e in HISTORY]
    before = counters_of(service)
    assert feed(service, HISTORY) == [[]] * len(HISTORY)          # every one a duplicate
    assert feed(service, random.Random(3).sample(HISTORY, len(HISTORY))) == [[]] * len(HISTORY)
    assert service.apply_events(HISTORY) == []
    assert counters_of(service) == before


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_any_arrival_order_gives_the_same_counters(tmp_path, live, seed):
    shuffled = random.Random(seed).sample(HISTORY, len(HISTORY))
    service = make_service(tmp_path, f"shuffled{seed}")
    feed(service, shuffled)
    assert counters_of(service) == counters_of(live)


def test_reversed_order_gives_the_same_counters(tmp_path, live):
    service = make_service(tmp_path)
    feed(service, list(reversed(HISTORY)))
    assert counters_of(service) == counters_of(live)


def test_an_event_ahead_of_its_customer_counts_as_none_until_the_customer_arrives(tmp_path):
    service = make_service(tmp_path)
    created = next(e for e in HISTORY if e.name == "customer.created" and e.subject == "c1")
    first = next(e for e in HISTORY if e.name == "purchase.recorded" and e.subject == "c1")
    feed(service, [first])
    june = rows(service, "repurchase", breakdown="team")
    assert june[("2026-06", "(none)")]["buyers"] == 1
    feed(service, [created])
    june = rows(service, "repurchase", breakdown="team")
    assert june[("2026-06", "east")]["buyers"] == 1 and ("2026-06", "(none)") not in june   # emptied: left out


def test_a_fact_dated_before_the_customer_was_created_takes_its_dimensions_at_creation(tmp_path):
    """A customer entered today with its purchase history: the history counts under its team, tier..."""
    h = Events()
    h.purchase("n1", "2026-05-10", "70.00")              # arrives first, and is dated before the creation
    h.create("n1", "2026-07-01", team="north", rep="r9", tier="B", lifecycle="potential", industry="food")
    h.purchase("n1", "2026-06-15", "30.00")
    service = make_service(tmp_path)
    feed(service, h.items[:1])
    assert rows(service, "repurchase", from_="2026-05", to="2026-05", breakdown="team")[
        ("2026-05", "(none)")]["purchases"] == 1       # nothing known about n1 yet
    feed(service, h.items[1:])
    by_team = rows(service, "repurchase", from_="2026-05", to="2026-06", breakdown="team")
    assert by_team[("2026-05", "north")]["buyers"] == 1 and ("2026-05", "(none)") not in by_team
    assert by_team[("2026-06", "north")]["repeat_buyers"] == 1
    assert rows(service, "repurchase", from_="2026-05", to="2026-05", breakdown="tier")[("2026-05", "B")][
        "revenue"] == Decimal("70.00")


def test_rebuild_wipes_and_replays_to_the_same_numbers(tmp_path, live):
    service = make_service(tmp_path)
    feed(service, HISTORY)
    before = counters_of(service)
    replays = []

    def producer(name):
        proxy = MagicMock()

        def replay(consumer, keys):
            assert consumer == "reports"
            events = [e for e in HISTORY if e.routing_key in keys]
            replays.append((name, len(events)))
            feed(service, random.Random(len(keys)).sample(events, len(events)))   # producers interleave
            return MagicMock(result=MagicMock(return_value=len(events)))

        proxy.replay_events.call_async.side_effect = replay
        return proxy

    service.customers_rpc, service.followups_rpc, service.alerts_rpc = (producer(n) for n in
                                                                        ("customers", "followups", "alerts"))
    status, body = service.rebuild(request(ADMIN, method="POST"))
    assert status == 200 and body["errors"] == {} and body["still_replaying"] == []
    assert body["wiped"]["counters"] >= len(before) and body["wiped"]["processed_events"] == len(HISTORY)
    assert sum(body["replayed"].values()) == len(HISTORY) and {n for n, _ in replays} == {"customers", "followups",
                                                                                           "alerts"}
    assert counters_of(service) == before == counters_of(live)
    assert service.status(request(ADMIN))["events_applied"] == len(HISTORY)


def test_a_live_event_that_overtook_the_replay_hides_none_of_the_history(tmp_path, live):
    """Numbered events: after the wipe a live event of a customer comes first, then the producers'
    replays of everything (that event included); the replayed older events are not stale."""
    events = history(numbered=True)
    service = make_service(tmp_path)
    feed(service, events)
    before = counters_of(service)
    overtaking = next(e for e in reversed(events) if e.subject == "c5" and e.source == "crm/customers")

    def producer(name):
        proxy = MagicMock()

        def replay(consumer, keys):
            if name == "customers":
                assert service.apply_events([overtaking]) == [overtaking]   # live, right after the wipe
            replayed = [replace(e, replayed=True) for e in events if e.routing_key in keys]
            feed(service, replayed)
            return MagicMock(result=MagicMock(return_value=len(replayed)))

        proxy.replay_events.call_async.side_effect = replay
        return proxy

    service.customers_rpc, service.followups_rpc, service.alerts_rpc = (producer(n) for n in
                                                                        ("customers", "followups", "alerts"))
    status, body = service.rebuild(request(ADMIN, method="POST"))
    assert status == 200 and body["wiped"]["stream_positions"] > 0
    assert counters_of(service) == before == counters_of(live)


def test_rebuild_reports_a_producer_that_does_not_answer(tmp_path):
    service = make_service(tmp_path)
    service.customers_rpc.replay_events.call_async.return_value = MagicMock(result=MagicMock(return_value=3))
    service.followups_rpc.replay_events.call_async.side_effect = RuntimeError("no followups service")
    service.alerts_rpc.replay_events.call_async.return_value = MagicMock(result=MagicMock(return_value=0))
    status, body = service.rebuild(request(ADMIN, method="POST"))
    assert status == 502 and "followups" in body["errors"] and body["replayed"] == {"customers": 3, "alerts": 0}
    with pytest.raises(Forbidden):
        service.rebuild(request(MGR_EAST, method="POST"))


def test_the_table_of_consumed_events_is_what_a_rebuild_replays(tmp_path):
    table = projections.CONSUMES
    replayed = [key for keys in table.replay_plan().values() for key in keys]
    assert sorted(replayed) == sorted(table.routing_keys) and len(replayed) == len(table.handlers)
    # events that move no counter are not consumed at all (neither bound nor replayed)
    for name in ("task.scheduled", "task.due", "task.rescheduled", "task.reassigned"):
        assert name not in table.handlers
    h = Events()
    h.task("t8", "c1", "2026-09-01", "scheduled", "r1", "east", when="2026-08-05")
    with pytest.raises(EventFailed) as refused:
        make_service(tmp_path).apply_events(h.items)
    assert isinstance(refused.value.error, EventRejected)


# ---------------------------------------------------------------- role rules

def test_rep_sees_own_figures_only(live):
    assert table(live, "repurchase", R1)["scope"] == {"rep": "r1"}
    assert rows(live, "repurchase", R1)["2026-07"]["repurchase_rate"] == 0.5
    assert rows(live, "repurchase", R1, breakdown="tier")[("2026-07", "A")]["repeat_buyers"] == 1
    for query in ({"team": "east"}, {"rep": "r2"}, {"breakdown": "rep"}, {"breakdown": "team"}):
        with pytest.raises(Forbidden):
            table(live, "churn", R1, **query)
    with pytest.raises(Forbidden):
        live.chart(request(R1), "coverage")


def test_manager_sees_own_team_and_its_reps(live):
    assert table(live, "churn", MGR_EAST)["scope"] == {"team": "east"}
    reps = {r["rep"] for r in table(live, "followups", MGR_EAST, breakdown="rep")["rows"]}
    assert reps == {"r1", "r2"}  # not the manager m-east, whom no figure names: no row of zeros
    assert rows(live, "repurchase", MGR_EAST, rep="r2")["2026-07"]["buyers"] == 2    # c2 c6
    for query in ({"team": "west"}, {"rep": "r3"}, {"breakdown": "team"}):
        with pytest.raises(Forbidden):
            table(live, "churn", MGR_EAST, **query)
    with pytest.raises(Forbidden):
        live.dashboard(request(MGR_WEST, {"team": "east"}))


def test_admin_sees_everything(live):
    teams = {r["team"] for r in table(live, "churn", breakdown="team")["rows"]}
    assert teams == {"east", "west"}
    assert live.status(request(ADMIN))["customers"] == 7
    with pytest.raises(Forbidden):
        live.status(request(MGR_EAST))


# ---------------------------------------------------------------- parameters, CSV, charts

@pytest.mark.parametrize("query, field", [
    ({"from": "2026-13"}, "from"), ({"to": "July"}, "to"), ({"from": "2026-08", "to": "2026-06"}, "from"),
    ({"period_kind": "day", "from": "2020-01-01"}, "from"),
])
def test_bad_ranges_name_the_parameter(live, query, field):
    with pytest.raises(CrmError) as err:
        live.figure(request(ADMIN, query), "churn")
    assert err.value.field == field and err.value.status == 400


@pytest.mark.parametrize("query, field", [
    ({"period_kind": "decade"}, "period_kind"), ({"breakdown": "colour"}, "breakdown"), ({"format": "xml"}, "format"),
    ({"colour": "red"}, "colour"),
])
def test_bad_parameters_name_the_parameter(live, query, field):
    with pytest.raises(ValidationError) as err:
        live.figure(request(ADMIN, query), "churn")
    assert field in err.value.messages


def test_unknown_figure_chart_and_bad_combinations(live):
    with pytest.raises(NotFound):
        live.figure(request(ADMIN), "happiness")
    with pytest.raises(NotFound):
        live.chart(request(ADMIN), "pie")
    with pytest.raises(CrmError) as both:
        live.figure(request(ADMIN, {"team": "east", "rep": "r1"}), "churn")
    assert both.value.field == "rep"
    with pytest.raises(CrmError) as combo:
        live.figure(request(ADMIN, {"team": "east", "breakdown": "team"}), "churn")
    assert combo.value.field == "breakdown"
    with pytest.raises(CrmError) as period:
        live.dashboard(request(ADMIN, {"period": "2026-Q5"}))
    assert period.value.field == "period"


def test_every_table_exports_csv(live):
    for figure in ("summary", "churn", "repurchase", "followups", "interactions", "satisfaction", "funnel", "alerts",
                   "health", "movements"):
        response = live.figure(request(ADMIN, {"from": "2026-06", "to": "2026-07", "breakdown": "team",
                                               "format": "csv"}), figure)
        assert isinstance(response, Response) and response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        parsed = list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))
        assert parsed[0][:2] == ["period", "team"], figure
    text = live.figure(request(ADMIN, {"from": "2026-07", "to": "2026-07", "format": "csv"}), "repurchase") \
        .get_data(as_text=True)
    assert text == ("period,purchases,revenue,buyers,repeat_buyers,repurchase_rate\r\n"
                    "2026-07,5,900.50,4,3,0.75\r\n")
    churn = live.figure(request(ADMIN, {"from": "2026-06", "to": "2026-06", "format": "csv"}), "churn")
    assert churn.get_data(as_text=True).split("\r\n")[1] == "2026-06,0,0,,"    # no rate: an empty cell
    dist = live.distribution(request(ADMIN, {"dimension": "tier", "as_of": "2026-07-31", "format": "csv"}))
    assert dist.get_data(as_text=True) == "value,customers\r\nA,0\r\nB,3\r\nC,3\r\n"
    board = live.dashboard(request(ADMIN, {"period": "2026-07", "format": "csv"}))
    header, line = list(csv.reader(io.StringIO(board.get_data(as_text=True), newline="")))[:2]
    assert dict(zip(header, line))["churn_rate"] == "0.5"


def test_charts_are_svg_documents(live):
    ns = "{http://www.w3.org/2000/svg}"
    for name, query in (("churn", {"from": "2026-06", "to": "2026-08", "breakdown": "team"}),
                        ("repurchase", {"from": "2026-06", "to": "2026-08"}),
                        ("funnel", {"period": "2026-07"}), ("coverage", {"period": "2026-07", "team": "east"})):
        response = live.chart(request(ADMIN, query), name)
        assert response.mimetype == "image/svg+xml"
        root = ET.fromstring(response.get_data(as_text=True))
        assert root.tag == f"{ns}svg", name
    churn = ET.fromstring(live.chart(request(ADMIN, {"from": "2026-06", "to": "2026-08", "breakdown": "team"}),
                                     "churn").get_data(as_text=True))
    assert [g.get("data-series") for g in churn.iter() if "series" in g.get("class", "").split()] == ["east", "west"]
    funnel = ET.fromstring(live.chart(request(MGR_EAST, {"period": "2026-07"}), "funnel").get_data(as_text=True))
    assert [el.text for el in funnel.iter() if el.get("class") == "stage-label"] == [
        "first_contact: 1", "needs_analysis: 0 (0%)", "proposal: 1", "won: 1 (100%)"]
    coverage = ET.fromstring(live.chart(request(MGR_EAST, {"period": "2026-07"}), "coverage").get_data(as_text=True))
    bars = {el.get("data-label"): el for el in coverage.iter() if el.get("class") == "bar"}
    assert set(bars) == {"r1"}   # r2 had only a skipped task (no rate: "n/a"), m-east nothing


def test_the_migrations_build_the_read_models_of_models_py(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = f"sqlite:///{tmp_path}/migrated.db"
    upgrade("reports", url)
    engine = make_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                       models.metadata)
    engine.dispose()

    def table_of(difference):
        op = difference[0] if isinstance(difference, list) else difference
        if op[0] in ("add_table", "remove_table"):
            return op[1].name
        if op[0] in ("add_index", "remove_index"):
            return op[1].table.name
        return op[2]

    ours = {t.name for t in models.READ_MODELS}
    assert [d for d in differences if table_of(d) in ours] == []


def test_settings_from_environment():
    settings = ReportSettings.from_settings({"REPORTS_ACK_SLA_HOURS": "24", "REPORTS_MAX_PERIODS": "50",
                                             "REPORTS_DATABASE_URL": "sqlite://"})
    assert settings.ack_sla.total_seconds() == 86400 and settings.max_periods == 50
    with pytest.raises(ValueError):
        ReportSettings.from_settings({"REPORTS_DEFAULT_PERIODS": "0"})


def test_counters_are_read_not_scanned(live):
    """A dashboard's figures come from a few indexed reads of counters, whatever the number of facts."""
    from services.reports import domain as d

    july = d.parse_period("2026-07")
    with live.store() as uow:
        statements = []
        execute = uow.session.execute
        uow.session.execute = lambda statement, *a, **k: statements.append(str(statement)) or execute(statement, *a, **k)
        src = counter_table.SqlCounters(uow.session)
        src.preload_flows([d.ALL], [july])
        src.preload_stocks([d.ALL], [july.start, july.end])
        assert d.headline_figures(src, july)["revenue"] == Decimal("900.50")
    # the flows of the month, then the stocks: quarter buckets, month buckets (no day buckets at month starts)
    assert len(statements) == 3 and all("FROM counters" in s and "customer_records" not in s for s in statements)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_random_histories_count_the_same_in_any_order(tmp_path, seed):
    events = random_history(seed)
    in_time = sorted(events, key=lambda e: e.time)
    reference = make_service(tmp_path, "in-time")
    feed(reference, in_time)
    expected = counters_of(reference)
    assert expected
    for name, order in (("shuffled", random.Random(seed).sample(events, len(events))),
                        ("reversed", list(reversed(in_time)))):
        service = make_service(tmp_path, name)
        feed(service, order)
        assert counters_of(service) == expected, name
