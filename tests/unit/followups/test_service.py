"""Followups use cases through the service's entrypoints (nameko worker_factory, real SQLite, fixed clock)."""
import os
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import eventlet
import pytest
from marshmallow import ValidationError
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook, worker_factory
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from crm_common import memory_transport
from crm_common.auth import Principal
from crm_common.clock import FixedClock
from crm_common.db import EventFailed, make_engine
from crm_common.errors import Conflict, CrmError, DomainError, EventRejected, Forbidden, NotFound
from crm_common.events import from_envelope, make_event, to_envelope
from crm_common.migrations import upgrade
from crm_common.testing import InMemoryStore, api_request as request
from services.followups import jobs, models, projections
from services.followups.domain.settings import FollowupsSettings
from services.followups.service import FollowupsService

NOW = datetime(2026, 6, 30, 12, tzinfo=timezone.utc)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
ADMIN = Principal("admin", "admin")
MGR_NORTH = Principal("mgr-north", "manager", "north")
MGR_SOUTH = Principal("mgr-south", "manager", "south")
REP_N1 = Principal("rep-n1", "rep", "north")
REP_N2 = Principal("rep-n2", "rep", "north")


def event(name, data, time=None, source="crm/customers", sequence=None):
    """As a consumer receives it: through the envelope and its contract (numbered in its stream when
    ``sequence`` is given, as every event from an outbox is)."""
    subject = data.get("customer_id") or data.get("rep_id")
    made = make_event(name, subject, data, source=source, time=time)
    return from_envelope(to_envelope(replace(made, sequence=sequence)))


def deliver(service, *events):
    """Through the one consuming entrypoint; returns the events that were new."""
    return service.apply_events(list(events))


class PostgresStore(InMemoryStore):
    """The same use cases on PostgreSQL: FOLLOWUPS_TEST_DATABASE_URL=postgresql+psycopg2://... (emptied first)."""

    def __init__(self, url: str):
        upgrade("followups", url)
        self.engine = make_engine(url)
        with self.engine.begin() as connection:
            connection.execute(text("TRUNCATE " + ", ".join(t.name for t in models.metadata.sorted_tables)))
        self.tables = models.infrastructure
        self.service = "followups"
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)


@pytest.fixture
def store(tmp_path):
    url = os.environ.get("FOLLOWUPS_TEST_DATABASE_URL")
    if url:
        store = PostgresStore(url)
        yield store
        store.engine.dispose()
        return
    yield InMemoryStore(models.metadata, models.infrastructure, "followups", str(tmp_path / "followups.db"))


@pytest.fixture
def clock():
    return FixedClock(NOW)


@pytest.fixture
def service(store, clock):
    svc = worker_factory(FollowupsService, store=store, clock=clock, settings=FollowupsSettings())
    svc.customers_rpc.get_customer_brief.return_value = None
    for rep_id, team, role in (("mgr-north", "north", "manager"), ("rep-n1", "north", "rep"),
                               ("rep-n2", "north", "rep"), ("rep-n3", "north", "rep"), ("rep-s1", "south", "rep")):
        deliver(svc, event("rep.registered", {"rep_id": rep_id, "name": rep_id, "team": team, "role": role,
                                              "active": True}))
    return svc


def customer(service, customer_id="c1", owner="rep-n1", team="north", tier="B", lifecycle="active",
             created_days_ago=100, **extra):
    created_at = NOW - timedelta(days=created_days_ago)
    deliver(service, event("customer.created", {
        "customer_id": customer_id, "company": f"{customer_id} Ltd", "owner_id": owner, "team": team, "tier": tier,
        "lifecycle": lifecycle, "created_at": created_at, **extra}, time=created_at))
    return customer_id


def log(service, principal=REP_N1, **fields):
    body = {"customer_id": "c1", "kind": "call", "occurred_at": NOW.isoformat(), "outcome": "reached", **fields}
    for key, value in body.items():
        if isinstance(value, datetime):
            body[key] = value.isoformat()
    status, result = service.log_interaction(request(principal, "POST", body))
    assert status == 201
    return result


def open_tasks(service, principal=ADMIN, **query):
    return service.list_tasks(request(principal, query={"status": "open", **query}))["items"]


def names(store, prefix="task."):
    return [e.name for e in store.events() if e.name.startswith(prefix)]


# --- the read model and the cadence it drives --------------------------------------------------------------

