"""Property-based fuzzing of every route of the served OpenAPI document, as every role (issue 12, item 3).

Schemathesis loads the document the embedded system serves (GET /openapi.json) and, for each operation,
generates requests from it: valid ones (positive mode) and, where there is a query or a JSON body to break,
ones that break the schema (negative mode). Every answer must pass

* not_a_server_error: no 5xx, whatever the input;
* status_code_conformance: the status is one the document lists for the route;
* content_type_conformance: the Content-Type is one the document lists for that status;
* response_schema_conformance: the body matches the documented schema of that status.

Every generated request is sent three times: as an admin, as the manager of the data's team and as a rep who
owns some of it (in an order drawn with the request, since a write changes what the next one meets), and the
three answers are checked alike. Path ids are real: a world of reps, customers, purchases, interactions, tasks,
alerts and import jobs is made through the public API first, and path parameters, the id-like query parameters
and body properties mostly take values drawn from it (sometimes the generated junk stays, for the not-found
paths); some of those ids are in every caller's scope, some in the manager's and the admin's, some only the
admin's. The users who send the requests are never a path's target, so no generated request can lock a caller
out (a handover deactivates its rep).

Speed: generating a request costs more CPU than answering it, so the generating and checking runs in WORKERS
processes (this file run as a script, the operations split between them) while this process serves.
Reproducible: every operation's Hypothesis run has the same fixed seed (CRM_FUZZ_SEED overrides it; printed
either way), so the same requests go every run (how the workers' requests interleave is up to the scheduler).
No example database, and Hypothesis's storage goes to the test's tmp directory: nothing is written under the
repository. The requests are counted and asserted, per role and in total (issue 12: at least 10,000).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

SEED = int(os.environ.get("CRM_FUZZ_SEED", "20261204"))
ROLES = ("admin", "manager", "rep")
REQUESTS_PER_ROLE = 3_400          # x 3 roles: at least the 10,000 requests of issue 12
TOTAL_REQUESTS = 10_000
WORKERS = 2                        # processes generating requests (the operations split between them)
WORKER_TIMEOUT = 600               # seconds for the workers together
ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(timezone.utc)
DAY = timedelta(days=1)

NORTH, SOUTH = "fz-north", "fz-south"
CALLERS = {"admin": ("fz-admin", "admin", None), "manager": ("fz-mgr", "manager", NORTH),
           "rep": ("fz-rep", "rep", NORTH)}
# (id, team, role, manager): the callers and the reps whose customers they look at
DIRECTORY = [("fz-admin", None, "admin", None), ("fz-mgr", NORTH, "manager", None), ("fz-rep", NORTH, "rep", "fz-mgr"),
             ("fz-rep2", NORTH, "rep", "fz-mgr"), ("fz-rep3", NORTH, "rep", "fz-mgr"),
             ("fz-mgr-s", SOUTH, "manager", None), ("fz-rep-s", SOUTH, "rep", "fz-mgr-s")]
VICTIMS = ["fz-rep2", "fz-rep3", "fz-rep-s", "fz-mgr-s"]   # rep_id of the reps routes: never a caller


def token_of(role: str) -> str:
    from crm_common.auth import issue_token
    from crm_common.config import DEV_SECRET
    user, user_role, team = CALLERS[role]
    return issue_token(DEV_SECRET, user, user_role, team)


def iso(moment: datetime) -> str:
    return moment.isoformat()


# ================================================================ the world

class Api:
    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method, path, body=None, **params):
        return self.session.request(method, self.base_url + path, json=body, params=params or None, timeout=60)

    def ok(self, method, path, body=None, **params):
        answer = self.call(method, path, body, **params)
        assert answer.status_code in (200, 201, 202), (method, path, answer.status_code, answer.text[:300])
        return answer.json()


def wait_for(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def build_world(base_url: str) -> dict:
    """Reps of two teams, their customers with purchases, touches, tasks and alerts, and import jobs; returns
    the real values the requests draw from: {parameter or property name: [values]}."""
    from crm_common.auth import issue_token
    from crm_common.config import DEV_SECRET
    root = Api(base_url, issue_token(DEV_SECRET, "admin", "admin", None))  # embedded mode's first admin
    for user, team, role, manager in DIRECTORY:
        root.ok("POST", "/v1/reps", {"id": user, "name": user.title(), "team": team, "role": role,
                                     "manager_id": manager})
    api = {role: Api(base_url, token_of(role)) for role in ROLES}
    customers = defaultdict(list)                      # owner -> customer ids
    for owner, count in (("fz-rep", 2), ("fz-rep2", 1), ("fz-rep-s", 1)):
        for n in range(count):   # a won customer with a year of purchases
            created = api["admin"].ok("POST", "/v1/customers/import", {
                "customer": {"company": f"Fuzz {owner} {n}", "owner_id": owner, "industry": "tools",
                             "created_at": iso(NOW - 400 * DAY), "tags": ["fuzz"],
                             "important_dates": [{"kind": "founding_day", "date": "2001-03-04"}]},
                "stages": [{"stage": "won", "changed_at": iso(NOW - 300 * DAY)}],
                "purchases": [{"amount": "900.00", "currency": "USD", "external_ref": f"fz-{owner}-{n}-{d}",
                               "purchased_at": iso(NOW - d * DAY)} for d in range(20, 300, 60)]})
            customers[owner].append(created["id"])
    fresh = {owner: api["admin"].ok("POST", "/v1/customers", {"company": f"Fresh {owner}", "owner_id": owner})["id"]
             for owner in ("fz-rep", "fz-rep2", "fz-rep-s")}
    for owner, customer in fresh.items():
        customers[owner].append(customer)
    for customer in fresh.values():   # alerts must know a customer before its touches can raise one
        wait_for(lambda: api["admin"].call("GET", f"/v1/customers/{customer}/health").status_code == 200,
                 f"alerts to know {customer}")
    touches, tasks = defaultdict(list), defaultdict(list)
    for owner, ids in customers.items():
        for customer in ids:
            touches[owner].append(api["admin"].ok("POST", "/v1/interactions", {
                "customer_id": customer, "kind": "complaint", "outcome": "open",
                "occurred_at": iso(NOW - timedelta(hours=5))})["id"])
            outcomes = ("no_answer",) * 3 if customer in fresh.values() else ("reached",)
            for hours, outcome in zip((4, 3, 2), outcomes):   # three unanswered calls: unanswered_followups
                touches[owner].append(api["admin"].ok("POST", "/v1/interactions", {
                    "customer_id": customer, "kind": "call", "outcome": outcome,
                    "occurred_at": iso(NOW - timedelta(hours=hours))})["id"])
            tasks[owner].append(api["admin"].ok("POST", "/v1/tasks", {
                "customer_id": customer, "purpose": "call back", "due_at": iso(NOW + 3 * DAY),
                "assignee_id": owner})["id"])
    alerts = defaultdict(list)
    for owner, customer in fresh.items():
        found = wait_for(lambda: api["admin"].ok("GET", "/v1/alerts", customer_id=customer)["items"],
                         f"an alert on {customer}")
        alerts[owner] += [a["id"] for a in found]
    jobs = {"admin": [api["admin"].ok("POST", "/v1/imports", {"filename": f"admin-{n}.csv"})["id"] for n in range(3)],
            "manager": [api["manager"].ok("POST", "/v1/imports", {"filename": f"north-{n}.csv"})["id"]
                        for n in range(3)]}
    for rep in ("fz-rep", "fz-rep-s"):                 # reports and followups know the directory
        wait_for(lambda: api["admin"].call("GET", "/v1/worklist", rep_id=rep).status_code == 200, "followups")
    wait_for(lambda: api["manager"].call("GET", "/v1/reports/summary", rep="fz-rep").status_code == 200, "reports")

    def pick(by_owner):
        """Every request goes as all three roles, so the ids are a mix: fz-rep's (everyone sees them) twice
        over, fz-rep2's (the manager and the admin) and fz-rep-s's (the admin only; 404 to the others)."""
        return by_owner["fz-rep"] * 2 + by_owner["fz-rep2"] + by_owner["fz-rep-s"]

    reps = [user for user, _, _, _ in DIRECTORY]
    pool = {"customer_id": pick(customers), "task_id": pick(tasks), "alert_id": pick(alerts),
            "interaction_id": pick(touches), "job_id": jobs["manager"] * 2 + jobs["admin"], "rep_id": VICTIMS,
            "rep": reps, "owner_id": reps, "to_owner_id": reps, "assignee_id": reps, "manager_id": reps,
            "team": [NORTH, SOUTH], "to_team": [NORTH, SOUTH]}
    pool["completes_task_id"], pool["resolves_complaint_id"] = pool["task_id"], pool["interaction_id"]
    return pool


@pytest.fixture(scope="module")
def world(embedded_system):
    return build_world(embedded_system.base_url)


@pytest.fixture
def quiet_refusals():
    """nameko logs every refused request (a 4xx) with its traceback at WARNING: thousands of them here, and
    formatting them costs more than answering. Unexpected errors are logged at ERROR and still show."""
    import logging
    logger = logging.getLogger("nameko.containers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def start_worker(number: int, labels: list[str], base_url: str, pool: dict, tmp_path: Path):
    job = {"labels": labels, "base_url": base_url, "tokens": {role: token_of(role) for role in ROLES}, "pool": pool,
           "seed": SEED}
    (tmp_path / f"job{number}.json").write_text(json.dumps(job))
    out, log = tmp_path / f"result{number}.json", tmp_path / f"worker{number}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path / "hypothesis")}
    with open(log, "w") as log_file:
        process = subprocess.Popen([sys.executable, __file__, str(tmp_path / f"job{number}.json"), str(out)],
                                   cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    return process, out, log


def shares(served: dict, labels: list[str]) -> list[list[str]]:
    """The operations dealt out to the workers, the biggest first, each to the worker with the least so far."""
    def weight(label):
        method, path = label.split(" ", 1)
        operation = served["paths"][path][method.lower()]
        return len(operation.get("parameters", []) + served["paths"][path].get("parameters", [])) + \
            3 * ("requestBody" in operation)
    dealt = [[] for _ in range(WORKERS)]
    load = [0] * WORKERS
    for label in sorted(labels, key=weight, reverse=True):
        n = load.index(min(load))
        dealt[n].append(label)
        load[n] += weight(label) + 1
    return dealt


def test_fuzz_every_route_as_every_role(embedded_system, world, quiet_refusals, tmp_path):
    from crm_common.ops import openapi_document
    served = requests.get(embedded_system.base_url + "/openapi.json", timeout=60).json()
    assert served == openapi_document(), "the served document is not docs/openapi"
    documented = sorted(f"{method.upper()} {path}" for path, ops in served["paths"].items() for method in ops
                        if method in ("get", "post", "put", "patch", "delete"))
    print(f"\n[test_fuzz] seed {SEED} (CRM_FUZZ_SEED to change it): {len(documented)} operations x {ROLES}")
    started, cpu = time.monotonic(), os.times()
    workers = [start_worker(n, share, embedded_system.base_url, world, tmp_path)
               for n, share in enumerate(shares(served, documented))]
    deadline = started + WORKER_TIMEOUT
    while any(process.poll() is None for process, _, _ in workers) and time.monotonic() < deadline:
        time.sleep(0.5)   # green (eventlet): the services go on answering meanwhile
    sent, failures, seconds = defaultdict(int), [], []
    for process, out, log in workers:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.returncode == 0 and out.exists(), \
            f"fuzz worker exited {process.returncode}:\n{log.read_text()[-3000:]}"
        result = json.loads(out.read_text())
        failures += result["failures"]
        seconds.append(result["seconds"])
        for key, count in result["sent"].items():
            sent[key] += count
    took, after = time.monotonic() - started, os.times()
    by_role = {role: sum(count for key, count in sent.items() if key.startswith(role + " ")) for role in ROLES}
    total = sum(by_role.values())
    print(f"[test_fuzz] {total} requests {by_role} in {took:.0f}s; CPU seconds: services "
          f"{after.user + after.system - cpu.user - cpu.system:.0f}, generating and checking "
          f"{after.children_user + after.children_system - cpu.children_user - cpu.children_system:.0f} "
          f"(workers took {', '.join(f'{t:.0f}s' for t in seconds)})")
    assert not failures, f"seed {SEED}: {len(failures)} failing:\n" + "\n".join(failures)
    unsent = [f"{role} {label}" for role in ROLES for label in documented if not sent[f"{role} {label}"]]
    assert not unsent, f"nothing sent to {unsent}"
    assert all(count >= REQUESTS_PER_ROLE for count in by_role.values()) and total >= TOTAL_REQUESTS, by_role


# ================================================================ the workers: generating, sending, checking

def real_ids(case, pool: dict, data, st) -> None:
    """Swap generated ids for real ones from the world, mostly: path ids 9 times in 10, id-like query and body
    values half the time (the rest stays generated junk, for the not-found paths). A path's rep_id is always one
    of VICTIMS, never a caller."""
    for name, value in list((case.path_parameters or {}).items()):
        if name == "rep_id" or (name in pool and data.draw(st.integers(0, 9), label=f"keep {name}") > 0):
            case.path_parameters[name] = data.draw(st.sampled_from(pool[name]), label=name)
    for container in (case.query, case.body):
        if isinstance(container, dict):
            for name in [n for n in container if n in pool]:
                if data.draw(st.booleans(), label=f"real {name}"):
                    container[name] = data.draw(st.sampled_from(pool[name]), label=name)


def examples_for(operation, mode) -> int:
    """Hypothesis examples per operation and mode (each sent as the three roles). Reads are cheap to make and to
    answer, so they get the most (each query parameter adds some); a JSON body costs more to generate and to write,
    so fewer; the whole-database jobs and the argon2 routes (slow on purpose) a handful."""
    import schemathesis
    if operation.path in HEAVY:
        return 4
    parameters = len(list(operation.query)) + len(list(operation.path_parameters))
    negative = mode == schemathesis.GenerationMode.NEGATIVE
    if operation.method.upper() == "GET":
        return (17 + 5 * parameters) if negative else min(45 + 10 * parameters, 125)
    return 19 if negative else 32


# whole-database jobs, and argon2 hashing on purpose slow: a handful of runs each, or they take the whole budget
HEAVY = {"/v1/reports/rebuild", "/v1/alerts/sweep", "/v1/classification/sweep", "/v1/sweeps/{job}",
         "/v1/alerts/digest", "/v1/auth/login", "/v1/reps/{rep_id}/password"}


def modes_of(operation):
    """Valid requests for every route; invalid ones where there is something to break, a query or a JSON body
    (any string is a valid path id, any bytes a valid upload: a route with only those has no negative case)."""
    import schemathesis
    if len(list(operation.query)) or any("json" in body.media_type for body in operation.body):
        return schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
    return (schemathesis.GenerationMode.POSITIVE,)


def describe(exc: BaseException) -> str:
    """A failure's report; for Hypothesis's own groups (a failure it could not reproduce: Flaky) the failures
    inside too, since their message alone does not say what failed."""
    text = str(exc)
    if isinstance(exc, BaseExceptionGroup) and type(exc).__module__.startswith("hypothesis"):
        text += "".join(f"\n  {describe(inner)}" for inner in exc.exceptions[:3])
    return text


class RoleFailure(Exception):
    """A check failed for the answer to one of the roles."""

    def __init__(self, role: str, failure: BaseException):
        super().__init__(f"as {role}: {failure}")


def fuzz_operations(job: dict) -> dict:
    """The job's operations of the served document, in both modes; each generated request is sent as every role
    (in an order drawn with it: a write may change what the next role's request meets). Answers
    {sent: {"ROLE METHOD PATH": count}, failures, seconds}."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings, strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                                   status_code_conformance)

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    base_url, pool = job["base_url"], job["pool"]
    # loaded from the served document's JSON (from_url would leave out GET /openapi.json itself)
    schema = schemathesis.openapi.from_dict(requests.get(base_url + "/openapi.json", timeout=60).json())
    # the callers' tokens are this test's to send: no generated or dropped Authorization header
    schema.config.generation.update(with_security_parameters=False)
    headers = {role: {"Authorization": f"Bearer {token}"} for role, token in job["tokens"].items()}
    session = requests.Session()
    started, sent, failures = time.monotonic(), defaultdict(int), []

    def fuzz(operation, mode):
        @hypothesis.seed(job["seed"])
        @settings(max_examples=examples_for(operation, mode), database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck),
                  print_blob=False, report_multiple_bugs=False)
        @given(case=operation.as_strategy(generation_mode=mode), data=st.data(), order=st.permutations(ROLES))
        def run(case, data, order):
            real_ids(case, pool, data, st)
            for role in order:
                response = case.call(base_url=base_url, session=session, headers=headers[role], timeout=60)
                sent[f"{role} {operation.label}"] += 1
                try:
                    case.validate_response(response, checks=checks, headers=headers[role])
                except (Exception, BaseExceptionGroup) as failure:
                    raise RoleFailure(role, failure) from None

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation runs; all are reported
            failures.append(f"--- {mode.value} {operation.label} {describe(exc)}"[:6000])

    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in job["labels"]:
            for mode in modes_of(operation):
                fuzz(operation, mode)
    return {"sent": sent, "failures": failures, "seconds": time.monotonic() - started}


if __name__ == "__main__":   # python test_fuzz.py JOB.json RESULT.json (started by the test above)
    with open(sys.argv[1]) as handle:
        outcome = fuzz_operations(json.load(handle))
    with open(sys.argv[2], "w") as handle:
        json.dump(outcome, handle)
