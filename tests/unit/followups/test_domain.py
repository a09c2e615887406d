"""Unit tests of the follow-ups domain core (pure functions, no framework)."""
from __future__ import annotations

import pathlib
import re
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone

import pytest

from services.followups import domain
from services.followups.domain import (
    DEFAULT_CADENCE_POLICY, CadencePolicy, DomainError, ImportantDate, KeyMomentRules, Task, TeamMember,
    advance_reminders, cadence_purpose, cadence_task_kind, care_tasks_due, choose_assignee, complete, count_missed,
    derive_phase, end_of_day, key_moment_tasks, next_cadence_due, next_occurrence, prioritize, reassign,
    reconcile_cadence, record_reminder, reminder_transitions, reschedule, settles_key_moment_follow_up, skip,
    tasks_to_reassign, todays_tasks, validate_interaction, validate_occurred_at, validate_satisfaction,
)

UTC = timezone.utc
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_task(task_id: str = "t1", *, customer_id: str = "c1", due_at: datetime = NOW, kind: str = "follow_up",
              **fields) -> Task:
    return Task(task_id=task_id, customer_id=customer_id, kind=kind, due_at=due_at, **fields)


@contextmanager
def raises_on(field: str):
    """Expect a DomainError whose field names the bad input."""
    with pytest.raises(DomainError) as info:
        yield info
    assert info.value.field == field, f"field was {info.value.field!r}, expected {field!r}"


# --- the core stays pure and speaks the contracts' vocabulary --------------------------------------------

def test_vocabulary_matches_the_event_contracts():
    from crm_common.contracts import customers, fields, followups
    assert domain.INTERACTION_KINDS == followups.INTERACTION_KINDS
    assert domain.OUTCOMES == followups.OUTCOMES
    assert domain.PHASES == followups.PHASES
    assert domain.TASK_KINDS == followups.TASK_KINDS
    assert domain.TIERS == fields.TIERS
    assert domain.LIFECYCLES == fields.LIFECYCLES
    assert domain.PIPELINE_STAGES == fields.PIPELINE_STAGES
    kind_choices = customers.ImportantDate._declared_fields["kind"].validators[0].choices
    assert tuple(domain.IMPORTANT_DATE_KINDS) == tuple(kind_choices)


def test_domain_has_no_framework_imports_and_never_reads_the_clock():
    sources = pathlib.Path(domain.__file__).parent.glob("*.py")
    for source in sources:
        text = source.read_text()
        for banned in ("nameko", "sqlalchemy", "werkzeug", "marshmallow", "kombu", "requests"):
            assert not re.search(rf"^\s*(from|import)\s+{banned}", text, re.M), f"{source.name} imports {banned}"
        assert ".now(" not in text and "utcnow" not in text and "today()" not in text, source.name


# --- interactions ----------------------------------------------------------------------------------------

class TestOccurredAt:
    def test_backdated_and_present_touches_are_fine(self):
        validate_occurred_at(NOW - timedelta(days=400), NOW)
        validate_occurred_at(NOW, NOW)

    def test_up_to_five_minutes_ahead_is_clock_skew(self):
        validate_occurred_at(NOW + timedelta(minutes=5), NOW)

    def test_beyond_the_skew_is_rejected_naming_occurred_at(self):
        with raises_on("occurred_at"):
            validate_occurred_at(NOW + timedelta(minutes=5) + TICK, NOW)

    def test_skew_is_configurable(self):
        validate_occurred_at(NOW + HOUR, NOW, clock_skew=HOUR)
        with raises_on("occurred_at"):
            validate_occurred_at(NOW + TICK, NOW, clock_skew=timedelta(0))

    def test_naive_datetime_is_rejected(self):
        with raises_on("occurred_at"):
            validate_occurred_at(datetime(2025, 1, 1), NOW)


@pytest.mark.parametrize("score", [None, 1, 3, 5])
def test_satisfaction_accepts_1_to_5_or_none(score):
    validate_satisfaction(score)


@pytest.mark.parametrize("score", [0, 6, -1, True, 3.0, "3"])
def test_satisfaction_rejects_anything_else(score):
    with raises_on("satisfaction"):
        validate_satisfaction(score)


class TestValidateInteraction:
    def test_a_good_interaction_passes(self):
        validate_interaction(kind="call", outcome="reached", occurred_at=NOW - HOUR, now=NOW, satisfaction=4)

    @pytest.mark.parametrize("overrides, field", [
        ({"kind": "fax"}, "kind"),
        ({"outcome": "maybe"}, "outcome"),
        ({"occurred_at": NOW + DAY}, "occurred_at"),
        ({"satisfaction": 9}, "satisfaction"),
    ])
    def test_each_bad_field_is_named(self, overrides, field):
        values = dict(kind="visit", outcome="neutral", occurred_at=NOW, now=NOW, satisfaction=None) | overrides
        with raises_on(field):
            validate_interaction(**values)


class TestDerivePhase:
    def test_explicit_phase_wins_either_way(self):
        assert derive_phase("pre_sale", lifecycle="active", has_purchased=True) == "pre_sale"
        assert derive_phase("post_sale", lifecycle="potential") == "post_sale"

    def test_unknown_explicit_phase_is_rejected(self):
        with raises_on("phase"):
            derive_phase("after_sale")

    @pytest.mark.parametrize("lifecycle", ["new", "active", "dormant", "at_risk", "churned"])
    def test_customers_who_bought_are_post_sale(self, lifecycle):
        assert derive_phase(None, lifecycle=lifecycle) == "post_sale"

    def test_a_purchase_or_a_won_deal_makes_a_prospect_post_sale(self):
        assert derive_phase(None, lifecycle="potential", has_purchased=True) == "post_sale"
        assert derive_phase(None, lifecycle="potential", pipeline_stage="won") == "post_sale"

    @pytest.mark.parametrize("stage", [None, "first_contact", "needs_analysis", "proposal", "lost"])
    def test_prospects_are_pre_sale(self, stage):
        assert derive_phase(None, lifecycle="potential", pipeline_stage=stage) == "pre_sale"
        assert derive_phase(None, pipeline_stage=stage) == "pre_sale"

    def test_unknown_lifecycle_or_stage_is_rejected(self):
        with raises_on("lifecycle"):
            derive_phase(None, lifecycle="vip")
        with raises_on("pipeline_stage"):
            derive_phase(None, pipeline_stage="closed")


