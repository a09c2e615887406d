"""The foundation on a real broker and database: services as processes, events as outside systems see them."""
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
from kombu import Connection, Exchange, Queue

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET
from crm_common.consumer import dead_letter_queue
from crm_common.events import make_event, to_envelope
from crm_common.outbox import event_headers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOW = datetime.now(timezone.utc)


def auth(user, role, team=None):
    return {"Authorization": f"Bearer {issue_token(DEV_SECRET, user, role, team)}"}


ADMIN = auth("admin", "admin")


@pytest.fixture
def team(system):
    """A fresh team with two reps, so tests never see each other's data."""
    name = f"t{uuid.uuid4().hex[:8]}"
    api = system["customers"].base_url
    for rep in (f"{name}-r1", f"{name}-r2"):
        response = requests.post(f"{api}/v1/reps", json={"id": rep, "name": rep, "team": name}, headers=ADMIN)
        assert response.status_code == 201, response.text
    return name


def create_customer(api, owner, **fields):
    response = requests.post(f"{api}/v1/customers", json={"company": f"Co {uuid.uuid4().hex[:6]}",
                                                           "owner_id": owner, **fields}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def test_customer_lifecycle_over_http(system, team):
    api = system["customers"].base_url
    customer = create_customer(api, f"{team}-r1", industry="retail", tags=["vip"])
    for days, amount in ((200, "30000"), (20, "80000")):
        response = requests.post(f"{api}/v1/customers/{customer['id']}/purchases", headers=ADMIN, json={
            "amount": amount, "currency": "USD", "purchased_at": (NOW - timedelta(days=days)).isoformat()})
        assert response.status_code == 201, response.text
    body = requests.get(f"{api}/v1/customers/{customer['id']}", headers=auth(f"{team}-r1", "rep", team)).json()
    assert (body["tier"], body["lifecycle"]) == ("A", "active")
    assert requests.get(f"{api}/v1/customers/{customer['id']}",
                        headers=auth(f"{team}-r2", "rep", team)).status_code == 404
    listed = requests.get(f"{api}/v1/customers", params={"team": team, "tier": "A"}, headers=ADMIN).json()
    assert [c["id"] for c in listed["items"]] == [customer["id"]]
    bad = requests.post(f"{api}/v1/customers/{customer['id']}/purchases", headers=ADMIN,
                        json={"amount": "-1", "currency": "usd"})
    assert bad.status_code == 400 and {"amount", "currency", "purchased_at"} <= set(bad.json()["fields"])
    assert requests.get(f"{api}/v1/customers", headers={"Authorization": "Bearer forged"}).status_code == 401


def test_outside_subscriber_with_plain_kombu_sees_cloudevents(system, team, infra):
    api = system["customers"].base_url
    queue = f"example.{team}"
    subscriber = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "examples", "kombu_subscriber.py"), "customer.created.v1",
         "customer.stage_changed.v1", "--queue", queue, "--max-events", "2", "--idle-timeout", "30"],
        env=infra, stdout=subprocess.PIPE, text=True)
    assert subscriber.stdout.readline().startswith("listening")
    customer = create_customer(api, f"{team}-r1")
    requests.post(f"{api}/v1/customers/{customer['id']}/stage", json={"stage": "needs_analysis"}, headers=ADMIN)
    output, _ = subscriber.communicate(timeout=60)
    lines = output.strip().splitlines()
    assert len(lines) == 2, output
    assert "crm.customer.created v1" in lines[0] and f"subject={customer['id']}" in lines[0]
    assert "crm.customer.stage_changed v1" in lines[1] and '"new_stage": "needs_analysis"' in lines[1]


def _publish(infra, body, routing_key, raw=False):
    """As a producer's relay publishes: the subject (and sequence, when known) repeated in headers."""
    headers = event_headers(body["subject"], body.get("sequence")) if isinstance(body, dict) and "subject" in body \
        else {}
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        producer = connection.Producer()
        exchange = Exchange("crm.events", type="topic", durable=True)
        if raw:
            producer.publish(body, exchange=exchange, routing_key=routing_key, content_type="application/json",
                             content_encoding="utf-8", declare=[exchange], headers=headers)
        else:
            producer.publish(body, exchange=exchange, routing_key=routing_key, serializer="json", declare=[exchange],
                             headers=headers)


