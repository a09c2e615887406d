"""Scope matrix (issue 14, item 1): every route that takes an id, called with real ids of rep A1's resources
(team A) by a rep of team A who does not own them and by team B's manager, answers 404 (403 where the role may
never do it) and writes nothing.

Generated from the OpenAPI document the services serve, like test_bad_input.py: a route with a path parameter
this file cannot fill, or a write route without a body here, fails, so a new route needs a thought about scope.
Every body is one that succeeds for someone in scope (test_each_write_body_succeeds_in_scope): a 400 cannot pass
for a refusal; PROBES add bodies the domain refuses for that customer, which must not change the refusal either.
"Nothing written" is a fingerprint of every table of every service database (outbox and audit_log included).
The owner and team A's manager get 200 on every GET, so the refusals prove scope, not universal 404s.
A third outsider is team A's manager who was deactivated: 401 on every route, and nothing written.
"""
import hashlib
import re
import sqlite3
import time
import uuid
from contextlib import closing
from datetime import datetime, timedelta, timezone

import pytest
import requests

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET
from crm_common.ops import openapi_document

A, B = "scope-team-a", "scope-team-b"
A1, A2, A3, B1, MGR_A, MGR_B = "scope-a1", "scope-a2", "scope-a3", "scope-b1", "scope-mgr-a", "scope-mgr-b"
GONE = "scope-gone"  # team A's rep who left: deactivated, their token still signed and unexpired
ADMIN, OWNER, MANAGER_A = ("admin", "admin", None), (A1, "rep", A), (MGR_A, "manager", A)
OUTSIDERS = {"rep-same-team": (A2, "rep", A), "manager-other-team": (MGR_B, "manager", B),
             "deactivated-manager": (GONE, "manager", A)}
INSIDERS = {"owner": OWNER, "manager-same-team": MANAGER_A}
# Out of scope answers exactly like missing, 404 (crm_common/auth.py), so nothing leaks; 403 only where the role may
# never do it, whatever the resource (checked before the resource is looked up, so that leaks nothing either).
# A deactivated user is refused before anything else (401: crm_common/directory.py), whatever the route.
NOT_FOUND = {"rep-same-team": 404, "manager-other-team": 404, "deactivated-manager": 401}
ROLE_FIRST = {"rep-same-team": 403, "manager-other-team": 404, "deactivated-manager": 401}  # managers' and admins'
FORBIDDEN = {"rep-same-team": 403, "manager-other-team": 403, "deactivated-manager": 401}  # admins', another's slice
OWNED = {"customer_id", "task_id", "alert_id"}  # path parameters naming a resource of A1's customer
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
NOW = datetime.now(timezone.utc)


def ago(**delta) -> str:
    return (NOW - timedelta(**delta)).isoformat()


# Routes that differ from the default (ids of A1's customer in the path, NOT_FOUND): the query, the refusals, why.
SPECIAL = {
    "/v1/customers/{customer_id}/transfer": ({}, ROLE_FIRST, "managers and admins only"),
    "/v1/tasks/{task_id}/reassign": ({}, ROLE_FIRST, "managers and admins only"),
    "/v1/reps/{rep_id}": ({}, FORBIDDEN, "a rep, not a customer: the reps directory is edited by admins only"),
    "/v1/reps/{rep_id}/password": ({}, FORBIDDEN, "a rep's password: admins, or the rep themself (not these)"),
    "/v1/reps/{rep_id}/sign-out": ({}, FORBIDDEN, "a rep's sessions: admins, or the rep themself (not these)"),
    "/v1/reps/{rep_id}/handover": ({}, ROLE_FIRST, "a rep: managers and admins only, a manager in their own team"),
    "/v1/sweeps/{job}": ({}, FORBIDDEN, "a job name, not a resource: sweeps are for admins"),
    "/v1/reports/{figure}": ({"rep": A1}, FORBIDDEN, "a figure name: the slice is ?rep=, so ask for A1's figures"),
    "/v1/reports/charts/{name}.svg": ({"rep": A1}, FORBIDDEN, "a chart name: the slice is ?rep=, as above"),
    "/v1/worklist": ({"rep_id": A1}, NOT_FOUND, "A1's work list: the id is a query parameter"),
    "/v1/interactions": ({}, NOT_FOUND, "logging a touch on A1's customer: the id is in the body"),
    "/v1/tasks": ({}, NOT_FOUND, "a task on A1's customer: the id is in the body"),
    "/v1/imports/{job_id}": ({}, ROLE_FIRST, "team A's import: managers and admins only, a manager their team's"),
    "/v1/imports/{job_id}/file": ({}, ROLE_FIRST, "as above"),
    "/v1/imports/{job_id}/rejections": ({}, ROLE_FIRST, "as above"),
}
# Routes whose id is outside the path (the document does not say which fields are ids): listed by hand.
ID_OUTSIDE_PATH = [("GET", "/v1/worklist"), ("POST", "/v1/interactions"), ("POST", "/v1/tasks")]