def test_only_reached_and_positive_are_productive():
    assert [o for o in domain.OUTCOMES if domain.is_productive(o)] == ["reached", "positive"]


# --- task states -----------------------------------------------------------------------------------------

class TestTaskModel:
    def test_a_new_task_is_open_with_no_reminder_sent(self):
        task = make_task()
        assert (task.status, task.reminder_state, task.is_open) == ("open", "none", True)

    @pytest.mark.parametrize("fields, field", [
        ({"kind": "chore"}, "kind"), ({"status": "closed"}, "status"),
        ({"reminder_state": "sent"}, "reminder_state"), ({"due_at": datetime(2025, 3, 10)}, "due_at"),
    ])
    def test_invalid_fields_are_rejected(self, fields, field):
        with raises_on(field):
            make_task(**fields)


class TestComplete:
    def test_done_exactly_at_the_due_time_is_on_time(self):
        task = make_task(due_at=NOW)
        assert complete(task, "i1", NOW) is True
        assert (task.status, task.closed_at, task.interaction_id) == ("done", NOW, "i1")

    def test_done_after_the_due_time_is_late(self):
        assert complete(make_task(due_at=NOW), "i1", NOW + TICK) is False

    def test_an_overdue_but_not_missed_task_can_still_be_done_late(self):
        task = make_task(due_at=NOW - DAY, reminder_state="overdue_notified")
        assert complete(task, "i1", NOW) is False
        assert task.status == "done"

    @pytest.mark.parametrize("status", ["done", "missed", "skipped"])
    def test_a_closed_task_cannot_be_completed(self, status):
        task = make_task(status=status, closed_at=NOW - DAY)
        with raises_on("status"):
            complete(task, "i1", NOW)
        assert task.status == status and task.closed_at == NOW - DAY

    def test_a_touch_with_another_customer_cannot_complete_the_task(self):
        task = make_task(customer_id="c1")
        with raises_on("completes_task_id"):
            complete(task, "i1", NOW, customer_id="c2")
        assert task.is_open
        assert complete(task, "i1", NOW, customer_id="c1") is True


class TestSkip:
    def test_skip_records_the_trimmed_reason(self):
        task = make_task()
        skip(task, "  customer asked for next quarter ", NOW)
        assert (task.status, task.skip_reason, task.closed_at) == ("skipped", "customer asked for next quarter", NOW)

    @pytest.mark.parametrize("reason", ["", "   ", None])
    def test_skip_needs_a_reason(self, reason):
        task = make_task()
        with raises_on("reason"):
            skip(task, reason, NOW)
        assert task.is_open

    @pytest.mark.parametrize("status", ["done", "missed", "skipped"])
    def test_a_closed_task_cannot_be_skipped(self, status):
        with raises_on("status"):
            skip(make_task(status=status), "no longer needed", NOW)


class TestRescheduleAndReassign:
    def test_reschedule_moves_the_task_and_restarts_its_reminders(self):
        task = make_task(due_at=NOW, reminder_state="overdue_notified")
        assert reschedule(task, NOW + 5 * DAY) == NOW
        assert (task.due_at, task.reminder_state) == (NOW + 5 * DAY, "none")

    def test_reschedule_can_change_the_kind(self):
        task = make_task(kind="follow_up")
        reschedule(task, NOW, kind="maintenance")
        assert task.kind == "maintenance"
        with raises_on("kind"):
            reschedule(task, NOW, kind="chore")

    def test_closed_tasks_cannot_be_rescheduled_or_reassigned(self):
        with raises_on("status"):
            reschedule(make_task(status="done"), NOW + DAY)
        with raises_on("status"):
            reassign(make_task(status="missed"), "rep2")

    def test_reassign_returns_the_previous_assignee_and_can_move_team(self):
        task = make_task(assignee_id="rep1", team="north")
        assert reassign(task, "rep2") == "rep1"
        assert (task.assignee_id, task.team) == ("rep2", "north")
        reassign(task, "rep3", team="south")
        assert task.team == "south"


# --- reminders -------------------------------------------------------------------------------------------

class TestReminderTransitions:
    DUE = utc(2025, 3, 10, 15, 0)

    def test_nothing_before_the_due_soon_window(self):
        assert reminder_transitions(make_task(due_at=self.DUE), self.DUE - HOUR - TICK) == []

    def test_due_exactly_when_the_window_opens(self):
        assert reminder_transitions(make_task(due_at=self.DUE), self.DUE - HOUR) == ["due"]

    def test_not_overdue_exactly_at_the_due_time(self):
        assert reminder_transitions(make_task(due_at=self.DUE, reminder_state="due_notified"), self.DUE) == []

    def test_overdue_just_after_the_due_time(self):
        task = make_task(due_at=self.DUE, reminder_state="due_notified")
        assert reminder_transitions(task, self.DUE + TICK) == ["overdue"]

    def test_not_missed_exactly_at_the_end_of_grace(self):
        task = make_task(due_at=self.DUE, reminder_state="overdue_notified")
        assert reminder_transitions(task, self.DUE + 2 * DAY) == []

    def test_missed_just_after_the_grace_period(self):
        task = make_task(due_at=self.DUE, reminder_state="overdue_notified")
        assert reminder_transitions(task, self.DUE + 2 * DAY + TICK) == ["missed"]

    def test_window_and_grace_are_configurable(self):
        task = make_task(due_at=self.DUE)
        assert reminder_transitions(task, self.DUE - DAY, due_soon_window=DAY) == ["due"]
        task.reminder_state = "overdue_notified"
        assert reminder_transitions(task, self.DUE + HOUR + TICK, grace_period=HOUR) == ["missed"]

    def test_negative_window_is_rejected(self):
        with raises_on("grace_period"):
            reminder_transitions(make_task(), NOW, grace_period=-DAY)

    def test_after_an_outage_skipped_steps_come_once_each_in_order(self):
        task = make_task(due_at=self.DUE)
        assert reminder_transitions(task, self.DUE + 10 * DAY) == ["due", "overdue", "missed"]
        assert reminder_transitions(make_task(due_at=self.DUE), self.DUE + HOUR) == ["due", "overdue"]

    def test_it_is_pure(self):
        task = make_task(due_at=self.DUE)
        reminder_transitions(task, self.DUE + 10 * DAY)
        assert (task.status, task.reminder_state) == ("open", "none")

    @pytest.mark.parametrize("status", ["done", "skipped", "missed"])
    def test_closed_tasks_get_no_reminders(self, status):
        assert reminder_transitions(make_task(due_at=self.DUE, status=status), self.DUE + 10 * DAY) == []

    def test_advancing_twice_at_the_same_moment_emits_nothing_the_second_time(self):
        task = make_task(due_at=self.DUE)
        assert advance_reminders(task, self.DUE - HOUR) == ["due"]
        assert advance_reminders(task, self.DUE - HOUR) == []
        assert task.reminder_state == "due_notified"

    def test_a_sweep_every_hour_emits_each_event_exactly_once(self):
        task, emitted = make_task(due_at=self.DUE), []
        moment = self.DUE - 5 * DAY
        while moment < self.DUE + 5 * DAY:
            emitted += [(event, moment) for event in advance_reminders(task, moment)]
            moment += HOUR
        assert emitted == [("due", self.DUE - HOUR), ("overdue", self.DUE + HOUR),
                           ("missed", self.DUE + 2 * DAY + HOUR)]
        assert (task.status, task.closed_at) == ("missed", self.DUE + 2 * DAY + HOUR)

    def test_record_reminder_refuses_out_of_order_or_repeated_steps(self):
        task = make_task(due_at=self.DUE)
        with raises_on("reminder_state"):
            record_reminder(task, "overdue", self.DUE)
        record_reminder(task, "due", self.DUE)
        with raises_on("reminder_state"):
            record_reminder(task, "due", self.DUE)
        with raises_on("event"):
            record_reminder(task, "late", self.DUE)

    def test_recording_missed_closes_the_task(self):
        task = make_task(due_at=self.DUE, reminder_state="overdue_notified")
        record_reminder(task, "missed", self.DUE + 3 * DAY)
        assert (task.status, task.closed_at) == ("missed", self.DUE + 3 * DAY)
        with raises_on("status"):
            record_reminder(task, "missed", self.DUE + 4 * DAY)


