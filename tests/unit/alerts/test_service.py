"""Alerts service through its entrypoints (nameko worker_factory, real SQLite, fixed clock).

Events are fed the way the bus delivers them: built with the producers' contracts, serialised to the
envelope and validated back (from_envelope), then handed to the consumer entrypoint (apply_events), one
event per batch unless a test says otherwise.
"""
from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from marshmallow import ValidationError
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from crm_common.auth import Principal
from crm_common.clock import FixedClock
from crm_common.db import EventFailed
from crm_common.errors import Conflict, CrmError, EventRejected, Forbidden, NotFound
from crm_common.events import from_envelope, make_event, to_envelope
from crm_common.testing import api_request as request
from services.alerts import alert_store, models
from services.alerts.domain import AlertsSettings, DomainError
from tests.unit.alerts.histories import (
    ADMIN, MGR_NORTH, NOW, REP_N1, REP_S1, ago, alert_rules, created, deliver, event, interaction, lifecycle_changed,
    make_service, open_alerts, purchase, regular_history, rep, rows, task_missed, tier_changed,
)

# ---------------------------------------------------------------- fixtures

@pytest.fixture
def clock():
    return FixedClock(NOW)


@pytest.fixture
def store_and_service(tmp_path, clock):
    svc, store = make_service(tmp_path / "alerts.db", clock)
    deliver(svc, rep("mgr-north", role="manager"), rep("rep-n1", manager_id="mgr-north"),
            rep("rep-s1", team="south"))
    return store, svc


@pytest.fixture
def service(store_and_service):
    return store_and_service[1]


@pytest.fixture
def store(store_and_service):
    return store_and_service[0]


def sweep(service, as_of=NOW):
    return service.sweep(as_of)


# ---------------------------------------------------------------- each rule, through the service

RULE_CASES = {
    # rule: (history that fires as of NOW, history that does not)
    "silence": (
        [created("c"), *[purchase("c", d) for d in (100, 70, 40, 10)], interaction("c", 31)],   # B: 30 days
        [created("c"), *[purchase("c", d) for d in (100, 70, 40, 10)], interaction("c", 29)],
    ),
    "no_repurchase": (
        [created("c"), *[purchase("c", d) for d in (160, 130, 100, 54)], interaction("c", 2)],  # 54 > 1.5 x 30
        [created("c"), *[purchase("c", d) for d in (160, 130, 100, 45)], interaction("c", 2)],  # 45 = limit
    ),
    "interval_lengthening": (
        [created("c"), *[purchase("c", d) for d in (200, 180, 160, 140, 90, 40)], interaction("c", 2)],
        [created("c"), *[purchase("c", d) for d in (200, 180, 160, 140, 110, 80)], interaction("c", 2)],
    ),
    "unanswered_followups": (
        [created("c"), *[purchase("c", d) for d in (70, 40, 10)], interaction("c", 9),
         *[interaction("c", d, "no_answer") for d in (8, 6, 4)]],
        [created("c"), *[purchase("c", d) for d in (70, 40, 10)], interaction("c", 9),
         *[interaction("c", d, "no_answer") for d in (8, 6)], interaction("c", 5, "reached"),
         interaction("c", 4, "no_answer")],
    ),
    "open_complaint": (
        [created("c"), *[purchase("c", d) for d in (70, 40, 10)], interaction("c", 8, "open", iid="k1",
                                                                                kind="complaint")],
        [created("c"), *[purchase("c", d) for d in (70, 40, 10)], interaction("c", 8, "open", iid="k1",
                                                                                kind="complaint"),
         interaction("c", 3, "resolved", resolves="k1")],
    ),
    "low_satisfaction": (
        [created("c"), *[purchase("c", d) for d in (70, 40, 10)], interaction("c", 20, satisfaction=4),
         interaction("c", 3, satisfaction=2)],
        [created("c"), *[purchase("c", d) for d in (70, 40, 10)], interaction("c", 20, satisfaction=2),
         interaction("c", 3, satisfaction=4)],
    ),
}