def test_a_new_customer_gets_one_cadence_task_for_its_owner_and_redelivery_changes_nothing(service, store):
    created = event("customer.created", {"customer_id": "c1", "company": "Acme", "owner_id": "rep-n1", "team": "north",
                                         "tier": "B", "lifecycle": "potential", "created_at": NOW - 2 * DAY})
    assert service.apply_events([created]) == [created]
    assert service.apply_events([created]) == []  # claimed: a duplicate delivery is skipped
    [task] = open_tasks(service)
    assert (task["assignee_id"], task["kind"], task["reason"], task["due_at"]) == (
        "rep-n1", "follow_up", "cadence", NOW + 5 * DAY)
    [scheduled] = store.events("task.scheduled")
    assert scheduled.data["reason"] == "cadence" and scheduled.data["task_id"] == task["id"]


def test_a_touch_completes_the_open_cadence_task_and_schedules_the_next(service, store):
    customer(service)
    [first] = open_tasks(service)
    assert first["due_at"] == NOW  # created 100 days ago without a touch: due now, not in the past
    result = log(service, occurred_at=NOW)
    assert result["completed_task_ids"] == [first["id"]]
    assert result["next_cadence_task"]["due_at"] == NOW + 30 * DAY
    [logged] = store.events("interaction.logged")
    assert (logged.data["rep_id"], logged.data["phase"], logged.data["team"]) == ("rep-n1", "post_sale", "north")
    [completed] = store.events("task.completed")
    assert completed.data["interaction_id"] == result["id"] and completed.data["on_time"] is True
    assert len(open_tasks(service)) == 1


def test_a_backdated_touch_moves_the_cadence_without_completing_it(service, store):
    customer(service, created_days_ago=200)
    [task] = open_tasks(service)
    service.clock.advance(hours=2)  # the task was scheduled before the touches below were logged
    log(service, occurred_at=NOW - 40 * DAY)  # interval 30 from 40 days ago is still due: stays put
    assert [t["due_at"] for t in open_tasks(service)] == [NOW]
    log(service, occurred_at=NOW - 10 * DAY)
    [moved] = open_tasks(service)
    assert (moved["id"], moved["due_at"]) == (task["id"], NOW + 20 * DAY)
    assert names(store) == ["task.scheduled", "task.rescheduled"]
    log(service, occurred_at=NOW - 20 * DAY)  # older than the last touch: history only
    assert open_tasks(service)[0]["due_at"] == NOW + 20 * DAY


def test_a_touch_in_the_future_is_refused_and_nothing_is_written(service, store):
    customer(service)
    before = len(store.events())
    with pytest.raises(DomainError) as err:
        log(service, occurred_at=NOW + HOUR)
    assert err.value.field == "occurred_at"
    log(service, occurred_at=NOW + timedelta(minutes=4))  # clock skew tolerated
    assert len(store.events("interaction.logged")) == 1 and len(store.events()) > before


@pytest.mark.parametrize("body, field", [
    ({"kind": "fax"}, "kind"), ({"outcome": "maybe"}, "outcome"), ({"satisfaction": 6}, "satisfaction"),
    ({"occurred_at": "yesterday"}, "occurred_at"), ({"colour": "red"}, "colour"),
    ({"kind": "complaint", "resolves_complaint_id": "x"}, "resolves_complaint_id"),
])
def test_bad_interaction_fields_are_named(service, body, field):
    customer(service)
    with pytest.raises(ValidationError) as err:
        log(service, **body)
    assert field in err.value.messages


def test_unknown_customer_asks_the_customers_service_then_404(service, store):
    with pytest.raises(NotFound) as err:
        log(service, customer_id="c-new")
    assert err.value.field == "customer_id"
    service.customers_rpc.get_customer_brief.assert_called_with("c-new")
    service.customers_rpc.get_customer_brief.return_value = {
        "id": "c-new", "company": "New Co", "owner_id": "rep-n1", "team": "north", "tier": "C",
        "lifecycle": "potential", "pipeline_stage": "first_contact", "important_dates": [], "archived_at": None}
    result = log(service, customer_id="c-new")
    assert result["phase"] == "pre_sale"
    assert [t["customer_id"] for t in open_tasks(service)] == ["c-new"]  # next cadence scheduled