# Per write route: who in scope sends it in the sanity test, and its body. Targets are team B's rep, so that team
# B's manager would succeed but for the scope check (a 403 for a foreign assignee would hide a missing check).
WRITES = {
    ("PATCH", "/v1/customers/{customer_id}"): (OWNER, lambda ids: {"notes": "scope matrix"}),
    ("POST", "/v1/customers/{customer_id}/archive"): (MANAGER_A, lambda ids: None),
    ("POST", "/v1/customers/{customer_id}/purchases"): (
        OWNER, lambda ids: {"amount": "120.00", "currency": "USD", "purchased_at": ago(days=2)}),
    ("POST", "/v1/customers/{customer_id}/stage"): (OWNER, lambda ids: {"stage": "needs_analysis"}),
    ("POST", "/v1/customers/{customer_id}/transfer"): (ADMIN, lambda ids: {"to_owner_id": B1, "reason": "matrix"}),
    ("PATCH", "/v1/reps/{rep_id}"): (ADMIN, lambda ids: {"name": "Renamed"}),
    ("PUT", "/v1/reps/{rep_id}/password"): (ADMIN, lambda ids: {"password": "scope matrix password"}),
    ("POST", "/v1/reps/{rep_id}/sign-out"): (ADMIN, lambda ids: None),
    ("POST", "/v1/reps/{rep_id}/handover"): (ADMIN, lambda ids: {"to_owner_id": B1, "deactivate": False}),
    ("POST", "/v1/alerts/{alert_id}/acknowledge"): (OWNER, lambda ids: {"note": "calling them"}),
    ("POST", "/v1/alerts/{alert_id}/resolve"): (OWNER, lambda ids: {"outcome": "recovered"}),
    ("POST", "/v1/tasks/{task_id}/complete"): (OWNER, lambda ids: {"interaction_id": ids["interaction_id"]}),
    ("POST", "/v1/tasks/{task_id}/skip"): (OWNER, lambda ids: {"reason": "not needed"}),
    ("POST", "/v1/tasks/{task_id}/reassign"): (ADMIN, lambda ids: {"assignee_id": B1}),
    ("POST", "/v1/sweeps/{job}"): (ADMIN, lambda ids: {}),
    ("POST", "/v1/interactions"): (OWNER, lambda ids: {"customer_id": ids["customer_id"], "kind": "call",
                                                       "outcome": "reached", "occurred_at": ago(minutes=5)}),
    ("POST", "/v1/tasks"): (OWNER, lambda ids: {"customer_id": ids["customer_id"], "purpose": "call back",
                                                "due_at": ago(days=-30)}),
    # the file goes as JSON text here (a one-line CSV): the route stores whatever body it gets
    ("PUT", "/v1/imports/{job_id}/file"): (MANAGER_A, lambda ids: "external_id,company"),
}
# Bodies the domain refuses for this very customer (test_each_probe_is_refused_in_scope): an outsider must still
# get the plain refusal, else the answer says the customer exists (and a write before a late scope check shows).
PROBES = {
    ("PATCH", "/v1/customers/{customer_id}"): lambda ids: {"owner_id": B1},  # owners change by transfer
    ("POST", "/v1/customers/{customer_id}/stage"): lambda ids: {"stage": "first_contact"},  # where it is already
    ("POST", "/v1/customers/{customer_id}/purchases"): lambda ids: {"amount": "1.00", "currency": "USD",
                                                                     "purchased_at": ago(days=-1)},  # future
}


def routes_with_ids():
    for path, operations in openapi_document()["paths"].items():
        for method in operations:
            if "{" in path and method.upper() in ("GET", *WRITE_METHODS):
                yield method.upper(), path
    yield from ID_OUTSIDE_PATH


ROUTES = sorted(routes_with_ids())
GETS = [route for route in ROUTES if route[0] == "GET"]
CASES = [(*route, "valid body") for route in ROUTES] + [(*route, "probe body") for route in sorted(PROBES)]


