"""A history imported today makes the past (issue 10 item 1): the reports of past days show the stages the
dated facts give, with no sweep run in the past. Over HTTP, embedded system, a team of its own."""
import time
import uuid

import requests

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET

ADMIN = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}


def call(base, method, path, **kwargs):
    return requests.request(method, base + path, headers=ADMIN, timeout=30, **kwargs)


def lifecycles(base, team, as_of):
    answer = call(base, "GET", "/v1/reports/distribution", params={"dimension": "lifecycle", "team": team,
                                                                   "as_of": as_of})
    assert answer.status_code == 200, answer.text
    return {v["value"]: v["customers"] for v in answer.json()["values"] if v["customers"]}


def test_an_imported_history_shows_in_the_reports_of_past_days(embedded_system):
    base, team = embedded_system.base_url, f"hist-{uuid.uuid4().hex[:8]}"
    assert call(base, "POST", "/v1/reps", json={"id": f"{team}-rep", "name": "Hist", "team": team}).status_code == 201
    imported = call(base, "POST", "/v1/customers/import", json={
        "customer": {"company": "Dated Ltd", "owner_id": f"{team}-rep", "created_at": "2025-01-01T00:00:00Z"},
        "purchases": [{"amount": "30000", "currency": "USD", "purchased_at": f"2025-0{m}-15T00:00:00Z"}
                      for m in (2, 4, 6)]})
    assert imported.status_code == 201, imported.text
    # change points of the facts: new 2025-02-15, active 2025-05-17, at_risk 2025-12-13, dormant 2026-03-13
    expected = {"2025-01-31": {"potential": 1}, "2025-02-15": {"new": 1}, "2025-05-16": {"new": 1},
                "2025-05-17": {"active": 1}, "2025-12-12": {"active": 1}, "2025-12-13": {"at_risk": 1},
                "2026-03-12": {"at_risk": 1}, "2026-03-13": {"dormant": 1}}
    deadline, seen = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        seen = {day: lifecycles(base, team, day) for day in expected}
        if seen == expected:
            break
        time.sleep(0.3)
    assert seen == expected
    tiers = call(base, "GET", "/v1/reports/distribution", params={"dimension": "tier", "team": team,
                                                                  "as_of": "2025-07-01"}).json()
    assert {v["value"]: v["customers"] for v in tiers["values"]}["B"] == 1  # 90,000 in the window then