def test_scope_rep_own_manager_team_admin_all(service):
    customer(service)
    with pytest.raises(NotFound):
        log(service, principal=REP_N2)
    with pytest.raises(NotFound):
        log(service, principal=MGR_SOUTH)
    assert log(service, principal=MGR_NORTH)["rep_id"] == "mgr-north"
    assert log(service, principal=ADMIN)["rep_id"] == "admin"
    with pytest.raises(NotFound):
        service.customer_interactions(request(REP_N2), "c1")
    assert len(service.customer_interactions(request(REP_N1), "c1")["items"]) == 2


def test_phase_follows_the_customer_when_the_touch_happened(service):
    customer(service, lifecycle="potential", created_days_ago=300)
    deliver(service, event("purchase.recorded", {
        "customer_id": "c1", "purchase_id": "p1", "amount": "100.00", "currency": "USD", "amount_base": "100.00",
        "base_currency": "USD", "purchased_at": NOW - 50 * DAY, "owner_id": "rep-n1", "team": "north"}))
    assert log(service, occurred_at=NOW - 60 * DAY)["phase"] == "pre_sale"
    assert log(service, occurred_at=NOW - 40 * DAY)["phase"] == "post_sale"
    assert log(service, occurred_at=NOW - 60 * DAY, phase="post_sale")["phase"] == "post_sale"


def test_complaints_open_a_task_and_a_later_touch_resolves_them(service, store):
    customer(service)
    complaint = log(service, kind="complaint", outcome="open", summary="late delivery", occurred_at=NOW - 2 * HOUR)
    assert complaint["complaint_status"] == "open"
    [task] = [t for t in open_tasks(service) if t["reason"] == "complaint"]
    assert (task["kind"], task["due_at"]) == ("follow_up", NOW - 2 * HOUR + 24 * HOUR)
    with pytest.raises(CrmError) as err:
        log(service, resolves_complaint_id="int_nope")
    assert err.value.field == "resolves_complaint_id"
    fix = log(service, kind="visit", outcome="resolved", resolves_complaint_id=complaint["id"], satisfaction=4)
    assert task["id"] in fix["completed_task_ids"]
    timeline = service.customer_interactions(request(REP_N1), "c1")["items"]
    assert {i["id"]: i["complaint_status"] for i in timeline}[complaint["id"]] == "resolved"
    with pytest.raises(Conflict):
        log(service, kind="call", resolves_complaint_id=complaint["id"])


def test_completes_task_id_must_be_an_open_task_of_that_customer(service):
    customer(service)
    customer(service, "c2")
    [other] = open_tasks(service, customer_id="c2")
    with pytest.raises(CrmError) as err:
        log(service, completes_task_id=other["id"])
    assert err.value.field == "completes_task_id"
    result = log(service, customer_id="c2", completes_task_id=other["id"])
    assert result["completed_task_ids"] == [other["id"]]
    with pytest.raises(DomainError) as err:
        log(service, customer_id="c2", completes_task_id=other["id"])
    assert err.value.field == "completes_task_id"


def test_class_changes_reschedule_and_old_facts_do_not_overwrite_new_ones(service, store):
    customer(service)
    log(service, occurred_at=NOW - 10 * DAY)
    [task] = open_tasks(service)
    assert task["due_at"] == NOW + 20 * DAY
    deliver(service, event("customer.tier_changed", {
        "customer_id": "c1", "old_tier": "B", "new_tier": "A", "rolling_12m_total": "150000.00", "as_of": NOW}))
    [moved] = open_tasks(service)
    assert (moved["id"], moved["due_at"]) == (task["id"], NOW + 4 * DAY)  # 14 days from the last touch
    rescheduled = store.events("task.rescheduled")[-1]
    assert (rescheduled.data["old_due_at"], rescheduled.data["reason"]) == (NOW + 20 * DAY, "class_change")
    deliver(service, event("customer.tier_changed", {  # an older fact arriving late
        "customer_id": "c1", "old_tier": "C", "new_tier": "B", "rolling_12m_total": "30000.00",
        "as_of": NOW - 5 * DAY}))
    assert open_tasks(service)[0]["due_at"] == NOW + 4 * DAY


def test_churning_skips_the_cadence_task(service, store):
    customer(service)
    deliver(service, event("customer.lifecycle_changed", {
        "customer_id": "c1", "old_lifecycle": "active", "new_lifecycle": "churned", "reason": "recency", "as_of": NOW}))
    assert open_tasks(service) == []
    [skipped] = store.events("task.skipped")
    assert "churned" in skipped.data["reason"]