def request_for(method, template, ids, probe=False):
    """(path, query, body, refusals) of a route; fails for a parameter or write nobody has thought about."""
    names = re.findall(r"\{(\w+)\}", template)
    assert all(n in ids for n in names), f"{template}: which id goes in {names}? add it to the world's ids"
    assert set(names) <= OWNED or template in SPECIAL, f"{template}: {names} name no customer's resource: " \
                                                       "say in SPECIAL who may use it"
    assert method not in WRITE_METHODS or (method, template) in WRITES, f"{method} {template}: add a body to WRITES"
    query, refused, _why = SPECIAL.get(template, ({}, NOT_FOUND, ""))
    make_body = PROBES.get((method, template)) if probe else WRITES.get((method, template), (None, None))[1]
    body = make_body(ids) if method in WRITE_METHODS else None
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template), query, body, refused


def call(system, who, method, path, body=None, query=None):
    user, role, team = who
    return requests.request(method, system.base_url + path, json=body, params=query, timeout=60,
                            headers={"Authorization": f"Bearer {issue_token(DEV_SECRET, user, role, team)}"})


def ok(answer):
    assert answer.status_code < 300, (answer.request.method, answer.url, answer.status_code, answer.text[:300])
    return answer.json()


def wait_for(check, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


IGNORED_TABLES = {"consumer_members", "partition_leases"}  # consumers' heartbeats and leases, rewritten constantly


def fingerprint(system) -> dict:
    """Row count and a hash of the rows of every table of every service's SQLite database."""
    prints = {}
    for container in system.containers:
        path = container.config["DATABASE_URL"].split("///", 1)[1]
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                if table not in IGNORED_TABLES:
                    # a refused token is audited on purpose (issue 12): that is the one row a refusal writes
                    where = " WHERE action != 'auth.refused'" if table == "audit_log" else ""
                    rows = sorted(map(repr, db.execute(f'SELECT * FROM "{table}"{where}')))
                    digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
                    prints[f"{container.service_name}.{table}"] = (len(rows), digest)
    return prints


def quiet_fingerprint(system, state) -> dict:
    """The fingerprint once nothing has changed for 1.5 s: events of earlier (allowed) calls have settled."""
    current = fingerprint(system)
    if current == state.get("quiet"):
        return current
    since, deadline = time.monotonic(), time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.25)
        latest = fingerprint(system)
        if latest != current:
            current, since = latest, time.monotonic()
        elif time.monotonic() - since >= 1.5:
            state["quiet"] = current
            return current
    pytest.fail("the service databases never stopped changing")


def customer_with_alert(system, company):
    """A1's customer; three unanswered calls today raise unanswered_followups at once (test_alerts_api.py)."""
    customer = ok(call(system, ADMIN, "POST", "/v1/customers", {"company": company, "owner_id": A1}))["id"]
    for hours in (3, 2, 1):
        interaction = ok(call(system, OWNER, "POST", "/v1/interactions", {
            "customer_id": customer, "kind": "call", "outcome": "no_answer", "occurred_at": ago(hours=hours)}))["id"]
    return customer, interaction


def import_job(system):
    """Team A's manager's import, waiting for its file (so no runner touches it while the matrix runs)."""
    return ok(call(system, MANAGER_A, "POST", "/v1/imports", {"filename": "matrix.csv"}))["id"]


def alert_of(system, customer):
    alerts = lambda: ok(call(system, ADMIN, "GET", "/v1/alerts", query={"customer_id": customer}))["items"]
    return wait_for(alerts, f"an alert on {customer}")[0]["id"]


@pytest.fixture(scope="module")
def world(embedded_system):
    """Teams A and B; A1's customer with a purchase, interactions, a task and an alert; spare alerts for the write
    sanity test. Made through the public API as admin and as A1, then waited for until every service has it."""
    s = embedded_system
    for rep_id, team, role in ((MGR_A, A, "manager"), (A1, A, "rep"), (A2, A, "rep"), (A3, A, "rep"),
                               (MGR_B, B, "manager"), (B1, B, "rep"), (GONE, A, "manager")):
        ok(call(s, ADMIN, "POST", "/v1/reps", {"id": rep_id, "name": rep_id, "team": team, "role": role}))
    ok(call(s, ADMIN, "PATCH", f"/v1/reps/{GONE}", {"active": False}))
    customer, interaction = customer_with_alert(s, "Scope Matrix Ltd")
    ok(call(s, OWNER, "POST", f"/v1/customers/{customer}/purchases",
            {"amount": "500.00", "currency": "USD", "purchased_at": ago(days=20)}))
    task = ok(call(s, OWNER, "POST", "/v1/tasks", WRITES["POST", "/v1/tasks"][1]({"customer_id": customer})))
    spare = {t: customer_with_alert(s, f"Spare {t}")[0] for m, t in WRITES if "{alert_id}" in t}
    ids = {"customer_id": customer, "task_id": task["id"], "alert_id": alert_of(s, customer), "rep_id": A1,
           "interaction_id": interaction, "job": "reminders", "figure": "summary", "name": "churn",
           "job_id": import_job(s)}
    spare_alerts = {template: alert_of(s, c) for template, c in spare.items()}
    # the read models of the other services: alerts knows the customer, reports and followups the reps
    wait_for(lambda: call(s, OWNER, "GET", f"/v1/customers/{customer}/health").status_code == 200, "alerts")
    wait_for(lambda: call(s, MANAGER_A, "GET", "/v1/reports/summary", query={"rep": A1}).status_code == 200, "reports")
    wait_for(lambda: call(s, ADMIN, "GET", "/v1/worklist", query={"rep_id": B1}).status_code == 200, "followups")
    for route in ("/v1/customers", "/v1/worklist", "/v1/alerts", "/v1/reports/summary"):  # every service's copy
        wait_for(lambda: call(s, OUTSIDERS["deactivated-manager"], "GET", route).status_code == 401,
                 f"{route} to know {GONE} left")
    ok(call(s, ADMIN, "POST", "/v1/sweeps/reminders", {}))  # reminders due now go now, not from the timer mid-matrix
    return {"ids": ids, "spare_alerts": spare_alerts, "state": {}}


