"""The alerts domain modules the other domain unit tests did not reach (read_model.py, settings.py, judgement.py),
pinned where mutation testing (bench/mutation.py, docs/testing.md) found mutants no domain test killed: how a
read model folds profile facts by their time, what a batch of events asks for, every ALERTS_* variable with its
unit, lowest value and refusal (message and field), and the exact moment next_check names for each reason it has.
Plain functions only: no nameko, no database, no hypothesis."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from services.alerts.domain import (
    RECHECK_AT_LEAST_EVERY, AlertsConfig, AlertsSettings, BatchFold, CustomerSignals, DomainError, FiredRule,
    HealthBreakdown, Purchase, ReadModel, Signal, apply_interaction, apply_profile, apply_purchase, apply_task_missed,
    fold, is_live, judge,
)
from services.alerts.domain.settings import overrides_from_environment

UTC = timezone.utc
T0 = datetime(2026, 6, 30, 12, tzinfo=UTC)
CREATED = datetime(2025, 5, 26, 8, tzinfo=UTC)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def refusal(call, *args, **kwargs):
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)
    return caught.value.reason, caught.value.field


# --- read_model: folding one customer's facts ------------------------------------------------------------

EMPTY = ReadModel(CustomerSignals("c-1"))
PROFILE = {"customer_id": "c-1", "company": "Co", "owner_id": "rep-1", "team": "north", "tier": "B",
           "lifecycle": "active", "created_at": CREATED, "archived": False}


def snapshot(**changes):
    return {**PROFILE, **changes}


def purchase(pid="p1", at=None, owner="rep-9", team="west"):
    data = {"purchase_id": pid, "purchased_at": at or hours(-1), "amount_base": Decimal("120.50")}
    if owner:
        data.update(owner_id=owner, team=team)
    return data


def interaction(iid="i1", at=None, outcome="reached"):
    return {"interaction_id": iid, "occurred_at": at or hours(1), "outcome": outcome}


def known_model(at=T0):
    return fold(EMPTY, "customer.created", snapshot(), at)


def test_a_fact_is_live_from_exactly_the_window_before_now_on():
    assert is_live(T0 - timedelta(hours=48), T0, 48) is True
    assert is_live(T0 - timedelta(hours=48, microseconds=1), T0, 48) is False
    assert is_live(T0 - timedelta(hours=1), T0, 48) is True
    assert is_live(T0 - timedelta(hours=1), T0, 0) is False


def test_a_first_snapshot_sets_the_whole_profile_and_the_time_of_each_part():
    model = fold(EMPTY, "customer.created", snapshot(), T0)
    signals = replace(CustomerSignals("c-1"), tier="B", lifecycle="active", owner_id="rep-1", team="north",
                      created_at=CREATED)
    assert model == ReadModel(signals, {"tier": T0.isoformat(), "lifecycle": T0.isoformat(),
                                        "owner": T0.isoformat()}, True, T0)
    assert model.judged is True


def test_archiving_by_snapshot_is_one_way_and_a_snapshot_without_a_creation_time_keeps_the_known_one():
    archived = fold(known_model(), "customer.updated", snapshot(archived=True, created_at=None), hours(1))
    assert (archived.signals.archived, archived.signals.created_at, archived.judged) == (True, CREATED, False)
    again = fold(archived, "customer.updated", snapshot(archived=False), hours(2))
    assert again.signals.archived is True
    by_event = fold(known_model(), "customer.archived", {"customer_id": "c-1"}, hours(1))
    assert by_event == replace(known_model(), signals=replace(known_model().signals, archived=True),
                               last_fact_at=hours(1))


def test_an_older_snapshot_arriving_late_changes_no_part_a_newer_fact_set():
    model = fold(EMPTY, "customer.tier_changed", {"new_tier": "A"}, hours(2))
    model = fold(model, "customer.lifecycle_changed", {"new_lifecycle": "at_risk"}, hours(2))
    model = fold(model, "customer.owner_changed", {"new_owner_id": "rep-2", "new_team": "south"}, hours(2))
    assert model.known is False and model.judged is False
    model = fold(model, "customer.created", snapshot(archived=True), T0)
    assert model.signals == replace(CustomerSignals("c-1"), tier="A", lifecycle="at_risk", owner_id="rep-2",
                                    team="south", archived=True, created_at=CREATED)
    iso = hours(2).isoformat()
    assert model.versions == {"tier": iso, "lifecycle": iso, "owner": iso}
    assert (model.known, model.last_fact_at) == (True, hours(2))


def test_a_snapshot_at_the_very_moment_of_a_change_arriving_after_it_wins():
    model = fold(EMPTY, "customer.tier_changed", {"new_tier": "A"}, T0)
    model = fold(model, "customer.updated", snapshot(tier="C"), T0)
    assert model.signals.tier == "C"


@pytest.mark.parametrize("name, newer, older, part, fields", [
    ("customer.tier_changed", {"new_tier": "A"}, {"new_tier": "C"}, "tier", {"tier": "A"}),
    ("customer.lifecycle_changed", {"new_lifecycle": "at_risk"}, {"new_lifecycle": "churned"}, "lifecycle",
     {"lifecycle": "at_risk"}),
    ("customer.owner_changed", {"new_owner_id": "rep-2", "new_team": "south"},
     {"new_owner_id": "rep-3", "new_team": "east"}, "owner", {"owner_id": "rep-2", "team": "south"}),
])
def test_a_profile_change_sets_its_part_and_time_and_an_older_one_of_that_part_is_ignored(
        name, newer, older, part, fields):
    before = known_model()
    changed = fold(before, name, newer, hours(2))
    assert changed == ReadModel(replace(before.signals, **fields), {**before.versions, part: hours(2).isoformat()},
                                True, hours(2))
    assert fold(changed, name, older, hours(1)) == changed
    same_moment = fold(changed, name, older, hours(2))
    assert same_moment.signals != changed.signals and same_moment.versions == changed.versions


def test_an_owner_change_without_a_team_leaves_no_team():
    assert fold(known_model(), "customer.owner_changed", {"new_owner_id": "rep-2"}, hours(1)).signals.team is None


def test_a_purchase_names_the_owner_until_a_snapshot_does_and_never_after():
    first = fold(EMPTY, "purchase.recorded", purchase(), hours(-1))
    signals = replace(CustomerSignals("c-1"), owner_id="rep-9", team="west",
                      purchases=(Purchase(hours(-1), "p1", Decimal("120.50")),))
    assert first == ReadModel(signals, {}, False, hours(-1))
    no_owner = fold(EMPTY, "purchase.recorded", purchase(owner=None), hours(-1))
    assert (no_owner.signals.owner_id, no_owner.signals.team, len(no_owner.signals.purchases)) == (None, None, 1)
    after = fold(known_model(), "purchase.recorded", purchase(at=hours(1)), hours(1))
    assert (after.signals.owner_id, after.signals.team) == ("rep-1", "north")
    assert after.signals.purchases == (Purchase(hours(1), "p1", Decimal("120.50")),)
    assert (after.known, after.last_fact_at, after.versions) == (True, hours(1), known_model().versions)


def test_other_facts_fold_into_the_signals_and_leave_known_as_it_was():
    unknown = fold(EMPTY, "interaction.logged", interaction(), hours(1))
    assert unknown == ReadModel(replace(CustomerSignals("c-1"), last_contact_at=hours(1)), {}, False, hours(1))
    known = fold(known_model(), "interaction.logged", interaction(), hours(1))
    assert (known.known, known.signals.last_contact_at, known.last_fact_at) == (True, hours(1), hours(1))


def test_the_newest_fact_time_stays_when_an_older_fact_arrives():
    model = fold(known_model(hours(5)), "interaction.logged", interaction(at=hours(-3)), hours(-3))
    assert model.last_fact_at == hours(5) and model.signals.last_contact_at == hours(-3)


# --- read_model: one batch of a customer's events ---------------------------------------------------------

def test_a_new_batch_starts_from_the_model_before_it_with_nothing_asked():
    batch = BatchFold(known_model())
    assert (batch.after, batch.scored, batch.live_cause, batch.live_rules) == (known_model(), None, None, {})
    assert (batch.owner_moved, batch.archived_now, batch.rules_to_judge) == (False, False, frozenset())


def test_a_batch_scores_the_newest_signals_and_raises_only_what_its_live_facts_can_set_off():
    batch = BatchFold(known_model())
    batch.add("interaction.logged", interaction(at=hours(1)), hours(1), live=True)
    assert batch.scored == batch.after.signals and batch.after.signals.last_contact_at == hours(1)
    assert (batch.live_cause, batch.live_rules) == (
        "interaction.logged", {"unanswered_followups": "interaction.logged", "low_satisfaction": "interaction.logged"})
    batch.add("purchase.recorded", purchase(at=hours(-100)), hours(-100), live=False)
    assert batch.scored == batch.after.signals and len(batch.scored.purchases) == 1
    assert batch.live_cause == "interaction.logged" and "interval_lengthening" not in batch.live_rules
    batch.add("purchase.recorded", purchase("p2", at=hours(2)), hours(2), live=True)
    batch.add("task.missed", {"task_id": "t1", "missed_at": hours(3)}, hours(3), live=True)
    assert batch.live_cause == "task.missed"
    assert batch.live_rules == {"unanswered_followups": "interaction.logged", "low_satisfaction": "interaction.logged",
                                "interval_lengthening": "purchase.recorded"}
    assert batch.rules_to_judge == frozenset({"unanswered_followups", "low_satisfaction", "interval_lengthening"})
    assert batch.before == known_model()


def test_a_live_snapshot_rescores_but_raises_nothing():
    batch = BatchFold(EMPTY)
    batch.add("customer.created", snapshot(), T0, live=True)
    assert (batch.scored, batch.live_cause, batch.live_rules) == (known_model().signals, None, {})


def test_facts_of_a_customer_not_known_or_archived_ask_for_nothing():
    batch = BatchFold(EMPTY)
    batch.add("interaction.logged", interaction(), hours(1), live=True)
    assert (batch.scored, batch.live_cause, batch.live_rules) == (None, None, {})
    assert batch.after.signals.last_contact_at == hours(1)
    archiving = BatchFold(known_model())
    archiving.add("interaction.logged", interaction(), hours(1), live=True)
    scored = archiving.scored
    archiving.add("customer.archived", {"customer_id": "c-1"}, hours(2), live=True)
    archiving.add("interaction.logged", interaction("i2", at=hours(3)), hours(3), live=True)
    assert archiving.scored == scored and archiving.live_cause == "interaction.logged"
    assert archiving.archived_now is True and archiving.rules_to_judge == frozenset()


# --- settings: ALERTS_* variables --------------------------------------------------------------------------

ALL_RULES = "silence, no_repurchase, interval_lengthening, unanswered_followups, open_complaint, low_satisfaction"
KNOWN = ("ALERTS_CONFIG, ALERTS_CONFIG_FILE, ALERTS_DISABLED_RULES, ALERTS_ESCALATE_AFTER_HOURS, "
         "ALERTS_HEALTH_BANDS, ALERTS_HEALTH_WEIGHTS, ALERTS_LIVE_WINDOW_HOURS, ALERTS_REALERT_COOLDOWN_DAYS, "
         "ALERTS_RECALL_DUE_HOURS, ALERTS_SILENCE_DAYS, ALERTS_SWEEP_BATCH_SIZE")


def test_no_variable_gives_the_defaults():
    assert AlertsSettings.from_settings({}) == AlertsSettings()
    assert AlertsSettings() == AlertsSettings({}, 5000, 48)
    assert overrides_from_environment({}) == {}
    assert AlertsSettings.from_settings({"ALERTS_SWEEP_BATCH_SIZE": "", "ALERTS_LIVE_WINDOW_HOURS": ""}) == (
        AlertsSettings())


def test_every_known_variable_is_read_and_others_of_other_prefixes_are_left_alone(tmp_path):
    path = tmp_path / "alerts.json"
    path.write_text('{"recall_due_hours": 6}')
    env = {"ALERTS_CONFIG_FILE": str(path), "ALERTS_CONFIG": '{"health": {"frequency_target": 6}}',
           "ALERTS_ESCALATE_AFTER_HOURS": "24", "ALERTS_RECALL_DUE_HOURS": "12", "ALERTS_REALERT_COOLDOWN_DAYS": "0",
           "ALERTS_SILENCE_DAYS": "A:14", "ALERTS_DISABLED_RULES": "open_complaint",
           "ALERTS_HEALTH_WEIGHTS": "recency:40", "ALERTS_HEALTH_BANDS": "watch:35",
           "ALERTS_SWEEP_BATCH_SIZE": " 250 ", "ALERTS_LIVE_WINDOW_HOURS": "0",
           "ALERTS_DATABASE_URL": "sqlite://", "ALERTS_HTTP_ADDRESS": "0.0.0.0:8000", "ALERTS_DB_PASSWORD": "x",
           "ALERTS_SERVICE_HOST": "10.0.0.1", "ALERTS_PORT_8000_TCP": "tcp://10.0.0.1:8000",
           "PATH": "/usr/bin", "REPORTS_X": "1"}
    settings = AlertsSettings.from_settings(env)
    assert settings == AlertsSettings(
        {"recall_due_hours": 12, "health": {"frequency_target": 6, "weights": {"recency": 40},
                                            "bands": {"watch": 35}},
         "escalate_after_hours": 24, "realert_cooldown_days": 0,
         "rules": {"silence": {"days_by_tier": {"A": 14}}, "open_complaint": {"enabled": False}}}, 250, 0)
    cfg = settings.config()
    assert (cfg.recall_due_hours, cfg.escalate_after_hours, cfg.realert_cooldown_days) == (12, 24, 0)
    assert (cfg.health.frequency_target, cfg.health.weights.recency, cfg.health.bands.watch) == (6, 40, 35)


def test_the_lowest_accepted_numbers():
    assert AlertsSettings.from_settings({"ALERTS_SWEEP_BATCH_SIZE": "1"}).sweep_batch_size == 1
    assert AlertsSettings.from_settings({"ALERTS_LIVE_WINDOW_HOURS": "0"}).live_window_hours == 0
    assert overrides_from_environment({"ALERTS_REALERT_COOLDOWN_DAYS": "0", "ALERTS_ESCALATE_AFTER_HOURS": "0",
                                       "ALERTS_RECALL_DUE_HOURS": "0"}) == {
        "realert_cooldown_days": 0, "escalate_after_hours": 0, "recall_due_hours": 0}


@pytest.mark.parametrize("env, reason, field", [
    ({"ALERTS_SWEEP_BATCH_SIZE": "many"}, "must be a whole number, got 'many'", "ALERTS_SWEEP_BATCH_SIZE"),
    ({"ALERTS_SWEEP_BATCH_SIZE": "0"}, "must be >= 1, got 0", "ALERTS_SWEEP_BATCH_SIZE"),
    ({"ALERTS_LIVE_WINDOW_HOURS": "-1"}, "must be >= 0, got -1", "ALERTS_LIVE_WINDOW_HOURS"),
    ({"ALERTS_LIVE_WINDOW_HOURS": "2.5"}, "must be a whole number, got '2.5'", "ALERTS_LIVE_WINDOW_HOURS"),
    ({"ALERTS_ESCALATE_AFTER_HOURS": "-1"}, "must be >= 0, got -1", "ALERTS_ESCALATE_AFTER_HOURS"),
    ({"ALERTS_RECALL_DUE_HOURS": "soon"}, "must be a whole number, got 'soon'", "ALERTS_RECALL_DUE_HOURS"),
    ({"ALERTS_REALERT_COOLDOWN_DAYS": "-2"}, "must be >= 0, got -2", "ALERTS_REALERT_COOLDOWN_DAYS"),
    ({"ALERTS_ESCALATE_AFTER_HOURS": "0"}, "must be a positive whole number (at most 100000), got 0",
     "ALERTS_* escalate_after_hours"),
    ({"ALERTS_SILENCE_DAYS": "A:0"}, "must be a positive whole number (at most 100000), got 0",
     "ALERTS_* rules.silence.days_by_tier.A"),
    ({"ALERTS_SILENCE_DAYS": "A:x"}, "'x' is not a number", "ALERTS_SILENCE_DAYS"),
    ({"ALERTS_SILENCE_DAYS": "A"}, "expected name:value pairs separated by commas, got 'A'", "ALERTS_SILENCE_DAYS"),
    ({"ALERTS_SILENCE_DAYS": "A:14, B: "}, "expected name:value pairs separated by commas, got 'B:'",
     "ALERTS_SILENCE_DAYS"),
    ({"ALERTS_SILENCE_DAYS": " :5"}, "expected name:value pairs separated by commas, got ':5'",
     "ALERTS_SILENCE_DAYS"),
    ({"ALERTS_SILENCE_DAYS": "A:1:2"}, "'1:2' is not a number", "ALERTS_SILENCE_DAYS"),
    ({"ALERTS_HEALTH_WEIGHTS": "recency:lots"}, "'lots' is not a number", "ALERTS_HEALTH_WEIGHTS"),
    ({"ALERTS_HEALTH_WEIGHTS": "recency"}, "expected name:value pairs separated by commas, got 'recency'",
     "ALERTS_HEALTH_WEIGHTS"),
    ({"ALERTS_HEALTH_WEIGHTS": "recency:0,frequency:0,monetary:0,engagement:0"},
     "at least one weight must be positive", "ALERTS_* health.weights"),
    ({"ALERTS_HEALTH_BANDS": "watch:lots"}, "'lots' is not a number", "ALERTS_HEALTH_BANDS"),
    ({"ALERTS_HEALTH_BANDS": "watch"}, "expected name:value pairs separated by commas, got 'watch'",
     "ALERTS_HEALTH_BANDS"),
    ({"ALERTS_HEALTH_BANDS": "watch:80"}, "must be below healthy (70), got 80", "ALERTS_* health.bands.watch"),
    ({"ALERTS_DISABLED_RULES": "silence,vibes"}, f"unknown rule 'vibes' (rules are {ALL_RULES})",
     "ALERTS_DISABLED_RULES"),
    ({"ALERTS_CONFIG": "{nope"},
     "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)", "ALERTS_CONFIG"),
    ({"ALERTS_CONFIG": "[1]"}, "must be a JSON object", "ALERTS_CONFIG"),
    ({"ALERTS_CONFIG": '{"rules": {"silense": {}}}'}, "unknown setting", "ALERTS_* rules.silense"),
    ({"ALERTS_SWEEP_BATCHSIZE": "5"}, f"unknown setting (known: {KNOWN})", "ALERTS_SWEEP_BATCHSIZE"),
    ({"ALERTS_ZZZ": "1", "ALERTS_AAA": "1", "ALERTS_CONFIG": "{}"}, f"unknown setting (known: {KNOWN})",
     "ALERTS_AAA"),
])
def test_each_bad_variable_is_refused_naming_it(env, reason, field):
    assert refusal(AlertsSettings.from_settings, env) == (reason, field)


def test_pairs_skip_blank_items_and_keep_whole_numbers_whole():
    env = {"ALERTS_SILENCE_DAYS": " A : 14 , ,B:20.0,", "ALERTS_HEALTH_WEIGHTS": "recency:2.5,,engagement:30",
           "ALERTS_HEALTH_BANDS": "healthy:80, watch:50"}
    assert overrides_from_environment(env) == {
        "rules": {"silence": {"days_by_tier": {"A": 14, "B": 20}}},
        "health": {"weights": {"recency": 2.5, "engagement": 30}, "bands": {"healthy": 80, "watch": 50}}}
    days = overrides_from_environment({"ALERTS_SILENCE_DAYS": "A:14"})["rules"]["silence"]["days_by_tier"]["A"]
    assert type(days) is int


def test_disabled_rules_skip_blank_items_and_join_the_silence_days():
    assert overrides_from_environment({"ALERTS_DISABLED_RULES": " silence, ,low_satisfaction,",
                                       "ALERTS_SILENCE_DAYS": "C:60"}) == {
        "rules": {"silence": {"days_by_tier": {"C": 60}, "enabled": False}, "low_satisfaction": {"enabled": False}}}


def test_the_short_variables_override_the_json_which_overrides_the_file(tmp_path):
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps({"escalate_after_hours": 6, "recall_due_hours": 6, "realert_cooldown_days": 7,
                                "rules": {"silence": {"days_by_tier": {"A": 10, "B": 11, "C": 50}}}}))
    env = {"ALERTS_CONFIG_FILE": str(path),
           "ALERTS_CONFIG": json.dumps({"recall_due_hours": 12, "rules": {"silence": {"days_by_tier": {"B": 22}}}}),
           "ALERTS_ESCALATE_AFTER_HOURS": "24", "ALERTS_SILENCE_DAYS": "A:14"}
    assert overrides_from_environment(env) == {"escalate_after_hours": 24, "recall_due_hours": 12,
                                               "realert_cooldown_days": 7,
                                               "rules": {"silence": {"days_by_tier": {"A": 14, "B": 22, "C": 50}}}}
    only_file = overrides_from_environment({"ALERTS_CONFIG_FILE": str(path), "ALERTS_RECALL_DUE_HOURS": "3"})
    assert only_file == {"escalate_after_hours": 6, "recall_due_hours": 3, "realert_cooldown_days": 7,
                         "rules": {"silence": {"days_by_tier": {"A": 10, "B": 11, "C": 50}}}}


@pytest.mark.parametrize("name", ["alerts.yaml", "alerts.yml"])
def test_a_yaml_config_file_is_read_as_yaml(tmp_path, name):
    path = tmp_path / name
    path.write_text("rules:\n  silence:\n    enabled: false\nrecall_due_hours: 8\n")
    assert overrides_from_environment({"ALERTS_CONFIG_FILE": str(path)}) == {
        "rules": {"silence": {"enabled": False}}, "recall_due_hours": 8}


@pytest.mark.parametrize("name", ["alerts.yaml", "alerts.json"])
def test_an_empty_config_file_overrides_nothing(tmp_path, name):
    path = tmp_path / name
    path.write_text("")
    assert overrides_from_environment({"ALERTS_CONFIG_FILE": str(path)}) == {}


def test_a_config_file_that_cannot_be_read_parsed_or_is_no_mapping_is_refused_naming_the_variable(tmp_path):
    missing = tmp_path / "missing.json"
    assert refusal(overrides_from_environment, {"ALERTS_CONFIG_FILE": str(missing)}) == (
        f"cannot read {missing}: No such file or directory", "ALERTS_CONFIG_FILE")
    broken = tmp_path / "broken.json"
    broken.write_text("[1")
    assert refusal(overrides_from_environment, {"ALERTS_CONFIG_FILE": str(broken)}) == (
        f"cannot parse {broken}: Expecting ',' delimiter: line 1 column 3 (char 2)", "ALERTS_CONFIG_FILE")
    listed = tmp_path / "listed.yaml"
    listed.write_text("- 1\n- 2\n")
    assert refusal(overrides_from_environment, {"ALERTS_CONFIG_FILE": str(listed)}) == (
        f"{listed} must hold a mapping", "ALERTS_CONFIG_FILE")


def test_runtime_overrides_merge_over_the_environment_ones_key_by_key():
    settings = AlertsSettings(config_overrides={"escalate_after_hours": 24,
                                                "rules": {"silence": {"days_by_tier": {"A": 14}}}})
    cfg = settings.config({"rules": {"silence": {"days_by_tier": {"B": 20}}}})
    assert cfg.escalate_after_hours == 24 and cfg.rules.silence.days_by_tier == {"A": 14, "B": 20, "C": 45}
    assert settings.config() == AlertsConfig.from_dict({"escalate_after_hours": 24,
                                                        "rules": {"silence": {"days_by_tier": {"A": 14}}}})
    assert refusal(settings.config, {"health": {"bands": {"watch": 90}}}) == (
        "must be below healthy (70), got 90", "health.bands.watch")
    assert refusal(AlertsSettings, config_overrides={"rules": {"silense": {}}}) == (
        "unknown setting", "rules.silense")


# --- judgement: judge and next_check -------------------------------------------------------------------
# AS_OF is day D (a Tuesday, 09:30 UTC); at(n) is D+n at 09:30, midnight(n) the start of D+n (what next_check
# names). Default config unless said: silence A 21 / B 30 / none 45 days, no_repurchase 1.5 x the usual interval
# (90 days without a cycle), complaints open 7 days, missed tasks counted 30 days, bands 70 / 40, cooldown 14 days.

AS_OF = datetime(2026, 6, 30, 9, 30, tzinfo=UTC)
CFG = AlertsConfig()


def at(days: float) -> datetime:
    return AS_OF + timedelta(days=days)


def midnight(days: int) -> datetime:
    return datetime.combine(AS_OF.date() + timedelta(days=days), time(0), tzinfo=UTC)


def customer(tier="B", created=-400, contact=None, purchases=(), missed=(), **interaction):
    """A customer created `created` days from AS_OF (None: no creation time), contacted (reached) at day
    `contact`, with purchases [(day, amount)] and tasks missed on the given days."""
    s = apply_profile(CustomerSignals("c-1"), tier=tier, lifecycle="active",
                      created_at=None if created is None else at(created))
    for n, (day, amount) in enumerate(purchases):
        s = apply_purchase(s, f"p{n}", at(day), Decimal(amount))
    if contact is not None:
        s = apply_interaction(s, "i-contact", at(contact), "reached")
    if interaction:
        s = apply_interaction(s, "i-other", at(interaction.pop("day")), **interaction)
    for n, day in enumerate(missed):
        s = apply_task_missed(s, f"t{n}", at(day))
    return s


def next_check_at(s, cfg=CFG, resolved=None):
    return judge(s, AS_OF, cfg, resolved_at_by_rule=resolved, schedule=True).next_check_at


# bought once 100 days ago, last reached 40 days ago: silence (40 >= 30) and no_repurchase (100 > 90) fire
QUIET = dict(contact=-40, purchases=[(-100, "5000")])
SILENCE = FiredRule("silence", (Signal("days_since_contact", 40, 30,
                                       "no contact for 40 days since last contact; tier B limit is 30"),))
NO_REPURCHASE = FiredRule("no_repurchase", (Signal("days_since_purchase", 100, 90,
                                                   "100 days since last purchase; limit 90 (no purchase cycle yet)"),))


def test_judge_scores_fires_and_raises_and_names_no_next_check_unless_asked():
    verdict = judge(customer(**QUIET), AS_OF, CFG)
    # recency 1 - (100/90 - 1) / 2, frequency 1/4, monetary 0.5 x 5000/20000, engagement 1 - 0.3 (silence full):
    # (30 x 0.9444 + 20 x 0.25 + 20 x 0.125 + 30 x 0.7) / 100 = 0.5683 -> 57, watch
    assert verdict.breakdown == HealthBreakdown(57, 0.9444, 0.25, 0.125, 0.7)
    assert (verdict.band, verdict.fired, verdict.to_raise, verdict.next_check_at) == (
        "watch", [SILENCE, NO_REPURCHASE], [SILENCE, NO_REPURCHASE], None)


def test_judge_reads_the_health_settings_rules_and_bands_it_is_given():
    cfg = AlertsConfig.from_dict({"rules": {"silence": {"days_by_tier": {"B": 80}}},
                                  "health": {"weights": {"recency": 0, "frequency": 0, "monetary": 0,
                                                         "engagement": 100},
                                             "bands": {"healthy": 90, "watch": 60}}})
    verdict = judge(customer(**QUIET), AS_OF, cfg)
    # engagement 1 - 0.3 x 40/80 = 0.85, the only weight: 85, watch under 90/60 (healthy under the defaults)
    assert verdict.breakdown == HealthBreakdown(85, 0.9444, 0.25, 0.125, 0.85)
    assert (verdict.band, verdict.fired, verdict.to_raise) == ("watch", [NO_REPURCHASE], [NO_REPURCHASE])


def test_judge_holds_back_open_rules_and_rules_resolved_within_the_cooldown():
    s = customer(**QUIET)
    held = judge(s, AS_OF, CFG, open_rules=["silence"], resolved_at_by_rule={"no_repurchase": at(-13)})
    assert (held.fired, held.to_raise) == ([SILENCE, NO_REPURCHASE], [])
    ended = judge(s, AS_OF, CFG, open_rules=["silence"], resolved_at_by_rule={"no_repurchase": at(-14)})
    assert ended.to_raise == [NO_REPURCHASE]


def test_judge_evaluates_only_the_rules_asked_for_and_none_for_an_empty_set():
    s = customer(**QUIET)
    assert judge(s, AS_OF, CFG, only=frozenset({"no_repurchase"})).fired == [NO_REPURCHASE]
    nothing = judge(s, AS_OF, CFG, only=frozenset())
    assert (nothing.fired, nothing.to_raise, nothing.breakdown.score) == ([], [], 57)


def test_a_customer_with_nothing_to_wait_for_is_due_at_the_safety_net():
    assert next_check_at(CustomerSignals("c-1")) == midnight(90)
    assert RECHECK_AT_LEAST_EVERY == timedelta(days=90)


@pytest.mark.parametrize("facts, due", [
    (dict(purchases=[(7, "100")]), 7),                                        # a purchase dated D+7
    (dict(purchases=[(7, "100")], day=3, outcome="no_answer", satisfaction=4), 3),   # a score given on D+3
    (dict(purchases=[(7, "100")], missed=[5]), 5),                            # a task missed on D+5
    (dict(contact=2), 2),                                                     # a contact dated D+2
])
def test_a_fact_dated_later_makes_the_customer_due_on_its_day(facts, due):
    assert next_check_at(customer(**facts)) == midnight(due)


@pytest.mark.parametrize("tier, due", [("A", 11), ("B", 20), (None, 35)])
def test_a_quiet_customer_is_due_when_days_without_contact_reach_the_tiers_limit(tier, due):
    assert next_check_at(customer(tier=tier, contact=-10)) == midnight(due)   # at risk: no slide
    assert next_check_at(customer(tier=tier, created=-10)) == midnight(due)   # never contacted: from creation


def test_a_contact_today_counts_from_today():
    assert next_check_at(customer(contact=-AS_OF.hour / 48)) == midnight(30)


def test_a_complaint_is_due_the_day_it_has_been_open_longer_than_allowed():
    s = customer(day=-3, outcome="open", kind="complaint")                   # open 8 days (> 7) on D+5
    assert next_check_at(s) == midnight(5)


def test_a_missed_task_is_due_the_day_it_leaves_its_window():
    assert next_check_at(customer(contact=-1, missed=[-20])) == midnight(10)


def test_a_regular_buyer_is_due_the_day_after_no_repurchase_s_limit():
    # every 30 days, last 40 days ago: limit 45, fires on day 46 = D+6 (the slide below would take 15 days)
    s = customer(contact=-1, purchases=[(-100, "10000"), (-70, "10000"), (-40, "10000")])
    assert next_check_at(s) == midnight(6)


@pytest.mark.parametrize("created", [-400, None])
def test_a_steady_customer_whose_score_cannot_slide_is_due_when_recency_starts_to_fall(created):
    # every 30 days, last 10 days ago, silence already full (or never known): recency falls after day 30 + 1
    s = customer(created=created, purchases=[(-70, "40000"), (-40, "40000"), (-10, "40000")])
    assert judge(s, AS_OF, CFG).band == "healthy"
    assert next_check_at(s) == midnight(21)


def test_a_purchase_leaving_the_12_month_window_makes_the_customer_due_that_day():
    # bought 365 days ago (already outside) and 364 days ago (the oldest inside, leaving tomorrow)
    assert next_check_at(customer(purchases=[(-365, "100"), (-364, "100")])) == midnight(1)


def test_a_score_sliding_by_silence_is_due_before_it_can_leave_its_band():
    # recency 1, frequency 3/4, monetary 0.5 x 1000/20000, engagement 1 - 0.3/30: 75.2, healthy; silence takes
    # 0.3 x 30/100 / 30 = 0.003 a day: (75.2 + 0.5 - 70) / 100 / 0.003 = 19 days
    s = customer(contact=-1, purchases=[(-70, "300"), (-40, "300"), (-10, "400")])
    assert judge(s, AS_OF, CFG).breakdown.score == 75
    assert next_check_at(s) == midnight(19)


@pytest.mark.parametrize("contact", [None, -30])
def test_a_score_sliding_by_recency_alone_at_exactly_healthy_is_due_in_two_days(contact):
    # one purchase 100 days ago (reference 90): recency 0.9444 falling 1/180 a day, frequency 1/4, monetary
    # 0.5 + 0.5 x 44000/80000 = 0.775, engagement 0.7 (silence full, and at exactly 30 days it grows no more):
    # 69.83 -> 70, healthy; 30 x (1/180) / 100 a day, (69.83 + 0.5 - 70) / 100 / that = 2 days
    s = customer(contact=contact, purchases=[(-100, "64000")])
    assert (judge(s, AS_OF, CFG).breakdown.score, judge(s, AS_OF, CFG).band) == (70, "healthy")
    assert next_check_at(s) == midnight(2)


def test_a_score_at_exactly_watch_sliding_is_due_tomorrow():
    # one purchase 200 days ago: recency 1 - (200/90 - 1) / 2 = 0.3889, monetary 0.5 x 4000/20000 = 0.1:
    # 39.67 -> 40, watch; (39.67 + 0.5 - 40) / 100 / (30/180/100) = 1 day
    s = customer(purchases=[(-200, "4000")])
    assert (judge(s, AS_OF, CFG).breakdown.score, judge(s, AS_OF, CFG).band) == (40, "watch")
    assert next_check_at(s) == midnight(1)


def test_a_watch_score_sliding_is_due_before_it_reaches_at_risk():
    # as above with 10370: 42.85 -> 43, watch; (42.85 + 0.5 - 40) / 100 / (30/180/100) = 20.11, so day 21
    s = customer(purchases=[(-200, "10370")])
    assert (judge(s, AS_OF, CFG).breakdown.score, judge(s, AS_OF, CFG).band) == (43, "watch")
    assert next_check_at(s) == midnight(21)


def test_recency_at_zero_slides_no_further():
    # one purchase 270 days ago: recency reached 0 today (3 reference gaps); 41, watch, nothing slides
    s = customer(purchases=[(-270, "60000")])
    assert (judge(s, AS_OF, CFG).breakdown.score, judge(s, AS_OF, CFG).band) == (41, "watch")
    assert next_check_at(s) == midnight(90)


def test_a_customer_never_bought_from_slides_by_silence_only():
    # recency weighs 1 of 100 and is 0 for want of a purchase: 99, healthy; silence takes 99 x 0.3/30 / 100 a
    # day: (99 + 0.5 - 70) / 100 / 0.0099 = 29.8, so day 30, the day silence fires anyway
    cfg = AlertsConfig.from_dict({"health": {"weights": {"recency": 1, "frequency": 0, "monetary": 0,
                                                         "engagement": 99}}})
    s = customer(contact=-AS_OF.hour / 48)
    assert judge(s, AS_OF, cfg).breakdown.score == 99
    assert next_check_at(s, cfg) == midnight(30)
    quiet = customer(contact=-1)                                  # slide 29.5 / 0.99 -> 29.8 days, silence on D+29
    assert next_check_at(quiet, cfg) == midnight(29)


def test_a_rule_resolved_within_the_cooldown_is_due_when_the_cooldown_ends_if_that_comes_first():
    s = customer(contact=-10)                                     # silence due on D+20
    assert next_check_at(s, resolved={"silence": at(-10)}) == at(4)
    assert next_check_at(s, resolved={"silence": at(-3), "no_repurchase": at(-10)}) == at(4)
    assert next_check_at(s, resolved={"silence": at(-14)}) == midnight(20)     # the cooldown ends right now
    assert next_check_at(s, resolved={"silence": at(10)}) == midnight(20)      # ends after D+20
    assert next_check_at(s, resolved={}) == midnight(20)
