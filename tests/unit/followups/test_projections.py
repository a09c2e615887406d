"""Applying events through the one consuming entrypoint, on small hand-made histories numbered as the
producers' outboxes number them: class changes and the cadence task's text, stale events, and a whole
history in one batch against the same events one by one."""
import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import select, text
from sqlalchemy.orm import sessionmaker

from crm_common.auth import Principal
from crm_common.clock import FixedClock
from crm_common.db import make_engine
from crm_common.events import from_envelope, make_event, to_envelope
from crm_common.migrations import upgrade
from crm_common.testing import InMemoryStore, api_request as request
from services.followups import models
from services.followups.domain.settings import FollowupsSettings
from services.followups.service import FollowupsService

NOW = datetime(2026, 6, 30, 12, tzinfo=timezone.utc)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
ADMIN = Principal("admin", "admin")


class Stream:
    """One producer's events about one subject, numbered 1, 2, ... as its outbox numbers them."""

    def __init__(self, subject: str, source: str = "crm/customers"):
        self.subject, self.source, self.sequence = subject, source, 0

    def __call__(self, name: str, data: dict, time: datetime | None = None, sequence: int | None = None):
        self.sequence = sequence if sequence is not None else self.sequence + 1
        made = make_event(name, self.subject, data, source=self.source, time=time)
        return from_envelope(to_envelope(replace(made, sequence=self.sequence)))  # as a consumer receives it


class PostgresStore(InMemoryStore):
    """FOLLOWUPS_TEST_DATABASE_URL=postgresql+psycopg2://... runs these on PostgreSQL (emptied for each service,
    so two services of one test run one after the other)."""

    def __init__(self, url: str):
        upgrade("followups", url)
        self.engine = make_engine(url)
        with self.engine.begin() as connection:
            connection.execute(text("TRUNCATE " + ", ".join(t.name for t in models.metadata.sorted_tables)))
        self.tables, self.service = models.infrastructure, "followups"
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)


def make_service(tmp_path, name="followups"):
    url = os.environ.get("FOLLOWUPS_TEST_DATABASE_URL")
    store = (PostgresStore(url) if url else
             InMemoryStore(models.metadata, models.infrastructure, "followups", str(tmp_path / f"{name}.db")))
    service = worker_factory(FollowupsService, store=store, clock=FixedClock(NOW), settings=FollowupsSettings())
    service.customers_rpc.get_customer_brief.return_value = None
    return service


def rep_events(*reps):
    return [Stream(rep_id)("rep.registered", {"rep_id": rep_id, "name": rep_id, "team": "north", "role": "rep",
                                              "active": True}) for rep_id in reps]


def created(stream, tier="B", lifecycle="active", owner="rep-n1", at=NOW - 10 * DAY, **extra):
    return stream("customer.created", {"customer_id": stream.subject, "company": f"{stream.subject} Ltd",
                                       "owner_id": owner, "team": "north", "tier": tier, "lifecycle": lifecycle,
                                       "created_at": at, **extra}, time=at)


def tier_changed(stream, old, new, as_of=NOW, **kwargs):
    return stream("customer.tier_changed", {"customer_id": stream.subject, "old_tier": old, "new_tier": new,
                                            "rolling_12m_total": "1000.00", "as_of": as_of}, time=as_of, **kwargs)


def lifecycle_changed(stream, old, new, as_of=NOW, **kwargs):
    return stream("customer.lifecycle_changed", {"customer_id": stream.subject, "old_lifecycle": old,
                                                 "new_lifecycle": new, "reason": "recency", "as_of": as_of},
                  time=as_of, **kwargs)


def cadence_task(service, customer_id="c1"):
    [task] = service.list_tasks(request(ADMIN, query={"status": "open", "customer_id": customer_id}))["items"]
    assert task["reason"] == "cadence"
    return task


def published(service, name):
    return service.store.events(name)


@pytest.fixture
def service(tmp_path):
    service = make_service(tmp_path)
    service.apply_events(rep_events("rep-n1", "rep-n2"))
    return service


# --- a class change moves the open cadence task to the new class: due time, kind and text ----------------

