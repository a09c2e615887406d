"""Alerts end to end over HTTP: all four services in-process on the memory bus (the embedded system).

Reps, customers and backdated purchase histories go in through the customers API; interactions through the
followups API. Then: a live unanswered streak raises an alert at once; the sweep raises silence; customers flags the
customer at risk; followups opens the recall task; the rep acknowledges and resolves; customers unflags.
Every test builds its own world (reps in teams of their own, four customers), so each passes alone and in any
order.
"""
from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests


NOW = datetime.now(timezone.utc)
PURCHASE_DAYS = (310, 280, 250, 220, 190, 160, 130, 100, 70, 40, 10)


def wait_for(check, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):
    """Poll until check() returns something truthy; fail with what after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Client:
    def __init__(self, base_url: str, token: str):
        self.base_url, self.token = base_url, token

    def call(self, method: str, path: str, body=None, **params):
        response = requests.request(method, self.base_url + path, json=body, params=params or None, timeout=60,
                                    headers={"Authorization": f"Bearer {self.token}"})
        return response.status_code, (response.json() if response.content else None)

    def get(self, path, **params):
        return self.call("GET", path, **params)

    def post(self, path, body=None):
        return self.call("POST", path, body)


@pytest.fixture(scope="module")
def system(embedded_system):
    """The embedded system, and a number for each test's own reps and teams."""
    from crm_common.auth import issue_token
    from crm_common.config import DEV_SECRET

    def client(user, role, team=None):
        return Client(embedded_system.base_url, issue_token(DEV_SECRET, user, role, team))

    return {"client": client, "worlds": itertools.count(1)}


@pytest.fixture
def world(system):
    """A world of its own for each test: its reps, in teams of their own, and four customers with backdated
    histories. So each test sees only what it did (the sweep is global, the scopes and assertions are not),
    and the tests pass alone and in any order."""
    k, client = next(system["worlds"]), system["client"]
    north, south = f"north-{k}", f"south-{k}"
    w = {"admin": client("admin", "admin"), "mgr": client(f"mgr-north-{k}", "manager", north),
         "n1": client(f"rep-n1-{k}", "rep", north), "s1": client(f"rep-s1-{k}", "rep", south), "ids": {},
         "rep_n1": f"rep-n1-{k}", "north": north}
    for rep in ({"id": f"mgr-north-{k}", "name": "North Manager", "team": north, "role": "manager"},
                {"id": f"rep-n1-{k}", "name": "Nia North", "team": north, "manager_id": f"mgr-north-{k}"},
                {"id": f"rep-s1-{k}", "name": "Sam South", "team": south}):
        status, body = w["admin"].post("/v1/reps", rep)
        assert status == 201, body

    for name, owner in (("quiet", f"rep-n1-{k}"), ("happy", f"rep-n1-{k}"), ("streak", f"rep-n1-{k}"),
                        ("south", f"rep-s1-{k}")):
        status, body = w["admin"].post("/v1/customers/import", {
            "customer": {"company": f"{name.title()} Corp {k}", "owner_id": owner,
                         "created_at": (NOW - timedelta(days=400)).isoformat()},
            "stages": [{"stage": "won", "changed_at": (NOW - timedelta(days=320)).isoformat()}],
            "purchases": [{"amount": "3000.00", "currency": "USD", "external_ref": f"{name}-{k}-{d}",
                           "purchased_at": (NOW - timedelta(days=d)).isoformat()} for d in PURCHASE_DAYS],
        })
        assert status == 201, body
        w["ids"][name] = body["id"]
    for name, days in (("quiet", 40), ("happy", 3), ("streak", 10), ("south", 45)):
        log_interaction(w, name, NOW - timedelta(days=days), "reached")
    for name in w["ids"]:
        wait_known(w, name)
    return w


def owner_client(w, name):
    return w["s1"] if name == "south" else w["n1"]


def log_interaction(w, name, occurred_at, outcome):
    customer_id = w["ids"][name]
    # followups learns about the customer from customer.created: wait until it accepts the touch
    def logged():
        status, body = owner_client(w, name).post("/v1/interactions", {
            "customer_id": customer_id, "kind": "call", "outcome": outcome,
            "occurred_at": occurred_at.isoformat()})
        return body if status == 201 else None
    wait_for(logged, what=f"followups to accept an interaction for {name}")


def health(w, name, client=None):
    return (client or w["admin"]).get(f"/v1/customers/{w['ids'][name]}/health")


def wait_known(w, name):
    """Until alerts has folded the customer's snapshot, all its purchases and its latest contact."""
    def folded():
        status, body = health(w, name)
        return status == 200 and body["signals"]["purchases_12m"] == len(PURCHASE_DAYS) \
            and body["signals"]["last_contact_at"] is not None
    wait_for(folded, what=f"alerts to fold {name}'s history")