@pytest.mark.parametrize("rule", sorted(RULE_CASES))
@pytest.mark.parametrize("fires", [True, False])
def test_each_rule_through_the_sweep_with_backdated_history(service, store, rule, fires):
    deliver(service, *RULE_CASES[rule][0 if fires else 1])
    assert open_alerts(store) == []                   # a backdated history raises nothing on its own
    sweep(service)
    assert (rule in alert_rules(store, "c")) is fires
    if fires:
        [raised] = [e for e in store.events("alert.raised") if e.data["rule"] == rule]
        assert raised.data["signals"] and raised.data["signals"][0]["value"] is not None
        assert raised.data["owner_id"] == "rep-n1" and raised.data["raised_at"] == NOW
        assert raised.data["recall_due_at"] == NOW + timedelta(hours=24)


def test_regular_customer_stays_healthy_and_quiet(service, store):
    deliver(service, *regular_history("c"))
    result = sweep(service)
    assert result["alerts_raised"] == 0 and result["customers"] == 1
    [row] = rows(store, models.customer_health)
    assert row.band == "healthy" and row.score >= 70


# ---------------------------------------------------------------- idempotence and duplicates

def test_redelivered_events_change_nothing(service, store):
    history = regular_history("c") + [interaction("c", 0, "no_answer", hours=h) for h in (3, 2, 1)]
    assert all(deliver(service, *history))
    def state():
        return [dict(r._mapping) for table in (models.customer_signals, models.customer_health)
                for r in rows(store, table)]
    before = state()
    outbox_before = len(store.events())
    assert not any(deliver(service, *history))                 # every one a duplicate: False
    assert state() == before
    assert len(store.events()) == outbox_before
    assert len(store.events("alert.raised")) == 1


def test_a_live_streak_raises_at_once_and_the_sweep_does_not_duplicate_it(service, store):
    deliver(service, *regular_history("c"))
    deliver(service, interaction("c", 0, "no_answer", hours=5), interaction("c", 0, "declined", hours=3))
    assert open_alerts(store) == []
    deliver(service, interaction("c", 0, "no_answer", hours=1))
    [alert] = open_alerts(store, "c")
    assert (alert.rule, alert.trigger, alert.status) == ("unanswered_followups", "interaction.logged", "open")
    assert alert.signals[0]["value"] == 3
    assert sweep(service)["alerts_raised"] == 0
    assert sweep(service)["alerts_raised"] == 0
    deliver(service, interaction("c", 0, "no_answer", hours=0.5))     # a 4th still matches the open alert
    assert len(rows(store, models.alerts)) == 1
    assert len(store.events("alert.raised")) == 1


def test_the_database_refuses_a_second_open_alert(service, store):
    deliver(service, *regular_history("c"), interaction("c", 0, "no_answer", hours=3),
            interaction("c", 0, "no_answer", hours=2), interaction("c", 0, "no_answer", hours=1))
    [alert] = open_alerts(store, "c")
    with store.session_factory() as session, pytest.raises(IntegrityError):
        session.execute(insert(models.alerts).values(
            alert_id="dup", customer_id="c", rule=alert.rule, status="open", open_key=alert.open_key, signals=[],
            trigger="test", raised_at=NOW, note="", updated_at=NOW))
        session.commit()


def test_a_backdated_partial_history_never_raises_on_events(service, store):
    # the newest purchase and a tier change arrive before the older purchases (other queues)
    late = [purchase("c", d) for d in (310, 280, 250, 220, 190)]
    deliver(service, created("c"), tier_changed("c", "C", "B"), purchase("c", 10), *late,
            interaction("c", 300, "no_answer"), interaction("c", 299, "no_answer"), interaction("c", 298, "no_answer"))
    assert open_alerts(store) == [] and store.events("alert.raised") == []


def test_profile_parts_keep_the_newest_fact(service, store):
    newer = tier_changed("c", "B", "A", at=ago(1))
    deliver(service, newer, lifecycle_changed("c", "active", "at_risk", at=ago(1)), created("c", tier="C",
                                                                                            lifecycle="new"))
    [row] = rows(store, models.customer_signals)
    assert (row.tier, row.lifecycle, row.known) == ("A", "at_risk", True)
    deliver(service, tier_changed("c", "A", "B", at=ago(0)))
    assert rows(store, models.customer_signals)[0].tier == "B"


# ---------------------------------------------------------------- deterministic replay