def test_events_before_customer_created_build_a_stub_completed_later(service):
    deliver(service, event("customer.lifecycle_changed", {
        "customer_id": "c9", "old_lifecycle": "potential", "new_lifecycle": "active", "reason": "imported",
        "owner_id": "rep-n1", "team": "north", "as_of": NOW}))
    assert open_tasks(service) == []  # the tier is not known yet
    customer(service, "c9", lifecycle="potential", tier="C", created_days_ago=10)
    [task] = open_tasks(service)
    assert (task["kind"], task["due_at"]) == ("maintenance", NOW + 20 * DAY)  # active (newer), not potential


def test_key_moments(service, store):
    customer(service, lifecycle="potential")

    def stage(old, new, at, event_id=None):
        evt = event("customer.stage_changed", {"customer_id": "c1", "old_stage": old, "new_stage": new,
                                               "changed_at": at, "owner_id": "rep-n1", "team": "north"})
        deliver(service, evt)

    stage("first_contact", "needs_analysis", NOW - DAY)
    stage("first_contact", "needs_analysis", NOW - DAY)  # same change published twice: one task
    [follow_up] = [t for t in open_tasks(service) if t["reason"] == "key_moment"]
    assert (follow_up["kind"], follow_up["due_at"]) == ("follow_up", NOW + 2 * DAY)
    log(service, outcome="no_answer", occurred_at=NOW - HOUR)
    assert follow_up["id"] in [t["id"] for t in open_tasks(service)]
    result = log(service, outcome="positive", occurred_at=NOW)
    assert follow_up["id"] in result["completed_task_ids"]
    stage("proposal", "won", NOW)
    [revisit] = [t for t in open_tasks(service) if t["reason"] == "key_moment"]
    assert (revisit["kind"], revisit["due_at"]) == ("maintenance", NOW + 30 * DAY)
    stage("proposal", "won", NOW - 400 * DAY)  # imported history: that moment has long passed
    assert len([t for t in open_tasks(service) if t["reason"] == "key_moment"]) == 1


def test_ownership_change_moves_the_old_owners_open_tasks(service, store):
    customer(service)
    service.create_task(request(MGR_NORTH, "POST", {"customer_id": "c1", "purpose": "help out", "assignee_id": "rep-n3",
                                                    "due_at": (NOW + DAY).isoformat()}))
    deliver(service, event("customer.owner_changed", {
        "customer_id": "c1", "old_owner_id": "rep-n1", "old_team": "north", "new_owner_id": "rep-n2",
        "new_team": "north", "transfer_id": "trf1", "changed_by": "mgr-north"}, time=NOW))
    assert sorted(t["assignee_id"] for t in open_tasks(service)) == ["rep-n2", "rep-n3"]
    [moved] = store.events("task.reassigned")
    assert (moved.data["old_assignee_id"], moved.data["assignee_id"], moved.data["reason"]) == (
        "rep-n1", "rep-n2", "ownership change")


def test_unowned_customers_go_round_robin_and_a_departing_rep_hands_over(service):
    for cid in ("c1", "c2", "c3", "c4"):
        customer(service, cid, owner=None)
    assert {t["customer_id"]: t["assignee_id"] for t in open_tasks(service)} == {
        "c1": "rep-n1", "c2": "rep-n2", "c3": "rep-n3", "c4": "rep-n1"}
    deliver(service, event("rep.updated", {"rep_id": "rep-n1", "name": "N1", "team": "north", "role": "rep",
                                           "active": False}))
    assert "rep-n1" not in [t["assignee_id"] for t in open_tasks(service)]


def test_alert_raised_schedules_one_recall_task(service, store):
    customer(service)
    data = {"alert_id": "a1", "customer_id": "c1", "rule": "quiet", "owner_id": "rep-n1", "team": "north",
            "signals": [{"name": "days_since_purchase", "value": 200}], "raised_at": NOW}
    deliver(service, event("alert.raised", data, source="crm/alerts"))
    deliver(service, event("alert.raised", data, source="crm/alerts"))  # another delivery, new event id
    [recall] = [t for t in open_tasks(service) if t["reason"] == "recall"]
    assert (recall["kind"], recall["assignee_id"], recall["due_at"]) == ("recall", "rep-n1", NOW + DAY)