def test_the_matrix_is_made_from_the_served_document(embedded_system):
    served = requests.get(embedded_system.base_url + "/openapi.json", timeout=60).json()
    assert served["paths"] == openapi_document()["paths"]
    assert set(WRITES) <= set(ROUTES), "WRITES names a route the document no longer has"
    assert {t for _, t in ROUTES} >= set(SPECIAL), "SPECIAL names a route the document no longer has"


@pytest.mark.parametrize("caller", sorted(OUTSIDERS))
@pytest.mark.parametrize("method,template,body_kind", CASES)
def test_out_of_scope_callers_are_refused_and_nothing_is_written(embedded_system, world, method, template, body_kind,
                                                                 caller):
    path, query, body, refused = request_for(method, template, world["ids"], probe=body_kind == "probe body")
    before = quiet_fingerprint(embedded_system, world["state"])
    answer = call(embedded_system, OUTSIDERS[caller], method, path, body, query)
    assert answer.status_code == refused[caller], (answer.status_code, answer.text[:300])
    after = fingerprint(embedded_system)
    assert after == before, f"refused, yet wrote to {sorted(t for t in after if after[t] != before.get(t))}"


# a rep is refused managers' routes by role whatever the resource (the outsiders' test shows it): not an insider there
INSIDE_GETS = [(caller, *route) for caller in sorted(INSIDERS) for route in GETS
               if not (INSIDERS[caller][1] == "rep" and SPECIAL.get(route[1], (None, None))[1] is ROLE_FIRST)]


@pytest.mark.parametrize("caller,method,template", INSIDE_GETS)
def test_callers_in_scope_do_see_it(embedded_system, world, method, template, caller):
    path, query, _, _ = request_for(method, template, world["ids"])
    answer = call(embedded_system, INSIDERS[caller], method, path, None, query)
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])


def own_resources(s, world, template) -> dict:
    """Ids of things of A1's that may change: a fresh customer, its touch and task, a spare alert, rep A3."""
    customer = ok(call(s, ADMIN, "POST", "/v1/customers", {"company": f"Own {uuid.uuid4().hex[:8]}", "owner_id": A1}))
    ids = {**world["ids"], "customer_id": customer["id"], "rep_id": A3, "alert_id": world["spare_alerts"].get(template),
           "job_id": import_job(s)}
    for key, route in (("interaction_id", "/v1/interactions"), ("task_id", "/v1/tasks")):
        ids[key] = ok(call(s, OWNER, "POST", route, WRITES["POST", route][1](ids)))["id"]
    return ids


@pytest.mark.parametrize("method,template", [route for route in ROUTES if route[0] in WRITE_METHODS])
def test_each_write_body_succeeds_in_scope(embedded_system, world, method, template):
    path, query, body, _ = request_for(method, template, own_resources(embedded_system, world, template))
    ok(call(embedded_system, WRITES[method, template][0], method, path, body, query))


@pytest.mark.parametrize("method,template", sorted(PROBES))
def test_each_probe_is_refused_in_scope(embedded_system, world, method, template):
    path, query, body, _ = request_for(method, template, own_resources(embedded_system, world, template), probe=True)
    answer = call(embedded_system, WRITES[method, template][0], method, path, body, query)
    assert answer.status_code in (400, 409, 422), (answer.status_code, answer.text[:300])
