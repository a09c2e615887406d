"""Property tests of the consumer's ordering guarantee (crm_common.db: claim_batch, apply_batch).

The broker hands one subject's events to one consumer in the order its producer published them, but a
delivery may repeat (redelivery after a crash between commit and ack, a replay for a rebuild), a batch may
hold any mix of subjects, and within a batch their order is whatever arrived. Whatever the batches, a
read model ends equal to applying each event once, in sequence order.
"""
from dataclasses import replace
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import Column, MetaData, String, Table, Text, select, update

from crm_common.consumer import Consumes
from crm_common.db import add_infrastructure_tables, in_stream_order
from crm_common.events import make_event
from crm_common.testing import InMemoryStore

metadata = MetaData()
tables = add_infrastructure_tables(metadata)
# order-sensitive on purpose: the history is every applied stage in the order it was applied
state = Table("state", metadata, Column("subject", String(64), primary_key=True), Column("stage", String(32)),
              Column("history", Text))
STAGES = ["first_contact", "needs_analysis", "proposal", "won", "lost"]


def on_stage_changed(uow, event, _):
    row = uow.session.execute(select(state).where(state.c.subject == event.subject)).first()
    stage = event.data["new_stage"]
    if row is None:
        uow.session.execute(state.insert().values(subject=event.subject, stage=stage, history=stage))
    else:
        uow.session.execute(update(state).where(state.c.subject == event.subject)
                            .values(stage=stage, history=f"{row.history},{stage}"))


TABLE = Consumes({"customer.stage_changed": on_stage_changed})


def event(subject, sequence, stage, source="crm/customers"):
    data = {"customer_id": subject, "new_stage": stage, "changed_at": datetime(2026, 1, 1, tzinfo=timezone.utc)}
    return replace(make_event("customer.stage_changed", subject, data, source=source), sequence=sequence)


@st.composite
def streams(draw):
    """Each subject's events in producer order (sequence 1, 2, ...), over a few subjects and two producers."""
    events = []
    for subject in draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=4, unique=True)):
        source = draw(st.sampled_from(["crm/customers", "crm/followups"]))
        stages = draw(st.lists(st.sampled_from(STAGES), min_size=1, max_size=6))
        events.append([event(subject, n, stage, source) for n, stage in enumerate(stages, start=1)])
    return events


@st.composite
def deliveries(draw, per_subject):
    """What a partitioned broker may deliver: subjects interleaved, each in order, with repeats of
    any already delivered prefix (redelivery, replay), cut into batches, each batch shuffled."""
    cursors = [0] * len(per_subject)
    delivered: list = []
    while any(c < len(s) for c, s in zip(cursors, per_subject)):
        index = draw(st.sampled_from([i for i, s in enumerate(per_subject) if cursors[i] < len(s)]))
        delivered.append(per_subject[index][cursors[index]])
        cursors[index] += 1
        if draw(st.integers(0, 4)) == 0:  # a redelivery or replay of something already sent
            delivered.append(draw(st.sampled_from(delivered)))
    batches, start = [], 0
    while start < len(delivered):
        size = draw(st.integers(1, 6))
        batches.append(draw(st.permutations(delivered[start:start + size])))
        start += size
    return batches


def read_model(store):
    with store.session_factory() as session:
        return {row.subject: (row.stage, row.history) for row in session.execute(select(state))}


def fresh_store(tmp_path_factory):
    store = InMemoryStore(metadata, tables, "probe", str(tmp_path_factory.mktemp("order") / "probe.db"))
    return store


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_delivery_ends_equal_to_the_in_order_result(tmp_path_factory, data):
    per_subject = data.draw(streams())
    expected_store, store = fresh_store(tmp_path_factory), fresh_store(tmp_path_factory)
    expected_store.apply_batch([e for stream in per_subject for e in stream], TABLE)
    for batch in data.draw(deliveries(per_subject)):
        store.apply_batch(list(batch), TABLE)
    assert read_model(store) == read_model(expected_store)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_stale_event_never_overwrites_a_newer_state(tmp_path_factory, data):
    """Even fully shuffled across batches, the latest stage wins: older ones are recognised as stale."""
    per_subject = data.draw(streams())
    everything = [e for stream in per_subject for e in stream]
    store = fresh_store(tmp_path_factory)
    shuffled = data.draw(st.permutations(everything))
    for start in range(0, len(shuffled), 3):
        store.apply_batch(list(shuffled[start:start + 3]), TABLE)
    latest = {stream[-1].subject: stream[-1].data["new_stage"] for stream in per_subject}
    assert {subject: stage for subject, (stage, _) in read_model(store).items()} == latest


def test_in_stream_order_keeps_the_slots_of_each_stream():
    a1, a2, b1 = event("a", 1, "first_contact"), event("a", 2, "won"), event("b", 1, "first_contact")
    assert in_stream_order([a2, b1, a1]) == [a1, b1, a2]
    other_producer = event("a", 1, "lost", source="crm/followups")
    assert in_stream_order([a2, other_producer, a1]) == [a1, other_producer, a2]


def test_a_replay_after_a_wipe_applies_what_live_events_overtook(tmp_path_factory):
    """A rebuild wipes the read model and replays everything; a live event that arrives first must not
    make the replayed older ones look stale and lost. They are applied once each, after it: a read model
    rebuilt by replay must therefore place facts by their own time, as reports' timeline does, not by
    arrival (docs/architecture.md)."""
    store = fresh_store(tmp_path_factory)
    history = [event("a", 1, "first_contact"), event("a", 2, "needs_analysis"), event("a", 3, "proposal")]
    store.apply_batch(history, TABLE)
    with store() as uow:
        uow.session.execute(state.delete())
        uow.forget_applied()
        uow.commit()
    live = event("a", 4, "won")
    store.apply_batch([live], TABLE)
    store.apply_batch([replace(e, replayed=True) for e in history + [live]], TABLE)
    assert read_model(store)["a"] == ("proposal", "won,first_contact,needs_analysis,proposal")
    store.apply_batch([event("a", 2, "lost")], TABLE)  # live and stale: still nothing
    assert read_model(store)["a"][1].count(",") == 3