def test_a_rule_refusing_an_event_dead_letters_it_and_rolls_back_its_batch(service, store, monkeypatch):
    customer(service, "c0")
    before = len(store.events())
    evt = event("customer.tier_changed", {"customer_id": "c1", "new_tier": "A", "rolling_12m_total": "1.00",
                                          "as_of": NOW})
    fine = event("customer.created", {"customer_id": "c2", "company": "C2", "owner_id": "rep-n1", "team": "north",
                                      "tier": "B", "lifecycle": "active", "created_at": NOW - DAY})

    def refuse(uow, event, ctx):
        raise DomainError("cannot apply", field="new_tier")

    monkeypatch.setitem(projections.CONSUMES.handlers, "customer.tier_changed", refuse)
    with pytest.raises(EventFailed) as failed:
        deliver(service, fine, evt)
    assert failed.value.event == evt and isinstance(failed.value.error, EventRejected)
    assert len(store.events()) == before and open_tasks(service, customer_id="c2") == []  # nothing half-applied
    monkeypatch.undo()
    assert deliver(service, fine, evt) == [fine, evt]  # nothing was claimed: both can still be applied


# --- reminders --------------------------------------------------------------------------------------------

def test_reminders_are_emitted_once_per_step_however_often_the_sweep_runs(service, store):
    customer(service)
    log(service, occurred_at=NOW)  # next cadence due NOW + 30 days
    due_at = NOW + 30 * DAY
    moments = [NOW, due_at - 2 * HOUR, due_at - HOUR, due_at - HOUR, due_at + HOUR, due_at + HOUR,
               due_at + 2 * DAY, due_at + 2 * DAY + HOUR, due_at + 3 * DAY]
    emitted = []
    for moment in moments:
        result = service.run_reminders(moment)
        emitted += [(step, moment) for step, count in result["emitted"].items() for _ in range(count)]
    assert emitted == [("due", due_at - HOUR), ("overdue", due_at + HOUR), ("missed", due_at + 2 * DAY + HOUR)]
    assert [e.name for e in store.events() if e.name in ("task.due", "task.overdue", "task.missed")] == [
        "task.due", "task.overdue", "task.missed"]
    [task] = service.list_tasks(request(ADMIN, query={"status": "missed"}))["items"]
    assert task["closed_at"] == due_at + 2 * DAY + HOUR


def test_a_sweep_after_an_outage_catches_up_in_order_over_several_batches(service, store, clock):
    service.settings = FollowupsSettings(sweep_batch_size=3)
    for i in range(7):
        customer(service, f"c{i}")
    result = service.run_reminders(NOW + 10 * DAY)
    assert result["emitted"] == {"due": 7, "overdue": 7, "missed": 7} and result["batches"] >= 3
    per_task = {}
    for e in store.events():
        if e.name in ("task.due", "task.overdue", "task.missed"):
            per_task.setdefault(e.data["task_id"], []).append(e.name)
    assert set(map(tuple, per_task.values())) == {("task.due", "task.overdue", "task.missed")}
    assert service.run_reminders(NOW + 10 * DAY)["emitted"] == {"due": 0, "overdue": 0, "missed": 0}


def test_replicas_sweeping_at_once_never_send_a_reminder_twice(service, store):
    """Three sweeps interleaved inside their transactions (each yields after every emit while holding its
    rows): on PostgreSQL they share the work through SKIP LOCKED, on SQLite they take turns."""
    for i in range(30):
        customer(service, f"c{i}")
    settings = FollowupsSettings(sweep_batch_size=4)

    def replica():
        done = Counter()
        while True:
            with store() as uow:
                emit = uow.emit

                def emit_then_yield(*args, **kwargs):
                    evt = emit(*args, **kwargs)
                    eventlet.sleep(0)
                    return evt

                uow.emit = emit_then_yield
                batch = jobs.reminder_batch(uow, NOW + 10 * DAY, settings)
                uow.commit()
            if not batch:
                return done
            done.update(batch)

    results = [thread.wait() for thread in [eventlet.spawn(replica) for _ in range(3)]]
    sent = Counter((e.data["task_id"], e.name) for e in store.events()
                   if e.name in ("task.due", "task.overdue", "task.missed"))
    assert len(sent) == 90 and set(sent.values()) == {1}
    assert sum(sum(r.values()) for r in results) == 90
    if store.engine.dialect.name == "postgresql":
        assert sum(1 for r in results if r) > 1  # the work was shared


