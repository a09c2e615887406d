"""A probe service for the consumer and the outbox (crm_common), with the helpers its tests use: the
same code on the in-memory bus (tests/unit/test_messaging.py) and on RabbitMQ (tests/integration)."""
import time
from dataclasses import replace
from datetime import datetime, timezone

from kombu import Exchange, Queue
from nameko.containers import ServiceContainer
from nameko.rpc import rpc
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from crm_common.config import nameko_config
from crm_common.consumer import Consumes, consume, replay_route
from crm_common.db import add_infrastructure_tables, make_engine
from crm_common.dependencies import Store
from crm_common.errors import EventRejected
from crm_common.events import EVENTS_EXCHANGE, make_event, to_envelope
from crm_common.outbox import event_headers

metadata = MetaData()
tables = add_infrastructure_tables(metadata)
applied = Table("applied", metadata, Column("id", Integer, primary_key=True), Column("event_id", String(64)),
                Column("subject", String(64)), Column("sequence", Integer), Column("batch", Integer))
calls = {"archived": 0, "batches": 0}


def on_stage_changed(uow, event, batch_number):
    uow.session.execute(insert(applied).values(event_id=event.id, subject=event.subject, sequence=event.sequence,
                                               batch=batch_number))


def on_archived(uow, event, batch_number):
    calls["archived"] += 1
    raise RuntimeError("database on fire")


def on_tier_changed(uow, event, batch_number):
    if event.subject == "poison":
        raise EventRejected("no such customer here")
    on_stage_changed(uow, event, batch_number)


PROBE_CONSUMES = Consumes({"customer.stage_changed": on_stage_changed, "customer.archived": on_archived,
                           "customer.tier_changed": on_tier_changed})


class ProbeService:
    name = "probe"
    store = Store(metadata, tables)

    @rpc
    def archive(self, customer_ids, fail_before_commit=False):
        with self.store() as uow:
            for customer_id in customer_ids:
                uow.emit("customer.archived", customer_id, {"customer_id": customer_id,
                                                            "archived_at": datetime.now(timezone.utc)})
            if fail_before_commit:
                raise RuntimeError("crash before commit")
            uow.commit()

    @consume(PROBE_CONSUMES)
    def apply_events(self, events):
        calls["batches"] += 1
        return self.store.apply_batch(events, PROBE_CONSUMES, calls["batches"])


def start_probe(amqp_uri, database_path, **settings):
    """A running probe container (stop it with .stop()); its handlers' calls counted in ``calls``."""
    config = nameko_config("customers", {"AMQP_URI": amqp_uri, "DATABASE_URL": f"sqlite:///{database_path}",
                                         "EVENT_MAX_ATTEMPTS": 3, "OUTBOX_POLL_SECONDS": 0.1,
                                         "EVENT_BATCH_MS": 300, **settings})
    metadata.create_all(make_engine(config["DATABASE_URL"]))
    calls.update(archived=0, batches=0)
    container = ServiceContainer(ProbeService, config)
    container.start()
    return container


def listen(bus, name, routing_key):
    queue = Queue(name, Exchange(EVENTS_EXCHANGE, type="topic", durable=True), routing_key=routing_key)
    queue(bus.default_channel).declare()
    return queue


def drain(bus, queue, expect, timeout=10):
    got, deadline = [], time.monotonic() + timeout
    bound = queue(bus.default_channel)
    while len(got) < expect and time.monotonic() < deadline:
        message = bound.get(no_ack=True)
        if message is None:
            time.sleep(0.02)
            continue
        got.append(message)
    return got


def publish(bus, *bodies, amqp_uri=None):
    """To every subscriber of the events exchange; with ``amqp_uri``, to the probe's partitions only (as
    a replay is routed), so the services sharing a broker with the probe never see these events."""
    producer = bus.Producer()
    for body in bodies:
        routing_key = f"{body['type'][4:]}.v1" if isinstance(body, dict) else "customer.stage_changed.v1"
        exchange, key = (replay_route("probe", routing_key, amqp_uri) if amqp_uri else
                         (Exchange(EVENTS_EXCHANGE, type="topic", durable=True), routing_key))
        headers = event_headers(body["subject"], body.get("sequence")) if isinstance(body, dict) else {}
        producer.publish(body, exchange=exchange, routing_key=key, serializer="json", headers=headers)


def dead_letters(bus, expect, timeout=10):
    queue = Queue("probe.dead-letter", Exchange("crm.dead-letter", type="topic", durable=True),
                  routing_key="probe.#")
    return drain(bus, queue, expect, timeout)


def stage_event(subject="c1", sequence=None, name="customer.stage_changed"):
    data = ({"customer_id": subject, "new_stage": "proposal", "changed_at": datetime.now(timezone.utc)}
            if name == "customer.stage_changed" else
            {"customer_id": subject, "new_tier": "A", "rolling_12m_total": "1", "as_of": datetime.now(timezone.utc)})
    return to_envelope(replace(make_event(name, subject, data, source="crm/t"), sequence=sequence))


def applied_rows(database_path, expect, timeout=5):
    engine = make_engine(f"sqlite:///{database_path}")
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as connection:
            rows = connection.execute(select(applied).order_by(applied.c.id)).all()
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