def history_for_replay():
    events = []
    for i in range(12):
        cid = f"c{i:02d}"
        events += [created(cid, tier="ABC"[i % 3], owner="rep-n1" if i % 2 else "rep-s1",
                           team="north" if i % 2 else "south")]
        last = 5 + 7 * i
        events += [purchase(cid, d) for d in range(last + 30 * (i % 5 + 2), last - 1, -30)]
        events += [interaction(cid, 3 * i + 1)]
        if i % 4 == 0:
            events += [interaction(cid, d, "no_answer") for d in (0.9, 0.8, 0.7)]
        if i % 3 == 0:
            events += [interaction(cid, 12, "open", iid=f"k{i}", kind="complaint", satisfaction=2)]
        if i % 5 == 0:
            events += [task_missed(cid, 4, f"t{i}")]
    return events


def alert_fingerprint(store):
    return sorted((r.customer_id, r.rule, r.raised_at.isoformat(), json.dumps(r.signals, sort_keys=True),
                   r.health_score) for r in rows(store, models.alerts))


def test_the_same_history_as_of_a_fixed_day_gives_the_same_alerts_in_any_order(tmp_path):
    day = NOW + timedelta(days=3)    # events were delivered days earlier: all of them are backfill by then
    results = []
    for seed in range(3):
        events = history_for_replay()
        random.Random(seed).shuffle(events)
        svc, store = make_service(tmp_path / f"replay{seed}.db", FixedClock(day))
        deliver(svc, *events)
        svc.sweep(day)
        scores = sorted((r.customer_id, r.score, r.band) for r in rows(store, models.customer_health))
        results.append((alert_fingerprint(store), scores))
        svc.sweep(day)                                           # sweeping the same day again adds nothing
        assert alert_fingerprint(store) == results[-1][0]
    assert results[0] == results[1] == results[2]
    assert len(results[0][0]) >= 5


def test_sweep_as_of_a_past_day_does_not_know_later_purchases(service, store):
    deliver(service, created("c"), *[purchase("c", d) for d in (200, 170, 140, 110)], interaction("c", 105),
            purchase("c", 5), interaction("c", 2))
    sweep(service, ago(60))          # as of 60 days ago: 50 days since the last purchase known then
    # (the read model keeps only the latest contact: one dated after as_of counts as 0 days old)
    assert alert_rules(store, "c") == ["no_repurchase"]
    assert {e.data["raised_at"] for e in store.events("alert.raised")} == {ago(60)}


# ---------------------------------------------------------------- lifecycle

def raise_silence(service, store, cid="c"):
    deliver(service, created(cid), *[purchase(cid, d) for d in (100, 70, 40, 10)], interaction(cid, 35))
    sweep(service)
    [alert] = open_alerts(store, cid)
    return alert.alert_id


def test_acknowledge_then_resolve_recovered(service, store, clock):
    alert_id = raise_silence(service, store)
    deliver(service, lifecycle_changed("c", "active", "at_risk"))     # customers flags it on alert.raised
    clock.advance(hours=2)
    body = service.acknowledge(request(REP_N1, "POST", {"note": "calling them"}), alert_id)
    assert (body["status"], body["acknowledged_by"], body["note"]) == ("acknowledged", "rep-n1", "calling them")
    with pytest.raises(Conflict) as err:
        service.acknowledge(request(REP_N1, "POST"), alert_id)
    assert err.value.field == "status"
    body = service.resolve(request(REP_N1, "POST", {"outcome": "recovered", "note": "back on track"}), alert_id)
    assert (body["status"], body["outcome"], body["resolved_by"]) == ("resolved", "recovered", "rep-n1")
    [resolved] = store.events("alert.resolved")
    assert resolved.data["outcome"] == "recovered" and resolved.data["clears_at_risk"] is True
    assert resolved.data["raised_at"] == NOW and resolved.data["open_alerts"] == 0
    assert [e.name for e in store.events() if e.name.startswith("alert.")] == [
        "alert.raised", "alert.acknowledged", "alert.resolved"]
    with pytest.raises(Conflict):
        service.resolve(request(REP_N1, "POST", {"outcome": "lost"}), alert_id)
    audit = rows(store, models.infrastructure["audit_log"])
    assert [a.action for a in audit] == ["alert.acknowledged", "alert.resolved"]


