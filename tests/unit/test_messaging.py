"""Outbox, idempotent consumer and dead letters, in a real nameko container on the in-memory bus."""
import json
import time
from datetime import datetime, timezone

import pytest
from kombu import Connection, Exchange, Queue
from nameko.containers import ServiceContainer
from nameko.rpc import rpc
from nameko.testing.services import entrypoint_hook
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from crm_common import memory_transport
from crm_common.config import nameko_config
from crm_common.db import add_infrastructure_tables
from crm_common.dependencies import Store
from crm_common.events import EVENTS_EXCHANGE, make_event, to_envelope
from crm_common.subscriber import REASON_HEADER, EventRejected, subscribe

metadata = MetaData()
tables = add_infrastructure_tables(metadata)
applied = Table("applied", metadata, Column("id", Integer, primary_key=True), Column("event_id", String(64)))
calls = {"archived": 0}


class ProbeService:
    name = "probe"
    store = Store(metadata, tables)

    @rpc
    def archive(self, customer_id, fail_before_commit=False):
        with self.store() as uow:
            uow.emit("customer.archived", customer_id, {"customer_id": customer_id,
                                                        "archived_at": datetime.now(timezone.utc)})
            if fail_before_commit:
                raise RuntimeError("crash before commit")
            uow.commit()

    @subscribe("customer.stage_changed")
    def on_stage_changed(self, event):
        with self.store() as uow:
            if not uow.claim(event):
                return False
            uow.session.execute(insert(applied).values(event_id=event.id))
            uow.commit()

    @subscribe("customer.archived")
    def on_archived(self, event):
        calls["archived"] += 1
        raise RuntimeError("database on fire")

    @subscribe("customer.tier_changed")
    def on_tier_changed(self, event):
        raise EventRejected("no such customer here")


@pytest.fixture
def bus():
    memory_transport.install()
    memory_transport.reset()
    with Connection("memory://") as connection:
        yield connection


@pytest.fixture
def probe(tmp_path, bus):
    config = nameko_config("customers", {"AMQP_URI": "memory://", "DATABASE_URL": f"sqlite:///{tmp_path}/probe.db",
                                         "EVENT_MAX_ATTEMPTS": 3, "OUTBOX_POLL_SECONDS": 0.1})
    metadata.create_all(_engine(config["DATABASE_URL"]))
    container = ServiceContainer(ProbeService, config)
    container.start()
    yield container
    container.stop()


def _engine(url):
    from crm_common.db import make_engine
    return make_engine(url)


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


def publish(bus, body, routing_key):
    bus.Producer().publish(body, exchange=Exchange(EVENTS_EXCHANGE, type="topic", durable=True),
                           routing_key=routing_key, serializer="json")


def dead_letters(bus, expect):
    queue = Queue("probe.dead-letter", Exchange("crm.dead-letter", type="topic", durable=True),
                  routing_key="probe.#")
    return drain(bus, queue, expect)


def stage_event():
    return to_envelope(make_event("customer.stage_changed", "c1", {
        "customer_id": "c1", "new_stage": "proposal", "changed_at": datetime.now(timezone.utc)}, source="crm/t"))


def test_committed_events_are_published_and_rolled_back_ones_are_not(probe, bus):
    queue = listen(bus, "outside.archived", "customer.archived.v1")
    with entrypoint_hook(probe, "archive") as archive:
        with pytest.raises(RuntimeError):
            archive("lost-one", fail_before_commit=True)
        archive("c42")
    [message] = drain(bus, queue, expect=1)
    envelope = json.loads(message.body) if isinstance(message.body, (str, bytes)) else message.body
    assert envelope["subject"] == "c42" and envelope["type"] == "crm.customer.archived"
    assert envelope["source"] == "crm/probe" and envelope["dataschema"] == "urn:crm:event:customer.archived:v1"
    assert drain(bus, queue, expect=1, timeout=0.5) == []  # the rolled-back event never left


def applied_rows(tmp_path, expect, timeout=5):
    engine = _engine(f"sqlite:///{tmp_path}/probe.db")
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as connection:
            rows = connection.execute(select(applied.c.event_id)).scalars().all()
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_redelivered_event_is_applied_once(probe, bus, tmp_path):
    event = stage_event()
    for _ in range(3):
        publish(bus, event, "customer.stage_changed.v1")
    assert applied_rows(tmp_path, expect=1) == [event["id"]]
    time.sleep(0.5)  # give the two copies time to be (not) applied
    assert applied_rows(tmp_path, expect=2, timeout=0) == [event["id"]]


def test_failing_handler_is_retried_then_dead_lettered(probe, bus):
    calls["archived"] = 0
    publish(bus, to_envelope(make_event("customer.archived", "c9", {
        "customer_id": "c9", "archived_at": datetime.now(timezone.utc)}, source="crm/t")), "customer.archived.v1")
    [letter] = dead_letters(bus, expect=1)
    assert calls["archived"] == 3
    assert letter.headers[REASON_HEADER].startswith("failed 3 times, last: RuntimeError: database on fire")
    assert letter.headers["x-crm-original-queue"] == "probe.customer.archived.v1"


def test_rejected_and_malformed_events_go_straight_to_dead_letters(probe, bus, tmp_path):
    publish(bus, to_envelope(make_event("customer.tier_changed", "c1", {
        "customer_id": "c1", "new_tier": "A", "rolling_12m_total": "1", "as_of": datetime.now(timezone.utc)},
        source="crm/t")), "customer.tier_changed.v1")
    broken = stage_event()
    broken["data"]["new_stage"] = "celebration"
    publish(bus, broken, "customer.stage_changed.v1")
    publish(bus, ["not", "an", "envelope"], "customer.stage_changed.v1")
    letters = dead_letters(bus, expect=3)
    reasons = sorted(letter.headers[REASON_HEADER] for letter in letters)
    assert len(reasons) == 3
    assert any(r.startswith("rejected: no such customer here") for r in reasons)
    assert any("new_stage" in r for r in reasons)
    assert any("expected a JSON object envelope" in r for r in reasons)
    # the queue is not blocked: a good event behind them is applied
    good = stage_event()
    publish(bus, good, "customer.stage_changed.v1")
    assert applied_rows(tmp_path, expect=1) == [good["id"]]