def alerts_of(w, name, **params):
    status, body = w["admin"].get("/v1/alerts", customer_id=w["ids"][name], **params)
    assert status == 200, body
    return body["items"]


def sweep(w):
    status, result = w["admin"].post("/v1/alerts/sweep", {})
    assert status == 200, result
    return result


def raise_streak(w):
    """Three unanswered calls to "streak" today: the live fact raises unanswered_followups at once."""
    for hours in (3, 2, 1):
        log_interaction(w, "streak", NOW - timedelta(hours=hours), "no_answer")
    return wait_for(lambda: alerts_of(w, "streak"), what="the unanswered_followups alert")


# ---------------------------------------------------------------- tests

def test_a_backdated_history_raises_nothing_until_the_sweep(world):
    assert all(alerts_of(world, name) == [] for name in world["ids"])
    sweep(world)
    assert [a["rule"] for a in alerts_of(world, "quiet")] == ["silence"]
    assert alerts_of(world, "happy") == []


def test_a_live_unanswered_streak_raises_an_alert_at_once(world):
    [alert] = raise_streak(world)
    assert (alert["rule"], alert["status"], alert["trigger"]) == ("unanswered_followups", "open",
                                                                  "interaction.logged")
    assert alert["signals"][0]["name"] == "unanswered_followups" and alert["signals"][0]["value"] == 3
    assert alert["owner_id"] == world["rep_n1"] and alert["team"] == world["north"]
    sweep(world)                                         # the sweep raises no second one
    [streak] = alerts_of(world, "streak", rule="unanswered_followups")
    assert streak["id"] == alert["id"] and streak["status"] == "open"


def test_silence_to_alert_to_recall_task_to_resolution(world):
    rep = world["n1"]
    quiet = world["ids"]["quiet"]
    result = sweep(world)
    assert result["customers"] >= 4 and result["alerts_raised"] >= 2

    [alert] = alerts_of(world, "quiet")
    assert alert["rule"] == "silence" and alert["trigger"] == "sweep"
    signal = alert["signals"][0]
    assert (signal["name"], signal["threshold"]) == ("days_since_contact", 30)
    assert signal["value"] in (40, 41)                   # 41 if the run straddles midnight UTC
    assert alerts_of(world, "happy") == []
    [south] = alerts_of(world, "south")
    assert south["rule"] == "silence"

    # customers flags the customer at risk on alert.raised
    wait_for(lambda: (lambda s, b: s == 200 and b["flagged_at_risk"] and b["lifecycle"] == "at_risk")(
        *rep.get(f"/v1/customers/{quiet}")), what="customers to flag the customer at risk")
    # followups opens a recall task for the owner on alert.raised
    def recall_task():
        status, body = rep.get("/v1/tasks", customer_id=quiet, kind="recall")
        return status == 200 and body["items"]
    [task] = wait_for(recall_task, what="followups to open the recall task")
    assert task["assignee_id"] == world["rep_n1"]

    status, body = rep.post(f"/v1/alerts/{alert['id']}/acknowledge", {"note": "calling them today"})
    assert (status, body["status"], body["acknowledged_by"]) == (200, "acknowledged", world["rep_n1"])
    status, body = rep.post(f"/v1/alerts/{alert['id']}/resolve", {"outcome": "recovered", "note": "order placed"})
    assert (status, body["status"], body["outcome"]) == (200, "resolved", "recovered")
    status, again = rep.post(f"/v1/alerts/{alert['id']}/resolve", {"outcome": "lost"})
    assert status == 409 and "status" in again["fields"]

    # customers lifts the flag on alert.resolved(recovered)
    wait_for(lambda: (lambda s, b: s == 200 and not b["flagged_at_risk"] and b["lifecycle"] != "at_risk")(
        *rep.get(f"/v1/customers/{quiet}")), what="customers to lift the at-risk flag")

    # the next sweep raises no duplicate, nor the resolved rule again (re-alert cooldown)
    sweep(world)
    assert [a["status"] for a in alerts_of(world, "quiet")] == ["resolved"]
    assert [a["id"] for a in alerts_of(world, "south")] == [south["id"]]
    assert alerts_of(world, "happy") == alerts_of(world, "streak") == []