def test_resolving_one_of_two_open_alerts_does_not_clear_at_risk(service, store):
    deliver(service, created("c"), *[purchase("c", d) for d in (160, 130, 100, 54)], interaction("c", 40))
    sweep(service)
    deliver(service, lifecycle_changed("c", "active", "at_risk"))
    first, second = open_alerts(store, "c")
    service.resolve(request(ADMIN, "POST", {"outcome": "recovered"}), first.alert_id)
    assert store.events("alert.resolved")[-1].data["clears_at_risk"] is False
    service.resolve(request(ADMIN, "POST", {"outcome": "false_alarm"}), second.alert_id)
    assert store.events("alert.resolved")[-1].data["clears_at_risk"] is True


def test_a_resolved_rule_waits_for_the_cooldown_before_it_is_raised_again(service, store, clock):
    alert_id = raise_silence(service, store)
    service.resolve(request(REP_N1, "POST", {"outcome": "false_alarm"}), alert_id)
    clock.advance(days=13)
    sweep(service, clock.now())
    assert alert_rules(store, "c") == []
    clock.advance(days=1)
    sweep(service, clock.now())
    assert alert_rules(store, "c") == ["silence"]


def test_unacknowledged_alerts_escalate_to_the_owners_manager(service, store, clock):
    alert_id = raise_silence(service, store)
    deliver(service, created("d", owner="rep-s1", team="south"), *[purchase("d", x, owner="rep-s1", team="south")
                                                                    for x in (100, 70, 40, 10)],
            interaction("d", 35))
    sweep(service)
    other = next(a.alert_id for a in open_alerts(store, "d"))
    service.acknowledge(request(REP_S1, "POST"), other)
    clock.advance(hours=47)
    assert service.escalate(clock.now()) == 0
    clock.advance(hours=1)
    assert service.escalate(clock.now()) == 1
    [escalated] = store.events("alert.escalated")
    assert (escalated.data["alert_id"], escalated.data["escalated_to"]) == (alert_id, "mgr-north")
    assert service.escalate(clock.now()) == 0                          # once
    body = service.get_alert(request(MGR_NORTH), alert_id)
    assert (body["status"], body["escalated_to"]) == ("escalated", "mgr-north")
    assert service.acknowledge(request(MGR_NORTH, "POST"), alert_id)["status"] == "acknowledged"


def test_escalation_falls_back_to_a_manager_of_the_team(service, store, clock):
    deliver(service, rep("rep-n9", manager_id=None))
    deliver(service, created("c", owner="rep-n9"), *[purchase("c", d, owner="rep-n9") for d in (100, 70, 40, 10)],
            interaction("c", 35))
    sweep(service)
    clock.advance(days=3)
    service.escalation_tick()
    assert store.events("alert.escalated")[0].data["escalated_to"] == "mgr-north"


def test_archiving_closes_open_alerts_as_lost_and_the_customer_leaves_the_sweep(service, store):
    raise_silence(service, store)
    archived = event("customer.archived", "c", {"customer_id": "c", "owner_id": "rep-n1", "team": "north",
                                                "archived_at": NOW}, NOW)
    deliver(service, archived)
    assert open_alerts(store) == []
    [resolved] = store.events("alert.resolved")
    assert (resolved.data["outcome"], resolved.data["resolved_by"]) == ("lost", "system")
    assert sweep(service)["customers"] == 0


def test_open_alerts_follow_the_customer_to_its_new_owner(service, store):
    alert_id = raise_silence(service, store)
    moved = event("customer.owner_changed", "c", {
        "customer_id": "c", "old_owner_id": "rep-n1", "old_team": "north", "new_owner_id": "rep-s1",
        "new_team": "south", "transfer_id": "t1", "changed_by": "admin"}, NOW)
    deliver(service, moved)
    assert service.get_alert(request(REP_S1), alert_id)["owner_id"] == "rep-s1"
    with pytest.raises(NotFound):
        service.get_alert(request(REP_N1), alert_id)


# ---------------------------------------------------------------- health score

