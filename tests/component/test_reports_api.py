"""The reports API over HTTP in embedded mode (all services in one process, memory bus, SQLite).

Facts are created through the customers API (reps, customers, purchases, stage moves)
and reach the reports service as events; each test uses its own team so figures are
its own. Follow-up facts are published straight to the reports partition their
subject lands in, standing in for the followups producer. Waits poll with a deadline.
"""
import csv
import io
import time
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET
from crm_common.consumer import replay_route
from crm_common.events import make_event, to_envelope
from crm_common.outbox import BrokerPublisher
from services.reports.domain import Period

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SVG = "{http://www.w3.org/2000/svg}"


def eventually(check, timeout=30.0, interval=0.1):
    """Retry `check` (which asserts) until it passes or the deadline is over."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


@pytest.fixture(scope="module")
def api(embedded_system):
    return embedded_system.base_url


@pytest.fixture
def headers(token):
    return lambda user="admin", role="admin", team=None: {"Authorization": f"Bearer {token(user, role, team)}"}


def month(moment) -> str:
    return Period.containing("month", moment).label


def get(api, path, hdrs, **params):
    return requests.get(f"{api}{path}", params=params, headers=hdrs, timeout=30)


@pytest.fixture(scope="module")
def book(api):
    """A team (a manager, two reps), three customers, purchases and a won deal - and what they add up to."""
    admin = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}
    team = f"rt{uuid.uuid4().hex[:6]}"
    for rep, role in ((f"{team}-mgr", "manager"), (f"{team}-r1", "rep"), (f"{team}-r2", "rep")):
        r = requests.post(f"{api}/v1/reps", json={"id": rep, "name": rep, "team": team, "role": role}, headers=admin)
        assert r.status_code == 201, r.text

    def create(owner, industry, **extra):
        r = requests.post(f"{api}/v1/customers", headers=admin,
                          json={"company": f"{team} {owner} {industry}", "owner_id": owner, "industry": industry,
                                **extra})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    a = create(f"{team}-r1", "retail")
    b = create(f"{team}-r2", "food")
    c = create(f"{team}-r1", "retail", created_at=(NOW - timedelta(days=60)).isoformat())
    purchases = [(a, NOW - timedelta(days=100), "30000.00"), (a, NOW - timedelta(days=40), "30000.00"),
                 (a, NOW - timedelta(days=10), "30000.00"), (b, NOW - timedelta(days=40), "5000.00")]
    for customer, when, amount in purchases:
        r = requests.post(f"{api}/v1/customers/{customer}/purchases", headers=admin,
                          json={"amount": amount, "currency": "USD", "purchased_at": when.isoformat()})
        assert r.status_code == 201, r.text
    stages = [("needs_analysis", NOW - timedelta(days=30)), ("proposal", NOW - timedelta(days=20)),
              ("won", NOW - timedelta(days=5))]
    for stage, when in stages:
        r = requests.post(f"{api}/v1/customers/{c}/stage", headers=admin,
                          json={"stage": stage, "changed_at": when.isoformat()})
        assert r.status_code == 200, r.text
    # the figures by definition (docs/reports-definitions.md), per month of this small history
    first = {}
    for customer, when, _ in sorted(purchases, key=lambda p: p[1]):
        first.setdefault(customer, when)
    expected = defaultdict(lambda: {"purchases": 0, "revenue": Decimal(0), "buyers": set(), "repeat": set()})
    for customer, when, amount in purchases:
        row = expected[month(when)]
        row["purchases"] += 1
        row["revenue"] += Decimal(amount)
        row["buyers"].add(customer)
        if when > first[customer]:
            row["repeat"].add(customer)
    entered = defaultdict(lambda: defaultdict(int))
    entered[month(NOW)]["first_contact"] += 2                       # a and b, created now in first_contact
    entered[month(NOW - timedelta(days=60))]["first_contact"] += 1  # c, created 60 days ago
    for stage, when in stages:
        entered[month(when)][stage] += 1
    return {"team": team, "customers": (a, b, c), "repurchase": expected, "entered": entered,
            "months": sorted({*expected, *entered})}


def repurchase_rows(api, hdrs, **params):
    r = get(api, "/v1/reports/repurchase", hdrs, period_kind="month", **{"from": month(NOW - timedelta(days=100))},
            to=month(NOW), **params)
    assert r.status_code == 200, r.text
    return r.json()


def test_figures_follow_the_customers_api(api, headers, book):
    admin, team = headers(), book["team"]

    def repurchase_matches():
        rows = {row["period"]: row for row in repurchase_rows(api, admin, team=team)["rows"]}
        for label, want in book["repurchase"].items():
            got = rows[label]
            assert (got["purchases"], Decimal(got["revenue"]), got["buyers"], got["repeat_buyers"]) == \
                (want["purchases"], want["revenue"], len(want["buyers"]), len(want["repeat"])), label
            assert got["repurchase_rate"] == len(want["repeat"]) / len(want["buyers"])

    eventually(repurchase_matches)

    def funnel_matches():
        r = get(api, "/v1/reports/funnel", admin, team=team, **{"from": book["months"][0]}, to=book["months"][-1])
        rows = {row["period"]: row for row in r.json()["rows"]}
        for label, stages in book["entered"].items():
            for stage in ("first_contact", "needs_analysis", "proposal", "won"):
                assert rows[label][f"entered_{stage}"] == stages.get(stage, 0), (label, stage)
        won = rows[month(NOW - timedelta(days=5))]
        assert won["win_rate"] == 1.0 and won["average_cycle_days"] == 55.0   # first contact 60 days, won 5 ago

    eventually(funnel_matches)

    def tiers_match():
        r = get(api, "/v1/reports/distribution", admin, dimension="tier", team=team)
        # a: 90000 in the last 12 months -> B; b: 5000 -> C; c never bought -> C
        assert {v["value"]: v["customers"] for v in r.json()["values"]} == {"A": 0, "B": 1, "C": 2}

    eventually(tiers_match)
    board = get(api, "/v1/reports/dashboard", admin, team=team, period=month(NOW - timedelta(days=10))).json()
    assert board["scope"] == {"team": team} and board["base"]["by_tier"] == {"A": 0, "B": 1, "C": 2}
    assert Decimal(board["figures"]["revenue"]) == book["repurchase"][month(NOW - timedelta(days=10))]["revenue"]


def test_roles_over_http(api, headers, book):
    team = book["team"]
    r1, mgr = headers(f"{team}-r1", "rep", team), headers(f"{team}-mgr", "manager", team)
    mine = repurchase_rows(api, r1)
    assert mine["scope"] == {"rep": f"{team}-r1"}
    assert sum(row["purchases"] for row in mine["rows"]) == 3          # a's three purchases, none of b's
    assert get(api, "/v1/reports/repurchase", r1, team=team).status_code == 403
    assert get(api, "/v1/reports/repurchase", r1, rep=f"{team}-r2").status_code == 403
    assert get(api, "/v1/reports/repurchase", r1, breakdown="rep").status_code == 403
    per_rep = repurchase_rows(api, mgr, breakdown="rep")
    assert per_rep["scope"] == {"team": team}
    assert {row["rep"] for row in per_rep["rows"]} == {f"{team}-r1", f"{team}-r2"}  # the manager: no figures, no row
    assert sum(row["purchases"] for row in per_rep["rows"] if row["rep"] == f"{team}-r2") == 1
    assert get(api, "/v1/reports/repurchase", mgr, team="someone-else").status_code == 403
    assert get(api, "/v1/reports/repurchase", mgr, breakdown="team").status_code == 403
    assert get(api, "/v1/reports/repurchase", headers()).json()["scope"] == {}
    assert requests.get(f"{api}/v1/reports/dashboard").status_code == 401
    assert get(api, "/v1/reports/status", mgr).status_code == 403
    assert requests.post(f"{api}/v1/reports/rebuild", headers=mgr).status_code == 403


def test_bad_parameters_answer_400_naming_them(api, headers):
    admin = headers()
    for params, field in (({"period_kind": "decade"}, "period_kind"), ({"from": "2026-13"}, "from"),
                          ({"breakdown": "colour"}, "breakdown"), ({"colour": "red"}, "colour")):
        r = get(api, "/v1/reports/churn", admin, **params)
        assert r.status_code == 400 and field in r.json()["fields"], (params, r.text)
    r = get(api, "/v1/reports/dashboard", admin, period="2026-Q5")
    assert r.status_code == 400 and "period" in r.json()["fields"]
    assert get(api, "/v1/reports/happiness", admin).status_code == 404
    assert get(api, "/v1/reports/charts/pie.svg", admin).status_code == 404


def test_csv_and_charts_over_http(api, headers, book):
    admin, team = headers(), book["team"]

    def csv_rows():
        r = get(api, "/v1/reports/repurchase", admin, team=team, breakdown="industry", format="csv",
                **{"from": month(NOW - timedelta(days=100))}, to=month(NOW))
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in r.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text, newline="")))
        assert list(rows[0])[:2] == ["period", "industry"]
        assert sum(int(row["purchases"]) for row in rows if row["industry"] == "retail") == 3   # a's
        assert sum(int(row["purchases"]) for row in rows if row["industry"] == "food") == 1     # b's

    eventually(csv_rows)
    for name, params in (("churn", {"team": team, "breakdown": "rep"}), ("repurchase", {"team": team}),
                         ("funnel", {"team": team, "period": month(NOW - timedelta(days=5))}),
                         ("coverage", {"team": team})):
        r = get(api, f"/v1/reports/charts/{name}.svg", admin, **params)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("image/svg+xml"), (name, r.text)
        root = ET.fromstring(r.text)
        assert root.tag == f"{SVG}svg" and root.find(f"{SVG}title").text
    funnel = ET.fromstring(get(api, "/v1/reports/charts/funnel.svg", admin, team=team,
                               period=month(NOW - timedelta(days=5))).text)
    assert any(el.get("data-stage") == "won" for el in funnel.iter())


def test_followup_figures_from_published_events(api, headers):
    """Task outcomes and an interaction, published to the reports queues as the followups service would."""
    team = f"ft{uuid.uuid4().hex[:6]}"
    customer, rep = f"{team}-c1", f"{team}-r1"
    due = NOW - timedelta(days=3)
    publisher = BrokerPublisher("memory://")

    def publish(name, data, source):
        event = make_event(name, data["customer_id"], data, source=source, time=NOW)
        exchange, routing_key = replay_route("reports", event.routing_key, "memory://")  # where its subject lands
        publisher.publish(to_envelope(event), exchange, routing_key)

    publish("customer.created", {"customer_id": customer, "company": "Synthetic", "owner_id": rep, "team": team,
                                 "tier": "C", "lifecycle": "active", "created_at": NOW - timedelta(days=30)},
            "crm/customers")
    task = {"customer_id": customer, "assignee_id": rep, "team": team, "kind": "follow_up", "due_at": due}
    publish("task.completed", {**task, "task_id": f"{team}-t1", "completed_at": due, "on_time": True},
            "crm/followups")
    publish("task.missed", {**task, "task_id": f"{team}-t2", "missed_at": NOW}, "crm/followups")
    publish("interaction.logged", {"interaction_id": f"{team}-i1", "customer_id": customer, "rep_id": rep,
                                   "team": team, "kind": "call", "phase": "post_sale", "occurred_at": due,
                                   "outcome": "reached", "satisfaction": 4}, "crm/followups")
    # the manager reading the figures, in reports' copy of the reps directory (every request is checked there)
    manager = make_event("rep.registered", f"{team}-mgr", {
        "rep_id": f"{team}-mgr", "name": "Manager", "email": None, "team": team, "role": "manager",
        "manager_id": None, "active": True}, source="crm/customers", time=NOW)
    exchange, routing_key = replay_route("reports", manager.routing_key, "memory://")
    publisher.publish(to_envelope(manager), exchange, routing_key)
    publisher.close()
    mgr = headers(f"{team}-mgr", "manager", team)

    def counted():
        r = get(api, "/v1/reports/followups", mgr, period_kind="month", **{"from": month(due)}, to=month(due))
        row = r.json()["rows"][0]
        assert (row["tasks_came_due"], row["tasks_missed"], row["customers_due"], row["customers_touched"]) == \
            (2, 1, 1, 1)
        assert row["missed_followup_rate"] == 0.5 and row["followup_coverage"] == 1.0
        talks = get(api, "/v1/reports/interactions", mgr, **{"from": month(due)}, to=month(due)).json()["rows"][0]
        assert (talks["interactions_post_sale"], talks["average_satisfaction"]) == (1, 4.0)

    eventually(counted)


def test_rebuild_over_http_gives_the_same_numbers(api, headers, book):
    admin, team = headers(), book["team"]

    def snapshot():
        return (repurchase_rows(api, admin, team=team)["rows"],
                get(api, "/v1/reports/funnel", admin, team=team, **{"from": book["months"][0]},
                    to=book["months"][-1]).json()["rows"],
                get(api, "/v1/reports/distribution", admin, dimension="industry", team=team).json()["values"])

    before = eventually(lambda: _settled(snapshot))
    r = requests.post(f"{api}/v1/reports/rebuild", headers=admin, timeout=120)
    assert r.status_code in (200, 202), r.text
    assert r.json()["errors"] == {} and r.json()["replayed"]["customers"] > 0
    eventually(lambda: _same(snapshot(), before), timeout=60)
    status = get(api, "/v1/reports/status", admin).json()
    assert status["customers"] >= 3 and status["counter_rows"] > 0


def _settled(snapshot):
    first = snapshot()
    time.sleep(0.3)
    assert snapshot() == first
    return first


def _same(now, before):
    assert now == before


def test_years_halves_and_custom_ranges_count_each_buyer_once(api, headers, book):
    """a bought 100, 40 and 10 days ago, b 40 days ago: over a range holding them all there are two buyers
    and one repeat buyer, however many months (or quarters) the purchases fall in."""
    admin, team = headers(), book["team"]
    first, last = (NOW - timedelta(days=100)).date(), NOW.date()
    a, b, _ = book["customers"]
    bought = [(a, NOW - timedelta(days=100)), (a, NOW - timedelta(days=40)), (a, NOW - timedelta(days=10)),
              (b, NOW - timedelta(days=40))]

    def by_hand(kind):
        found = defaultdict(lambda: (set(), set()))
        for customer, when in bought:
            buyers, repeat = found[Period.containing(kind, when).label]
            buyers.add(customer)
            if when > min(w for c, w in bought if c == customer):
                repeat.add(customer)
        return {label: (len(buyers), len(repeat)) for label, (buyers, repeat) in found.items()}

    def ranged():
        r = get(api, "/v1/reports/repurchase", admin, team=team, period_kind="range",
                **{"from": first.isoformat()}, to=last.isoformat())
        assert r.status_code == 200, r.text
        [row] = r.json()["rows"]
        assert row["period"] == f"{first.isoformat()}..{last.isoformat()}"
        assert (row["purchases"], row["buyers"], row["repeat_buyers"], row["repurchase_rate"]) == (4, 2, 1, 0.5)
        months = repurchase_rows(api, admin, team=team)["rows"]
        assert sum(m["buyers"] for m in months) > 2            # what adding months up would have said

    eventually(ranged)
    for kind in ("half", "year"):
        r = get(api, "/v1/reports/repurchase", admin, team=team, period_kind=kind, **{"from": first.isoformat()},
                to=last.isoformat())
        assert r.status_code == 200, r.text
        got = {row["period"]: (row["buyers"], row["repeat_buyers"]) for row in r.json()["rows"] if row["buyers"]}
        assert got == by_hand(kind), kind
    board = get(api, "/v1/reports/dashboard", admin, team=team, **{"from": first.isoformat()}, to=last.isoformat())
    assert board.status_code == 200, board.text
    assert board.json()["period"]["kind"] == "range"
    assert (board.json()["figures"]["buyers"], board.json()["figures"]["repeat_buyers"]) == (2, 1)
    csv_answer = get(api, "/v1/reports/repurchase", admin, team=team, period_kind="range", format="csv",
                     **{"from": first.isoformat()}, to=last.isoformat())
    assert list(csv.DictReader(io.StringIO(csv_answer.text, newline="")))[0]["buyers"] == "2"


def test_bad_ranges_answer_400_naming_the_field(api, headers):
    admin = headers()
    for path, params, field in (
            ("/v1/reports/churn", {"period_kind": "range", "from": "2026-02-10"}, "to"),
            ("/v1/reports/churn", {"period_kind": "range", "from": "2026-05-21", "to": "2026-05-20"}, "from"),
            ("/v1/reports/churn", {"period_kind": "range", "from": "2024-01-01", "to": "2026-01-01"}, "to"),
            ("/v1/reports/churn", {"period_kind": "range", "from": "2026-02-30", "to": "2026-03-01"}, "from"),
            ("/v1/reports/churn", {"period_kind": "year", "from": "2026-H3"}, "from"),
            ("/v1/reports/dashboard", {"from": "2026-02-10"}, "to"),
            ("/v1/reports/dashboard", {"period": "2026", "from": "2026-01-01", "to": "2026-01-02"}, "period"),
            ("/v1/reports/dashboard", {"period": "2026-01-01..2027-06-01"}, "period")):
        r = get(api, path, admin, **params)
        assert r.status_code == 400 and field in r.json()["fields"], (params, r.text)


def test_the_customers_behind_a_figure_are_as_many_as_it_says_and_in_scope(api, headers, book):
    """a bought 100, 40 and 10 days ago, b 40 days ago, c was won 5 days ago (docs/openapi: /v1/reports/customers)."""
    admin, team = headers(), book["team"]
    a, b, c = book["customers"]
    span = {"from": (NOW - timedelta(days=100)).date().isoformat(), "to": NOW.date().isoformat()}

    def behind(hdrs=admin, **params):
        r = get(api, "/v1/reports/customers", hdrs, **params)
        assert r.status_code == 200, r.text
        return r.json()

    def buyers_listed():
        listed = behind(metric="buyers", team=team, **span)
        board = get(api, "/v1/reports/dashboard", admin, team=team, **span).json()
        assert listed["total"] == board["figures"]["buyers"] == 2
        assert sorted(i["customer_id"] for i in listed["items"]) == sorted([a, b])
        assert {i["customer_id"]: i["first_day"] for i in listed["items"]}[a] == span["from"]

    eventually(buyers_listed)
    assert [i["customer_id"] for i in behind(metric="repeat_buyers", team=team, **span)["items"]] == [a]
    assert [i["customer_id"] for i in behind(metric="stage.entered:won", team=team, **span)["items"]] == [c]
    assert [i["customer_id"] for i in behind(metric="buyers", team=team, industry="food", **span)["items"]] == [b]
    first = behind(metric="buyers", team=team, limit=1, **span)
    second = behind(metric="buyers", team=team, limit=1, cursor=first["next_cursor"], **span)
    assert [first["items"][0]["customer_id"], second["items"][0]["customer_id"]] == sorted([a, b])
    assert second["next_cursor"] is None
    # a rep sees only their own customers behind a figure; another team's manager is refused
    rep_one = behind(headers(f"{team}-r1", "rep", team), metric="buyers", **span)
    assert [i["customer_id"] for i in rep_one["items"]] == [a] and rep_one["scope"] == {"rep": f"{team}-r1"}
    outsider = f"{team}-other-mgr"
    requests.post(f"{api}/v1/reps", headers=admin, timeout=30,
                  json={"id": outsider, "name": outsider, "team": f"{team}-other", "role": "manager"})
    eventually(lambda: _status(get(api, "/v1/reports/customers", headers(outsider, "manager", f"{team}-other"),
                                   metric="buyers", team=team), 403))
    for params, field in (({"metric": "revenue"}, "metric"), ({"metric": "buyers", "limit": "0"}, "limit"),
                          ({"metric": "buyers", "tier": "A", "industry": "food"}, "industry"),
                          ({"metric": "buyers", "from": "2026-02-10"}, "to")):
        r = get(api, "/v1/reports/customers", admin, **params)
        assert r.status_code == 400 and field in r.json()["fields"], (params, r.text)


def _status(answer, expected):
    assert answer.status_code == expected, answer.text