def test_a_tier_change_reschedules_and_retitles_the_open_cadence_task(service):
    c1 = Stream("c1")
    service.apply_events([created(c1)])  # B/active, created 10 days ago: every 30 days
    first = cadence_task(service)
    assert (first["due_at"], first["purpose"]) == (NOW + 20 * DAY, "maintenance: touch every 30 days (tier B, active)")
    service.apply_events([tier_changed(c1, "B", "A")])
    task = cadence_task(service)
    assert (task["id"], task["due_at"], task["purpose"]) == (
        first["id"], NOW + 4 * DAY, "maintenance: touch every 14 days (tier A, active)")
    [moved] = published(service, "task.rescheduled")
    assert (moved.data["purpose"], moved.data["due_at"], moved.data["old_due_at"], moved.data["reason"]) == (
        task["purpose"], NOW + 4 * DAY, NOW + 20 * DAY, "class_change")


def test_a_class_change_that_keeps_the_due_time_still_takes_the_new_text(service):
    """The symptom: B and C actives are both touched every 30 days, and a task already due stays put;
    the text named the class the task was first scheduled with."""
    c1, c2 = Stream("c1"), Stream("c2")
    service.apply_events([created(c1), created(c2, at=NOW - 100 * DAY)])
    service.apply_events([tier_changed(c1, "B", "C"), tier_changed(c2, "B", "A")])
    same_interval, overdue = cadence_task(service, "c1"), cadence_task(service, "c2")
    assert (same_interval["due_at"], same_interval["purpose"]) == (
        NOW + 20 * DAY, "maintenance: touch every 30 days (tier C, active)")
    assert (overdue["due_at"], overdue["purpose"]) == (NOW, "maintenance: touch every 14 days (tier A, active)")
    moved = {e.data["customer_id"]: e.data for e in published(service, "task.rescheduled")}
    assert moved["c1"]["purpose"] == same_interval["purpose"] and moved["c1"]["old_due_at"] == NOW + 20 * DAY
    assert moved["c2"]["purpose"] == overdue["purpose"] and moved["c2"]["due_at"] == moved["c2"]["old_due_at"]


def test_a_lifecycle_change_changes_kind_interval_and_text(service):
    c1 = Stream("c1")
    service.apply_events([created(c1, tier="C", lifecycle="potential", at=NOW - 2 * DAY)])
    assert cadence_task(service)["purpose"] == "follow up: touch every 7 days (tier C, potential)"
    service.apply_events([lifecycle_changed(c1, "potential", "active")])
    task = cadence_task(service)
    assert (task["kind"], task["due_at"], task["purpose"]) == (
        "maintenance", NOW + 28 * DAY, "maintenance: touch every 30 days (tier C, active)")
    [moved] = published(service, "task.rescheduled")
    assert (moved.data["kind"], moved.data["purpose"]) == ("maintenance", task["purpose"])


def test_an_unchanged_class_publishes_nothing(service):
    c1 = Stream("c1")
    service.apply_events([created(c1)])
    service.apply_events([c1("customer.updated", {
        "customer_id": "c1", "company": "c1 Ltd", "owner_id": "rep-n1", "team": "north", "tier": "B",
        "lifecycle": "active", "created_at": NOW - 10 * DAY, "changed_fields": ["company"]}, time=NOW)])
    assert published(service, "task.rescheduled") == []


# --- order: the stream's sequence decides, not the date a fact carries -------------------------------------

def test_a_stale_class_event_delivered_after_a_newer_one_changes_nothing(service):
    c1 = Stream("c1")
    service.apply_events([created(c1)])
    newer = tier_changed(c1, "B", "A", as_of=NOW - HOUR, sequence=3)
    stale = tier_changed(c1, "C", "C", as_of=NOW, sequence=2)  # dated later, but the stream went past it
    assert service.apply_events([newer]) == [newer]
    before = len(service.store.events())
    assert service.apply_events([stale]) == []
    task = cadence_task(service)
    assert (task["due_at"], task["purpose"]) == (NOW + 4 * DAY, "maintenance: touch every 14 days (tier A, active)")
    assert len(service.store.events()) == before


def test_stale_and_repeated_events_in_one_batch_are_dropped(service):
    c1 = Stream("c1")
    first, newer = created(c1), tier_changed(c1, "B", "A", sequence=3)
    stale = tier_changed(c1, "B", "C", sequence=2)
    assert service.apply_events([newer, first, first]) == [first, newer]  # put in order, the copy dropped
    assert service.apply_events([stale]) == []
    assert cadence_task(service)["purpose"] == "maintenance: touch every 14 days (tier A, active)"