def test_a_rescheduled_task_gets_its_reminders_again(service, store):
    customer(service, created_days_ago=20)  # B/active: due in 10 days
    service.run_reminders(NOW + 10 * DAY + 2 * HOUR)  # due + overdue
    assert open_tasks(service)[0]["reminder_state"] == "overdue_notified"
    deliver(service, event("customer.tier_changed", {  # A/active: 14 days from creation, i.e. now
        "customer_id": "c1", "old_tier": "B", "new_tier": "A", "rolling_12m_total": "1.00", "as_of": NOW}))
    [task] = open_tasks(service)
    assert (task["reminder_state"], task["due_at"]) == ("none", NOW)
    assert service.run_reminders(NOW)["emitted"] == {"due": 1, "overdue": 0, "missed": 0}


# --- work list, manual tasks and task actions ---------------------------------------------------------------

def test_worklist_is_prioritised_and_scoped(service):
    customer(service, "ca", tier="A")
    customer(service, "cb", tier="B")
    customer(service, "cc", tier="C", owner="rep-n2")
    for cid, due in (("ca", NOW + 2 * HOUR), ("cb", NOW - 3 * DAY), ("ca", NOW + 2 * DAY)):
        service.create_task(request(MGR_NORTH, "POST", {"customer_id": cid, "purpose": "call", "due_at": due.isoformat(),
                                                        "assignee_id": "rep-n1"}))
    worklist = service.worklist(request(REP_N1))
    order = [(i["customer_id"], i["reason"], i["overdue"]) for i in worklist["items"]]
    # overdue 3 days first; then tier A (due now, due in 2 hours), then tier B
    assert order == [("cb", "manual", True), ("ca", "cadence", False), ("ca", "manual", False),
                     ("cb", "cadence", False)]
    assert worklist["counts"] == {"total": 4, "overdue": 1, "due_today": 3}
    assert worklist["items"][0]["days_late"] == 3 and worklist["items"][1]["company"] == "ca Ltd"
    assert [i["customer_id"] for i in service.worklist(request(MGR_NORTH, query={"rep_id": "rep-n2"}))["items"]] == ["cc"]
    with pytest.raises(NotFound):
        service.worklist(request(MGR_SOUTH, query={"rep_id": "rep-n1"}))
    with pytest.raises(NotFound):
        service.worklist(request(REP_N2, query={"rep_id": "rep-n1"}))
    # at 12:00 UTC it is already 22:00 in UTC+10, whose day ends at 14:00 UTC: the 14:00 task drops out
    assert len(service.worklist(request(REP_N1, query={"tz": "+10:00"}))["items"]) == 3
    with pytest.raises(DomainError) as err:
        service.worklist(request(REP_N1, query={"tz": "mars"}))
    assert err.value.field == "tz"


def test_manual_tasks_validate_the_assignee(service, store):
    customer(service)
    base = {"customer_id": "c1", "purpose": "send the brochure", "due_at": (NOW + DAY).isoformat()}
    with pytest.raises(CrmError) as err:
        service.create_task(request(MGR_NORTH, "POST", {**base, "assignee_id": "nobody"}))
    assert (err.value.status, err.value.field) == (400, "assignee_id")
    with pytest.raises(Forbidden):
        service.create_task(request(REP_N1, "POST", {**base, "assignee_id": "rep-n2"}))
    with pytest.raises(Forbidden):
        service.create_task(request(MGR_NORTH, "POST", {**base, "assignee_id": "rep-s1"}))
    with pytest.raises(NotFound) as err:
        service.create_task(request(REP_N1, "POST", {**base, "customer_id": "ghost"}))
    assert err.value.field == "customer_id"
    status, task = service.create_task(request(REP_N1, "POST", base))
    assert (status, task["assignee_id"], task["reason"]) == (201, "rep-n1", "manual")
    status, backdated = service.create_task(request(MGR_NORTH, "POST", {**base, "due_at": (NOW - 5 * DAY).isoformat()}))
    assert backdated["assignee_id"] == "rep-n1"  # the owner by default