# --- cadence ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tier, lifecycle, days", [
    ("A", "potential", 7), ("B", "potential", 7), ("C", "new", 7), ("B", "active", 30), ("C", "active", 30),
    ("A", "active", 14), ("A", "dormant", 90), ("B", "at_risk", 7), ("A", "churned", None), ("C", "churned", None),
])
def test_default_cadence(tier, lifecycle, days):
    assert DEFAULT_CADENCE_POLICY.interval_for(tier, lifecycle) == days


class TestCadencePrecedence:
    FULL = {("A", "active"): 1, ("*", "active"): 2, ("A", "*"): 3, ("*", "*"): 4}

    def lookup(self, *drop):
        policy = CadencePolicy({k: v for k, v in self.FULL.items() if k not in drop})
        return policy.interval_for("A", "active")

    def test_exact_tier_and_lifecycle_first(self):
        assert self.lookup() == 1

    def test_then_any_tier_with_that_lifecycle(self):
        assert self.lookup(("A", "active")) == 2

    def test_then_that_tier_with_any_lifecycle(self):
        assert self.lookup(("A", "active"), ("*", "active")) == 3

    def test_then_the_default(self):
        assert self.lookup(("A", "active"), ("*", "active"), ("A", "*")) == 4

    def test_no_entry_means_no_cadence(self):
        assert CadencePolicy({}).interval_for("A", "active") is None

    def test_other_tiers_and_lifecycles_do_not_borrow_entries(self):
        policy = CadencePolicy(self.FULL)
        assert policy.interval_for("B", "active") == 2
        assert policy.interval_for("B", "dormant") == 4
        assert policy.interval_for("A", "dormant") == 3

    def test_lookup_rejects_unknown_class(self):
        with raises_on("tier"):
            DEFAULT_CADENCE_POLICY.interval_for("D", "active")
        with raises_on("lifecycle"):
            DEFAULT_CADENCE_POLICY.interval_for("A", "vip")


class TestCadenceConfig:
    EXAMPLE = "potential=7,new=7,active=30,dormant=90,at_risk=7,A/active=14,*=30"

    def test_config_string_overrides_the_defaults(self):
        policy = CadencePolicy.from_config("active=21, B/active=10 ,C=60,")
        assert policy.interval_for("C", "active") == 21
        assert policy.interval_for("B", "active") == 10
        assert policy.interval_for("A", "active") == 14  # default entry kept
        assert policy.interval_for("C", "dormant") == 90  # (*, dormant) beats (C, *)

    def test_the_documented_example_keeps_churned_without_cadence(self):
        policy = CadencePolicy.from_config(self.EXAMPLE)
        assert policy.interval_for("B", "churned") is None
        assert policy == DEFAULT_CADENCE_POLICY

    def test_without_defaults_the_config_is_the_whole_table(self):
        policy = CadencePolicy.from_config(self.EXAMPLE, keep_defaults=False)
        assert policy.interval_for("B", "churned") == 30  # falls through to *
        assert CadencePolicy.from_config("active=30", keep_defaults=False).interval_for("A", "new") is None

    @pytest.mark.parametrize("word", ["none", "off", "NONE"])
    def test_a_class_can_be_switched_off(self, word):
        assert CadencePolicy.from_config(f"dormant={word}").interval_for("B", "dormant") is None

    def test_churned_cadence_can_be_switched_on(self):
        assert CadencePolicy.from_config("churned=180").interval_for("B", "churned") == 180

    def test_dict_form_for_the_http_api(self):
        policy = CadencePolicy.from_dict({"active": 21, "A/active": None, "*": 45})
        assert policy.interval_for("A", "active") is None
        assert policy.interval_for("B", "active") == 21
        assert policy.to_dict()["*"] == 45

    def test_round_trips(self):
        policy = CadencePolicy.from_config("B/dormant=60,C=45,churned=none")
        assert CadencePolicy.from_dict(policy.to_dict(), keep_defaults=False) == policy
        assert CadencePolicy.from_config(policy.to_config(), keep_defaults=False) == policy
        assert DEFAULT_CADENCE_POLICY.to_dict() == {
            "*": 30, "active": 30, "at_risk": 7, "churned": None, "dormant": 90, "new": 7, "potential": 7,
            "A/active": 14}

    @pytest.mark.parametrize("text, field", [
        ("active=0", "active"), ("active=-7", "active"), ("active=7.5", "active"), ("active=abc", "active"),
        ("active=", "active"), ("A/active=0", "A/active"), ("*=0", "*"),
    ])
    def test_config_rejects_bad_intervals_naming_the_key(self, text, field):
        with raises_on(field):
            CadencePolicy.from_config(text)

    @pytest.mark.parametrize("text, field", [
        ("vip=7", "vip"), ("D/active=7", "D/active"), ("A/vip=7", "A/vip"), ("active/A=7", "active/A"),
        ("a/active=7", "a/active"), ("=7", ""),
    ])
    def test_config_rejects_unknown_keys(self, text, field):
        with raises_on(field):
            CadencePolicy.from_config(text)

    def test_config_rejects_items_without_days(self):
        with raises_on("active"):
            CadencePolicy.from_config("potential=7,active")

    def test_config_rejects_duplicates(self):
        with raises_on("active"):
            CadencePolicy.from_config("active=30,active=14")
        with raises_on("*/active"):
            CadencePolicy.from_dict({"active": 30, "*/active": 14})

    @pytest.mark.parametrize("days", [0, -1, 7.5, 7.0, True, "7"])
    def test_dict_rejects_non_positive_or_non_integer_days(self, days):
        with raises_on("B/active"):
            CadencePolicy.from_dict({"B/active": days})

    def test_dict_rejects_unknown_keys_and_non_objects(self):
        with raises_on("Z"):
            CadencePolicy.from_dict({"Z": 7})
        with raises_on("cadence"):
            CadencePolicy.from_dict([("active", 7)])

    def test_direct_construction_is_validated(self):
        with raises_on("A/active"):
            CadencePolicy({("A", "active"): 0})
        with raises_on("D/active"):
            CadencePolicy({("D", "active"): 7})

    def test_the_policy_is_not_changed_through_the_source_dict(self):
        source = {("*", "active"): 30}
        policy = CadencePolicy(source)
        source[("*", "active")] = 1
        assert policy.interval_for("B", "active") == 30