def test_a_dormant_customer_with_an_alert_stays_dormant_and_gets_no_recall(world):
    """No purchase for 300 days, against a usual cycle of 150: no_repurchase is raised, but the customer stays
    dormant (at_risk is news only for a new or active one) and keeps its quarterly wake-up, no recall."""
    status, body = world["admin"].post("/v1/customers/import", {
        "customer": {"company": f"Sleeper {world['north']}", "owner_id": world["rep_n1"],
                     "created_at": (NOW - timedelta(days=700)).isoformat()},
        "purchases": [{"amount": "3000.00", "currency": "USD", "external_ref": f"sleeper-{world['north']}-{d}",
                       "purchased_at": (NOW - timedelta(days=d)).isoformat()} for d in (600, 450, 300)]})
    assert status == 201, body
    sleeper, rep = body["id"], world["n1"]
    world["ids"]["sleeper"] = sleeper
    log_interaction(world, "sleeper", NOW - timedelta(days=40), "reached")
    wait_for(lambda: (lambda s, b: s == 200 and b["signals"]["last_contact_at"])(*health(world, "sleeper")),
             what="alerts to fold the sleeper's contact")
    sweep(world)
    assert "no_repurchase" in {a["rule"] for a in alerts_of(world, "sleeper")}
    # the quiet (active) customer's alert of the same sweep flags it and makes a recall: once both have
    # happened, the sleeper's alert has reached customers and followups too
    wait_for(lambda: rep.get(f"/v1/customers/{world['ids']['quiet']}")[1]["lifecycle"] == "at_risk",
             what="the active customer flagged at risk")
    wait_for(lambda: rep.get("/v1/tasks", customer_id=world["ids"]["quiet"], kind="recall")[1]["items"],
             what="the active customer's recall task")
    status, customer = rep.get(f"/v1/customers/{sleeper}")
    assert (customer["lifecycle"], customer["flagged_at_risk"]) == ("dormant", False)
    status, tasks = rep.get("/v1/tasks", customer_id=sleeper, status="open")
    assert [(t["reason"], t["kind"]) for t in tasks["items"]] == [("cadence", "maintenance")]
    assert "every 90 days" in tasks["items"][0]["purpose"]


def test_health_score_breakdown_and_history(world):
    sweep(world)
    status, body = health(world, "quiet", world["n1"])
    assert status == 200
    assert 0 <= body["score"] <= 100 and body["band"] in ("healthy", "watch", "at_risk")
    assert set(body["breakdown"]) == {"recency", "frequency", "monetary", "engagement"}
    assert body["signals"]["days_without_contact"] in (40, 41)
    assert body["signals"]["usual_purchase_interval_days"] == 30
    assert body["history"] and body["history"][0]["cause"] == "sweep"
    status, happy = health(world, "happy")
    assert happy["score"] > body["score"]
    status, past = world["admin"].get(f"/v1/customers/{world['ids']['quiet']}/health",
                                      as_of=(NOW - timedelta(days=200)).isoformat())
    assert status == 200 and past["signals"]["purchases_12m"] < body["signals"]["purchases_12m"]


def test_scope_roles_and_listing(world):
    raise_streak(world)
    sweep(world)
    [quiet_alert] = alerts_of(world, "quiet")
    status, _ = world["n1"].post(f"/v1/alerts/{quiet_alert['id']}/resolve", {"outcome": "recovered"})
    assert status == 200
    south_alert = alerts_of(world, "south")[0]["id"]
    for client in (world["n1"], world["mgr"]):
        assert client.get(f"/v1/alerts/{south_alert}")[0] == 404
        assert client.post(f"/v1/alerts/{south_alert}/acknowledge")[0] == 404
        assert client.get(f"/v1/customers/{world['ids']['south']}/health")[0] == 404
    assert world["s1"].get(f"/v1/alerts/{south_alert}")[0] == 200
    status, page = world["n1"].get("/v1/alerts", limit=1)
    assert status == 200 and len(page["items"]) == 1 and page["next_cursor"]
    status, rest = world["n1"].get("/v1/alerts", limit=50, cursor=page["next_cursor"])
    listed = {a["customer_id"] for a in page["items"] + rest["items"]}
    assert listed == {world["ids"][n] for n in ("quiet", "streak")}
    status, summary = world["mgr"].get("/v1/alerts/summary")
    assert status == 200 and summary["by_rule"]["silence"]["resolved"] == 1
    assert summary["by_rule"]["unanswered_followups"]["open"] == 1
    assert sum(summary["health_bands"].values()) == 3
    status, _ = world["admin"].get("/v1/alerts/alr_nope")
    assert status == 404


