"""Follow-up rules pinned where mutation testing (bench/mutation.py, docs/testing.md) found mutants the other
unit tests let live: the validators' messages and the field each names, how the read model takes in the
customers service's facts (exact row values), the answer tasks (recall, complaint) and the phase of a touch."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from crm_common.errors import DomainError
from services.followups.domain import (
    PlannedTask, complaint_task, phase_at, purchase_change, recall_task, snapshot_changes, stage_change,
    supersedes, validate_interaction, validate_occurred_at, validate_satisfaction,
)
from services.followups.domain.base import require_aware, require_choice, require_days, require_non_negative

T = datetime(2026, 6, 30, 9, tzinfo=timezone.utc)
NAIVE = datetime(2026, 6, 30, 9)


class EveryZone(timezone.__base__):
    """A tzinfo whose utcoffset() is None: tzinfo is set, yet the moment is not aware."""
    def utcoffset(self, dt):
        return None


def refusal(call, *args, **kwargs):
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)
    return caught.value.message, caught.value.field


# --- validators: message and field -------------------------------------------------------------------------

def test_each_validator_names_its_field_and_says_what_it_wanted():
    assert refusal(require_aware, NAIVE, "due_at") == ("must be a timezone-aware datetime", "due_at")
    assert refusal(require_aware, "2026-06-30", "due_at") == ("must be a timezone-aware datetime", "due_at")
    assert refusal(require_choice, "fax", ("call", "email"), "kind") == (
        "unknown value 'fax', expected one of call, email", "kind")
    assert refusal(require_days, 0, "lead_days") == ("must be a positive whole number of days, got 0", "lead_days")
    assert refusal(require_days, -1, "lead_days", minimum=0) == (
        "must be a whole number of days >= 0, got -1", "lead_days")
    assert refusal(require_days, 36_501, "lead_days") == (
        "must be a positive whole number of days, got 36501", "lead_days")
    assert refusal(require_non_negative, timedelta(seconds=-1), "grace") == (
        "must be a non-negative duration, got datetime.timedelta(days=-1, seconds=86399)", "grace")


def test_a_tzinfo_without_an_offset_is_not_aware():
    moment = datetime(2026, 6, 30, 9, tzinfo=EveryZone())
    assert refusal(require_aware, moment, "at") == ("must be a timezone-aware datetime", "at")


def test_the_day_bounds_are_inclusive():
    assert require_days(1, "d") == 1 and require_days(36_500, "d") == 36_500 and require_days(0, "d", minimum=0) == 0


def test_interaction_refusals_name_the_bad_field():
    assert refusal(validate_occurred_at, T, NAIVE) == ("must be a timezone-aware datetime", "now")
    assert refusal(validate_occurred_at, T, T, timedelta(minutes=-1))[1] == "clock_skew"
    assert refusal(validate_occurred_at, T + timedelta(minutes=6), T) == (
        "is in the future (2026-06-30T09:06:00+00:00 > now 2026-06-30T09:00:00+00:00)", "occurred_at")
    assert refusal(validate_satisfaction, 6) == ("must be a whole number from 1 to 5, got 6", "satisfaction")


def test_an_interaction_uses_the_clock_skew_it_is_given():
    validate_interaction(kind="call", outcome="reached", occurred_at=T + timedelta(minutes=30), now=T,
                         clock_skew=timedelta(hours=1))


# --- facts from the customers service ----------------------------------------------------------------------

def row(at=None, won_at=None):
    return SimpleNamespace(snapshot_at=at, owner_as_of=at, tier_as_of=at, lifecycle_as_of=at, stage_as_of=at,
                           won_at=won_at, first_purchase_at=at, last_purchase_at=at)


FULL = {"company": "Acme", "important_dates": [{"kind": "birthday", "date": "1980-02-29"}],
        "created_at": T - timedelta(days=9), "owner_id": "rep-1", "team": "north", "tier": "A",
        "lifecycle": "active", "pipeline_stage": "won"}


def test_a_first_snapshot_takes_every_fact_and_the_first_win():
    assert snapshot_changes(row(), FULL, T) == {
        "company": "Acme", "important_dates": FULL["important_dates"], "snapshot_at": T,
        "created_at": T - timedelta(days=9), "owner_id": "rep-1", "team": "north", "owner_as_of": T,
        "tier": "A", "tier_as_of": T, "lifecycle": "active", "lifecycle_as_of": T,
        "pipeline_stage": "won", "stage_as_of": T, "won_at": T}


def test_an_older_snapshot_out_of_stream_order_takes_only_company_and_dates():
    later = T + timedelta(days=1)
    snapshot = {"company": "Acme", "important_dates": None, "owner_id": "rep-2", "pipeline_stage": "proposal"}
    assert snapshot_changes(row(later), snapshot, T) == {"company": "Acme", "important_dates": [],
                                                          "snapshot_at": later}


def test_an_older_snapshot_in_stream_order_is_the_latest_word_but_keeps_the_first_win():
    later = T + timedelta(days=1)
    assert snapshot_changes(row(later, won_at=later), FULL, T, in_stream_order=True) == {
        "company": "Acme", "important_dates": FULL["important_dates"], "snapshot_at": later,
        "created_at": T - timedelta(days=9), "owner_id": "rep-1", "team": "north", "owner_as_of": T,
        "tier": "A", "tier_as_of": T, "lifecycle": "active", "lifecycle_as_of": T,
        "pipeline_stage": "won", "stage_as_of": T}


def test_a_snapshot_not_won_sets_no_won_at():
    snapshot = dict(FULL, pipeline_stage="proposal")
    assert "won_at" not in snapshot_changes(row(), snapshot, T)


def test_a_stage_change_in_stream_order_wins_over_a_later_date():
    later = T + timedelta(days=1)
    assert stage_change(row(later), "proposal", T, in_stream_order=True) == {"pipeline_stage": "proposal",
                                                                             "stage_as_of": T}


def test_won_at_is_the_earliest_move_to_won_and_only_a_move_to_won_sets_it():
    assert stage_change(row(T - timedelta(days=1), won_at=T), "won", T) == {"pipeline_stage": "won", "stage_as_of": T}
    assert stage_change(row(T - timedelta(days=1)), "proposal", T) == {"pipeline_stage": "proposal", "stage_as_of": T}
    assert stage_change(row(T + timedelta(days=1)), "won", T) == {"won_at": T}


def test_a_purchase_at_the_known_first_and_last_moment_widens_nothing():
    assert purchase_change(row(T), T) == {"has_purchased": True}


def test_fact_dates_must_be_aware_and_name_their_field():
    assert refusal(supersedes, T, NAIVE)[1] == "as_of"
    assert refusal(snapshot_changes, row(), FULL, NAIVE)[1] == "at"
    assert refusal(purchase_change, row(), NAIVE)[1] == "purchased_at"


# --- answer tasks --------------------------------------------------------------------------------------------

def test_a_recall_is_due_a_day_after_the_alert_or_when_it_asks_never_before_now():
    assert recall_task("c-1", "al-1", "no_purchase", T, T) == PlannedTask(
        "c-1", "recall", "recall: churn alert no_purchase", T + timedelta(hours=24), "recall", "recall:al-1")
    assert recall_task("c-1", "al-1", "no_purchase", T, T, recall_due_at=T + timedelta(hours=2)).due_at == \
        T + timedelta(hours=2)
    assert recall_task("c-1", "al-1", "no_purchase", T - timedelta(days=3), T).due_at == T


def test_a_complaint_follow_up_is_due_a_day_after_it_with_its_summary_cut_at_200():
    summary = "x" * 250
    assert complaint_task("c-1", "i-1", summary, T, T) == PlannedTask(
        "c-1", "follow_up", "resolve complaint: " + "x" * 200, T + timedelta(hours=24), "complaint", "complaint:i-1")
    assert complaint_task("c-1", "i-1", "", T, T).purpose == "resolve complaint"
    assert complaint_task("c-1", "i-1", "late: ", T - timedelta(days=2), T).due_at == T


def test_answer_task_refusals_name_their_field():
    assert refusal(recall_task, "c", "a", "r", NAIVE, T)[1] == "raised_at"
    assert refusal(recall_task, "c", "a", "r", T, NAIVE)[1] == "now"
    assert refusal(recall_task, "c", "a", "r", T, T, recall_due=timedelta(-1))[1] == "recall_due"
    assert refusal(complaint_task, "c", "i", "s", NAIVE, T)[1] == "occurred_at"
    assert refusal(complaint_task, "c", "i", "s", T, NAIVE)[1] == "now"
    assert refusal(complaint_task, "c", "i", "s", T, T, complaint_due=timedelta(-1))[1] == "complaint_due"


# --- phase of a touch ----------------------------------------------------------------------------------------

def test_the_phase_of_a_touch_follows_dated_purchase_and_win_by_then():
    assert phase_at(T, first_purchase_at=T) == "post_sale"
    assert phase_at(T, first_purchase_at=T + timedelta(seconds=1)) == "pre_sale"
    assert phase_at(T, won_at=T) == "post_sale"
    assert phase_at(T, won_at=T + timedelta(seconds=1), lifecycle="active") == "pre_sale"


def test_without_dates_the_current_class_decides_the_phase():
    assert phase_at(T) == "pre_sale"
    assert phase_at(T, has_purchased=True) == "post_sale"
    assert phase_at(T, pipeline_stage="won") == "post_sale"
    assert phase_at(T, lifecycle="active") == "post_sale"
    assert refusal(phase_at, T, pipeline_stage="closed")[1] == "pipeline_stage"
    assert refusal(phase_at, NAIVE)[1] == "occurred_at"


# --- tasks, work list, care, assignment: each refusal names its field -----------------------------------------

from datetime import date  # noqa: E402

from crm_common.errors import CrmError, Forbidden  # noqa: E402
from services.followups.domain import (  # noqa: E402
    ImportantDate, Task, advance_reminders, care_tasks_due, check_assignee, choose_assignee, complete,
    count_missed, end_of_day, next_occurrence, prioritize, reassign, record_reminder, reminder_transitions,
    reschedule, skip,
)


def task(status="open", reminder_state="none", due_at=T):
    return Task("t-1", "c-1", "follow_up", due_at, status=status, reminder_state=reminder_state)


def test_a_closed_task_refuses_every_action_saying_which_and_why():
    assert refusal(complete, task("done"), "i-1", T) == ("cannot complete task t-1: it is already done", "status")
    assert refusal(skip, task("done"), "busy", T) == ("cannot skip task t-1: it is already done", "status")
    assert refusal(reschedule, task("skipped"), T) == ("cannot reschedule task t-1: it is already skipped", "status")
    assert refusal(reassign, task("missed"), "rep-2") == ("cannot reassign task t-1: it is already missed", "status")
    assert refusal(record_reminder, task("done"), "due", T) == (
        "cannot record reminder 'due' for task t-1: it is already done", "status")


def test_task_refusals_name_their_field():
    assert refusal(complete, task(), "i-1", NAIVE)[1] == "completed_at"
    assert refusal(complete, task(), "i-1", T, customer_id="c-2") == (
        "task t-1 belongs to another customer", "completes_task_id")
    assert refusal(skip, task(), "busy", NAIVE)[1] == "skipped_at"
    assert refusal(skip, task(), "  ", T) == ("a skipped task needs a reason", "reason")
    assert refusal(reschedule, task(), NAIVE)[1] == "due_at"
    assert refusal(reminder_transitions, task(), NAIVE)[1] == "now"
    assert refusal(reminder_transitions, task(), T, timedelta(-1))[1] == "due_soon_window"
    assert refusal(record_reminder, task(), "overdue", T) == (
        "reminder 'overdue' needs state 'due_notified', task is 'none'", "reminder_state")
    assert refusal(record_reminder, task(reminder_state="overdue_notified"), "missed", NAIVE)[1] == "missed_at"


def test_advance_reminders_uses_the_grace_period_it_is_given():
    late = task(due_at=T - timedelta(hours=2))
    assert advance_reminders(late, T, timedelta(hours=1), timedelta(hours=3)) == ["due", "overdue"]


def test_work_list_refusals_name_their_field():
    assert refusal(end_of_day, NAIVE)[1] == "now"
    assert refusal(prioritize, [], NAIVE, {})[1] == "now"
    assert refusal(count_missed, [], NAIVE, T)[1] == "start"
    assert refusal(count_missed, [], T, NAIVE)[1] == "end"


def test_care_refusals_name_their_field():
    assert refusal(ImportantDate, "c-1", "birthday", "1980-02-29") == (
        "must be a calendar date, got '1980-02-29'", "date")
    assert refusal(next_occurrence, date(1980, 2, 29), NAIVE)[1] == "as_of"
    assert refusal(care_tasks_due, [], NAIVE)[1] == "as_of"


def test_a_care_horizon_of_zero_days_plans_only_today():
    today = ImportantDate("c-1", "birthday", date(1980, 6, 30))
    tomorrow = ImportantDate("c-2", "birthday", date(1980, 7, 1))
    assert [t.customer_id for t in care_tasks_due([today, tomorrow], T, lead_days=0, horizon_days=0)] == ["c-1"]


def test_a_care_task_says_its_label_or_else_its_kind_in_words():
    dates = [ImportantDate("c-1", "contract_anniversary", date(2020, 7, 1)),
             ImportantDate("c-2", "birthday", date(1980, 7, 1), label=" Mum "),
             ImportantDate("c-3", "birthday", date(1980, 7, 1))]
    purposes = {t.customer_id: t.purpose for t in care_tasks_due(dates, T, kinds=("birthday", "contract_anniversary"))}
    assert purposes == {"c-1": "contract anniversary on 2026-07-01", "c-2": "Mum on 2026-07-01",
                        "c-3": "birthday on 2026-07-01"}


def test_assignment_refusals_say_why_and_name_assignee_id():
    assert refusal(choose_assignee, None, [], None) == (
        "no active owner or team member to assign the task to", "assignee_id")
    with pytest.raises(CrmError) as inactive:
        check_assignee("admin", "a", None, "rep-2", "north", False)
    assert (type(inactive.value), inactive.value.message, inactive.value.field) == (
        CrmError, "rep rep-2 is no longer active", "assignee_id")
    with pytest.raises(Forbidden) as other:
        check_assignee("rep", "rep-1", "north", "rep-2", "north", True)
    assert (other.value.message, other.value.field) == ("a rep can only assign tasks to themselves", "assignee_id")
    with pytest.raises(Forbidden) as team:
        check_assignee("manager", "m", "north", "rep-2", "south", True)
    assert (team.value.message, team.value.field) == ("rep rep-2 is not in your team", "assignee_id")


# --- cadence policy and its config --------------------------------------------------------------------------

from services.followups.domain import (  # noqa: E402
    CadenceDecision, CadencePolicy, cadence_purpose, cadence_task_kind, key_moment_tasks, reconcile_cadence,
    settles_key_moment_follow_up, touch_completes_cadence_task,
)
from services.followups.domain.cadence import parse_key  # noqa: E402
from services.followups.domain.key_moments import is_past_moment  # noqa: E402

LIFECYCLE_LIST = "potential, new, active, dormant, at_risk, churned"


def test_a_cadence_key_is_read_without_its_blanks_and_an_empty_or_odd_one_is_refused():
    assert parse_key(" active ") == ("*", "active")
    assert refusal(parse_key, "  ") == ("empty cadence key", "  ")
    assert refusal(parse_key, None) == ("empty cadence key", "None")
    assert refusal(parse_key, "gold") == (
        "unknown cadence key 'gold': use a lifecycle, a tier, tier/lifecycle or *", "gold")
    assert refusal(parse_key, "D/active") == ("unknown tier 'D' (tiers are A, B, C or *)", "D/active")
    assert refusal(parse_key, "A/B/active") == (
        f"unknown lifecycle 'B/active' (lifecycles are {LIFECYCLE_LIST} or *)", "A/B/active")


def test_policy_keys_must_be_tier_lifecycle_pairs_and_a_bad_interval_names_its_key():
    assert refusal(CadencePolicy, {"ab": 3}) == ("cadence keys are (tier, lifecycle) pairs", "ab")
    assert refusal(CadencePolicy, {("A",): 3}) == ("cadence keys are (tier, lifecycle) pairs", "('A',)")
    assert refusal(CadencePolicy, {("A", "active"): 0})[1] == "A/active"


def test_from_dict_keeps_the_defaults_unless_told_and_refuses_two_names_of_one_key():
    assert CadencePolicy.from_dict({"A/active": 10}).interval_for("B", "dormant") == 90
    assert refusal(CadencePolicy.from_dict, [("active", 3)]) == (
        "cadence policy must be an object of key: days", "cadence")
    assert refusal(CadencePolicy.from_dict, {"active": 3, "*/active": 4}) == (
        "duplicate cadence key (same as 'active')", "*/active")


def test_from_config_reads_blank_text_as_the_defaults_and_skips_empty_items():
    assert CadencePolicy.from_config("") == CadencePolicy()
    policy = CadencePolicy.from_config("active=3,,new=5,", keep_defaults=False)
    assert policy.to_dict() == {"active": 3, "new": 5}


def test_from_config_refusals_say_what_was_wrong():
    assert refusal(CadencePolicy.from_config, "active") == ("expected key=days, got 'active'", "active")
    assert refusal(CadencePolicy.from_config, "active=3,active=4") == ("duplicate cadence key", "active")
    assert refusal(CadencePolicy.from_config, "active=3=4") == (
        "must be a positive whole number of days or 'none', got '3=4'", "active")


def test_to_config_writes_a_tier_alone_and_none_for_no_cadence():
    policy = CadencePolicy.from_dict({"A": 10, "churned": None}, keep_defaults=False)
    assert policy.to_config() == "churned=none,A=10"  # sorted by (tier, lifecycle): "*" sorts before "A"


def test_cadence_texts_and_refusals():
    policy = CadencePolicy.from_dict({"*": 7}, keep_defaults=False)
    assert cadence_purpose(policy, "A", "potential", "follow_up") == "follow up: touch every 7 days (tier A, potential)"
    assert refusal(cadence_task_kind, "gone")[1] == "lifecycle"
    assert refusal(touch_completes_cadence_task, task(), NAIVE)[1] == "occurred_at"
    assert refusal(reconcile_cadence, policy, None, "A", "active", T, NAIVE)[1] == "now"


def test_a_task_already_late_stays_put_when_the_new_due_time_is_exactly_now():
    policy = CadencePolicy.from_dict({"*": 7}, keep_defaults=False)
    purpose = "maintenance: touch every 7 days (tier A, active)"
    late = Task("t-1", "c-1", "maintenance", T - timedelta(days=2), reason="cadence", purpose=purpose)
    assert reconcile_cadence(policy, late, "A", "active", T - timedelta(days=7), T) == CadenceDecision(
        "keep", T - timedelta(days=2), "maintenance", purpose=purpose)


# --- key moments ----------------------------------------------------------------------------------------------

def test_key_moment_tasks_are_exact_and_keyed_by_customer_stage_and_moment():
    assert key_moment_tasks("c-1", "first_contact", "needs_analysis", T, T) == [PlannedTask(
        "c-1", "follow_up", "follow up on the needs analysis", T + timedelta(days=3), "key_moment",
        "key_moment:c-1:needs_analysis:2026-06-30T09:00:00+00:00")]
    assert key_moment_tasks("c-1", "proposal", "won", T, T) == [PlannedTask(
        "c-1", "maintenance", "revisit after the deal was won", T + timedelta(days=30), "key_moment",
        "key_moment:c-1:won:2026-06-30T09:00:00+00:00")]


def test_key_moment_refusals_name_their_field():
    assert refusal(key_moment_tasks, "c-1", "closed", "won", T, T)[1] == "old_stage"
    assert refusal(key_moment_tasks, "c-1", None, "won", NAIVE, T)[1] == "changed_at"
    assert refusal(key_moment_tasks, "c-1", None, "won", T, NAIVE)[1] == "now"
    assert refusal(key_moment_tasks, "c-1", None, "needs_analysis", T, T,
                   last_productive_touch_at=NAIVE)[1] == "last_productive_touch_at"
    assert refusal(is_past_moment, NAIVE, T, timedelta(days=1))[1] == "changed_at"


def key_moment_follow_up(created_at=None):
    return Task("t-1", "c-1", "follow_up", T, reason="key_moment", created_at=created_at)


def test_a_touch_before_the_stage_change_given_as_since_settles_nothing():
    assert not settles_key_moment_follow_up(key_moment_follow_up(), "reached", T - timedelta(hours=1), since=T)
    assert settles_key_moment_follow_up(key_moment_follow_up(), "reached", T, since=T)
    assert refusal(settles_key_moment_follow_up, key_moment_follow_up(), "reached", NAIVE)[1] == "occurred_at"
    assert refusal(settles_key_moment_follow_up, key_moment_follow_up(), "reached", T, since=NAIVE)[1] == "since"


# --- settings from FOLLOWUPS_* ----------------------------------------------------------------------------------

from datetime import time as clock_time  # noqa: E402

from services.followups.domain.key_moments import KeyMomentRules  # noqa: E402
from services.followups.domain.settings import FollowupsSettings, parse_utc_offset  # noqa: E402


def env(**values):
    return {f"FOLLOWUPS_{name}": value for name, value in values.items()}


def test_every_setting_is_read_in_its_unit():
    settings = FollowupsSettings.from_settings(env(
        CADENCE="active=20", NEEDS_ANALYSIS_FOLLOW_UP_DAYS="5", WON_REVISIT_DAYS="40", KEY_MOMENT_MAX_AGE_DAYS="10",
        DUE_SOON_MINUTES="15", GRACE_HOURS="2", CLOCK_SKEW_SECONDS="30", RECALL_DUE_HOURS="48",
        COMPLAINT_DUE_HOURS="4", CARE_LEAD_DAYS="0", CARE_HORIZON_DAYS="0", SWEEP_BATCH_SIZE="1",
        REMINDER_INTERVAL_SECONDS="0.5", CARE_INTERVAL_SECONDS="90", CARE_KINDS=" birthday, ,other ",
        CARE_DUE_TIME="08:30", TIMEZONE="+08:00"))
    assert settings.cadence.interval_for("B", "active") == 20 and settings.cadence.interval_for("B", "dormant") == 90
    assert settings.key_moments == KeyMomentRules(needs_analysis_follow_up_days=5, won_revisit_days=40)
    assert (settings.key_moment_max_age, settings.due_soon_window, settings.grace_period, settings.clock_skew,
            settings.recall_due, settings.complaint_due) == (
        timedelta(days=10), timedelta(minutes=15), timedelta(hours=2), timedelta(seconds=30), timedelta(hours=48),
        timedelta(hours=4))
    assert (settings.care_lead_days, settings.care_horizon_days, settings.sweep_batch_size) == (0, 0, 1)
    assert (settings.reminder_interval_seconds, settings.care_interval_seconds) == (0.5, 90.0)
    assert settings.care_kinds == ("birthday", "other")
    assert settings.care_due_time == clock_time(8, 30)
    assert settings.timezone == timezone(timedelta(hours=8))


def test_blank_settings_are_the_defaults():
    assert FollowupsSettings.from_settings(env(GRACE_HOURS="  ", CADENCE="", TIMEZONE=" ")) == FollowupsSettings()


def test_one_key_moment_setting_keeps_the_other_default():
    assert FollowupsSettings.from_settings(env(WON_REVISIT_DAYS="40")).key_moments == KeyMomentRules(3, 40)
    assert FollowupsSettings.from_settings(env(NEEDS_ANALYSIS_FOLLOW_UP_DAYS="5")).key_moments == KeyMomentRules(5, 30)


@pytest.mark.parametrize("name,minimum", [
    ("NEEDS_ANALYSIS_FOLLOW_UP_DAYS", 1), ("WON_REVISIT_DAYS", 1), ("KEY_MOMENT_MAX_AGE_DAYS", 1),
    ("DUE_SOON_MINUTES", 0), ("GRACE_HOURS", 0), ("CLOCK_SKEW_SECONDS", 0), ("RECALL_DUE_HOURS", 0),
    ("COMPLAINT_DUE_HOURS", 0), ("CARE_LEAD_DAYS", 0), ("CARE_HORIZON_DAYS", 0), ("SWEEP_BATCH_SIZE", 1)])
def test_each_whole_number_setting_has_its_minimum(name, minimum):
    FollowupsSettings.from_settings(env(**{name: str(minimum + 1)}))
    if minimum:
        FollowupsSettings.from_settings(env(**{name: str(minimum)}))
    below = str(minimum - 1)
    assert refusal(FollowupsSettings.from_settings, env(**{name: below})) == (
        f"must be a whole number >= {minimum}, got {below!r}", f"FOLLOWUPS_{name}")
    assert refusal(FollowupsSettings.from_settings, env(**{name: "2x"})) == (
        f"must be a whole number >= {minimum}, got '2x'", f"FOLLOWUPS_{name}")


def test_settings_refusals_name_the_variable():
    assert refusal(FollowupsSettings.from_settings, env(CADENCE="gold=3")) == (
        "FOLLOWUPS_CADENCE: key 'gold': unknown cadence key 'gold': use a lifecycle, a tier, tier/lifecycle or *",
        "FOLLOWUPS_CADENCE")
    for name in ("REMINDER_INTERVAL_SECONDS", "CARE_INTERVAL_SECONDS"):
        assert refusal(FollowupsSettings.from_settings, env(**{name: "0"})) == (
            "must be a positive number of seconds, got '0'", f"FOLLOWUPS_{name}")
        assert refusal(FollowupsSettings.from_settings, env(**{name: "soon"})) == (
            "must be a positive number of seconds, got 'soon'", f"FOLLOWUPS_{name}")
    assert refusal(FollowupsSettings.from_settings, env(CARE_KINDS="birthday,wedding")) == (
        "unknown important date kind(s) ['wedding']; known: "
        "('birthday', 'contract_anniversary', 'founding_day', 'other')", "FOLLOWUPS_CARE_KINDS")
    assert refusal(FollowupsSettings.from_settings, env(CARE_DUE_TIME="25:00")) == (
        "expected HH:MM, got '25:00'", "FOLLOWUPS_CARE_DUE_TIME")
    assert refusal(FollowupsSettings.from_settings, env(TIMEZONE="CET")) == (
        "expected a UTC offset such as +08:00 or UTC, got 'CET'", "FOLLOWUPS_TIMEZONE")


def test_utc_offsets():
    assert parse_utc_offset("UTC", "tz") is timezone.utc
    assert parse_utc_offset(" z ", "tz") is timezone.utc
    assert parse_utc_offset("-0530", "tz") == timezone(-timedelta(hours=5, minutes=30))
    assert parse_utc_offset("+14:59", "tz") == timezone(timedelta(hours=14, minutes=59))
    assert refusal(parse_utc_offset, "+15:00", "tz") == ("offset out of range: '+15:00'", "tz")
    assert refusal(parse_utc_offset, "+05:60", "tz") == ("offset out of range: '+05:60'", "tz")
    assert refusal(parse_utc_offset, None, "tz") == ("expected a UTC offset such as +08:00 or UTC, got None", "tz")


# --- second pass: what the first re-run still let live --------------------------------------------------------

from services.followups.domain import owner_change  # noqa: E402
from services.followups.domain.tasks import check_due_at  # noqa: E402


def test_a_non_text_cadence_key_is_named_as_written():
    assert refusal(CadencePolicy, {(1, "active"): 3}) == ("unknown tier 1 (tiers are A, B, C or *)", "(1, 'active')")


def test_a_complaint_summary_ending_in_x_keeps_its_last_letter():
    assert complaint_task("c-1", "i-1", "wrong FAX", T, T).purpose == "resolve complaint: wrong FAX"


def test_a_first_snapshot_without_class_takes_no_tier_or_lifecycle():
    values = snapshot_changes(row(), {"company": "Acme", "pipeline_stage": "proposal"}, T)
    assert not {"tier", "tier_as_of", "lifecycle", "lifecycle_as_of"} & set(values)


def test_an_older_snapshot_with_a_class_keeps_the_newer_class():
    later = T + timedelta(days=1)
    current = SimpleNamespace(snapshot_at=None, owner_as_of=None, tier_as_of=later, lifecycle_as_of=later,
                              stage_as_of=None, won_at=None)
    values = snapshot_changes(current, {"tier": "A", "lifecycle": "active"}, T)
    assert not {"tier", "tier_as_of", "lifecycle", "lifecycle_as_of"} & set(values)


def test_an_owner_change_takes_when_newer_or_in_stream_order_only():
    later = T + timedelta(days=1)
    assert owner_change(row(T - timedelta(days=1)), "rep-2", "south", T) == {
        "owner_id": "rep-2", "team": "south", "owner_as_of": T}
    assert owner_change(row(later), "rep-2", "south", T) == {}
    assert owner_change(row(later), "rep-2", None, T, in_stream_order=True) == {
        "owner_id": "rep-2", "team": None, "owner_as_of": T}
    assert refusal(owner_change, row(T), "rep-2", "south", NAIVE)[1] == "as_of"


def test_a_manual_task_may_be_due_up_to_a_day_before_its_customer_was_created():
    check_due_at(T - timedelta(days=1), T)
    check_due_at(T - timedelta(days=400), None)
    assert refusal(check_due_at, T - timedelta(days=1, seconds=1), T) == (
        "due_at is before the customer was created (2026-06-30T09:00:00+00:00)", "due_at")


def test_advance_reminders_misses_a_task_once_the_given_grace_period_is_over():
    late = task(due_at=T - timedelta(hours=2))
    assert advance_reminders(late, T, timedelta(hours=1), timedelta(hours=1)) == ["due", "overdue", "missed"]
