"""Churn early warning across real processes: silence -> alert -> at-risk + recall task -> recovered."""
import uuid
from datetime import datetime, timedelta, timezone

import requests
from kombu import Connection, Exchange, Queue

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET

NOW = datetime.now(timezone.utc)
ADMIN = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}


def test_silence_to_alert_to_recall_to_recovery(system, infra, eventually):
    customers, followups, alerts = (system[n].base_url for n in ("customers", "followups", "alerts"))
    team = f"a{uuid.uuid4().hex[:8]}"
    rep = f"{team}-r1"
    for person in ({"id": rep, "name": rep, "team": team}, {"id": f"{team}-m", "name": "M", "team": team,
                                                            "role": "manager"}):
        assert requests.post(f"{customers}/v1/reps", json=person, headers=ADMIN).status_code == 201
    rep_auth = {"Authorization": f"Bearer {issue_token(DEV_SECRET, rep, 'rep', team)}"}
    purchase_days = (300, 240, 180, 120, 60)
    imported = requests.post(f"{customers}/v1/customers/import", headers=ADMIN, json={
        "customer": {"company": "Quiet Corp", "owner_id": rep, "created_at": (NOW - timedelta(days=400)).isoformat()},
        "stages": [{"stage": "won", "changed_at": (NOW - timedelta(days=320)).isoformat()}],
        "purchases": [{"amount": "3000.00", "currency": "USD", "purchased_at": (NOW - timedelta(days=d)).isoformat()}
                      for d in purchase_days]})
    assert imported.status_code == 201, imported.text
    customer_id = imported.json()["id"]
    eventually(lambda: requests.post(f"{followups}/v1/interactions", headers=rep_auth, json={
        "customer_id": customer_id, "kind": "call", "outcome": "reached",
        "occurred_at": (NOW - timedelta(days=70)).isoformat()}).status_code == 201, message="touch logged")

    def folded():
        response = requests.get(f"{alerts}/v1/customers/{customer_id}/health", headers=ADMIN)
        body = response.json() if response.status_code == 200 else {}
        signals = body.get("signals", {})
        return signals.get("purchases_12m") == len(purchase_days) and signals.get("last_contact_at")
    eventually(folded, timeout=30, message="alerts folded the history from events")

    assert requests.post(f"{alerts}/v1/alerts/sweep", json={}, headers=ADMIN).status_code == 200
    alerts_of = lambda: requests.get(f"{alerts}/v1/alerts", params={"customer_id": customer_id},  # noqa: E731
                                     headers=ADMIN).json()["items"]
    [silence] = [a for a in alerts_of() if a["rule"] == "silence"]
    assert any(s["name"] == "days_since_contact" for s in silence["signals"])
    assert requests.post(f"{alerts}/v1/alerts/sweep", json={}, headers=ADMIN).status_code == 200
    assert len([a for a in alerts_of() if a["rule"] == "silence"]) == 1  # a second sweep adds no duplicate

    # the rep's daily digest, as a mail or chat bridge sees it: plain AMQP, one CloudEvent per recipient
    exchange = Exchange("crm.events", type="topic", durable=True)
    digests = Queue(f"test.digest.{team}", exchange, routing_key="alert.digest.v1", auto_delete=True)
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        digests(connection.default_channel).declare()
        sent = requests.post(f"{alerts}/v1/alerts/digest", headers=ADMIN)
        assert sent.status_code == 200 and sent.json()["digests"] >= 1, sent.text
        ours = {}

        def received():
            bound = digests(connection.default_channel)
            while (message := bound.get(no_ack=True)) is not None:
                if message.payload["data"]["team"] == team:
                    ours[message.payload["subject"]] = message.payload
            return len(ours) == 2
        eventually(received, message="the rep's and the manager's alert.digest")
    assert {e["type"] for e in ours.values()} == {"crm.alert.digest"}
    for recipient, role in ((rep, "rep"), (f"{team}-m", "manager")):
        data = ours[recipient]["data"]
        [entry] = data["entries"]
        assert (entry["customer_id"], data["role"], data["customers_in_queue"]) == (customer_id, role, 1)
        assert "silence" in entry["rules"] and entry["value_at_stake"] == data["value_at_stake"]

    eventually(lambda: requests.get(f"{customers}/v1/customers/{customer_id}", headers=ADMIN)
               .json()["lifecycle"] == "at_risk", message="customers flagged the customer at risk")
    eventually(lambda: [t for t in requests.get(f"{followups}/v1/tasks", headers=ADMIN,
                                                params={"customer_id": customer_id, "kind": "recall"}).json()["items"]
                        if t["assignee_id"] == rep], message="followups opened the recall task for the owner")

    def recovered():
        # resolve whatever is open, including an alert the recall task's own events raised meanwhile
        for alert in [a for a in alerts_of() if a["status"] != "resolved"]:
            response = requests.post(f"{alerts}/v1/alerts/{alert['id']}/resolve", headers=rep_auth,
                                     json={"outcome": "recovered", "note": "reordered"})
            assert response.status_code in (200, 409), response.text
        return requests.get(f"{customers}/v1/customers/{customer_id}", headers=ADMIN).json()["lifecycle"] != "at_risk"
    eventually(recovered, timeout=60, interval=1, message="customers lifted the flag on recovery")