class TestNextCadenceDue:
    def test_counts_the_interval_from_the_last_touch(self):
        assert next_cadence_due(DEFAULT_CADENCE_POLICY, "B", "active", NOW) == NOW + 30 * DAY
        assert next_cadence_due(DEFAULT_CADENCE_POLICY, "A", "active", NOW) == NOW + 14 * DAY

    def test_churned_has_no_cadence(self):
        assert next_cadence_due(DEFAULT_CADENCE_POLICY, "A", "churned", NOW) is None

    def test_needs_an_aware_last_touch(self):
        with raises_on("last_touch_at"):
            next_cadence_due(DEFAULT_CADENCE_POLICY, "A", "active", datetime(2025, 1, 1))

    @pytest.mark.parametrize("lifecycle, kind", [
        ("potential", "follow_up"), ("new", "maintenance"), ("active", "maintenance"),
        ("dormant", "maintenance"), ("at_risk", "maintenance"), ("churned", "recall"),
    ])
    def test_task_kind_by_lifecycle(self, lifecycle, kind):
        assert cadence_task_kind(lifecycle) == kind


class TestReconcileCadence:
    P = DEFAULT_CADENCE_POLICY

    def cadence_task(self, tier, lifecycle, **fields):
        """An open cadence task as the service schedules it for this class."""
        kind = cadence_task_kind(lifecycle)
        return make_task(kind=kind, reason="cadence", purpose=cadence_purpose(self.P, tier, lifecycle, kind), **fields)

    def test_schedules_the_first_cadence_task_from_the_last_touch(self):
        decision = reconcile_cadence(self.P, None, "B", "active", NOW - 10 * DAY, NOW)
        assert (decision.action, decision.due_at, decision.kind, decision.reason) == (
            "schedule", NOW + 20 * DAY, "maintenance", "cadence")

    def test_a_long_silence_schedules_for_now_not_the_past(self):
        decision = reconcile_cadence(self.P, None, "B", "potential", NOW - 100 * DAY, NOW)
        assert (decision.action, decision.due_at, decision.kind) == ("schedule", NOW, "follow_up")

    def test_upgrade_to_tier_a_counts_the_shorter_interval_from_the_last_touch(self):
        task = make_task(kind="maintenance", due_at=NOW + 20 * DAY)  # B/active: touched 10 days ago
        decision = reconcile_cadence(self.P, task, "A", "active", NOW - 10 * DAY, NOW)
        assert (decision.action, decision.due_at, decision.reason) == ("reschedule", NOW + 4 * DAY, "class_change")

    def test_the_new_due_time_is_never_before_now(self):
        task = make_task(kind="maintenance", due_at=NOW + 5 * DAY)  # B/active: touched 25 days ago
        decision = reconcile_cadence(self.P, task, "B", "at_risk", NOW - 25 * DAY, NOW)
        assert (decision.action, decision.due_at) == ("reschedule", NOW)

    def test_a_task_already_due_is_not_moved_to_now(self):
        task = self.cadence_task("B", "at_risk", due_at=NOW - DAY)
        decision = reconcile_cadence(self.P, task, "B", "at_risk", NOW - 31 * DAY, NOW)
        assert (decision.action, decision.due_at) == ("keep", NOW - DAY)

    def test_a_task_already_due_under_its_old_class_only_takes_the_new_text(self):
        task = self.cadence_task("B", "active", due_at=NOW - DAY)
        decision = reconcile_cadence(self.P, task, "B", "at_risk", NOW - 31 * DAY, NOW)
        assert (decision.action, decision.due_at, decision.reason) == ("reschedule", NOW - DAY, "class_change")
        assert decision.purpose == "maintenance: touch every 7 days (tier B, at_risk)"

    def test_a_longer_interval_moves_an_overdue_task_later(self):
        task = make_task(kind="maintenance", due_at=NOW - DAY)
        decision = reconcile_cadence(self.P, task, "B", "dormant", NOW - 31 * DAY, NOW)
        assert (decision.action, decision.due_at) == ("reschedule", NOW + 59 * DAY)

    def test_unchanged_cadence_keeps_the_task(self):
        task = self.cadence_task("C", "active", due_at=NOW + 20 * DAY)
        assert reconcile_cadence(self.P, task, "C", "active", NOW - 10 * DAY, NOW).action == "keep"

    def test_a_class_change_with_the_same_interval_and_kind_retitles_the_task(self):
        task = self.cadence_task("B", "active", due_at=NOW + 20 * DAY)  # B and C/active: both every 30 days
        decision = reconcile_cadence(self.P, task, "C", "active", NOW - 10 * DAY, NOW)
        assert (decision.action, decision.due_at, decision.kind) == ("reschedule", NOW + 20 * DAY, "maintenance")
        assert decision.purpose == "maintenance: touch every 30 days (tier C, active)"

    def test_every_decision_carries_the_text_of_the_class(self):
        decision = reconcile_cadence(self.P, None, "A", "active", NOW - 10 * DAY, NOW)
        assert decision.purpose == cadence_purpose(self.P, "A", "active", "maintenance") == (
            "maintenance: touch every 14 days (tier A, active)")
        moved = reconcile_cadence(self.P, self.cadence_task("B", "active", due_at=NOW + 20 * DAY), "A", "active",
                                  NOW - 10 * DAY, NOW)
        assert moved.purpose == decision.purpose

    def test_a_prospect_who_buys_gets_maintenance_instead_of_follow_up(self):
        task = make_task(kind="follow_up", due_at=NOW + 4 * DAY)
        decision = reconcile_cadence(self.P, task, "C", "new", NOW - 3 * DAY, NOW)
        assert (decision.action, decision.due_at, decision.kind) == ("reschedule", NOW + 4 * DAY, "maintenance")

    def test_churning_cancels_the_open_task_with_a_reason(self):
        decision = reconcile_cadence(self.P, make_task(kind="maintenance"), "B", "churned", NOW - 9 * DAY, NOW)
        assert decision.action == "cancel" and "churned" in decision.reason
        skip(task := make_task(), decision.reason, NOW)  # the reason is a valid skip reason
        assert task.status == "skipped"

    def test_churned_without_open_task_needs_nothing(self):
        assert reconcile_cadence(self.P, None, "B", "churned", NOW - 9 * DAY, NOW).action == "none"


