"""The event pipeline on RabbitMQ and PostgreSQL: partitions, order, batches, redelivery, dead letters.

A probe service (one table of consumed events, like every service) runs in nameko containers in this
process against the real broker and a database of its own; its read model is deliberately sensitive
to order and to double application: a running total and the sequence log of every subject.
"""
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from kombu import Connection
from nameko.containers import ServiceContainer
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, select, update

from crm_common.config import nameko_config
from crm_common.consumer import REASON_HEADER, Consumes, EventConsumer, consume, dead_letter_queue
from crm_common.db import add_infrastructure_tables, make_engine
from crm_common.dependencies import Store
from crm_common.errors import EventRejected
from crm_common.events import make_event, to_envelope
from crm_common.outbox import BrokerPublisher, event_headers, events_exchange

metadata = MetaData()
tables = add_infrastructure_tables(metadata)
totals = Table("totals", metadata, Column("subject", String(64), primary_key=True), Column("total", Integer),
               Column("sequences", Text))
failures = {"archived": 0}


def on_stage_changed(uow, event, _):
    """Adds the event's amount (hidden in its stage's length) and logs its sequence: doubling shows."""
    row = uow.session.execute(select(totals).where(totals.c.subject == event.subject)).first()
    if row is None:
        uow.session.execute(totals.insert().values(subject=event.subject, total=1, sequences=str(event.sequence)))
    else:
        uow.session.execute(update(totals).where(totals.c.subject == event.subject).values(
            total=row.total + 1, sequences=f"{row.sequences},{event.sequence}"))


def on_tier_changed(uow, event, _):
    raise EventRejected("probe refuses tiers")


def on_archived(uow, event, _):
    failures["archived"] += 1
    raise RuntimeError("transient trouble")


PROBE = Consumes({"customer.stage_changed": on_stage_changed, "customer.tier_changed": on_tier_changed,
                  "customer.archived": on_archived})


class PipelineProbe:
    name = "pipeprobe"
    store = Store(metadata, tables)

    @consume(PROBE)
    def apply_events(self, events):
        return self.store.apply_batch(events, PROBE)


@pytest.fixture
def probe_db(infra):
    name = f"probe_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(infra["CRM_PG_ADMIN_URL"].replace("postgresql://", "postgresql+psycopg2://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    host = f"{infra['CRM_PG_HOST']}:{infra['CRM_PG_PORT']}"
    url = f"postgresql+psycopg2://postgres@{host}/{name}"
    metadata.create_all(make_engine(url))
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def start_probe(infra, probe_db):
    containers = []

    def start(**config):
        container = ServiceContainer(PipelineProbe, nameko_config("customers", {  # its defaults, our overrides
            "AMQP_URI": infra["CRM_AMQP_URI"], "DATABASE_URL": probe_db, "EVENT_MAX_ATTEMPTS": 3,
            "EVENT_PARTITIONS": 4, "WEB_SERVER_ADDRESS": "127.0.0.1:0", **config}))
        container.start()
        containers.append(container)
        return container

    yield start
    for container in containers:
        container.stop()
    with Connection(infra["CRM_AMQP_URI"]) as connection:  # the next test starts with empty queues
        channel = connection.default_channel
        for index in range(4):
            channel.queue_delete(f"pipeprobe.events.p{index}")
        channel.queue_delete("pipeprobe.dead-letter")


def stage_events(subjects, per_subject):
    for n in range(1, per_subject + 1):
        for subject in subjects:
            yield replace(make_event("customer.stage_changed", subject, {
                "customer_id": subject, "new_stage": "proposal", "changed_at": datetime.now(timezone.utc)},
                source="crm/pipetest"), sequence=n)


def publish(infra, events):
    publisher = BrokerPublisher(infra["CRM_AMQP_URI"])
    try:
        window = [(to_envelope(e), events_exchange, e.routing_key, event_headers(e.subject, e.sequence), e.id)
                  for e in events]
        assert publisher.publish_many(window) == len(window)
    finally:
        publisher.close()


def read_totals(url):
    with make_engine(url).connect() as connection:
        return {row.subject: (row.total, row.sequences) for row in connection.execute(select(totals))}


def wait_for(check, timeout=60, message="condition"):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.2)
    return result


def expected(subjects, per_subject):
    return {s: (per_subject, ",".join(str(n) for n in range(1, per_subject + 1))) for s in subjects}


def held(container) -> int:
    (consumer,) = [e for e in container.entrypoints if isinstance(e, EventConsumer)]
    return len(consumer.consuming)


def consuming(container):
    """Until it consumes every partition (their queues exist from then on: nothing published is dropped)."""
    wait_for(lambda: held(container) == 4, timeout=30, message="the partitions consumed")