def test_complete_skip_and_reassign(service, store):
    customer(service)
    [cadence] = open_tasks(service)
    _, manual = service.create_task(request(REP_N1, "POST", {"customer_id": "c1", "purpose": "quote",
                                                             "due_at": (NOW + DAY).isoformat()}))
    touch = log(service, occurred_at=NOW - 3 * DAY)
    with pytest.raises(NotFound):
        service.complete_task(request(REP_N2, "POST", {"interaction_id": touch["id"]}), manual["id"])
    with pytest.raises(CrmError) as err:
        service.complete_task(request(REP_N1, "POST", {"interaction_id": "int_nope"}), manual["id"])
    assert err.value.field == "interaction_id"
    done = service.complete_task(request(REP_N1, "POST", {"interaction_id": touch["id"]}), manual["id"])
    assert (done["status"], done["interaction_id"]) == ("done", touch["id"])
    with pytest.raises(ValidationError) as err:
        service.skip_task(request(REP_N1, "POST", {"reason": ""}), cadence["id"])
    assert "reason" in err.value.messages
    skipped = service.skip_task(request(REP_N1, "POST", {"reason": "customer on holiday"}), cadence["id"])
    assert (skipped["status"], skipped["skip_reason"]) == ("skipped", "customer on holiday")
    [next_round] = [t for t in open_tasks(service) if t["reason"] == "cadence"]
    assert next_round["due_at"] == NOW + 30 * DAY  # a skipped round counts the next from now
    with pytest.raises(Forbidden):
        service.reassign_task(request(REP_N1, "POST", {"assignee_id": "rep-n2"}), next_round["id"])
    with pytest.raises(Forbidden):
        service.reassign_task(request(MGR_NORTH, "POST", {"assignee_id": "rep-s1"}), next_round["id"])
    moved = service.reassign_task(request(MGR_NORTH, "POST", {"assignee_id": "rep-n2", "reason": "cover"}),
                                  next_round["id"])
    assert (moved["assignee_id"], store.events("task.reassigned")[-1].data["reason"]) == ("rep-n2", "cover")
    with pytest.raises(DomainError) as err:
        service.skip_task(request(ADMIN, "POST", {"reason": "again"}), cadence["id"])
    assert err.value.field == "status"


def test_list_tasks_pages_and_scopes(service):
    for i in range(5):
        customer(service, f"c{i}", owner="rep-n1" if i < 3 else "rep-s1", team="north" if i < 3 else "south")
    first = service.list_tasks(request(ADMIN, query={"limit": "2"}))
    second = service.list_tasks(request(ADMIN, query={"limit": "2", "cursor": first["next_cursor"]}))
    third = service.list_tasks(request(ADMIN, query={"limit": "2", "cursor": second["next_cursor"]}))
    ids = [t["id"] for page in (first, second, third) for t in page["items"]]
    assert len(set(ids)) == 5 and third["next_cursor"] is None
    assert len(service.list_tasks(request(MGR_NORTH))["items"]) == 3
    assert len(service.list_tasks(request(REP_N2))["items"]) == 0
    with pytest.raises(CrmError):
        service.list_tasks(request(ADMIN, query={"cursor": "garbage"}))


# --- cadence policy, missed measure, care and timers --------------------------------------------------------

def test_cadence_policy_is_validated_stored_and_applied(service, store):
    customer(service)
    log(service, occurred_at=NOW)
    assert service.get_cadence_policy(request(REP_N1))["source"] == "settings"
    with pytest.raises(Forbidden):
        service.put_cadence_policy(request(MGR_NORTH, "PUT", {"intervals": {"active": 10}}))
    for bad in ({"active": 0}, {"B/active": -3}, {"vip": 7}, {"active": 7.5}):
        with pytest.raises(DomainError) as err:
            service.put_cadence_policy(request(ADMIN, "PUT", {"intervals": bad}))
        assert err.value.field == next(iter(bad))
    assert service.get_cadence_policy(request(ADMIN))["source"] == "settings"  # nothing half-written
    stored = service.put_cadence_policy(request(ADMIN, "PUT", {"intervals": {"active": 10}}))
    assert stored["intervals"]["active"] == 10 and stored["intervals"]["A/active"] == 14
    service.reminder_tick()  # applies the new policy to open cadence tasks, once
    assert open_tasks(service)[0]["due_at"] == NOW + 10 * DAY
    service.reminder_tick()
    assert len(store.events("task.rescheduled")) == 1