def test_score_history_records_changes_and_band_crossings(service, store, clock):
    deliver(service, *regular_history("c"))
    sweep(service)
    [first] = store.events("health.score_changed")
    assert (first.data["old_band"], first.data["new_band"]) == (None, "healthy")
    sweep(service)                                                   # same day: no new history row
    assert len(rows(store, models.health_history)) == 1
    clock.advance(days=90)                                           # silence and no purchase for 100 days
    sweep(service, clock.now())
    history = service.customer_health(request(REP_N1), "c")["history"]
    assert [h["cause"] for h in history] == ["sweep", "sweep"]
    assert history[0]["score"] < history[1]["score"]
    assert store.events("health.score_changed")[-1].data["new_band"] in ("watch", "at_risk")


def test_a_live_fact_rescores_at_once(service, store):
    deliver(service, *regular_history("c"))
    sweep(service)
    before = service.customer_health(request(REP_N1), "c")
    deliver(service, *[interaction("c", 0, "no_answer", hours=h) for h in (3, 2)])
    after = service.customer_health(request(REP_N1), "c")
    assert after["score"] < before["score"]
    assert after["breakdown"]["engagement"] < before["breakdown"]["engagement"]
    assert [h["cause"] for h in after["history"]][:1] == ["interaction.logged"]
    assert after["signals"]["unanswered_in_a_row"] == 2


def test_health_view_scope_and_as_of(service, store):
    deliver(service, *regular_history("c"))
    sweep(service)
    body = service.customer_health(request(MGR_NORTH, query={"as_of": ago(200).isoformat()}), "c")
    assert body["as_of"] == ago(200) and body["signals"]["days_since_last_purchase"] == 20
    assert set(body["breakdown"]) == {"recency", "frequency", "monetary", "engagement"}
    assert body["weights"] == {"recency": 30, "frequency": 20, "monetary": 20, "engagement": 30}
    for outsider in (REP_S1, Principal("mgr-south", "manager", "south")):
        with pytest.raises(NotFound):
            service.customer_health(request(outsider), "c")
    with pytest.raises(NotFound):
        service.customer_health(request(ADMIN), "nobody")
    with pytest.raises(ValidationError) as err:
        service.customer_health(request(ADMIN, query={"history_limit": "-1"}), "c")
    assert "history_limit" in err.value.messages


def test_missed_tasks_lower_engagement_and_a_late_completion_restores_it(service, store):
    deliver(service, *regular_history("c"))
    sweep(service)
    base = service.customer_health(request(ADMIN), "c")["breakdown"]["engagement"]
    deliver(service, task_missed("c", 0.5, "t1"))
    assert service.customer_health(request(ADMIN), "c")["breakdown"]["engagement"] == pytest.approx(base - 0.1)
    done = event("task.completed", "c", {"task_id": "t1", "customer_id": "c", "kind": "follow_up",
                                         "due_at": ago(3), "completed_at": NOW, "on_time": False}, NOW)
    deliver(service, done)
    assert service.customer_health(request(ADMIN), "c")["breakdown"]["engagement"] == pytest.approx(base)


# ---------------------------------------------------------------- listing and scope

def test_listing_is_scoped_filtered_and_paginated(service, store):
    for i in range(5):
        cid = f"n{i}"
        deliver(service, created(cid), *[purchase(cid, d) for d in (100, 70, 40, 10)], interaction(cid, 35 + i))
    deliver(service, created("s0", owner="rep-s1", team="south"),
            *[purchase("s0", d, owner="rep-s1", team="south") for d in (100, 70, 40, 10)], interaction("s0", 50))
    sweep(service)
    assert len(service.list_alerts(request(ADMIN))["items"]) == 6
    assert {a["customer_id"] for a in service.list_alerts(request(REP_S1))["items"]} == {"s0"}
    assert len(service.list_alerts(request(MGR_NORTH))["items"]) == 5
    assert service.list_alerts(request(REP_S1, query={"owner_id": "rep-n1"}))["items"] == []
    seen, cursor = [], None
    while True:
        page = service.list_alerts(request(ADMIN, query={"limit": "4", **({"cursor": cursor} if cursor else {})}))
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6
    assert len(service.list_alerts(request(ADMIN, query={"rule": "silence", "status": "unresolved"}))["items"]) == 6
    assert service.list_alerts(request(ADMIN, query={"status": "resolved"}))["items"] == []
    with pytest.raises(ValidationError) as err:
        service.list_alerts(request(ADMIN, query={"rule": "vibes", "limit": "0", "colour": "red"}))
    assert {"rule", "limit", "colour"} <= set(err.value.messages)
    with pytest.raises(CrmError) as bad:
        service.list_alerts(request(ADMIN, query={"cursor": "garbage"}))
    assert bad.value.field == "cursor"
    other = service.list_alerts(request(REP_S1))["items"][0]["id"]
    for call in (lambda: service.get_alert(request(REP_N1), other),
                 lambda: service.acknowledge(request(REP_N1, "POST"), other),
                 lambda: service.resolve(request(REP_N1, "POST", {"outcome": "lost"}), other)):
        with pytest.raises(NotFound):
            call()
    summary = service.alerts_summary(request(MGR_NORTH))
    assert summary["by_rule"]["silence"]["open"] == 5 and summary["by_status"]["open"] == 5
    assert sum(summary["health_bands"].values()) == 5


