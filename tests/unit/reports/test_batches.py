"""Batches: the reports service applies a batch of events in one transaction, each customer
reconciled once and every counter written once per batch. Whatever the batches, the read models
end as applying the events one by one gives; and changes stamped with the same instant fold in
the order their producer emitted them (its sequence), not by event id.
"""
import os
import random
import tempfile
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import event as sa_event, select

from services.reports import domain as d, models, read_models
from services.reports.counter_table import SqlCounters
from tests.unit.reports.histories import (
    HISTORY, UTC, Events, at, books_of, counters_of, feed, feed_batches, history, make_postgres_service, make_service,
    random_history,
)

Q3 = d.parse_period("2026-Q3")
END = date(2026, 8, 11)  # the service's today is 2026-08-10: stocks at the end of it


def batches_of(events, size):
    return [events[offset:offset + size] for offset in range(0, len(events), size)]


@pytest.fixture(scope="module")
def one_by_one(tmp_path_factory):
    service = make_service(tmp_path_factory.mktemp("one-by-one"))
    feed(service, HISTORY)
    return service


def test_the_history_as_one_batch_is_the_history_event_by_event(tmp_path, one_by_one):
    service = make_service(tmp_path)
    assert service.apply_events(HISTORY) == HISTORY
    assert counters_of(service) == counters_of(one_by_one)
    assert books_of(service) == books_of(one_by_one)
    assert service.apply_events(HISTORY) == []   # redelivered as a whole: nothing new


@pytest.mark.parametrize("size", [2, 7, 40])
def test_the_history_in_batches_shuffled_within_each_is_the_history_event_by_event(tmp_path, one_by_one, size):
    """Unnumbered events (from before producers numbered them) may come in any order at all."""
    rng = random.Random(size)
    service = make_service(tmp_path)
    feed_batches(service, [rng.sample(b, len(b)) for b in batches_of(rng.sample(HISTORY, len(HISTORY)), size)])
    assert counters_of(service) == counters_of(one_by_one)
    assert books_of(service) == books_of(one_by_one)


@pytest.mark.parametrize("seed, size", [(21, 500), (22, 9), (23, 60)])
def test_numbered_random_histories_in_batches_are_the_histories_event_by_event(tmp_path, seed, size):
    events = random_history(seed, customers=10, numbered=True)
    reference = make_service(tmp_path, "reference")
    assert all(feed(reference, events))
    rng = random.Random(seed)
    service = make_service(tmp_path, "batched")
    # the broker keeps each stream in order; within a batch the order is whatever arrived
    assert len(feed_batches(service, [rng.sample(b, len(b)) for b in batches_of(events, size)])) == len(events)
    assert counters_of(service) == counters_of(reference)
    assert books_of(service) == books_of(reference)


@pytest.mark.skipif(not os.environ.get("REPORTS_TEST_DATABASE_URL"),
                    reason="REPORTS_TEST_DATABASE_URL=postgresql+psycopg2://... (emptied) runs it on PostgreSQL")
def test_on_postgresql_batches_count_as_sqlite_event_by_event(tmp_path):
    events = random_history(31, customers=10, numbered=True) + _same_instant_history(ids_descending=True)
    reference = make_service(tmp_path)
    feed(reference, events)
    service = make_postgres_service(os.environ["REPORTS_TEST_DATABASE_URL"])
    rng = random.Random(31)
    feed_batches(service, [rng.sample(b, len(b)) for b in batches_of(events, 45)])
    assert feed_batches(service, batches_of(events, 100)) == []
    assert counters_of(service) == counters_of(reference)
    assert books_of(service) == books_of(reference)
    service.store.engine.dispose()