def test_missed_follow_ups_per_rep_and_team(service):
    customer(service, "c1")
    customer(service, "c2", owner="rep-n2")
    customer(service, "c3", owner="rep-s1", team="south")
    log(service, customer_id="c1", occurred_at=NOW)  # completes c1's task
    service.run_reminders(NOW + 3 * DAY)  # the other two are missed
    query = {"period_start": (NOW - DAY).isoformat(), "period_end": (NOW + 4 * DAY).isoformat()}
    stats = service.missed_stats(request(ADMIN, query=query))
    assert stats["total"]["missed"] == 2 and stats["total"]["closed"] == 3
    assert {t["team"]: t["missed"] for t in stats["by_team"]} == {"north": 1, "south": 1}
    north = service.missed_stats(request(MGR_NORTH, query=query))
    assert {r["rep_id"]: (r["missed"], r["done"]) for r in north["by_rep"]} == {"rep-n1": (0, 1), "rep-n2": (1, 0)}
    assert north["total"]["missed_rate"] == 0.5
    with pytest.raises(ValidationError):
        service.missed_stats(request(ADMIN, query={"period_start": NOW.isoformat(), "period_end": NOW.isoformat()}))


def test_care_tasks_from_important_dates_once_per_occurrence(service, store):
    customer(service, important_dates=[{"kind": "birthday", "date": date(1970, 7, 10), "label": "CEO"},
                                       {"kind": "other", "date": date(2020, 7, 5)}])
    service.care_tick()
    service.care_tick()  # same day: the job was claimed already
    service.run_care(NOW + HOUR)  # forced run: the dedupe key keeps it at one task
    [care] = [t for t in open_tasks(service) if t["kind"] == "care"]
    assert care["due_at"] == datetime(2026, 7, 7, 9, tzinfo=timezone.utc)
    assert "2026-07-10" in care["purpose"]


def test_archiving_skips_every_open_task(service, store):
    customer(service)
    deliver(service, event("customer.archived", {"customer_id": "c1", "archived_at": NOW}))
    assert open_tasks(service) == []
    with pytest.raises(DomainError):
        service.create_task(request(REP_N1, "POST", {"customer_id": "c1", "purpose": "x", "due_at": NOW.isoformat()}))


def test_settings_come_from_the_environment_and_bad_ones_name_the_variable():
    settings = FollowupsSettings.from_settings({"FOLLOWUPS_GRACE_HOURS": "24", "FOLLOWUPS_CADENCE": "active=21",
                                                "FOLLOWUPS_REMINDER_INTERVAL_SECONDS": "15",
                                                "FOLLOWUPS_TIMEZONE": "+08:00"})
    assert (settings.grace_period, settings.cadence.interval_for("B", "active")) == (DAY, 21)
    assert settings.reminder_interval_seconds == 15 and settings.timezone.utcoffset(None) == 8 * HOUR
    for name, value in (("FOLLOWUPS_GRACE_HOURS", "-1"), ("FOLLOWUPS_CADENCE", "active=0"),
                        ("FOLLOWUPS_REMINDER_INTERVAL_SECONDS", "0"), ("FOLLOWUPS_CARE_KINDS", "wedding"),
                        ("FOLLOWUPS_TIMEZONE", "CET")):
        with pytest.raises(DomainError) as err:
            FollowupsSettings.from_settings({name: value})
        assert err.value.field == name
    with pytest.raises(DomainError, match="'active'"):
        FollowupsSettings.from_settings({"FOLLOWUPS_CADENCE": "active=0"})


def test_the_running_container_takes_its_timer_interval_from_settings(tmp_path):
    """A real container on the memory bus: settings reach the timer, entrypoints run through nameko."""
    memory_transport.install()
    url = f"sqlite:///{tmp_path}/followups.db"
    upgrade("followups", url)
    container = ServiceContainer(FollowupsService, {
        "AMQP_URI": "memory://", "DATABASE_URL": url, "WEB_SERVER_ADDRESS": "127.0.0.1:0",
        "FROZEN_TIME": NOW.isoformat(), "SERVICE_SETTINGS": {"FOLLOWUPS_REMINDER_INTERVAL_SECONDS": "7"}})
    container.start()
    try:
        timers = {e.method_name: e.interval for e in container.entrypoints if hasattr(e, "interval")}
        assert timers == {"reminder_tick": 7, "care_tick": 3600.0}
        with entrypoint_hook(container, "apply_events") as handle:
            handle([event("customer.created", {"customer_id": "c1", "company": "Acme", "owner_id": "rep-n1",
                                               "team": "north", "tier": "B", "lifecycle": "active",
                                               "created_at": NOW - 100 * DAY})])
        with entrypoint_hook(container, "reminder_tick") as tick:
            tick()
        with entrypoint_hook(container, "list_tasks") as list_tasks:
            [task] = list_tasks(request(ADMIN))["items"]
        assert (task["reminder_state"], task["due_at"]) == ("due_notified", NOW)
    finally:
        container.stop()
