"""Each service serves its own audit log (GET /v1/audit/<service>): admins only, newest first, filtered,
paged by cursor; the console merges the four. Over HTTP against the embedded system."""
import time

import requests

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET

ADMIN = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}


def call(base, method, path, headers=ADMIN, **kwargs):
    return requests.request(method, base + path, headers=headers, timeout=30, **kwargs)


def test_each_service_lists_its_own_changes_newest_first(embedded_system):
    base = embedded_system.base_url
    assert call(base, "POST", "/v1/reps", json={"id": "aud-rep", "name": "Audited", "team": "aud"}).status_code == 201
    customer = call(base, "POST", "/v1/customers", json={"company": "Audit Ltd", "owner_id": "aud-rep"}).json()
    assert call(base, "PATCH", f"/v1/customers/{customer['id']}", json={"notes": "first"}).ok
    assert call(base, "PATCH", f"/v1/customers/{customer['id']}", json={"notes": "second"}).ok
    assert call(base, "PUT", "/v1/cadence-policy", json={"intervals": {}}).ok
    expired = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'aud-rep', 'rep', ttl_seconds=1, now=time.time() - 10)}"}
    assert call(base, "GET", "/v1/reports/summary", headers=expired).status_code == 401

    mine = call(base, "GET", "/v1/audit/customers", params={"entity": "customer", "entity_id": customer["id"]}).json()
    assert [e["action"] for e in mine["items"]] == ["customer.updated", "customer.updated", "customer.created"]
    assert mine["items"][0]["changes"]["notes"] == ["first", "second"] and mine["next_cursor"] is None
    assert {e["actor_id"] for e in mine["items"]} == {"admin"}
    followups = call(base, "GET", "/v1/audit/followups", params={"actor_id": "admin"}).json()["items"]
    assert followups[0]["action"] == "cadence_policy.updated" and followups[0]["entity"] == "cadence_policy"
    refused = call(base, "GET", "/v1/audit/reports", params={"action": "auth.refused"}).json()["items"]
    assert refused and refused[0]["changes"]["reason"] == "expired" and refused[0]["entity_id"] == "aud-rep"

    # pages by cursor: every entry once, newest first
    seen, cursor = [], None
    while True:
        page = call(base, "GET", "/v1/audit/customers", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        body = page.json()
        seen += [e["id"] for e in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) >= 5


def test_only_admins_read_it_and_bad_filters_name_the_field(embedded_system):
    base = embedded_system.base_url
    call(base, "POST", "/v1/reps", json={"id": "aud-mgr", "name": "Mgr", "team": "aud", "role": "manager"})
    manager = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'aud-mgr', 'manager', 'aud')}"}
    deadline = time.monotonic() + 10
    for service in ("customers", "followups", "alerts", "reports"):
        while (status := call(base, "GET", f"/v1/audit/{service}", headers=manager).status_code) == 401:
            assert time.monotonic() < deadline, "the manager known to every service"
            time.sleep(0.2)
        assert status == 403, service
    for params, field in (({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"cursor": "x"}, "cursor"),
                          ({"since": "yesterday"}, "since"), ({"colour": "red"}, "colour")):
        answer = call(base, "GET", "/v1/audit/alerts", params=params)
        assert answer.status_code == 400 and field in answer.json()["fields"], (params, answer.text)