def test_a_batch_writes_each_counter_once(tmp_path):
    """Forty interactions of one team in one week: their counters are upserted once, not forty times."""
    h = Events(numbered=True)
    h.rep("r1", "east")
    h.create("k1", "2026-07-01", team="east", rep="r1", tier="A", lifecycle="active", industry="retail")
    for n in range(40):
        h.interaction("k1", f"2026-07-0{1 + n % 3}T1{n % 10}:00", "r1", "east", "post_sale")
    service = make_service(tmp_path)
    service.apply_events(h.items[:2])
    upserts = []
    engine = service.store.engine
    listener = lambda conn, cursor, statement, params, context, many: upserts.append(  # noqa: E731
        len(params) if many else 1) if statement.startswith("INSERT INTO counters") else None
    sa_event.listen(engine, "before_cursor_execute", listener)
    try:
        service.apply_events(h.items[2:])
    finally:
        sa_event.remove(engine, "before_cursor_execute", listener)
    reference = make_service(tmp_path, "reference")
    feed(reference, h.items)
    assert counters_of(service) == counters_of(reference)
    moved = {row[:5] for row in counters_of(reference)} - {row[:5] for row in _after_creation(tmp_path, h.items[:2])}
    assert len(upserts) == 1 and upserts[0] == len(moved)   # one statement, one row per counter moved


def test_rows_another_transaction_inserted_meanwhile_are_skipped(tmp_path):
    """insert_missing inserts what the caller found missing; one that appeared since is no error."""
    service = make_service(tmp_path)
    with service.store() as uow:
        read_models.note_values(uow.session, [("team", "east")])
        read_models.insert_missing(uow.session, models.dimension_values, [
            {"dimension": "team", "value": "east"}, {"dimension": "team", "value": "west"}], ["dimension", "value"])
        uow.commit()
    with service.store() as uow:
        assert set(uow.session.execute(select(models.dimension_values)).tuples()) == {("team", "east"),
                                                                                      ("team", "west")}


def _after_creation(tmp_path, events):
    service = make_service(tmp_path, "created")
    feed(service, events)
    return counters_of(service)


# ---------------------------------------------------------------- the same instant: the producer's order

def _same_instant_history(ids_descending: bool) -> list:
    """k1 created tier A, active; at one instant the producer moves its tier A > B > C and its lifecycle
    active > at_risk > churned. Event ids are renamed so their order goes with or against the sequence."""
    h = Events(numbered=True)
    h.rep("r1", "east")
    h.create("k1", "2026-07-01", team="east", rep="r1", tier="A", lifecycle="active", industry="retail")
    h.tier("k1", "2026-07-15T03:00", "A", "B")
    h.tier("k1", "2026-07-15T03:00", "B", "C")
    h.lifecycle("k1", "2026-07-15T03:00", "active", "at_risk")
    h.lifecycle("k1", "2026-07-15T03:00", "at_risk", "churned")
    count = len(h.items)
    return [replace(e, id=f"ev-{(count - n if ids_descending else n):03d}") for n, e in enumerate(h.items)]


def _tier_and_lifecycle(service):
    with service.store() as uow:
        src = SqlCounters(uow.session)
        return (d.distribution(src, END, "tier", list(d.TIERS)), d.distribution(src, END, "lifecycle", ["churned"]),
                d.movements(src, Q3, "tier"), d.movements(src, Q3, "lifecycle"),
                src.flow(d.counters.CHURNED, Q3, d.Slice(lifecycle="at_risk")))


@pytest.mark.parametrize("ids_descending", [False, True])
@pytest.mark.parametrize("delivery", ["one by one", "one batch", "one batch reversed"])
def test_changes_of_the_same_instant_fold_in_the_producers_order(tmp_path, ids_descending, delivery):
    events = _same_instant_history(ids_descending)
    service = make_service(tmp_path)
    if delivery == "one by one":
        feed(service, events)
    else:
        service.apply_events(events if delivery == "one batch" else list(reversed(events)))
    tiers, lifecycles, tier_moves, lifecycle_moves, churned_from_at_risk = _tier_and_lifecycle(service)
    assert tiers == {"A": 0, "B": 0, "C": 1} and lifecycles == {"churned": 1}
    assert tier_moves == {("A", "B"): 1, ("B", "C"): 1}
    assert lifecycle_moves == {("active", "at_risk"): 1, ("at_risk", "churned"): 1}
    assert churned_from_at_risk == 1   # churn is counted where the customer came from: at_risk