def test_bad_input_answers_4xx_naming_the_field(world):
    admin, rep = world["admin"], world["n1"]
    [open_alert] = raise_streak(world)
    status, body = rep.post(f"/v1/alerts/{open_alert['id']}/resolve", {"outcome": "maybe", "colour": "red"})
    assert status == 400 and {"outcome", "colour"} <= set(body["fields"])
    status, body = admin.get("/v1/alerts", rule="vibes", status="sleeping", limit=0)
    assert status == 400 and {"rule", "status", "limit"} <= set(body["fields"])
    status, body = admin.post("/v1/alerts/sweep", {"as_of": (NOW + timedelta(days=2)).isoformat()})
    assert status == 400 and "as_of" in body["fields"]
    assert rep.post("/v1/alerts/sweep")[0] == 403
    status, before = rep.get("/v1/alert-rules")
    assert status == 200 and before["config"]["escalate_after_hours"] == 48
    status, body = admin.call("PUT", "/v1/alert-rules", {"rules": {"silence": {"days_by_tier": {"A": -3}}}})
    assert status == 400 and "rules.silence.days_by_tier.A" in body["fields"]
    status, body = admin.call("PUT", "/v1/alert-rules", {"health": {"weights": {"vibes": 3}}})
    assert status == 400 and "health.weights.vibes" in body["fields"]
    assert rep.call("PUT", "/v1/alert-rules", {})[0] == 403
    assert rep.get("/v1/alert-rules")[1]["version"] == before["version"]      # nothing half-written
    try:
        status, rules = admin.call("PUT", "/v1/alert-rules", {"rules": {"interval_lengthening": {"enabled": False}}})
        assert status == 200 and rules["version"] == before["version"] + 1
        assert rules["config"]["rules"]["interval_lengthening"]["enabled"] is False
    finally:
        assert admin.call("PUT", "/v1/alert-rules", {})[1]["overrides"] == {}


def test_the_alert_queue_ranks_customers_by_value_at_stake(world):
    """One entry per customer naming its unresolved alerts, ranked by 12-month revenue x (100 - score) / 100."""
    raise_streak(world)
    sweep(world)
    mgr, north = world["mgr"], world["north"]
    status, queue = mgr.get("/v1/alert-queue", team=north)
    assert status == 200, queue
    entries = {e["customer_id"]: e for e in queue["items"]}
    quiet, streak = world["ids"]["quiet"], world["ids"]["streak"]
    assert set(entries) == {quiet, streak}                 # happy has none; south is not this team's
    assert entries[quiet]["rules"] == ["silence"]
    assert "unanswered_followups" in entries[streak]["rules"]
    for entry in entries.values():
        assert [a["customer_id"] for a in entry["alerts"]] == [entry["customer_id"]] * len(entry["rules"])
        assert entry["revenue_12m"] == "33000.00"           # eleven purchases of 3,000 in the last year
        score = health(world, "quiet" if entry["customer_id"] == quiet else "streak")[1]["score"]
        assert entry["health_score"] == score
        assert entry["value_at_stake"] == f"{33000 * (100 - score) / 100:.2f}"
    stakes = [float(e["value_at_stake"]) for e in queue["items"]]
    assert stakes == sorted(stakes, reverse=True)
    assert (queue["customers"], float(queue["value_at_stake"])) == (2, sum(stakes))  # the whole queue

    status, first = mgr.get("/v1/alert-queue", team=north, limit=1)   # keyset pages, nothing twice
    status, second = mgr.get("/v1/alert-queue", team=north, limit=1, cursor=first["next_cursor"])
    assert [e["customer_id"] for e in first["items"] + second["items"]] == [e["customer_id"] for e in queue["items"]]
    assert second["next_cursor"] is None
    assert [e["customer_id"] for e in mgr.get("/v1/alert-queue", team=north, rule="silence")[1]["items"]] == [quiet]
    assert {e["customer_id"] for e in mgr.get("/v1/alert-queue", team=north, tier="B")[1]["items"]} == {quiet, streak}
    assert mgr.get("/v1/alert-queue", team=north, tier="A")[1]["items"] == []   # 33,000 a year is tier B
    # scope: the south rep sees only their customer; the north manager nothing of south's
    assert {e["customer_id"] for e in world["s1"].get("/v1/alert-queue")[1]["items"]} == {world["ids"]["south"]}
    assert world["ids"]["south"] not in {e["customer_id"] for e in mgr.get("/v1/alert-queue")[1]["items"]}
    assert mgr.post("/v1/alerts/digest")[0] == 403
    status, sent = world["admin"].post("/v1/alerts/digest")
    assert status == 200 and sent["digests"] >= 3      # north's rep and manager, south's rep at least
    for params, field in (({"cursor": "nope"}, "cursor"), ({"tier": "Z"}, "tier"), ({"limit": 0}, "limit"),
                          ({"colour": "red"}, "colour")):
        status, body = mgr.get("/v1/alert-queue", **params)
        assert status == 400 and field in body["fields"], (params, body)