# --- key moments -----------------------------------------------------------------------------------------

class TestKeyMoments:
    def test_entering_needs_analysis_schedules_a_follow_up_three_days_later(self):
        [task] = key_moment_tasks("c1", "first_contact", "needs_analysis", NOW, NOW)
        assert (task.customer_id, task.kind, task.due_at, task.reason) == ("c1", "follow_up", NOW + 3 * DAY,
                                                                           "key_moment")
        assert task.dedupe_key == key_moment_tasks("c1", None, "needs_analysis", NOW, NOW + HOUR)[0].dedupe_key

    def test_a_productive_touch_since_the_change_makes_it_unnecessary(self):
        assert key_moment_tasks("c1", "first_contact", "needs_analysis", NOW, NOW + DAY,
                                last_productive_touch_at=NOW) == []
        [_] = key_moment_tasks("c1", "first_contact", "needs_analysis", NOW, NOW,
                               last_productive_touch_at=NOW - TICK)

    def test_winning_schedules_a_revisit_a_month_later(self):
        [task] = key_moment_tasks("c1", "proposal", "won", NOW, NOW)
        assert (task.kind, task.due_at, task.reason) == ("maintenance", NOW + 30 * DAY, "key_moment")
        assert "revisit" in task.purpose

    def test_day_counts_are_configurable(self):
        rules = KeyMomentRules(needs_analysis_follow_up_days=1, won_revisit_days=45)
        assert key_moment_tasks("c1", None, "needs_analysis", NOW, NOW, rules=rules)[0].due_at == NOW + DAY
        assert key_moment_tasks("c1", None, "won", NOW, NOW, rules=rules)[0].due_at == NOW + 45 * DAY

    @pytest.mark.parametrize("days", [0, -3, 2.5, None])
    def test_bad_day_counts_are_rejected(self, days):
        with raises_on("won_revisit_days"):
            KeyMomentRules(won_revisit_days=days)
        with raises_on("needs_analysis_follow_up_days"):
            KeyMomentRules(needs_analysis_follow_up_days=days)

    @pytest.mark.parametrize("old, new", [
        ("needs_analysis", "needs_analysis"), ("won", "won"), (None, "first_contact"),
        ("needs_analysis", "proposal"), ("proposal", "lost"),
    ])
    def test_other_changes_schedule_nothing(self, old, new):
        assert key_moment_tasks("c1", old, new, NOW, NOW) == []

    def test_a_backdated_change_is_due_no_earlier_than_now(self):
        [task] = key_moment_tasks("c1", "proposal", "won", NOW - 40 * DAY, NOW)
        assert task.due_at == NOW

    def test_unknown_stage_is_rejected(self):
        with raises_on("new_stage"):
            key_moment_tasks("c1", None, "closed", NOW, NOW)

    def test_a_later_productive_touch_settles_the_open_follow_up(self):
        task = make_task(reason="key_moment", kind="follow_up", created_at=NOW, due_at=NOW + 3 * DAY)
        assert settles_key_moment_follow_up(task, "reached", NOW + DAY)
        assert settles_key_moment_follow_up(task, "positive", NOW)
        assert not settles_key_moment_follow_up(task, "no_answer", NOW + DAY)
        assert not settles_key_moment_follow_up(task, "reached", NOW - DAY)  # older than the task
        assert not settles_key_moment_follow_up(make_task(reason="cadence"), "reached", NOW)
        assert not settles_key_moment_follow_up(
            make_task(reason="key_moment", kind="maintenance"), "reached", NOW)
        complete(task, "i1", NOW)
        assert not settles_key_moment_follow_up(task, "reached", NOW + DAY)


# --- care tasks ------------------------------------------------------------------------------------------

class TestNextOccurrence:
    @pytest.mark.parametrize("original, as_of, expected", [
        (date(1980, 6, 1), date(2025, 3, 10), date(2025, 6, 1)),  # later this year
        (date(1980, 1, 5), date(2025, 3, 10), date(2026, 1, 5)),  # already passed: next year
        (date(1980, 3, 10), date(2025, 3, 10), date(2025, 3, 10)),  # today counts
        (date(1984, 2, 29), date(2025, 1, 1), date(2025, 2, 28)),  # leap day in a common year
        (date(1984, 2, 29), date(2028, 1, 1), date(2028, 2, 29)),  # leap day in a leap year
        (date(1984, 2, 29), date(2025, 2, 28), date(2025, 2, 28)),
        (date(1984, 2, 29), date(2027, 3, 1), date(2028, 2, 29)),
        (date(1984, 2, 29), date(2026, 3, 1), date(2027, 2, 28)),
        (date(2025, 6, 1), date(2025, 5, 1), date(2026, 6, 1)),  # the signing day is no anniversary
        (date(2025, 3, 10), date(2025, 3, 10), date(2026, 3, 10)),
        (date(2026, 8, 1), date(2025, 3, 10), date(2027, 8, 1)),  # date still in the future
    ])
    def test_cases(self, original, as_of, expected):
        assert next_occurrence(original, as_of) == expected

    def test_a_datetime_counts_in_its_own_timezone(self):
        evening_in_utc = utc(2025, 6, 1, 20, 0)  # already June 2 in UTC+8
        assert next_occurrence(date(1980, 6, 1), evening_in_utc) == date(2025, 6, 1)
        in_shanghai = evening_in_utc.astimezone(timezone(timedelta(hours=8)))
        assert next_occurrence(date(1980, 6, 1), in_shanghai) == date(2026, 6, 1)


