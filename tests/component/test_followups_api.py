"""Followups through HTTP on the embedded system: four services in-process on the memory bus.

Reps and customers are made through the customers API; followups learns of them only from events
(or, for a customer it has not heard of yet, one RPC to customers), so every wait here polls,
bounded in time.
"""
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import create_engine, delete

from services.followups.models import customer_view

DAY = timedelta(days=1)
TEAM = "fu-north"


def eventually(check, timeout=15.0, interval=0.05):
    """Poll until check() returns something truthy; fail with the last value after timeout seconds."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s; last value: {value!r}")


@pytest.fixture(scope="module")
def api(embedded_system):
    from crm_common.auth import issue_token
    from crm_common.config import DEV_SECRET

    class Api:
        base = embedded_system.base_url

        def __init__(self, user, role, team=None):
            self.headers = {"Authorization": f"Bearer {issue_token(DEV_SECRET, user, role, team)}"}

        def __call__(self, method, path, **kwargs):
            return requests.request(method, self.base + path, headers=self.headers, timeout=30, **kwargs)

    return Api


@pytest.fixture(scope="module")
def people(api):
    admin = api("admin", "admin")
    for rep in ({"id": "fu-mgr", "name": "Manager", "team": TEAM, "role": "manager"},
                {"id": "fu-rep1", "name": "Rep One", "team": TEAM, "manager_id": "fu-mgr"},
                {"id": "fu-rep2", "name": "Rep Two", "team": TEAM, "manager_id": "fu-mgr"},
                {"id": "fu-south", "name": "South Rep", "team": "fu-south"},
                {"id": "fu-south-mgr", "name": "South Manager", "team": "fu-south", "role": "manager"}):
        assert admin("POST", "/v1/reps", json=rep).status_code in (201, 409)
    return {"admin": admin, "mgr": api("fu-mgr", "manager", TEAM), "rep1": api("fu-rep1", "rep", TEAM),
            "rep2": api("fu-rep2", "rep", TEAM), "south_mgr": api("fu-south-mgr", "manager", "fu-south")}


def now():
    return datetime.now(timezone.utc)


def import_customer(people, company, owner="fu-rep1", created_days_ago=200, purchases=(), stages=()):
    created = now() - timedelta(days=created_days_ago)
    body = {"customer": {"company": company, "owner_id": owner, "created_at": created.isoformat()},
            "purchases": [{"amount": "5000.00", "currency": "USD", "purchased_at": (now() - timedelta(days=d)).isoformat()}
                          for d in purchases],
            "stages": [{"stage": s, "changed_at": (now() - timedelta(days=d)).isoformat()} for s, d in stages]}
    response = people["admin"]("POST", "/v1/customers/import", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def tasks_of(people, customer_id, **query):
    response = people["admin"]("GET", "/v1/tasks", params={"customer_id": customer_id, **query})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def open_cadence(people, customer_id):
    tasks = tasks_of(people, customer_id, status="open")
    return [t for t in tasks if t["reason"] == "cadence"]


def log(person, customer_id, days_ago=0.0, **fields):
    body = {"customer_id": customer_id, "kind": "call", "outcome": "reached",
            "occurred_at": (now() - timedelta(days=days_ago)).isoformat(), **fields}
    return person("POST", "/v1/interactions", json=body)


def test_a_customer_through_several_cadence_cycles(people):
    """From first contact through needs analysis, a win and several maintenance cycles, by backdated touches."""
    prospect = import_customer(people, "Cycle Works", created_days_ago=120)
    cid = prospect["id"]
    [task] = eventually(lambda: open_cadence(people, cid))
    assert (task["kind"], task["assignee_id"]) == ("follow_up", "fu-rep1")  # potential: weekly follow-up
    rep = people["rep1"]
    first = log(rep, cid, days_ago=100, summary="first call")
    assert first.status_code == 201, first.text
    assert first.json()["phase"] == "pre_sale"
    # a stage change reaches followups as an event: entering needs analysis asks for a follow-up in 3 days
    moved = people["admin"]("POST", f"/v1/customers/{cid}/stage", json={"stage": "needs_analysis"})
    assert moved.status_code == 200, moved.text
    key_moment = eventually(lambda: [t for t in tasks_of(people, cid, status="open") if t["reason"] == "key_moment"])
    assert key_moment[0]["kind"] == "follow_up"
    # the customer answers: the follow-up is settled by the productive touch
    reply = log(rep, cid, days_ago=0, outcome="positive", summary="needs written down")
    assert key_moment[0]["id"] in reply.json()["completed_task_ids"]
    # buying makes the customer post-sale; the cadence task becomes maintenance once the class changes
    assert people["admin"]("POST", f"/v1/customers/{cid}/purchases", json={
        "amount": "9000.00", "currency": "USD", "purchased_at": now().isoformat()}).status_code == 201
    eventually(lambda: [t for t in open_cadence(people, cid) if t["kind"] == "maintenance"])
    later = log(rep, cid, days_ago=0, kind="visit", summary="after the purchase")
    assert later.json()["phase"] == "post_sale"
    next_task = later.json()["next_cadence_task"]
    assert next_task["kind"] == "maintenance"
    due = datetime.fromisoformat(next_task["due_at"])
    assert timedelta(days=6) < due - now() <= timedelta(days=7)  # new customer: weekly
    timeline = rep("GET", f"/v1/customers/{cid}/interactions").json()
    assert [i["summary"] for i in timeline["items"]][-1] == "first call"
    assert len(timeline["items"]) == 3 and len(timeline["open_tasks"]) >= 1


def test_bad_input_is_refused_naming_the_field(people):
    cid = import_customer(people, "Careful Co")["id"]
    eventually(lambda: open_cadence(people, cid))
    rep = people["rep1"]
    future = log(rep, cid, days_ago=-1)
    assert (future.status_code, list(future.json()["fields"])) == (422, ["occurred_at"])
    unknown = log(rep, "cus_does_not_exist")
    assert (unknown.status_code, list(unknown.json()["fields"])) == (404, ["customer_id"])
    bad_kind = log(rep, cid, kind="fax", satisfaction=9)
    assert bad_kind.status_code == 400 and {"kind", "satisfaction"} <= set(bad_kind.json()["fields"])
    nobody = people["mgr"]("POST", "/v1/tasks", json={"customer_id": cid, "purpose": "x", "assignee_id": "ghost",
                                                      "due_at": now().isoformat()})
    assert (nobody.status_code, list(nobody.json()["fields"])) == (400, ["assignee_id"])
    policy_before = people["admin"]("GET", "/v1/cadence-policy").json()
    zero = people["admin"]("PUT", "/v1/cadence-policy", json={"intervals": {"A/active": 0}})
    assert (zero.status_code, list(zero.json()["fields"])) == (422, ["A/active"])
    negative = people["admin"]("PUT", "/v1/cadence-policy", json={"intervals": {"dormant": -30}})
    assert (negative.status_code, list(negative.json()["fields"])) == (422, ["dormant"])
    assert people["admin"]("GET", "/v1/cadence-policy").json() == policy_before
    [task] = open_cadence(people, cid)
    no_reason = rep("POST", f"/v1/tasks/{task['id']}/skip", json={})
    assert (no_reason.status_code, list(no_reason.json()["fields"])) == (400, ["reason"])
    assert rep("GET", f"/v1/customers/{cid}/interactions").json()["items"] == []  # nothing half-written


def test_role_scope(people):
    cid = import_customer(people, "Private Ltd")["id"]
    [task] = eventually(lambda: open_cadence(people, cid))
    assert log(people["rep2"], cid).status_code == 404
    assert log(people["south_mgr"], cid).status_code == 404
    assert people["rep2"]("GET", f"/v1/tasks/{task['id']}").status_code == 404
    assert people["rep1"]("GET", f"/v1/tasks/{task['id']}").status_code == 200
    assert people["mgr"]("GET", "/v1/worklist", params={"rep_id": "fu-rep1"}).status_code == 200
    assert people["south_mgr"]("GET", "/v1/worklist", params={"rep_id": "fu-rep1"}).status_code == 404
    assert log(people["mgr"], cid).status_code == 201


def test_a_customer_followups_has_not_heard_of_is_asked_of_the_customers_service(people, embedded_system):
    cid = import_customer(people, "Fresh Start")["id"]
    eventually(lambda: open_cadence(people, cid))
    [followups] = [c for c in embedded_system.containers if c.service_name == "followups"]
    engine = create_engine(followups.config["DATABASE_URL"])
    with engine.begin() as connection:  # as if customer.created had not arrived yet
        connection.execute(delete(customer_view).where(customer_view.c.customer_id == cid))
    engine.dispose()
    response = log(people["rep1"], cid)
    assert response.status_code == 201, response.text  # answered by get_customer_brief over RPC
    assert response.json()["team"] == TEAM


def test_overdue_and_missed_tasks_reach_the_worklist_and_the_measure(people):
    cid = import_customer(people, "Late Payers")["id"]
    eventually(lambda: open_cadence(people, cid))
    for days_ago, purpose in ((10, "send the quote"), (1, "call back about the quote")):
        created = people["rep1"]("POST", "/v1/tasks", json={
            "customer_id": cid, "purpose": purpose, "due_at": (now() - timedelta(days=days_ago)).isoformat()})
        assert created.status_code == 201, created.text
    swept = people["admin"]("POST", "/v1/sweeps/reminders")
    assert swept.status_code == 200 and swept.json()["emitted"]["missed"] >= 1
    missed = tasks_of(people, cid, status="missed")
    assert [t["purpose"] for t in missed] == ["send the quote"]
    worklist = people["rep1"]("GET", "/v1/worklist").json()
    mine = [i for i in worklist["items"] if i["customer_id"] == cid]
    assert mine[0]["purpose"] == "call back about the quote" and mine[0]["overdue"] is True
    period = {"period_start": (now() - DAY).isoformat(), "period_end": (now() + DAY).isoformat()}
    stats = people["mgr"]("GET", "/v1/stats/missed", params=period).json()
    assert {r["rep_id"]: r["missed"] for r in stats["by_rep"]}.get("fu-rep1", 0) >= 1
    assert [t["team"] for t in stats["by_team"]] == [TEAM]


def test_a_transfer_moves_open_tasks_to_the_new_owner(people):
    cid = import_customer(people, "Moving Co")["id"]
    [task] = eventually(lambda: open_cadence(people, cid))
    moved = people["mgr"]("POST", f"/v1/customers/{cid}/transfer", json={"to_owner_id": "fu-rep2"})
    assert moved.status_code == 200, moved.text
    eventually(lambda: [t for t in open_cadence(people, cid) if t["assignee_id"] == "fu-rep2"])
    assert people["rep2"]("GET", f"/v1/tasks/{task['id']}").status_code == 200


def test_complaint_and_resolution(people):
    cid = import_customer(people, "Grumpy Goods")["id"]
    eventually(lambda: open_cadence(people, cid))
    complaint = log(people["rep1"], cid, kind="complaint", outcome="open", summary="broken part", days_ago=1)
    assert complaint.status_code == 201
    [task] = [t for t in tasks_of(people, cid, status="open") if t["reason"] == "complaint"]
    fixed = log(people["rep1"], cid, kind="visit", outcome="resolved", satisfaction=5,
                resolves_complaint_id=complaint.json()["id"])
    assert fixed.status_code == 201 and task["id"] in fixed.json()["completed_task_ids"]
    again = log(people["rep1"], cid, kind="call", resolves_complaint_id=complaint.json()["id"])
    assert (again.status_code, list(again.json()["fields"])) == (409, ["resolves_complaint_id"])


def test_policy_change_reaches_open_cadence_tasks(people):
    cid = import_customer(people, "Policy Partners")["id"]
    eventually(lambda: open_cadence(people, cid))
    assert log(people["rep1"], cid).status_code == 201
    [task] = open_cadence(people, cid)
    stored = people["admin"]("PUT", "/v1/cadence-policy", json={"intervals": {"potential": 3}})
    assert stored.status_code == 200 and stored.json()["intervals"]["potential"] == 3
    assert people["admin"]("POST", "/v1/sweeps/cadence").status_code == 200
    [moved] = open_cadence(people, cid)
    assert datetime.fromisoformat(moved["due_at"]) < datetime.fromisoformat(task["due_at"])
    people["admin"]("PUT", "/v1/cadence-policy", json={"intervals": {}})  # back to the defaults