def _dead_letters(infra, service):
    found = []
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        queue = dead_letter_queue(service)(connection.default_channel)  # declared as the services declare it
        while True:
            message = queue.get(no_ack=True)
            if message is None:
                return found
            found.append((message.headers, message.body))


def interaction(customer_id, rep, when):
    return make_event("interaction.logged", customer_id, {
        "interaction_id": uuid.uuid4().hex, "customer_id": customer_id, "rep_id": rep, "kind": "call",
        "phase": "post_sale", "occurred_at": when, "outcome": "reached"}, source="crm/test")


def test_bad_messages_are_dead_lettered_and_do_not_block(system, team, infra, eventually):
    api = system["customers"].base_url
    customer = create_customer(api, f"{team}-r1")
    _dead_letters(infra, "customers")  # drain earlier tests' letters
    broken = to_envelope(interaction(customer["id"], f"{team}-r1", NOW))
    broken["data"]["kind"] = "telepathy"
    _publish(infra, broken, "interaction.logged.v1")
    _publish(infra, "{not json", "interaction.logged.v1", raw=True)
    _publish(infra, {"hello": "world"}, "interaction.logged.v1")
    touched = NOW - timedelta(hours=1)
    _publish(infra, to_envelope(interaction(customer["id"], f"{team}-r1", touched)), "interaction.logged.v1")

    def applied():
        body = requests.get(f"{api}/v1/customers/{customer['id']}", headers=ADMIN).json()
        assert "last_interaction_at" in body, body
        return body["last_interaction_at"] is not None and body
    assert eventually(applied, message="the valid event behind the bad ones")["last_interaction_at"] == \
        touched.isoformat()
    letters = eventually(lambda: _dead_letters(infra, "customers") or None, message="dead letters")
    letters += _dead_letters(infra, "customers")
    reasons = [headers["x-crm-dead-letter-reason"] for headers, _ in letters]
    assert len(reasons) == 3, reasons
    assert any("kind" in r and "invalid data" in r for r in reasons)
    assert any("undecodable" in r for r in reasons)
    assert any("invalid envelope" in r for r in reasons)
    assert all(h["x-crm-original-routing-key"] == "interaction.logged.v1" for h, _ in letters)


def test_redelivered_event_changes_nothing(system, team, infra, eventually):
    api = system["customers"].base_url
    customer = create_customer(api, f"{team}-r1")
    requests.post(f"{api}/v1/customers/{customer['id']}/purchases", headers=ADMIN, json={
        "amount": "100", "currency": "USD", "purchased_at": (NOW - timedelta(days=600)).isoformat()})
    event = to_envelope(interaction(customer["id"], f"{team}-r1", NOW - timedelta(days=1)))
    duplicates_before = _consumed([system["customers"]], "duplicate")
    for _ in range(3):
        _publish(infra, event, "interaction.logged.v1")

    def changes():
        history = requests.get(f"{api}/v1/customers/{customer['id']}/history", headers=ADMIN).json()
        return [c for c in history["classification"] if c["reason"].startswith("interaction logged")]
    assert eventually(changes, message="interaction applied")
    eventually(lambda: _consumed([system["customers"]], "duplicate") == duplicates_before + 2,
               message="the two redeliveries counted as duplicates")
    assert len(changes()) == 1  # churned -> dormant once, not three times


def test_metrics_and_health(system):
    for name, service in system.items():
        health = requests.get(service.base_url + "/health").json()
        assert health == {"service": name, "status": "ok", "checks": {"database": "ok", "broker": "ok"}}
        text = requests.get(service.base_url + "/metrics").text
        for metric in ("crm_http_requests_total", "crm_outbox_backlog", "crm_http_request_duration_seconds"):
            assert metric in text, f"{name} lacks {metric}"
    document = requests.get(system["customers"].base_url + "/openapi.json").json()
    assert document["openapi"].startswith("3.") and "/v1/customers" in document["paths"]


def _consumed(services, outcome, routing_key="interaction.logged.v1"):
    return sum(s.metric("crm_events_consumed_total", f'outcome="{outcome}"', f'routing_key="{routing_key}"')
               for s in services)