class TestCareTasks:
    AS_OF = utc(2025, 3, 10, 6, 0)

    def dates(self, *entries):
        return [ImportantDate("c1", kind, day, *rest) for kind, day, *rest in entries]

    def test_due_lead_days_before_the_occurrence(self):
        [task] = care_tasks_due(self.dates(("birthday", date(1980, 3, 20))), self.AS_OF)
        assert (task.customer_id, task.kind, task.reason) == ("c1", "care", "care")
        assert task.due_at == utc(2025, 3, 17, 9, 0)
        assert task.dedupe_key == "care:c1:birthday:2025"
        assert "2025-03-20" in task.purpose

    def test_horizon_boundary(self):
        inside = self.dates(("birthday", date(1980, 4, 9)))  # exactly 30 days ahead
        outside = self.dates(("birthday", date(1980, 4, 10)))
        assert len(care_tasks_due(inside, self.AS_OF)) == 1
        assert care_tasks_due(outside, self.AS_OF) == []
        assert len(care_tasks_due(outside, self.AS_OF, horizon_days=31)) == 1

    def test_a_date_closer_than_the_lead_is_due_now(self):
        [task] = care_tasks_due(self.dates(("contract_anniversary", date(2020, 3, 11))), self.AS_OF)
        assert task.due_at == self.AS_OF
        [today] = care_tasks_due(self.dates(("birthday", date(1980, 3, 10))), self.AS_OF, lead_days=0)
        assert today.due_at == utc(2025, 3, 10, 9, 0)

    def test_kinds_other_is_ignored_unless_asked_for(self):
        dates = self.dates(("other", date(2020, 3, 20), "fiscal year end"), ("founding_day", date(1999, 3, 25)))
        assert [t.dedupe_key for t in care_tasks_due(dates, self.AS_OF)] == ["care:c1:founding_day:2025"]
        assert len(care_tasks_due(dates, self.AS_OF, kinds=("other",))) == 1
        with raises_on("kinds"):
            care_tasks_due(dates, self.AS_OF, kinds=("wedding",))

    def test_leap_day_birthday_in_a_common_year(self):
        [task] = care_tasks_due(self.dates(("birthday", date(1984, 2, 29))), utc(2025, 2, 1))
        assert task.due_at == utc(2025, 2, 25, 9, 0)
        assert task.dedupe_key == "care:c1:birthday:2025"

    def test_occurrence_in_the_next_year(self):
        [task] = care_tasks_due(self.dates(("birthday", date(1980, 1, 2))), utc(2025, 12, 20))
        assert (task.due_at, task.dedupe_key) == (utc(2025, 12, 30, 9, 0), "care:c1:birthday:2026")

    def test_due_time_follows_the_timezone_of_as_of(self):
        tz = timezone(timedelta(hours=-5))
        [task] = care_tasks_due(self.dates(("birthday", date(1980, 3, 20))), self.AS_OF.astimezone(tz),
                                due_time=time(10, 0))
        assert task.due_at == datetime(2025, 3, 17, 10, 0, tzinfo=tz)

    def test_already_scheduled_and_repeated_dates_are_left_out(self):
        dates = self.dates(("birthday", date(1980, 3, 20)), ("birthday", date(1980, 3, 20)))
        assert len(care_tasks_due(dates, self.AS_OF)) == 1
        assert care_tasks_due(dates, self.AS_OF, already_scheduled={"care:c1:birthday:2025"}) == []

    def test_two_labelled_birthdays_of_one_customer_do_not_collide(self):
        dates = self.dates(("birthday", date(1980, 3, 20), "CEO"), ("birthday", date(1975, 3, 22), "CFO"))
        assert [t.dedupe_key for t in care_tasks_due(dates, self.AS_OF)] == [
            "care:c1:birthday:ceo:2025", "care:c1:birthday:cfo:2025"]

    def test_a_daily_sweep_schedules_each_occurrence_once(self):
        dates = [ImportantDate("c1", "birthday", date(1984, 2, 29)),
                 ImportantDate("c2", "contract_anniversary", date(2021, 4, 15))]
        scheduled: list = []
        as_of = utc(2025, 1, 1, 7, 0)
        while as_of < utc(2026, 6, 1):
            new = care_tasks_due(dates, as_of, already_scheduled={t.dedupe_key for t in scheduled})
            scheduled += new
            as_of += DAY
        assert sorted(t.dedupe_key for t in scheduled) == [
            "care:c1:birthday:2025", "care:c1:birthday:2026",
            "care:c2:contract_anniversary:2025", "care:c2:contract_anniversary:2026"]

    @pytest.mark.parametrize("kwargs, field", [
        ({"lead_days": -1}, "lead_days"), ({"horizon_days": 1.5}, "horizon_days"),
    ])
    def test_bad_settings_are_rejected(self, kwargs, field):
        with raises_on(field):
            care_tasks_due([], self.AS_OF, **kwargs)

    def test_important_date_is_validated(self):
        with raises_on("kind"):
            ImportantDate("c1", "wedding", date(2000, 1, 1))
        with raises_on("date"):
            ImportantDate("c1", "birthday", datetime(2000, 1, 1))


# --- assignment ------------------------------------------------------------------------------------------

