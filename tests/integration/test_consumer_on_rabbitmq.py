"""The batch consumer on RabbitMQ, where the in-memory bus differs: consistent-hash partitions,
single-active-consumer queues, one multiple-ack per batch. A failing event is retried, then
dead-lettered with its reason and acknowledged; a rejected one goes straight to the dead letters; the
events around either still apply. The probe service of tests/probe.py gets its events through its own
inbound exchange, so the services sharing this broker never see them."""
import socket
import subprocess
import time
from datetime import datetime, timezone

import pytest
from kombu import Connection

from crm_common.consumer import REASON_HEADER
from crm_common.events import make_event, to_envelope
from tests.probe import applied_rows, calls, dead_letters, publish, stage_event, start_probe

PARTITIONS = 4


def _queues(channel):
    """(ready messages, consumers) of each of the probe's partition queues."""
    return [channel.queue_declare(f"probe.events.p{index}", passive=True)[1:] for index in range(PARTITIONS)]


@pytest.fixture
def probe(infra, tmp_path, eventually):
    uri = infra["CRM_AMQP_URI"]
    database = tmp_path / "probe.db"
    with Connection(uri) as connection:
        container = start_probe(uri, database, EVENT_PARTITIONS=PARTITIONS)

        def consuming():
            try:  # a fresh channel each time: a passive declare of a queue not there yet closes it
                return all(consumers for _, consumers in _queues(connection.channel()))
            except Exception:
                return False
        eventually(consuming, timeout=30, message="the probe consuming every partition")
        try:
            yield connection, uri, database, container
        finally:
            container.stop()
            channel = connection.channel()  # the probe's queues go with it: nothing piles up in them later
            for index in range(PARTITIONS):
                channel.queue_delete(f"probe.events.p{index}")
            channel.queue_delete("probe.dead-letter")
            channel.exchange_delete("crm.probe.inbound")


def test_a_failing_event_is_retried_then_dead_lettered_and_acknowledged(probe):
    connection, uri, database, container = probe
    failing = to_envelope(make_event("customer.archived", "c9", {
        "customer_id": "c9", "archived_at": datetime.now(timezone.utc)}, source="crm/t"))
    before, after = stage_event("c1", 1), stage_event("c2", 1)
    publish(connection, before, failing, after, amqp_uri=uri)
    [letter] = dead_letters(connection, expect=1, timeout=30)
    assert calls["archived"] == 3  # EVENT_MAX_ATTEMPTS
    assert letter.headers[REASON_HEADER].startswith("failed 3 times, last: RuntimeError: database on fire")
    assert letter.headers["x-crm-original-routing-key"] == "customer.archived.v1"
    assert sorted(r.event_id for r in applied_rows(database, expect=2)) == sorted([before["id"], after["id"]])
    # acknowledged, not merely held: once the consumer is gone, nothing went back to the queues
    container.stop()
    assert [ready for ready, _ in _queues(connection.channel())] == [0] * PARTITIONS


def test_a_rejected_event_is_dead_lettered_at_once_and_the_rest_applies(probe):
    connection, uri, database, _ = probe
    first, second = stage_event("c5", 1), stage_event("c5", 2)
    publish(connection, first, stage_event("poison", 1, name="customer.tier_changed"), second, amqp_uri=uri)
    [letter] = dead_letters(connection, expect=1, timeout=30)
    assert letter.headers[REASON_HEADER] == "rejected: no such customer here"  # no retries
    assert letter.headers["x-crm-original-routing-key"] == "customer.tier_changed.v1"
    assert [r.event_id for r in applied_rows(database, expect=2)] == [first["id"], second["id"]]


def test_partition_and_dead_letter_queues_are_quorum_queues(probe, infra):
    """Replicated over a cluster's nodes (issue 12): a classic queue lives on one node and is gone with it."""
    listing = subprocess.run([infra["CRM_RABBITMQCTL"], "list_queues", "-q", "--no-table-headers", "name", "type"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    types = dict(line.split("\t") for line in listing.splitlines() if line.startswith("probe."))
    expected = {f"probe.events.p{index}" for index in range(PARTITIONS)} | {"probe.dead-letter"}
    assert {name: types.get(name) for name in expected} == {name: "quorum" for name in expected}


def test_an_event_delivered_past_the_limit_goes_to_the_dead_letters(infra, monkeypatch):
    """What kills its consumer at every delivery (here: taken and handed back unacknowledged, as a crashed
    process does) is dead-lettered by the broker after CRM_EVENT_DELIVERY_LIMIT deliveries, not redelivered
    forever. The queues are declared by the consumer's own topology code."""
    from crm_common.consumer import DELIVERY_LIMIT_KEY, declare_topology
    monkeypatch.setenv("CRM_EVENT_DELIVERY_LIMIT", "2")
    service = "limitprobe"
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        channel = connection.channel()
        try:
            queues = declare_topology(channel, service, ["customer.archived.v1"], 1, infra["CRM_AMQP_URI"])
            body = to_envelope(make_event("customer.archived", "c-limit", {
                "customer_id": "c-limit", "archived_at": datetime.now(timezone.utc)}, source="crm/t"))
            producer = connection.Producer(channel)
            producer.publish(body, exchange="", routing_key=queues[0].name, serializer="json", delivery_mode=2)
            deliveries = []

            def hand_back(body, message):  # as when the consumer's channel dies with it unacknowledged
                deliveries.append(message.delivery_tag)
                message.requeue()

            with connection.Consumer([queues[0]], channel=channel, callbacks=[hand_back], accept=["json"]):
                for _ in range(30):
                    try:
                        connection.drain_events(timeout=0.2)
                    except socket.timeout:
                        if deliveries:
                            break
            assert len(deliveries) == 3, "the first delivery and two redeliveries, then the limit"
            letter = None
            for _ in range(50):
                letter = channel.basic_get(f"{service}.dead-letter", no_ack=True)
                if letter is not None:
                    break
                time.sleep(0.1)
            assert letter is not None, "dead-lettered by the broker"
            assert letter.delivery_info["routing_key"] == f"{service}.{DELIVERY_LIMIT_KEY}"
        finally:
            channel.queue_delete(f"{service}.events.p0")
            channel.queue_delete(f"{service}.dead-letter")
            channel.exchange_delete(f"crm.{service}.inbound")
