"""Outbox, sequence numbers, the batch consumer and dead letters, in a real nameko container on the
in-memory bus (the same code runs on RabbitMQ in tests/integration)."""
import json
import time
from datetime import datetime, timezone

import pytest
from kombu import Connection
from nameko.testing.services import entrypoint_hook

from crm_common import memory_transport
from crm_common.consumer import REASON_HEADER
from crm_common.events import SEQUENCE_HEADER, SUBJECT_HEADER, make_event, to_envelope
from tests.probe import calls, dead_letters, drain, listen, publish, stage_event, start_probe
from tests.probe import applied_rows as probe_rows


@pytest.fixture
def bus():
    memory_transport.install()
    memory_transport.reset()
    with Connection("memory://") as connection:
        yield connection


@pytest.fixture
def probe(tmp_path, bus):
    container = start_probe("memory://", tmp_path / "probe.db")
    yield container
    container.stop()


def applied_rows(tmp_path, expect, timeout=5):
    return probe_rows(tmp_path / "probe.db", expect, timeout)


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