class TestChooseAssignee:
    TEAM = [TeamMember("r3"), TeamMember("r1"), TeamMember("r2"), TeamMember("r9", active=False)]

    def test_the_active_owner_gets_it_and_the_cursor_stays(self):
        assert choose_assignee("r2", self.TEAM, 0) == ("r2", 0)

    def test_an_inactive_or_missing_owner_falls_back_to_round_robin(self):
        assert choose_assignee("r9", self.TEAM, None) == ("r1", 0)
        assert choose_assignee(None, self.TEAM, None) == ("r1", 0)
        assert choose_assignee("r-elsewhere", self.TEAM, None) == ("r1", 0)

    def test_owner_activity_can_be_given_explicitly(self):
        assert choose_assignee("r-elsewhere", self.TEAM, None, owner_active=True) == ("r-elsewhere", None)
        assert choose_assignee("r2", self.TEAM, 0, owner_active=False) == ("r2", 1)

    def test_round_robin_in_id_order_wraps_around(self):
        picks, cursor = [], None
        for _ in range(7):
            assignee, cursor = choose_assignee(None, self.TEAM, cursor)
            picks.append(assignee)
        assert picks == ["r1", "r2", "r3", "r1", "r2", "r3", "r1"]
        assert choose_assignee(None, self.TEAM, 2) == ("r1", 0)

    def test_a_stale_cursor_after_the_team_shrank_still_works(self):
        assert choose_assignee(None, [TeamMember("r1"), TeamMember("r2")], 5) == ("r1", 0)

    def test_nobody_available_is_an_error(self):
        with raises_on("assignee_id"):
            choose_assignee("r9", [TeamMember("r9", active=False)], None)
        with raises_on("assignee_id"):
            choose_assignee(None, [], None)


def test_ownership_change_moves_the_old_owners_open_tasks_of_that_customer():
    tasks = [
        make_task("move", customer_id="c1", assignee_id="old"),
        make_task("other-rep", customer_id="c1", assignee_id="helper"),
        make_task("other-customer", customer_id="c2", assignee_id="old"),
        make_task("closed", customer_id="c1", assignee_id="old", status="done"),
    ]
    assert [t.task_id for t in tasks_to_reassign(tasks, "c1", "old")] == ["move"]
    unassigned = make_task("unassigned", customer_id="c1")
    assert tasks_to_reassign([unassigned, *tasks], "c1", None) == [unassigned]


# --- work list -------------------------------------------------------------------------------------------

class TestTodaysTasks:
    def test_utc_day_by_default(self):
        tasks = [make_task("late", due_at=NOW - 5 * DAY), make_task("last", due_at=utc(2025, 3, 11) - TICK),
                 make_task("tomorrow", due_at=utc(2025, 3, 11)), make_task("done", due_at=NOW, status="done")]
        assert [t.task_id for t in todays_tasks(tasks, NOW)] == ["late", "last"]

    @pytest.mark.parametrize("tz", [timedelta(hours=8), timezone(timedelta(hours=8))])
    def test_the_reps_timezone_decides_where_the_day_ends(self, tz):
        now = utc(2025, 3, 10, 20, 0)  # 04:00 on March 11 in UTC+8; that day ends at 16:00 UTC
        assert end_of_day(now, tz) == utc(2025, 3, 11, 16, 0)
        tasks = [make_task("in", due_at=utc(2025, 3, 11, 16, 0) - TICK), make_task("out", due_at=utc(2025, 3, 11, 16))]
        assert [t.task_id for t in todays_tasks(tasks, now, tz)] == ["in"]

    def test_negative_offsets(self):
        assert end_of_day(utc(2025, 3, 10, 2, 0), timedelta(hours=-5)) == utc(2025, 3, 10, 5, 0)


class TestPrioritize:
    def test_overdue_first_most_late_first_then_tier_then_due(self):
        tiers = {"a": "A", "b": "B", "c": "C"}
        tasks = [
            make_task("due-later-A", customer_id="a", due_at=NOW + 2 * HOUR),
            make_task("due-soon-C", customer_id="c", due_at=NOW + HOUR),
            make_task("due-soon-B", customer_id="b", due_at=NOW + HOUR),
            make_task("late-1h-C", customer_id="c", due_at=NOW - HOUR),
            make_task("late-3h-B", customer_id="b", due_at=NOW - 3 * HOUR),
            make_task("late-2d-C", customer_id="c", due_at=NOW - 2 * DAY),
            make_task("late-1h-A", customer_id="a", due_at=NOW - HOUR),
            make_task("late-1h-unknown", customer_id="zz", due_at=NOW - HOUR),
        ]
        assert [t.task_id for t in prioritize(tasks, NOW, tiers)] == [
            "late-2d-C", "late-1h-A", "late-3h-B", "late-1h-C", "late-1h-unknown",
            "due-later-A", "due-soon-B", "due-soon-C"]

    def test_exactly_at_the_due_time_is_not_overdue(self):
        tasks = [make_task("now-B", customer_id="b", due_at=NOW), make_task("later-A", customer_id="a",
                                                                           due_at=NOW + HOUR),
                 make_task("late-B", customer_id="b", due_at=NOW - TICK)]
        assert [t.task_id for t in prioritize(tasks, NOW, {"a": "A", "b": "B"})] == ["late-B", "later-A", "now-B"]

    def test_equal_priority_is_stable_by_id(self):
        tasks = [make_task("t2"), make_task("t1")]
        assert [t.task_id for t in prioritize(tasks, NOW, {})] == ["t1", "t2"]


class TestCountMissed:
    START, END = utc(2025, 3, 1), utc(2025, 4, 1)

    def closed(self, task_id, status, at):
        return make_task(task_id, status=status, closed_at=at)

    def test_missed_over_done_skipped_and_missed_in_the_period(self):
        tasks = [
            self.closed("d1", "done", self.START), self.closed("d2", "done", utc(2025, 3, 15)),
            self.closed("s1", "skipped", utc(2025, 3, 20)), self.closed("m1", "missed", self.END - TICK),
            self.closed("m-before", "missed", self.START - TICK), self.closed("m-after", "missed", self.END),
            make_task("open"),
        ]
        result = count_missed(tasks, self.START, self.END)
        assert (result.missed, result.closed, result.rate) == (1, 4, 0.25)

    def test_no_closed_tasks_has_no_rate(self):
        assert count_missed([make_task()], self.START, self.END).rate is None


# --- rules moved out of the use cases -----------------------------------------------------------------------

class Row:
    """A read-model row as the service hands it to the rules: attributes, times aware."""

    def __init__(self, **values):
        for name in ("owner_as_of", "tier_as_of", "lifecycle_as_of", "stage_as_of", "snapshot_at", "won_at",
                     "first_purchase_at", "last_purchase_at"):
            setattr(self, name, None)
        self.__dict__.update(values)


