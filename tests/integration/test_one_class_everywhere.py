"""Every service shows the same class for a customer: customers' record, followups' cadence task text,
alerts' health view and reports' distribution, across real processes, after a history loaded the way an
import loads it (create, then backdated purchases one by one, each moving tier and lifecycle)."""
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import requests

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET

NOW = datetime.now(timezone.utc)
ADMIN = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}
# name -> (amount, days ago) of each purchase, oldest first; the class it should end in
HISTORIES = {
    "whale": ([("60000", 300), ("30000", 150), ("20000", 20)], ("A", "active")),
    "fresh": ([("25000", 30)], ("B", "new")),
    "cooling": ([("5000", 400), ("5000", 200)], ("C", "at_risk")),
    "sleeper": ([("30000", 700), ("40000", 300)], ("B", "dormant")),
    "lead": ([], ("C", "potential")),
}


def test_every_service_shows_the_class_the_customers_service_gives(system, eventually):
    urls = {name: process.base_url for name, process in system.items()}
    team = f"c{uuid.uuid4().hex[:8]}"
    assert requests.post(f"{urls['customers']}/v1/reps", json={"id": f"{team}-r1", "name": "R", "team": team},
                         headers=ADMIN).status_code == 201
    ids = {}
    for name, (purchases, _) in HISTORIES.items():
        created = requests.post(f"{urls['customers']}/v1/customers", headers=ADMIN, json={
            "company": f"{name} {team}", "owner_id": f"{team}-r1"})
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]
        for amount, days in purchases:
            response = requests.post(f"{urls['customers']}/v1/customers/{ids[name]}/purchases", headers=ADMIN, json={
                "amount": amount, "currency": "USD", "purchased_at": (NOW - timedelta(days=days)).isoformat()})
            assert response.status_code == 201, response.text

    def record(name):
        body = requests.get(f"{urls['customers']}/v1/customers/{ids[name]}", headers=ADMIN).json()
        return body["tier"], body["lifecycle"]
    source = {name: record(name) for name in HISTORIES}
    assert source == {name: expected for name, (_, expected) in HISTORIES.items()}  # hand-computed

    def followups_class(name):
        tasks = requests.get(f"{urls['followups']}/v1/tasks", headers=ADMIN, params={
            "customer_id": ids[name], "status": "open"}).json()["items"]
        return [t["purpose"].rsplit("(tier ", 1)[-1].rstrip(")").split(", ") for t in tasks
                if t["reason"] == "cadence"]

    def alerts_class(name):
        body = requests.get(f"{urls['alerts']}/v1/customers/{ids[name]}/health", headers=ADMIN).json()
        return body.get("tier"), body.get("lifecycle")

    def reports_distribution(dimension):
        body = requests.get(f"{urls['reports']}/v1/reports/distribution", headers=ADMIN, params={
            "dimension": dimension, "team": team}).json()
        return {v["value"]: v["customers"] for v in body["values"] if v["customers"]}

    def seen():
        return {"followups": {n: followups_class(n) for n in HISTORIES},
                "alerts": {n: alerts_class(n) for n in HISTORIES},
                "reports": {d: reports_distribution(d) for d in ("tier", "lifecycle")}}
    expected = {"followups": {n: [list(c)] for n, c in source.items()}, "alerts": source,
                "reports": {"tier": Counter(t for t, _ in source.values()),
                            "lifecycle": Counter(lc for _, lc in source.values())}}
    try:
        eventually(lambda: seen() == expected, timeout=60, message="every service to show the same classes")
    except AssertionError:
        assert seen() == expected  # shows where they differ
        raise