def test_a_newer_event_dated_earlier_still_wins(service):
    """A classification sweep run for a past day comes after a live change in the stream: it is the
    customers service's latest word, whatever its date."""
    c1 = Stream("c1")
    service.apply_events([created(c1), tier_changed(c1, "B", "A", as_of=NOW)])
    service.apply_events([tier_changed(c1, "A", "C", as_of=NOW - 3 * DAY)])
    assert cadence_task(service)["purpose"] == "maintenance: touch every 30 days (tier C, active)"


def test_unnumbered_events_still_weigh_their_dates(service):
    """Events from before the outbox numbered them have no order to go by: the later fact wins."""
    c1 = Stream("c1")
    service.apply_events([created(c1)])
    live = replace(tier_changed(c1, "B", "A", as_of=NOW), sequence=None)
    late = replace(tier_changed(c1, "C", "C", as_of=NOW - DAY), sequence=None)
    service.apply_events([live])
    service.apply_events([late])
    assert cadence_task(service)["purpose"] == "maintenance: touch every 14 days (tier A, active)"


# --- an alert: the recall it asks for, or none for a dormant customer ---------------------------------------

@pytest.mark.parametrize("recall", [True, False])
def test_an_alert_makes_the_recall_it_asks_for(service, recall):
    c1, alerts = Stream("c1"), Stream("c1", source="crm/alerts")
    service.apply_events([created(c1, lifecycle="dormant" if not recall else "active"),
                          alerts("alert.raised", {"alert_id": "a1", "customer_id": "c1", "rule": "no_repurchase",
                                                  "raised_at": NOW, "recall": recall, "owner_id": "rep-n1",
                                                  "team": "north", "signals": [{"name": "days_since_purchase",
                                                                                "value": 300}]})])
    reasons = sorted(t["reason"] for t in service.list_tasks(request(ADMIN, query={"status": "open"}))["items"])
    assert reasons == (["cadence", "recall"] if recall else ["cadence"])
    if not recall:  # the dormant customer's quarterly wake-up is what it gets
        assert cadence_task(service)["purpose"] == "maintenance: touch every 90 days (tier B, dormant)"


# --- a whole history in one batch equals the same events one by one ----------------------------------------

def history() -> list:
    """Two unowned customers sharing the team's round-robin, one that is archived, reps coming and going,
    and an alert: every handler, several events per customer."""
    c1, c2, c3 = Stream("c1"), Stream("c2"), Stream("c3")
    alerts = Stream("c1", source="crm/alerts")
    rep3 = Stream("rep-n3")
    north = {"owner_id": None, "team": "north"}
    return [
        *rep_events("rep-n1", "rep-n2"),
        rep3("rep.registered", {"rep_id": "rep-n3", "name": "N3", "team": "north", "role": "rep", "active": True}),
        created(c1, tier="C", lifecycle="potential", owner=None, at=NOW - 5 * DAY, pipeline_stage="first_contact"),
        created(c2, tier="A", lifecycle="active", owner=None, at=NOW - 40 * DAY),
        c1("customer.stage_changed", {"customer_id": "c1", "old_stage": "first_contact", "new_stage": "needs_analysis",
                                      "changed_at": NOW - 2 * DAY, **north}, time=NOW - 2 * DAY),
        created(c3, owner="rep-n3"),
        c1("purchase.recorded", {"customer_id": "c1", "purchase_id": "p1", "amount": "900.00", "currency": "USD",
                                 "amount_base": "900.00", "base_currency": "USD", "purchased_at": NOW - DAY, **north},
           time=NOW - DAY),
        lifecycle_changed(c1, "potential", "new", as_of=NOW - DAY),
        tier_changed(c2, "A", "B", as_of=NOW - DAY),
        rep3("rep.updated", {"rep_id": "rep-n3", "name": "N3", "team": "north", "role": "rep", "active": False}),
        tier_changed(c1, "C", "B", as_of=NOW - DAY),
        alerts("alert.raised", {"alert_id": "a1", "customer_id": "c1", "rule": "quiet", "raised_at": NOW - 3 * HOUR,
                                "signals": [{"name": "days_since_purchase", "value": 90}], **north}),
        c1("customer.owner_changed", {"customer_id": "c1", "old_owner_id": None, "old_team": "north",
                                      "new_owner_id": "rep-n2", "new_team": "north", "transfer_id": "t1",
                                      "changed_by": "mgr"}, time=NOW - 2 * HOUR),
        c3("customer.archived", {"customer_id": "c3", "archived_at": NOW - HOUR}, time=NOW - HOUR),
        c1("customer.stage_changed", {"customer_id": "c1", "old_stage": "needs_analysis", "new_stage": "won",
                                      "changed_at": NOW - HOUR, "owner_id": "rep-n2", "team": "north"},
           time=NOW - HOUR),
        c1("customer.updated", {"customer_id": "c1", "company": "c1 Group", "owner_id": "rep-n2", "team": "north",
                                "tier": "B", "lifecycle": "new", "pipeline_stage": "won", "created_at": NOW - 5 * DAY,
                                "changed_fields": ["company"]}, time=NOW - HOUR / 2),
        lifecycle_changed(c1, "new", "active", as_of=NOW),
        tier_changed(c2, "B", "C", as_of=NOW),
    ]