def test_two_replicas_share_partitions_and_keep_each_subject_in_order(start_probe, infra, probe_db):
    first, second = start_probe(), start_probe()
    wait_for(lambda: held(first) == 2 and held(second) == 2, timeout=30, message="two partitions each")
    subjects = [f"c{i}" for i in range(40)]
    publish(infra, stage_events(subjects, 25))
    want = expected(subjects, 25)
    wait_for(lambda: read_totals(probe_db) == want, message="1,000 events applied, each subject in order")
    with make_engine(probe_db).connect() as connection:
        holders = connection.execute(sa.text("SELECT count(DISTINCT holder) FROM partition_leases")).scalar()
    assert holders == 2


def test_a_replica_holding_some_partitions_binds_them_all(start_probe, infra, probe_db):
    """The hash ring is the set of bound queues: were a partition bound only once leased, subjects would
    move between partitions while their earlier events still wait, and be applied out of order."""
    from datetime import timedelta
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    with make_engine(probe_db).begin() as connection:  # another live replica holds p2 and p3
        connection.execute(tables["consumer_members"].insert().values(holder="other", seen_at=later))
        connection.execute(tables["partition_leases"].insert(), [
            {"partition": index, "holder": "other" if index >= 2 else None, "expires_at": later}
            for index in range(4)])
    probe = start_probe()
    wait_for(lambda: held(probe) == 2, timeout=30, message="the two free partitions consumed")
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        channel = connection.default_channel
        for index in range(4):
            channel.queue_declare(f"pipeprobe.events.p{index}", passive=True)  # raises if it does not exist
    subjects = [f"b{i}" for i in range(40)]
    publish(infra, stage_events(subjects, 3))
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        channel = connection.default_channel
        waiting = lambda: sum(channel.queue_declare(f"pipeprobe.events.p{index}", passive=True).message_count  # noqa: E731
                              for index in (2, 3))
        # every event is either applied (its subject in p0 or p1) or waits in p2 or p3 for the other replica
        wait_for(lambda: waiting() + sum(t for t, _ in read_totals(probe_db).values()) == 3 * len(subjects),
                 timeout=20, message="each event applied or waiting for its partition's holder")
        assert waiting() > 0
    applied = read_totals(probe_db)
    assert all(total == 3 for total, _ in applied.values()) and 0 < len(applied) < len(subjects)


def test_a_batch_redelivered_after_its_commit_changes_nothing(start_probe, infra, probe_db, monkeypatch):
    """The consumer commits, then loses its channel before the ack: the broker redelivers the batch."""
    lost = {"acks": 0}
    real_ack = None

    def ack_then_crash(self, delivery_tag, multiple=False):
        if lost["acks"] < 2:
            lost["acks"] += 1
            raise ConnectionResetError("connection lost between commit and ack")
        return real_ack(self, delivery_tag, multiple)

    import amqp.channel
    real_ack = amqp.channel.Channel.basic_ack
    monkeypatch.setattr(amqp.channel.Channel, "basic_ack", ack_then_crash)
    consuming(start_probe())
    subjects = [f"r{i}" for i in range(20)]
    publish(infra, stage_events(subjects, 10))
    want = expected(subjects, 10)
    wait_for(lambda: read_totals(probe_db) == want and lost["acks"] == 2, message="all applied")
    time.sleep(1.5)  # the redelivered batches have come and gone
    assert read_totals(probe_db) == want


def dead_letters(infra, expect, timeout=30):
    found, deadline = [], time.monotonic() + timeout
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        queue = dead_letter_queue("pipeprobe")(connection.default_channel)  # declared as the services declare it
        while len(found) < expect and time.monotonic() < deadline:
            message = queue.get(no_ack=True)
            if message is None:
                time.sleep(0.1)
            else:
                found.append(message.headers)
    return found


def test_retried_then_dead_lettered_and_a_poison_message_does_not_hold_its_batch(start_probe, infra, probe_db):
    consuming(start_probe(EVENT_BATCH_MS=500))
    failures["archived"] = 0
    good = list(stage_events(["p1", "p2"], 3))
    poison = replace(make_event("customer.tier_changed", "p1", {
        "customer_id": "p1", "new_tier": "A", "rolling_12m_total": "1", "as_of": datetime.now(timezone.utc)},
        source="crm/pipetest"), sequence=10)
    failing = replace(make_event("customer.archived", "p2", {
        "customer_id": "p2", "archived_at": datetime.now(timezone.utc)}, source="crm/pipetest"), sequence=11)
    publish(infra, good[:3] + [poison, failing] + good[3:])
    letters = dead_letters(infra, expect=2)
    reasons = sorted(h[REASON_HEADER] for h in letters)
    assert reasons[0].startswith("failed 3 times, last: RuntimeError: transient trouble")
    assert reasons[1] == "rejected: probe refuses tiers"
    assert failures["archived"] == 3
    assert wait_for(lambda: read_totals(probe_db) == expected(["p1", "p2"], 3), message="the good events")
