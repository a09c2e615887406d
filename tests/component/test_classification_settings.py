"""Classification thresholds configured without code (issue 13 item 4): an admin stores tier minimums and day
counts over the environment's (GET/PUT /v1/classification/settings), a bad value is refused naming its field,
every change is in the audit log, and the next classification uses them. Over HTTP, embedded system."""
import time

import requests

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET

ADMIN = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}
ROUTE = "/v1/classification/settings"


def call(base, method, path, headers=ADMIN, **kwargs):
    return requests.request(method, base + path, headers=headers, timeout=30, **kwargs)


def test_an_admin_moves_a_tier_minimum_and_the_next_purchase_is_classified_by_it(embedded_system):
    base = embedded_system.base_url
    try:
        before = call(base, "GET", ROUTE).json()
        assert before["overrides"] == {} and before["policy"] == before["environment"]
        assert before["policy"]["tier_minimums"] == {"A": "100000", "B": "20000", "C": "0"}
        call(base, "POST", "/v1/reps", json={"id": "cls-rep", "name": "Cls", "team": "cls"})
        customer = call(base, "POST", "/v1/customers", json={"company": "Threshold Ltd", "owner_id": "cls-rep"}).json()
        bought = call(base, "POST", f"/v1/customers/{customer['id']}/purchases",
                      json={"amount": "30000", "currency": "USD", "purchased_at": "2026-11-20T10:00:00+00:00"})
        assert bought.status_code == 201
        assert call(base, "GET", f"/v1/customers/{customer['id']}").json()["tier"] == "B"

        stored = call(base, "PUT", ROUTE, json={"tier_minimums": {"B": 50000}, "active_days": 150})
        assert stored.status_code == 200, stored.text
        assert stored.json()["policy"]["tier_minimums"]["B"] == "50000" and stored.json()["updated_by"] == "admin"
        assert stored.json()["policy"]["active_days"] == 150
        time.sleep(1.1)  # each process reads the stored policy at most once a second
        call(base, "POST", f"/v1/customers/{customer['id']}/purchases",
             json={"amount": "1000", "currency": "USD", "purchased_at": "2026-11-21T10:00:00+00:00"})
        assert call(base, "GET", f"/v1/customers/{customer['id']}").json()["tier"] == "C"  # 31,000 < 50,000 now

        audit = call(base, "GET", "/v1/audit/customers", params={"action": "classification_settings.updated"})
        assert audit.json()["items"][0]["changes"]["after"] == {"tier_minimums": {"B": "50000"}, "active_days": 150}
    finally:
        call(base, "PUT", ROUTE, json={})
    assert call(base, "GET", ROUTE).json()["overrides"] == {}


def test_bad_settings_are_refused_at_their_field_and_only_admins_change_them(embedded_system):
    base = embedded_system.base_url
    for body, field in (({"tier_minimums": {"B": 200000}}, "tier_minimums.B"), ({"tier_minimums": {"D": 5}}, "tier_minimums"),
                        ({"tier_minimums": {"C": 10}}, "tier_minimums.C"), ({"active_days": 0}, "active_days"),
                        ({"active_days": 300}, "at_risk_days"), ({"churned_days": 100}, "churned_days"),
                        ({"new_days": "soon"}, "new_days"), ({"colour": "red"}, "colour")):
        answer = call(base, "PUT", ROUTE, json=body)
        assert answer.status_code in (400, 422) and field in answer.json()["fields"], (body, answer.text)
    assert call(base, "GET", ROUTE).json()["overrides"] == {}
    call(base, "POST", "/v1/reps", json={"id": "cls-mgr", "name": "Mgr", "team": "cls", "role": "manager"})
    manager = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'cls-mgr', 'manager', 'cls')}"}
    assert call(base, "GET", ROUTE, headers=manager).status_code == 200
    assert call(base, "PUT", ROUTE, headers=manager, json={"new_days": 30}).status_code == 403
