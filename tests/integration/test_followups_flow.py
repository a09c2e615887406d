"""Followups in distributed mode: its own process and database, facts only through RabbitMQ."""
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import eventlet
import pytest
import requests
from kombu import Connection, Exchange, Queue

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET
from crm_common.events import make_event, to_envelope

NOW = datetime.now(timezone.utc)


def auth(user, role, team=None):
    return {"Authorization": f"Bearer {issue_token(DEV_SECRET, user, role, team)}"}


ADMIN = auth("admin", "admin")


@pytest.fixture
def team(system):
    name = f"f{uuid.uuid4().hex[:8]}"
    for rep in (f"{name}-r1", f"{name}-r2"):
        assert requests.post(f"{system['customers'].base_url}/v1/reps", json={"id": rep, "name": rep, "team": name},
                             headers=ADMIN).status_code == 201
    return name


def tasks(system, customer_id):
    response = requests.get(f"{system['followups'].base_url}/v1/tasks", params={"customer_id": customer_id},
                            headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_interaction_schedules_cadence_task_and_reaches_customers(system, team, eventually):
    customers, followups = system["customers"].base_url, system["followups"].base_url
    customer = requests.post(f"{customers}/v1/customers", json={"company": "Flow Ltd", "owner_id": f"{team}-r1"},
                             headers=ADMIN).json()
    rep1 = auth(f"{team}-r1", "rep", team)
    # logged right away: followups may not have the customer.created event yet and asks customers by RPC
    logged = requests.post(f"{followups}/v1/interactions", headers=rep1, json={
        "customer_id": customer["id"], "kind": "call", "outcome": "reached",
        "occurred_at": (NOW - timedelta(hours=2)).isoformat(), "summary": "intro call"})
    assert logged.status_code == 201, logged.text
    assert requests.post(f"{followups}/v1/interactions", headers=auth(f"{team}-r2", "rep", team), json={
        "customer_id": customer["id"], "kind": "call", "outcome": "reached",
        "occurred_at": NOW.isoformat()}).status_code == 404  # not r2's customer
    future = requests.post(f"{followups}/v1/interactions", headers=rep1, json={
        "customer_id": customer["id"], "kind": "call", "outcome": "reached",
        "occurred_at": (NOW + timedelta(days=1)).isoformat()})
    assert future.status_code in (400, 422) and "occurred_at" in future.json()["fields"]

    scheduled = eventually(lambda: [t for t in tasks(system, customer["id"]) if t["status"] == "open"],
                           message="cadence task scheduled")
    assert scheduled[0]["assignee_id"] == f"{team}-r1"
    eventually(lambda: requests.get(f"{customers}/v1/customers/{customer['id']}", headers=ADMIN)
               .json()["last_interaction_at"], message="customers learned of the interaction")

    # ownership moves in customers; the open tasks follow through the event
    assert requests.post(f"{customers}/v1/customers/{customer['id']}/transfer", json={"to_owner_id": f"{team}-r2"},
                         headers=auth("admin", "admin")).status_code == 200
    eventually(lambda: all(t["assignee_id"] == f"{team}-r2" for t in tasks(system, customer["id"])
                           if t["status"] == "open"), message="open tasks moved to the new owner")


def test_alert_raised_creates_one_recall_task(system, team, infra, eventually):
    customers = system["customers"].base_url
    customer = requests.post(f"{customers}/v1/customers", json={"company": "Quiet Co", "owner_id": f"{team}-r1"},
                             headers=ADMIN).json()
    eventually(lambda: requests.get(f"{system['followups'].base_url}/v1/customers/{customer['id']}/interactions",
                                    headers=ADMIN).status_code == 200, message="followups knows the customer")
    envelope = to_envelope(make_event("alert.raised", customer["id"], {
        "alert_id": uuid.uuid4().hex, "customer_id": customer["id"], "rule": "silence", "owner_id": f"{team}-r1",
        "team": team, "raised_at": NOW, "signals": [{"name": "days_without_contact", "value": 45, "threshold": 30}]},
        source="crm/alerts"))
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        exchange = Exchange("crm.events", type="topic", durable=True)
        for _ in range(2):  # redelivered
            connection.Producer().publish(envelope, exchange=exchange, routing_key="alert.raised.v1",
                                          serializer="json", declare=[exchange])
    recall = eventually(lambda: [t for t in tasks(system, customer["id"]) if t["kind"] == "recall"],
                        message="recall task")
    eventlet.sleep(1)
    assert len([t for t in tasks(system, customer["id"]) if t["kind"] == "recall"]) == 1
    assert recall[0]["assignee_id"] == f"{team}-r1"


def test_reminders_are_sent_once_with_two_replicas_sweeping_together(system, start_service, team, infra,
                                                                      eventually):
    customers, followups = system["customers"].base_url, system["followups"].base_url
    second = start_service("followups")
    customer = requests.post(f"{customers}/v1/customers", json={"company": "Late Co", "owner_id": f"{team}-r1"},
                             headers=ADMIN).json()
    exchange = Exchange("crm.events", type="topic", durable=True)
    queue = Queue(f"test.overdue.{team}", exchange, routing_key="task.overdue.v1", auto_delete=True)
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        queue(connection.default_channel).declare()
        created = []
        for i in range(20):
            response = requests.post(f"{followups}/v1/tasks", headers=ADMIN, json={
                "customer_id": customer["id"], "purpose": f"call back {i}",
                "due_at": (NOW - timedelta(hours=3)).isoformat()})
            assert response.status_code == 201, response.text
            created.append(response.json()["id"])
        sweeps = [eventlet.spawn(requests.post, f"{base}/v1/sweeps/reminders", headers=ADMIN)
                  for base in (followups, second.base_url, followups, second.base_url)]
        assert all(s.wait().status_code == 200 for s in sweeps)
        seen = Counter()

        def collect():
            bound = queue(connection.default_channel)
            while (message := bound.get(no_ack=True)) is not None:
                seen[message.payload["data"]["task_id"]] += 1
            return set(created) <= set(seen)
        eventually(collect, message="an overdue reminder for each task")
        eventlet.sleep(1)
        collect()
    assert {task_id: seen[task_id] for task_id in created} == {task_id: 1 for task_id in created}
    assert second.stop() == 0