def test_resolve_needs_a_known_outcome(service, store):
    alert_id = raise_silence(service, store)
    with pytest.raises(ValidationError) as err:
        service.resolve(request(REP_N1, "POST", {"outcome": "maybe"}), alert_id)
    assert "outcome" in err.value.messages
    with pytest.raises(CrmError) as empty:
        service.resolve(request(REP_N1, "POST"), alert_id)
    assert empty.value.field == "body"
    assert open_alerts(store, "c")[0].status == "open"


# ---------------------------------------------------------------- malformed events

def test_an_event_about_another_customer_than_its_subject_is_rejected_and_nothing_is_written(service, store):
    bad = from_envelope({**to_envelope(make_event("purchase.recorded", "other", purchase("c", 3).data,
                                                  source="crm/test", time=ago(3)))})
    with pytest.raises(EventFailed) as failed:
        service.apply_events([bad])
    assert failed.value.event.id == bad.id and isinstance(failed.value.error, EventRejected)
    assert rows(store, models.customer_signals) == []
    assert rows(store, models.infrastructure["processed_events"], models.infrastructure["processed_events"]
                .c.event_id == bad.id) == []


def test_events_before_the_customer_is_known_are_kept_but_judge_nothing(service, store):
    deliver(service, *[purchase("c", d) for d in (100, 70, 40)], *[interaction("c", 0, "no_answer", hours=h)
                                                                  for h in (3, 2, 1)])
    [row] = rows(store, models.customer_signals)
    [health] = rows(store, models.customer_health)
    assert (row.known, health.score, row.owner_id) == (False, None, "rep-n1")
    assert sweep(service)["customers"] == 0 and open_alerts(store) == []
    deliver(service, created("c"))
    assert rows(store, models.customer_health)[0].score is not None


# ---------------------------------------------------------------- settings

def test_settings_from_environment():
    settings = AlertsSettings.from_settings({
        "ALERTS_SILENCE_DAYS": "A:14,B:20", "ALERTS_DISABLED_RULES": "interval_lengthening",
        "ALERTS_ESCALATE_AFTER_HOURS": "24", "ALERTS_HEALTH_WEIGHTS": "recency:40,engagement:20",
        "ALERTS_CONFIG": '{"rules": {"open_complaint": {"max_open_days": 3}}}', "ALERTS_SWEEP_BATCH_SIZE": "250",
        "ALERTS_LIVE_WINDOW_HOURS": "12", "ALERTS_DATABASE_URL": "sqlite://"})
    cfg = settings.config()
    assert cfg.rules.silence.days_by_tier == {"A": 14, "B": 20, "C": 45}
    assert cfg.rules.interval_lengthening.enabled is False and cfg.escalate_after == timedelta(hours=24)
    assert cfg.health.weights.recency == 40 and cfg.health.weights.frequency == 20
    assert cfg.rules.open_complaint.max_open_days == 3
    assert (settings.sweep_batch_size, settings.live_window_hours) == (250, 12)