def state(service) -> dict:
    """Everything the events left behind, ids aside (they are random)."""
    with service.store.session_factory() as session:
        tasks = sorted(tuple((k, v) for k, v in row._mapping.items() if k != "id")
                       for row in session.execute(select(models.tasks)))
        customers = [tuple(row) for row in session.execute(select(models.customer_view)
                                                           .order_by(models.customer_view.c.customer_id))]
        reps = [tuple(row) for row in session.execute(select(models.rep_view).order_by(models.rep_view.c.rep_id))]
        cursors = [tuple(row) for row in session.execute(select(models.team_cursors))]
    events = [(e.name, e.subject, e.sequence, {k: v for k, v in e.data.items() if k != "task_id"})
              for e in service.store.events()]
    return {"tasks": tasks, "customers": customers, "reps": reps, "cursors": cursors, "events": events}


def applied(tmp_path, name, deliveries) -> tuple:
    """A fresh service fed ``deliveries`` (one apply_events call each): (service, what each call returned, state)."""
    service = make_service(tmp_path, name)
    returned = [service.apply_events(list(batch)) for batch in deliveries]
    return service, returned, state(service)


def test_a_whole_history_in_one_batch_equals_the_same_events_one_by_one(tmp_path):
    events = history()
    _, returned, expected = applied(tmp_path, "one_by_one", [[evt] for evt in events])
    assert returned == [[evt] for evt in events]
    batched, [fresh], actual = applied(tmp_path, "batched", [events])
    assert fresh == events and actual == expected
    # what the history should have left: c1 won, active, owned by rep-n2; c2 round-robin; c3 archived
    open_tasks = {(t["customer_id"], t["reason"]): t for t in
                  batched.list_tasks(request(ADMIN, query={"status": "open"}))["items"]}
    assert set(open_tasks) == {("c1", "cadence"), ("c1", "key_moment"), ("c1", "recall"), ("c2", "cadence")}
    assert open_tasks[("c1", "cadence")]["purpose"] == "maintenance: touch every 30 days (tier B, active)"
    assert open_tasks[("c2", "cadence")]["purpose"] == "maintenance: touch every 30 days (tier C, active)"
    assert "rep-n3" not in {t["assignee_id"] for t in open_tasks.values()}
    assert expected["cursors"] and len({e[3].get("assignee_id") for e in expected["events"]
                                        if e[0] == "task.scheduled"}) > 1  # the round-robin turned within the batch
    assert batched.apply_events(events) == [] and state(batched) == expected  # redelivered: nothing changes


def test_a_batch_in_any_order_within_each_stream_equals_the_stream_in_order(tmp_path):
    """The consumer may hand a batch over with one subject's events shuffled (after a split and retry);
    each stream is put back in its sequence order, in the slots it had."""
    events = history()
    c1_slots = [i for i, e in enumerate(events) if e.stream == ("crm/customers", "c1")]
    shuffled = list(events)
    for slot, evt in zip(c1_slots, reversed([events[i] for i in c1_slots])):
        shuffled[slot] = evt
    _, _, expected = applied(tmp_path, "in_order", [events])
    _, [fresh], actual = applied(tmp_path, "shuffled", [shuffled])
    assert fresh == events and actual == expected
