"""Outbox, sequence numbers, the batch consumer and dead letters, in a real nameko container on the
in-memory bus (the same code runs on RabbitMQ in tests/integration)."""
import json
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from kombu import Connection, Exchange, Queue
from nameko.containers import ServiceContainer
from nameko.rpc import rpc
from nameko.testing.services import entrypoint_hook
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from crm_common import memory_transport
from crm_common.config import nameko_config
from crm_common.consumer import REASON_HEADER, Consumes, consume
from crm_common.db import add_infrastructure_tables, make_engine
from crm_common.dependencies import Store
from crm_common.errors import EventRejected
from crm_common.events import EVENTS_EXCHANGE, SEQUENCE_HEADER, SUBJECT_HEADER, make_event, to_envelope

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


@pytest.fixture
def bus():
    memory_transport.install()
    memory_transport.reset()
    with Connection("memory://") as connection:
        yield connection


@pytest.fixture
def probe(tmp_path, bus):
    config = nameko_config("customers", {"AMQP_URI": "memory://", "DATABASE_URL": f"sqlite:///{tmp_path}/probe.db",
                                         "EVENT_MAX_ATTEMPTS": 3, "OUTBOX_POLL_SECONDS": 0.1,
                                         "EVENT_BATCH_MS": 300})
    metadata.create_all(make_engine(config["DATABASE_URL"]))
    calls.update(archived=0, batches=0)
    container = ServiceContainer(ProbeService, config)
    container.start()
    yield container
    container.stop()


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


def publish(bus, *bodies):
    producer = bus.Producer()
    for body in bodies:
        routing_key = f"{body['type'][4:]}.v1" if isinstance(body, dict) else "customer.stage_changed.v1"
        producer.publish(body, exchange=Exchange(EVENTS_EXCHANGE, type="topic", durable=True),
                         routing_key=routing_key, serializer="json")


def dead_letters(bus, expect, timeout=10):
    queue = Queue("probe.dead-letter", Exchange("crm.dead-letter", type="topic", durable=True),
                  routing_key="probe.#")
    return drain(bus, queue, expect, timeout)


def stage_event(subject="c1", sequence=None, name="customer.stage_changed"):
    data = ({"customer_id": subject, "new_stage": "proposal", "changed_at": datetime.now(timezone.utc)}
            if name == "customer.stage_changed" else
            {"customer_id": subject, "new_tier": "A", "rolling_12m_total": "1", "as_of": datetime.now(timezone.utc)})
    return to_envelope(replace(make_event(name, subject, data, source="crm/t"), sequence=sequence))


def applied_rows(tmp_path, expect, timeout=5):
    engine = make_engine(f"sqlite:///{tmp_path}/probe.db")
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as connection:
            rows = connection.execute(select(applied).order_by(applied.c.id)).all()
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_committed_events_are_published_numbered_per_subject_and_rolled_back_ones_are_not(probe, bus):
    queue = listen(bus, "outside.archived", "customer.archived.v1")
    with entrypoint_hook(probe, "archive") as archive:
        with pytest.raises(RuntimeError):
            archive(["lost-one"], fail_before_commit=True)
        archive(["c42", "c7"])
        archive(["c42"])
    messages = drain(bus, queue, expect=3)
    envelopes = [json.loads(m.body) if isinstance(m.body, (str, bytes)) else m.body for m in messages]
    assert [(e["subject"], e["sequence"]) for e in envelopes] == [("c42", "1"), ("c7", "1"), ("c42", "2")]
    assert [(m.headers[SUBJECT_HEADER], m.headers[SEQUENCE_HEADER]) for m in messages] == [
        ("c42", "1"), ("c7", "1"), ("c42", "2")]
    assert envelopes[0]["type"] == "crm.customer.archived" and envelopes[0]["source"] == "crm/probe"
    assert envelopes[0]["dataschema"] == "urn:crm:event:customer.archived:v1"
    assert drain(bus, queue, expect=1, timeout=0.5) == []  # the rolled-back event never left


def test_a_batch_is_applied_in_one_transaction_each_subject_in_sequence_order(probe, bus, tmp_path):
    # one subject's events arrive out of order within a batch, interleaved with another subject's
    publish(bus, stage_event("a", 2), stage_event("b", 1), stage_event("a", 1), stage_event("a", 3))
    rows = applied_rows(tmp_path, expect=4)
    assert [(r.subject, r.sequence) for r in rows] == [("a", 1), ("b", 1), ("a", 2), ("a", 3)]
    assert len({r.batch for r in rows}) == 1


def test_redelivered_and_stale_events_change_nothing(probe, bus, tmp_path):
    first, second = stage_event("c1", 1), stage_event("c1", 2)
    publish(bus, first, second, first)
    assert [r.event_id for r in applied_rows(tmp_path, expect=2)] == [first["id"], second["id"]]
    # a crash between commit and ack redelivers the whole batch; a stale copy with a new id too
    publish(bus, first, second, {**first, "id": "another-id-same-sequence"})
    time.sleep(0.8)
    assert len(applied_rows(tmp_path, expect=3, timeout=0)) == 2


def test_a_poison_message_in_the_middle_of_a_batch_is_dead_lettered_and_the_rest_applies(probe, bus, tmp_path):
    before, after = stage_event("c1", 1), stage_event("c2", 1)
    poison = stage_event("poison", 1, name="customer.tier_changed")
    publish(bus, before, poison, after)
    [letter] = dead_letters(bus, expect=1)
    assert letter.headers[REASON_HEADER] == "rejected: no such customer here"
    assert letter.headers["x-crm-original-routing-key"] == "customer.tier_changed.v1"
    assert [r.event_id for r in applied_rows(tmp_path, expect=2)] == [before["id"], after["id"]]


def test_failing_handler_is_retried_then_dead_lettered(probe, bus):
    publish(bus, to_envelope(make_event("customer.archived", "c9", {
        "customer_id": "c9", "archived_at": datetime.now(timezone.utc)}, source="crm/t")))
    [letter] = dead_letters(bus, expect=1)
    assert calls["archived"] == 3
    assert letter.headers[REASON_HEADER].startswith("failed 3 times, last: RuntimeError: database on fire")


def test_rejected_and_malformed_events_go_straight_to_dead_letters(probe, bus, tmp_path):
    broken = stage_event()
    broken["data"]["new_stage"] = "celebration"
    publish(bus, stage_event("poison", 1, name="customer.tier_changed"), broken, ["not", "an", "envelope"])
    letters = dead_letters(bus, expect=3)
    reasons = sorted(letter.headers[REASON_HEADER] for letter in letters)
    assert len(reasons) == 3
    assert any(r.startswith("rejected: no such customer here") for r in reasons)
    assert any("new_stage" in r for r in reasons)
    assert any("expected a JSON object envelope" in r for r in reasons)
    # the queue is not blocked: a good event behind them is applied
    good = stage_event()
    publish(bus, good)
    assert [r.event_id for r in applied_rows(tmp_path, expect=1)] == [good["id"]]