@pytest.mark.parametrize("ids_descending", [False, True])
def test_stage_moves_of_the_same_instant_count_in_the_producers_order(tmp_path, ids_descending):
    """Entered first_contact and won at one instant (a deal keyed in after the fact): a cycle of 0 days."""
    h = Events(numbered=True)
    h.create("k1", "2026-07-01", team="east", rep="r1", tier="A", lifecycle="active", industry="retail")
    h.stage("k1", None, "first_contact", "2026-07-20T10:00")
    h.stage("k1", "first_contact", "won", "2026-07-20T10:00")
    events = [replace(e, id=f"ev-{(9 - n if ids_descending else n)}") for n, e in enumerate(h.items)]
    service = make_service(tmp_path)
    service.apply_events(list(reversed(events)))
    with service.store() as uow:
        src = SqlCounters(uow.session)
        assert (d.average_cycle_days(src, Q3), d.win_rate(src, Q3)) == (0.0, 1.0)


# ---------------------------------------------------------------- any delivery, one customer (property)

INSTANTS = [datetime(2026, 7, 1, tzinfo=UTC) + timedelta(days=days) for days in (0, 3, 3.5, 9)]


# across quarters, the half-year and the year, and an ISO week (2026-W53) that straddles two years
YEAR_INSTANTS = [datetime(2026, 2, 10, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC),
                 datetime(2026, 12, 30, tzinfo=UTC), datetime(2027, 1, 2, 12, tzinfo=UTC)]


@st.composite
def one_customer(draw, instants=INSTANTS):
    """customer.created, then the producers' events about it in the order each emitted them: tier and
    lifecycle changes (several often at one instant), purchases, stage moves, interactions, scores."""
    h = Events(numbered=True)
    h.rep("r1", "east")
    tier, lifecycle = draw(st.sampled_from("ABC")), draw(st.sampled_from(["new", "active"]))
    h.create("k1", instants[0].isoformat()[:19], team="east", rep="r1", tier=tier, lifecycle=lifecycle,
             industry="retail")
    stage = None
    for kind, when in draw(st.lists(st.tuples(
            st.sampled_from(["tier", "tier", "lifecycle", "lifecycle", "purchase", "stage", "interaction", "score"]),
            st.sampled_from(instants)), min_size=1, max_size=12)):
        stamp = when.isoformat()[:19]
        if kind == "tier":
            new = draw(st.sampled_from("ABC"))
            h.tier("k1", stamp, tier, new)
            tier = new
        elif kind == "lifecycle":
            new = draw(st.sampled_from(["active", "at_risk", "dormant", "churned"]))
            h.lifecycle("k1", stamp, lifecycle, new)
            lifecycle = new
        elif kind == "purchase":
            h.purchase("k1", stamp, draw(st.sampled_from(["10.00", "99.99"])))
        elif kind == "stage":
            new = draw(st.sampled_from(["first_contact", "proposal", "won"]))
            h.stage("k1", stage, new, stamp)
            stage = new
        elif kind == "interaction":
            h.interaction("k1", stamp, "r1", "east", draw(st.sampled_from(["pre_sale", "post_sale"])))
        else:
            h.score("k1", stamp, draw(st.integers(0, 100)))
    return h.items


@st.composite
def deliveries(draw, events):
    """What the broker may deliver: the three producers' streams interleaved, each in its order, with
    redeliveries of what was already sent, cut into batches, each batch in any order."""
    streams: dict = {}
    for e in events:
        streams.setdefault(e.stream, []).append(e)
    queues = list(streams.values())
    cursors = [0] * len(queues)
    delivered: list = []
    while any(c < len(q) for c, q in zip(cursors, queues)):
        index = draw(st.sampled_from([i for i, q in enumerate(queues) if cursors[i] < len(q)]))
        delivered.append(queues[index][cursors[index]])
        cursors[index] += 1
        if draw(st.integers(0, 3)) == 0:
            delivered.append(draw(st.sampled_from(delivered)))
    batches, start = [], 0
    while start < len(delivered):
        size = draw(st.integers(1, 8))
        batches.append(draw(st.permutations(delivered[start:start + size])))
        start += size
    return batches


