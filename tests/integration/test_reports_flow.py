"""Reports across real processes: figures from events, and a rebuild by replay over RabbitMQ RPC."""
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import requests

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET

NOW = datetime.now(timezone.utc)
ADMIN = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}


def test_figures_from_events_and_rebuild_by_replay(system, eventually):
    customers, reports = system["customers"].base_url, system["reports"].base_url
    team = f"r{uuid.uuid4().hex[:8]}"
    assert requests.post(f"{customers}/v1/reps", json={"id": f"{team}-r1", "name": "R", "team": team},
                         headers=ADMIN).status_code == 201
    days = (200, 100, 40, 10)
    response = requests.post(f"{customers}/v1/customers/import", headers=ADMIN, json={
        "customer": {"company": "Counted Co", "owner_id": f"{team}-r1", "industry": "energy",
                     "created_at": (NOW - timedelta(days=300)).isoformat()},
        "purchases": [{"amount": "1000.00", "currency": "USD", "purchased_at": (NOW - timedelta(days=d)).isoformat()}
                      for d in days]})
    assert response.status_code == 201, response.text
    window = {"period_kind": "month", "from": (NOW - timedelta(days=220)).strftime("%Y-%m"),
              "to": NOW.strftime("%Y-%m"), "team": team}

    def figures():
        rows = requests.get(f"{reports}/v1/reports/repurchase", params=window, headers=ADMIN).json()["rows"]
        return sum(r["purchases"] for r in rows), sum(Decimal(r["revenue"]) for r in rows)
    eventually(lambda: figures() == (4, Decimal("4000.00")), timeout=30, message="reports counted the purchases")
    distribution = requests.get(f"{reports}/v1/reports/distribution", params={"dimension": "industry", "team": team},
                                headers=ADMIN).json()
    assert {v["value"]: v["customers"] for v in distribution["values"]}.get("energy") == 1

    rebuilt = requests.post(f"{reports}/v1/reports/rebuild", headers=ADMIN, timeout=300)
    assert rebuilt.status_code in (200, 202), rebuilt.text
    assert rebuilt.json()["errors"] == {} and rebuilt.json()["replayed"]["customers"] > 0
    time.sleep(1)
    eventually(lambda: figures() == (4, Decimal("4000.00")), timeout=120, message="the same figures after rebuild")