def test_two_replicas_share_the_queue_and_apply_each_event_once(system, start_service, team, infra, eventually):
    api = system["customers"].base_url
    second = start_service("customers")
    replicas = (system["customers"], second)
    # the replicas share the partitions out between them within a few lease ticks
    eventually(lambda: all(r.metric("crm_event_partitions_held") == 2
                           for r in replicas), timeout=30, message="two partitions each")
    customers = [create_customer(api, f"{team}-r1") for _ in range(16)]
    applied_before, duplicates_before = _consumed(replicas, "applied"), _consumed(replicas, "duplicate")
    for customer in customers:
        event = to_envelope(interaction(customer["id"], f"{team}-r1", NOW - timedelta(minutes=5)))
        for _ in range(2):  # every event delivered twice
            _publish(infra, event, "interaction.logged.v1")
    eventually(lambda: _consumed(replicas, "applied") + _consumed(replicas, "duplicate")
               >= applied_before + duplicates_before + 32, message="32 deliveries handled")
    assert _consumed(replicas, "applied") - applied_before == 16
    assert _consumed(replicas, "duplicate") - duplicates_before == 16
    assert all(_consumed([r], "applied") + _consumed([r], "duplicate") > 0 for r in replicas), \
        "both replicas should have taken a share of the queue"
    assert second.stop() == 0  # graceful exit on SIGTERM


def test_a_redelivered_purchase_is_counted_once(system, team, infra, eventually):
    """The very message the relay published, delivered twice more: applied again, reports' counters
    would show the purchase three times."""
    api, reports = system["customers"].base_url, system["reports"].base_url
    customer = create_customer(api, f"{team}-r1")
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        tap = Queue(f"tap.{team}", Exchange("crm.events", type="topic", durable=True),
                    routing_key="purchase.recorded.v1", exclusive=True)(connection.default_channel)
        tap.declare()
        assert requests.post(f"{api}/v1/customers/{customer['id']}/purchases", headers=ADMIN, json={
            "amount": "250.00", "currency": "USD", "purchased_at": NOW.isoformat()}).status_code == 201

        def published():
            message = tap.get(no_ack=True)
            while message is not None and message.payload["subject"] != customer["id"]:
                message = tap.get(no_ack=True)  # other tests' purchases
            return message
        original = eventually(published, message="the purchase published")
    window = {"period_kind": "month", "from": NOW.strftime("%Y-%m"), "to": NOW.strftime("%Y-%m"), "team": team}

    def figures():
        rows = requests.get(f"{reports}/v1/reports/repurchase", params=window, headers=ADMIN).json()["rows"]
        return sum(r["purchases"] for r in rows), sum(Decimal(r["revenue"]) for r in rows)
    eventually(lambda: figures() == (1, Decimal("250.00")), message="reports counted the purchase")
    duplicates = _consumed([system["reports"]], "duplicate", "purchase.recorded.v1")
    for _ in range(2):
        _publish(infra, original.payload, "purchase.recorded.v1")
    eventually(lambda: _consumed([system["reports"]], "duplicate", "purchase.recorded.v1") == duplicates + 2,
               message="both copies seen by reports")
    assert figures() == (1, Decimal("250.00"))


def test_a_request_that_loses_a_race_for_a_key_is_run_again(infra):
    """On PostgreSQL: between our check and our insert another transaction takes the key (as a request
    and an event both seeing a customer first do); the loser is run again and sees the winner's row."""
    from sqlalchemy import Column, MetaData, String, Table, insert, select

    from crm_common.db import add_infrastructure_tables
    from crm_common.testing import InMemoryStore

    metadata = MetaData()
    probe = Table(f"race_probe_{uuid.uuid4().hex[:8]}", metadata, Column("key", String, primary_key=True),
                  Column("written_by", String))
    store = InMemoryStore(metadata, add_infrastructure_tables(metadata), "probe", infra["REPORTS_DATABASE_URL"])
    attempts = []

    def create_once(uow):
        attempts.append(1)
        if uow.session.execute(select(probe.c.written_by).where(probe.c.key == "k")).first():
            return "found"
        if len(attempts) == 1:  # the other transaction wins the key now
            with store.engine.begin() as other:
                other.execute(insert(probe).values(key="k", written_by="other"))
        uow.session.execute(insert(probe).values(key="k", written_by="us"))
        return "created"
    try:
        assert store.run(create_once) == "found"
        assert len(attempts) == 2
        with store.engine.connect() as connection:
            assert connection.execute(select(probe.c.written_by)).scalars().all() == ["other"]
    finally:
        probe.drop(store.engine)
        store.engine.dispose()