def _expected(events) -> tuple:
    """Folded by hand: changes in (instant, producer's sequence) order; moves are the steps that change."""
    created = next(e for e in events if e.name == "customer.created").data
    final = {"tier": created["tier"], "lifecycle": created["lifecycle"]}
    moves: dict = {"tier": {}, "lifecycle": {}}
    changes = sorted((e for e in events if e.name in ("customer.tier_changed", "customer.lifecycle_changed")),
                     key=lambda e: (e.data["as_of"], e.sequence))
    for e in changes:
        attribute = "tier" if e.name == "customer.tier_changed" else "lifecycle"
        new = e.data[f"new_{attribute}"]
        if new != final[attribute]:
            pair = (final[attribute], new)
            moves[attribute][pair] = moves[attribute].get(pair, 0) + 1
        final[attribute] = new
    return final, moves


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_delivery_of_one_customer_counts_as_delivering_it_in_order(data):
    events = data.draw(one_customer())
    batches = data.draw(deliveries(events))
    with tempfile.TemporaryDirectory() as directory:
        in_order = make_service(Path(directory), "in-order")
        feed(in_order, events)
        delivered = make_service(Path(directory), "delivered")
        assert sorted(e.id for e in feed_batches(delivered, batches)) == sorted(e.id for e in events)
        assert counters_of(delivered) == counters_of(in_order)
        final, moves = _expected(events)
        tiers, lifecycles, tier_moves, lifecycle_moves = _figures(delivered)
        assert tiers == {t: int(t == final["tier"]) for t in d.TIERS}
        assert lifecycles == {lc: int(lc == final["lifecycle"]) for lc in d.LIFECYCLES}
        assert (tier_moves, lifecycle_moves) == (moves["tier"], moves["lifecycle"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_delivery_across_years_counts_halves_years_and_ranges_as_in_order(data):
    """The same property with facts spread over two years: half-year and year buckets (whose distinct
    counts reach back to the year's start) and the distinct marks end as delivering in order, and a
    customer is one buyer of a year or range however many of its quarters it bought in."""
    events = data.draw(one_customer(YEAR_INSTANTS))
    batches = data.draw(deliveries(events))
    with tempfile.TemporaryDirectory() as directory:
        in_order = make_service(Path(directory), "in-order")
        feed(in_order, events)
        delivered = make_service(Path(directory), "delivered")
        feed_batches(delivered, batches)
        assert counters_of(delivered) == counters_of(in_order)
        assert books_of(delivered) == books_of(in_order)
        bought = [e.data["purchased_at"] for e in events if e.name == "purchase.recorded"]
        with delivered.store() as uow:
            src = SqlCounters(uow.session)
            for period in (d.parse_period("2026"), d.parse_period("2026-H2"), d.parse_period("2027"),
                           d.parse_range("2026-02-10..2027-01-02"), d.parse_range("2026-07-01..2026-12-31")):
                assert src.flow(d.counters.BUYERS, period) == int(any(period.contains(t) for t in bought)), period
                assert src.flow(d.counters.PURCHASES, period) == sum(period.contains(t) for t in bought), period


def _figures(service):
    with service.store() as uow:
        src = SqlCounters(uow.session)
        return (d.distribution(src, END, "tier", list(d.TIERS)), d.distribution(src, END, "lifecycle",
                                                                                  list(d.LIFECYCLES)),
                d.movements(src, Q3, "tier"), d.movements(src, Q3, "lifecycle"))


def test_history_helpers_number_each_stream_from_one():
    numbered = history(numbered=True)
    by_stream: dict = {}
    for e in numbered:
        by_stream.setdefault(e.stream, []).append(e.sequence)
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in by_stream.values())
    assert at("2026-07-01").tzinfo is UTC


@given(st.data())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_numbered_events_redelivered_behind_newer_ones_still_count(tmp_path_factory, data):
    """A broker may hand a stream's events back behind newer ones when faults overlap (tests/integration/
    test_faults.py found purchases lost that way). The books are dated, so reports applies such an older
    event instead of skipping it as stale: any order across batches ends as the history in order."""
    numbered = history(numbered=True)
    in_order = make_service(tmp_path_factory.mktemp("in-order"))
    feed_batches(in_order, [numbered])
    shuffled = data.draw(st.permutations(numbered))
    size = data.draw(st.integers(min_value=1, max_value=12))
    service = make_service(tmp_path_factory.mktemp("any-order"))
    applied = feed_batches(service, batches_of(shuffled, size))
    assert sorted(e.id for e in applied) == sorted(e.id for e in numbered)
    assert counters_of(service) == counters_of(in_order)
    assert books_of(service) == books_of(in_order)