@pytest.mark.parametrize("env, field", [
    ({"ALERTS_SILENCE_DAYS": "A:0"}, "ALERTS_* rules.silence.days_by_tier.A"),
    ({"ALERTS_SILENCE_DAYS": "A"}, "ALERTS_SILENCE_DAYS"),
    ({"ALERTS_DISABLED_RULES": "silence,vibes"}, "ALERTS_DISABLED_RULES"),
    ({"ALERTS_SWEEP_BATCH_SIZE": "many"}, "ALERTS_SWEEP_BATCH_SIZE"),
    ({"ALERTS_CONFIG": "{nope"}, "ALERTS_CONFIG"),
    ({"ALERTS_SWEEP_BATCHSIZE": "5"}, "ALERTS_SWEEP_BATCHSIZE"),
])
def test_bad_environment_names_the_variable(env, field):
    with pytest.raises(DomainError) as err:
        AlertsSettings.from_settings(env)
    assert err.value.field == field


def test_rules_changed_at_runtime_are_validated_and_used(service, store):
    rules = service.get_rules(request(REP_N1))
    assert rules["config"]["rules"]["silence"]["days_by_tier"] == {"A": 21, "B": 30, "C": 45}
    with pytest.raises(Forbidden):
        service.put_rules(request(MGR_NORTH, "PUT", {"rules": {"silence": {"enabled": False}}}))
    for body, field in (({"rules": {"silence": {"days_by_tier": {"A": 0}}}}, "rules.silence.days_by_tier.A"),
                        ({"rules": {"silense": {}}}, "rules.silense"),
                        ({"health": {"bands": {"watch": 90}}}, "health.bands.watch")):
        with pytest.raises(CrmError) as err:
            service.put_rules(request(ADMIN, "PUT", body))
        assert err.value.field == field
    assert service.get_rules(request(ADMIN))["version"] == 0         # nothing half-written
    body = service.put_rules(request(ADMIN, "PUT", {"rules": {"silence": {"days_by_tier": {"B": 60}}}}))
    assert body["version"] == 1 and body["config"]["rules"]["silence"]["days_by_tier"]["B"] == 60
    deliver(service, created("c"), *[purchase("c", d) for d in (100, 70, 40, 10)], interaction("c", 35))
    sweep(service)
    assert alert_rules(store, "c") == []                              # 35 days < 60
    service.put_rules(request(ADMIN, "PUT", {}))
    sweep(service)
    assert alert_rules(store, "c") == ["silence"]


def test_manual_sweep_is_for_admins_and_never_in_the_future(service):
    with pytest.raises(Forbidden):
        service.sweep_now(request(MGR_NORTH, "POST"))
    with pytest.raises(CrmError) as err:
        service.sweep_now(request(ADMIN, "POST", {"as_of": (NOW + timedelta(days=1)).isoformat()}))
    assert err.value.field == "as_of"
    assert service.sweep_now(request(ADMIN, "POST", {"as_of": ago(3).isoformat()}))["as_of"] == ago(3)
    assert service.sweep_now(request(ADMIN, "POST"))["as_of"] == NOW


def test_the_daily_sweep_runs_once_per_day(service, store, clock):
    deliver(service, created("c"), *[purchase("c", d) for d in (100, 70, 40, 10)], interaction("c", 35))
    service.daily_sweep()
    service.daily_sweep()
    runs = rows(store, models.infrastructure["job_runs"])
    assert [(r.job, r.period, r.detail["finished"]) for r in runs] == [("alerts-sweep", "2026-06-30", True)]
    assert runs[0].detail["customers"] == 1
    assert alert_rules(store, "c") == ["silence"]
    with store.session_factory() as session:
        assert session.execute(select(func.count()).select_from(models.alerts)).scalar() == 1


def test_a_racing_raise_of_the_same_alert_is_skipped_and_the_transaction_goes_on(service, store):
    """As if another replica raised it between our read of the open alerts and our insert."""
    alert_id = raise_silence(service, store)
    from services.alerts.domain import AlertsConfig, FiredRule, Signal, signals_from_dict
    with store() as uow:
        row = uow.session.execute(select(models.customer_signals)).first()
        fired = [FiredRule("silence", (Signal("days_since_contact", 35, 30),)),
                 FiredRule("no_repurchase", (Signal("days_since_purchase", 99, 45),))]
        candidates = alert_store.new_alerts(signals_from_dict(row.signals), fired, NOW, 50, "test")
        raised = alert_store.insert_alerts(uow, candidates, AlertsConfig())
        uow.commit()
    assert len(raised) == 1 and raised[0] != alert_id
    assert alert_rules(store, "c") == ["no_repurchase", "silence"]
    assert len(store.events("alert.raised")) == 2