class TestFacts:
    def test_in_stream_order_the_latest_event_wins_whatever_its_date(self):
        assert domain.supersedes(NOW, NOW - DAY, in_stream_order=True)
        assert not domain.supersedes(NOW, NOW - DAY)
        assert domain.supersedes(NOW, NOW) and domain.supersedes(None, NOW - DAY)

    def test_a_class_change_only_when_it_supersedes(self):
        row = Row(tier="B", tier_as_of=NOW)
        assert domain.class_change(row, "tier", "A", NOW - DAY) == {}
        assert domain.class_change(row, "tier", "A", NOW - DAY, in_stream_order=True) == {
            "tier": "A", "tier_as_of": NOW - DAY}

    def test_a_snapshot_takes_company_and_dates_always_and_the_rest_when_newer(self):
        row = Row(tier_as_of=NOW, lifecycle_as_of=NOW - 5 * DAY, snapshot_at=NOW)
        snapshot = {"company": "Acme", "important_dates": [], "owner_id": "r1", "team": "t", "tier": "C",
                    "lifecycle": "active", "pipeline_stage": "won"}
        values = domain.snapshot_changes(row, snapshot, NOW - DAY)
        assert values["company"] == "Acme" and values["snapshot_at"] == NOW  # never moves back
        assert "tier" not in values and values["lifecycle"] == "active" and values["owner_id"] == "r1"
        assert values["won_at"] == NOW - DAY
        assert domain.snapshot_changes(row, snapshot, NOW - DAY, in_stream_order=True)["tier"] == "C"

    def test_won_at_is_the_first_move_to_won(self):
        row = Row(stage_as_of=NOW, won_at=NOW - DAY)
        assert domain.stage_change(row, "won", NOW - 2 * DAY) == {"won_at": NOW - 2 * DAY}
        assert domain.stage_change(row, "lost", NOW + HOUR) == {"pipeline_stage": "lost", "stage_as_of": NOW + HOUR}

    def test_a_backdated_purchase_widens_the_span(self):
        row = Row(first_purchase_at=NOW - DAY, last_purchase_at=NOW - DAY)
        assert domain.purchase_change(row, NOW - 3 * DAY) == {"has_purchased": True, "first_purchase_at": NOW - 3 * DAY}
        assert domain.purchase_change(row, NOW) == {"has_purchased": True, "last_purchase_at": NOW}


class TestRulesOfTheUseCases:
    def test_phase_as_the_customer_stood_when_the_touch_happened(self):
        bought = {"first_purchase_at": NOW - 10 * DAY, "lifecycle": "active"}
        assert domain.phase_at(NOW - 20 * DAY, **bought) == "pre_sale"
        assert domain.phase_at(NOW, **bought) == "post_sale"
        assert domain.phase_at(NOW - 20 * DAY, "post_sale", **bought) == "post_sale"
        assert domain.phase_at(NOW, lifecycle="new") == "post_sale"  # no dated purchase: the class decides

    def test_only_a_newer_touch_counts_and_completes_a_cadence_task_scheduled_before_it(self):
        assert domain.is_newer_touch(None, NOW) and not domain.is_newer_touch(NOW, NOW)
        task = make_task(created_at=NOW - DAY)
        assert domain.touch_completes_cadence_task(task, NOW - DAY)
        assert not domain.touch_completes_cadence_task(task, NOW - 2 * DAY)

    def test_key_moments_long_past_schedule_nothing(self):
        assert domain.is_past_moment(NOW - 61 * DAY, NOW, 60 * DAY)
        assert not domain.is_past_moment(NOW - 60 * DAY, NOW, 60 * DAY)

    def test_recall_and_complaint_tasks_are_never_due_in_the_past(self):
        recall = domain.recall_task("c1", "a1", "quiet", NOW - 2 * DAY, NOW)
        assert (recall.kind, recall.due_at, recall.dedupe_key, recall.purpose) == (
            "recall", NOW, "recall:a1", "recall: churn alert quiet")
        assert domain.recall_task("c1", "a1", "quiet", NOW, NOW, recall_due_at=NOW + 3 * HOUR).due_at == NOW + 3 * HOUR
        complaint = domain.complaint_task("c1", "i1", "late delivery", NOW - HOUR, NOW)
        assert (complaint.due_at, complaint.purpose, complaint.dedupe_key) == (
            NOW + 23 * HOUR, "resolve complaint: late delivery", "complaint:i1")
        assert domain.complaint_task("c1", "i1", "", NOW, NOW).purpose == "resolve complaint"

    def test_who_may_assign_to_whom(self):
        from crm_common.errors import CrmError, Forbidden
        domain.check_assignee("admin", "adm", None, "r1", "south", True)
        domain.check_assignee("rep", "r1", "north", "r1", "north", True)
        with pytest.raises(Forbidden):
            domain.check_assignee("rep", "r1", "north", "r2", "north", True)
        with pytest.raises(Forbidden):
            domain.check_assignee("manager", "m", "north", "r2", "south", True)
        with pytest.raises(CrmError) as err:
            domain.check_assignee("admin", "adm", None, "r1", "north", False)
        assert err.value.field == "assignee_id"

    def test_who_may_see_whose_work_list(self):
        assert domain.may_view_worklist("rep", "r1", "north", "r1", None, rep_known=False)
        assert not domain.may_view_worklist("rep", "r1", "north", "r2", "north")
        assert domain.may_view_worklist("manager", "m", "north", "r2", "north")
        assert not domain.may_view_worklist("manager", "m", "north", "r3", "south")
        assert domain.may_view_worklist("admin", "a", None, "r3", "south")
        assert not domain.may_view_worklist("admin", "a", None, "ghost", None, rep_known=False)


def test_a_manual_task_may_be_due_in_the_past_but_not_before_its_customer_existed():
    from services.followups.domain import check_due_at
    created = datetime(2026, 6, 30, 12, tzinfo=timezone.utc)
    check_due_at(created - timedelta(hours=23), created)   # keyed in late: due this morning
    check_due_at(created + timedelta(days=3), created)
    check_due_at(created - timedelta(days=3650), None)     # customer's creation unknown here: no judgement
    with pytest.raises(DomainError) as refused:
        check_due_at(created - timedelta(days=1, seconds=1), created)
    assert refused.value.field == "due_at"
