"""Alert lifecycle rules pinned where mutation testing (bench/mutation.py, docs/testing.md) found mutants the
other unit tests let live: each refusal's reason and field, the exact alert a transition leaves, the time
bounds (a transition at the raise moment is allowed), and the exact commands a raise or a resolution yields."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.alerts.domain import (
    ACKNOWLEDGED, ESCALATED, RESOLVED, Alert, ClearAtRisk, DomainError, FiredRule, FlagAtRisk, RequestRecallTask,
    Signal, acknowledge, alerts_to_raise, commands_on_raise, commands_on_resolve, escalate, raise_alert, resolve,
)

T = datetime(2026, 6, 30, 9, tzinfo=timezone.utc)
NAIVE = datetime(2026, 6, 30, 9)
SIGNALS = (Signal("days_silent", 40, 30, "40 days without contact"), Signal("score", 35, 40, ""))
FIRED = FiredRule("silence", SIGNALS)


def alert(**changes):
    base = dict(alert_id="al-1", customer_id="c-1", rule="silence", signals=SIGNALS, raised_at=T,
                owner_id="rep-1", team="north")
    base.update(changes)
    return Alert(**base)


def refusal(call, *args, **kwargs):
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)
    return caught.value.reason, caught.value.field


def test_a_raised_alert_carries_the_rule_signals_owner_and_team():
    assert raise_alert("al-1", "c-1", FIRED, T, owner_id="rep-1", team="north") == alert()
    assert refusal(raise_alert, "al-1", "c-1", FiredRule("silence", ()), T) == (
        "an alert needs at least one signal", "signals")
    assert refusal(raise_alert, "al-1", "c-1", FIRED, NAIVE) == ("must be a timezone-aware datetime", "raised_at")


def test_acknowledge_at_the_raise_moment_is_allowed_before_it_is_not():
    assert acknowledge(alert(), "rep-1", T) == alert(status=ACKNOWLEDGED, acknowledged_at=T, acknowledged_by="rep-1")
    assert acknowledge(alert(status=ESCALATED), "m", T).status == ACKNOWLEDGED
    assert refusal(acknowledge, alert(), "rep-1", T - timedelta(seconds=1)) == (
        "cannot be before the alert was raised (2026-06-30T09:00:00+00:00)", "acknowledged_at")
    assert refusal(acknowledge, alert(), "rep-1", NAIVE) == ("must be a timezone-aware datetime", "acknowledged_at")
    assert refusal(acknowledge, alert(status=ACKNOWLEDGED), "rep-1", T) == (
        "cannot acknowledge an alert that is acknowledged", "status")


def test_escalation_is_due_48_hours_after_the_raise_and_only_for_an_open_alert():
    at = T + timedelta(hours=48)
    assert escalate(alert(), at, to="m") == alert(status=ESCALATED, escalated_at=at, escalated_to="m")
    assert refusal(escalate, alert(), at - timedelta(seconds=1)) == (
        "not due before 2026-07-02T09:00:00+00:00", "escalated_at")
    assert refusal(escalate, alert(status=ACKNOWLEDGED), at) == ("cannot escalate an alert that is acknowledged",
                                                                 "status")


def test_resolution_records_outcome_by_and_time():
    assert resolve(alert(), "recovered", "rep-1", T) == alert(status=RESOLVED, outcome="recovered",
                                                              resolved_by="rep-1", resolved_at=T)
    assert refusal(resolve, alert(status=RESOLVED), "lost", "rep-1", T) == ("the alert is already resolved", "status")
    assert refusal(resolve, alert(), "won", "rep-1", T) == (
        "must be one of recovered, lost, false_alarm, got 'won'", "outcome")
    assert refusal(resolve, alert(), "lost", "rep-1", T - timedelta(days=1)) == (
        "cannot be before the alert was raised (2026-06-30T09:00:00+00:00)", "resolved_at")


def test_the_re_alert_cooldown_needs_as_of_and_ends_exactly_at_its_end():
    fired = [FIRED, FiredRule("no_repurchase", SIGNALS)]
    resolved = {"silence": T - timedelta(days=7)}
    assert refusal(alerts_to_raise, fired, [], resolved_at_by_rule=resolved, cooldown=timedelta(days=7)) == (
        "is needed to apply the re-alert cooldown", "as_of")
    assert alerts_to_raise(fired, [], resolved_at_by_rule=resolved, as_of=T, cooldown=timedelta(days=7)) == fired
    assert alerts_to_raise(fired, [], resolved_at_by_rule=resolved, as_of=T - timedelta(seconds=1),
                           cooldown=timedelta(days=7)) == fired[1:]
    assert alerts_to_raise(fired, ["no_repurchase"], resolved_at_by_rule=resolved, as_of=T) == [FIRED]


def test_a_raise_asks_for_a_recall_a_day_later_naming_the_details_and_flags_where_news():
    recall = RequestRecallTask("c-1", "al-1", "silence", "rep-1", "north", T + timedelta(hours=24),
                               "Churn alert (silence): 40 days without contact")
    assert commands_on_raise(alert(), "active") == [recall, FlagAtRisk("c-1", "al-1")]
    assert commands_on_raise(alert(), "at_risk") == [recall]
    assert commands_on_raise(alert(), "dormant") == []
    assert commands_on_raise(alert(), None) == [recall, FlagAtRisk("c-1", "al-1")]
    bare = alert(signals=(Signal("score", 35, 40),))
    assert commands_on_raise(bare, "at_risk", recall_due_in=timedelta(hours=2))[0].purpose == "Churn alert (silence)"
    assert commands_on_raise(bare, "at_risk", recall_due_in=timedelta(hours=2))[0].due_at == T + timedelta(hours=2)


def test_a_resolution_lifts_the_flag_only_when_recovered_or_false_alarm_and_no_other_alert_holds_it():
    assert commands_on_resolve(alert(status=RESOLVED, outcome="recovered")) == [
        ClearAtRisk("c-1", "al-1", reason="alert_recovered")]
    assert commands_on_resolve(alert(status=RESOLVED, outcome="false_alarm")) == [
        ClearAtRisk("c-1", "al-1", reason="alert_false_alarm")]
    assert commands_on_resolve(alert(status=RESOLVED, outcome="recovered"), other_open_alerts=1) == []
    assert commands_on_resolve(alert(status=RESOLVED, outcome="lost")) == []
    assert refusal(commands_on_resolve, alert()) == ("only a resolved alert has resolution effects", "status")


# --- settings: every bad value names its dotted field and says what it wanted --------------------------------

from services.alerts.domain import AlertsConfig, SilenceRule  # noqa: E402

WHOLE = "must be a positive whole number (at most 100000), got"

CONFIG_REFUSALS = [
    ({"rules": {"silence": {"enabled": "yes"}}}, "must be true or false, got 'yes'", "rules.silence.enabled"),
    ({"rules": {"silence": {"days_by_tier": {"A": 0}}}}, f"{WHOLE} 0", "rules.silence.days_by_tier.A"),
    ({"rules": {"silence": {"days_by_tier": {"D": 3}}}}, "unknown tier 'D' (tiers are A, B, C)",
     "rules.silence.days_by_tier"),
    ({"rules": {"silence": {"days_by_tier": "x"}}}, "must be a mapping", "rules.silence.days_by_tier"),
    ({"rules": {"no_repurchase": {"factor": 0.99}}}, "must be >= 1 and <= 10, got 0.99", "rules.no_repurchase.factor"),
    ({"rules": {"no_repurchase": {"factor": 10.5}}}, "must be >= 1 and <= 10, got 10.5", "rules.no_repurchase.factor"),
    ({"rules": {"no_repurchase": {"factor": True}}}, "must be a number, got True", "rules.no_repurchase.factor"),
    ({"rules": {"no_repurchase": {"no_cycle_days": 0}}}, f"{WHOLE} 0", "rules.no_repurchase.no_cycle_days"),
    ({"rules": {"no_repurchase": {"min_days": 0}}}, f"{WHOLE} 0", "rules.no_repurchase.min_days"),
    ({"rules": {"interval_lengthening": {"factor": 1.0}}}, "must be > 1 and <= 10, got 1.0",
     "rules.interval_lengthening.factor"),
    ({"rules": {"interval_lengthening": {"recent_gaps": 0}}}, f"{WHOLE} 0", "rules.interval_lengthening.recent_gaps"),
    ({"rules": {"interval_lengthening": {"min_earlier_gaps": 0}}}, f"{WHOLE} 0",
     "rules.interval_lengthening.min_earlier_gaps"),
    ({"rules": {"unanswered_followups": {"min_in_row": 1}}}, "must be a whole number >= 2 (at most 100000), got 1",
     "rules.unanswered_followups.min_in_row"),
    ({"rules": {"low_satisfaction": {"below": 6}}}, "must be a score between 2 and 5, got 6",
     "rules.low_satisfaction.below"),
    ({"rules": {"low_satisfaction": {"below": 1}}}, "must be a score between 2 and 5 (at most 100000), got 1",
     "rules.low_satisfaction.below"),
    ({"rules": {"low_satisfaction": {"window": 0}}}, f"{WHOLE} 0", "rules.low_satisfaction.window"),
    ({"rules": {"low_satisfaction": {"min_drop": 0}}}, "must be > 0 and <= 4, got 0",
     "rules.low_satisfaction.min_drop"),
    ({"rules": {"low_satisfaction": {"min_drop": 4.5}}}, "must be > 0 and <= 4, got 4.5",
     "rules.low_satisfaction.min_drop"),
    ({"health": {"weights": {"recency": 0, "frequency": 0, "monetary": 0, "engagement": 0}}},
     "at least one weight must be positive", "health.weights"),
    ({"health": {"weights": {"recency": -1}}}, "must be >= 0, got -1", "health.weights.recency"),
    ({"health": {"penalties": {"per_unanswered": 1.5}}}, "must be >= 0 and <= 1, got 1.5",
     "health.penalties.per_unanswered"),
    ({"health": {"bands": {"healthy": 101}}}, "must be a score between 1 and 100, got 101", "health.bands.healthy"),
    ({"health": {"bands": {"healthy": 0}}}, "must be a score between 1 and 100 (at most 100000), got 0",
     "health.bands.healthy"),
    ({"health": {"bands": {"watch": 0}}}, "must be a score between 1 and 100 (at most 100000), got 0",
     "health.bands.watch"),
    ({"health": {"bands": {"watch": 70}}}, "must be below healthy (70), got 70", "health.bands.watch"),
    ({"health": {"monetary_thresholds": {"C": 5}}}, "needs exactly the tiers A and B", "health.monetary_thresholds"),
    ({"health": {"monetary_thresholds": {"B": 100000}}}, "A must be above B", "health.monetary_thresholds.A"),
    ({"health": {"monetary_thresholds": {"A": "lots"}}}, "must be a positive amount (at most 10^15), got 'lots'",
     "health.monetary_thresholds.A"),
    ({"health": {"monetary_thresholds": {"B": 0}}}, "must be a positive amount (at most 10^15), got 0",
     "health.monetary_thresholds.B"),
    ({"health": {"monetary_thresholds": {"A": 10 ** 15 + 1}}},
     "must be a positive amount (at most 10^15), got 1000000000000001", "health.monetary_thresholds.A"),
    ({"health": {"monetary_thresholds": {"B": True}}}, "must be a positive amount (at most 10^15), got True",
     "health.monetary_thresholds.B"),
    ({"health": {"recency_zero_ratio": 1.0}}, "must be > 1, got 1.0", "health.recency_zero_ratio"),
    ({"health": {"frequency_target": 0}}, f"{WHOLE} 0", "health.frequency_target"),
    ({"health": {"recency_no_cycle_days": 0}}, f"{WHOLE} 0", "health.recency_no_cycle_days"),
    ({"health": {"recency_floor_days": 0}}, f"{WHOLE} 0", "health.recency_floor_days"),
    ({"health": {"missed_task_window_days": 0}}, f"{WHOLE} 0", "health.missed_task_window_days"),
    ({"escalate_after_hours": 0}, f"{WHOLE} 0", "escalate_after_hours"),
    ({"recall_due_hours": 100_001}, f"{WHOLE} 100001", "recall_due_hours"),
    ({"realert_cooldown_days": -1}, "must be a whole number >= 0 (at most 100000), got -1", "realert_cooldown_days"),
    ({"rules": {"silense": {}}}, "unknown setting", "rules.silense"),
    ({"rules": 3}, "must be a mapping", "rules"),
    ("x", "must be a mapping", "AlertsConfig"),
]


@pytest.mark.parametrize("data,reason,field", CONFIG_REFUSALS)
def test_each_bad_setting_is_refused_naming_its_dotted_field(data, reason, field):
    assert refusal(AlertsConfig.from_dict, data) == (reason, field)


def test_the_bounds_themselves_are_accepted():
    config = AlertsConfig.from_dict({
        "rules": {"no_repurchase": {"factor": 10}, "interval_lengthening": {"factor": 1.01},
                  "unanswered_followups": {"min_in_row": 2}, "low_satisfaction": {"below": 5, "min_drop": 4}},
        "health": {"bands": {"healthy": 100, "watch": 99}, "weights": {"recency": 0},
                   "monetary_thresholds": {"A": 10 ** 15}, "recency_zero_ratio": 1.01},
        "realert_cooldown_days": 0, "escalate_after_hours": 100_000})
    assert (config.rules.no_repurchase.factor, config.rules.low_satisfaction.below, config.health.bands.healthy,
            config.health.monetary_thresholds["A"], config.realert_cooldown_days) == (10.0, 5, 100, 10 ** 15, 0)


def test_config_durations_are_in_hours_and_days():
    config = AlertsConfig(escalate_after_hours=5, recall_due_hours=6, realert_cooldown_days=7)
    assert (config.escalate_after, config.recall_due_in, config.realert_cooldown) == (
        timedelta(hours=5), timedelta(hours=6), timedelta(days=7))


def test_an_untiered_customer_gets_the_most_lenient_silence_limit():
    assert SilenceRule().days_for(None) == 45 and SilenceRule().days_for("A") == 21


# --- health sub-scores through their public wrappers -------------------------------------------------------------

from decimal import Decimal  # noqa: E402

from services.alerts.domain import (  # noqa: E402
    BandChange, CustomerSignals, HealthConfig, HealthWeights, RulesConfig, apply_purchase, band_change,
    engagement_score, frequency_score, health_score, monetary_score, recency_score,
)


def test_a_customer_with_no_history_scores_21_silence_costing_engagement_its_full_0_3():
    s = CustomerSignals("c1")
    cfg, rules = HealthConfig(), RulesConfig()
    assert (recency_score(s, T, cfg), frequency_score(s, T, cfg), monetary_score(s, T, cfg)) == (0.0, 0.0, 0.0)
    assert engagement_score(s, T, cfg, rules) == pytest.approx(0.7)
    assert health_score(s, T) == 21  # (30 x 0 + 20 x 0 + 20 x 0 + 30 x 0.7) / 100
    only_engagement = HealthConfig(weights=HealthWeights(recency=0, frequency=0, monetary=0, engagement=1))
    assert health_score(s, T, only_engagement, rules) == 70


def test_one_recent_purchase_at_the_b_threshold_scores_full_recency_a_quarter_frequency_half_monetary():
    s = apply_purchase(CustomerSignals("c1"), "p1", T - timedelta(days=10), Decimal(20000))
    cfg = HealthConfig()
    assert (recency_score(s, T, cfg), frequency_score(s, T, cfg), monetary_score(s, T, cfg)) == (1.0, 0.25, 0.5)


def test_a_band_change_is_reported_only_when_the_band_moves_and_always_for_a_first_score():
    assert band_change(None, 80) == BandChange(None, "healthy")
    assert band_change(75, 80) is None
    assert band_change(80, 50) == BandChange("healthy", "watch")


# --- common helpers --------------------------------------------------------------------------------------------

from services.alerts.domain import days_between  # noqa: E402
from services.alerts.domain.common import require_aware  # noqa: E402
from services.alerts.domain.rules import _num  # noqa: E402


def test_a_domain_error_reads_field_colon_reason_or_the_reason_alone():
    assert (str(DomainError("must be a mapping", "rules")), str(DomainError("at least one weight must be positive"))) \
        == ("rules: must be a mapping", "at least one weight must be positive")
    assert DomainError("x", "f").reason == "x"


def test_require_aware_refuses_a_naive_moment_naming_it():
    assert refusal(require_aware, NAIVE, "raised_at") == ("must be a timezone-aware datetime", "raised_at")


def test_the_same_day_is_zero_days_and_a_later_fact_too():
    assert days_between(T, T + timedelta(hours=5)) == 0
    assert days_between(T + timedelta(days=3), T) == 0
    assert days_between(T - timedelta(days=2), T) == 2


def test_signal_numbers_are_whole_when_whole_else_rounded_to_two_places():
    assert (_num(3.0), _num(2.345678), _num(7)) == (3, 2.35, 7)
    assert isinstance(_num(3.0), int)


# --- second pass: what the first re-run still let live --------------------------------------------------------

class NoOffset(timezone.__base__):
    """A tzinfo whose utcoffset() is None: tzinfo is set, yet the moment is not aware."""
    def utcoffset(self, dt):
        return None


def test_a_tzinfo_without_an_offset_is_not_aware():
    assert refusal(require_aware, datetime(2026, 6, 30, tzinfo=NoOffset()), "at") == (
        "must be a timezone-aware datetime", "at")


def test_escalation_uses_the_delay_it_is_given():
    assert escalate(alert(), T + timedelta(hours=2), escalate_after=timedelta(hours=1)).status == ESCALATED


def test_resolution_times_without_a_cooldown_block_nothing_and_need_no_as_of():
    assert alerts_to_raise([FIRED], [], resolved_at_by_rule={"silence": T}) == [FIRED]


def test_the_cooldown_adds_to_the_open_rules_it_does_not_replace_them():
    fired = [FIRED, FiredRule("no_repurchase", SIGNALS)]
    assert alerts_to_raise(fired, ["no_repurchase"], resolved_at_by_rule={"silence": T - timedelta(days=1)},
                           as_of=T, cooldown=timedelta(days=7)) == []


def test_the_recall_purpose_joins_the_signal_details_with_semicolons():
    two = alert(signals=(Signal("a", 1, 0, "first"), Signal("b", 1, 0, "second")))
    assert commands_on_raise(two, "at_risk")[0].purpose == "Churn alert (silence): first; second"


# --- third pass: config, health, rules and signals (docs/testing.md, results of 2026-12-04) ---------------------

import json  # noqa: E402
from dataclasses import replace  # noqa: E402

from crm_common.contracts.customers import CustomerCreated, CustomerUpdated  # noqa: E402
from services.alerts.domain import (  # noqa: E402
    RULE_NAMES, BandThresholds, HealthBreakdown, Known, apply_event, apply_interaction, apply_profile,
    apply_task_missed, config_to_dict, days_since_last_contact, evaluate, health_breakdown, interval_trend,
    merge_settings, missed_tasks_within, open_complaint_ages, purchase_gaps, rolling_12m, satisfaction_drop, score_of,
    scores_until, signals_from_dict, signals_to_dict,
)
from tests.unit.alerts.test_domain import customer, day, fired, scored, touch, with_purchases  # noqa: E402


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_every_rule_names_its_own_enabled_flag(rule):
    assert refusal(RulesConfig.from_dict, {rule: {"enabled": 1}}) == ("must be true or false, got 1", f"{rule}.enabled")


def test_the_lowest_accepted_values():
    config = AlertsConfig.from_dict({"rules": {"low_satisfaction": {"below": 2}},
                                     "health": {"monetary_thresholds": {"B": 1}}, "recall_due_hours": 1})
    assert (config.rules.low_satisfaction.below, config.health.monetary_thresholds["B"], config.recall_due_hours) == (
        2, 1, 1)


def test_health_settings_read_alone_name_fields_from_their_own_root():
    assert refusal(HealthConfig.from_dict, {"frequency_target": 0}) == (f"{WHOLE} 0", "frequency_target")


def test_the_stored_config_is_json_with_whole_numbers_as_ints_and_reads_back_equal():
    config = AlertsConfig.from_dict({"health": {"monetary_thresholds": {"B": "20000.5"}},
                                     "rules": {"no_repurchase": {"factor": 2}}})
    data = config_to_dict(config)
    assert json.dumps([data["health"]["monetary_thresholds"], data["rules"]["no_repurchase"]]) == (
        '[{"A": 100000, "B": 20000.5}, {"enabled": true, "factor": 2, "no_cycle_days": 90, "min_days": 14}]')
    assert AlertsConfig.from_dict(data) == config


def test_settings_merge_key_by_key_and_a_value_replaces_what_it_overrides():
    base = {"rules": {"silence": {"enabled": False}, "open_complaint": {"max_open_days": 3}}, "recall_due_hours": 2}
    override = {"rules": {"silence": {"days_by_tier": {"A": 5}}}, "recall_due_hours": {"x": 1},
                "escalate_after_hours": 6}
    assert merge_settings(base, override) == {
        "rules": {"silence": {"enabled": False, "days_by_tier": {"A": 5}}, "open_complaint": {"max_open_days": 3}},
        "recall_due_hours": {"x": 1}, "escalate_after_hours": 6}
    assert merge_settings(None, {"a": 1}) == {"a": 1} and merge_settings({"a": 1}, None) == {"a": 1}


def test_monetary_thresholds_given_as_text_are_read_as_amounts():
    thresholds = HealthConfig.from_dict({"monetary_thresholds": {"A": "250000.50"}}).monetary_thresholds
    assert thresholds == {"A": Decimal("250000.50"), "B": Decimal("20000")}


def every_warning_sign() -> CustomerSignals:
    """Tier A: a complaint open, scores 5 5 5 4 4 2 (the last on day 6), a task missed on day 8, no answer on day 9."""
    s = touch(customer(tier="A"), 0, "open", iid="k1", kind="complaint")
    for n, score in enumerate((5, 5, 5, 4, 4, 2), start=1):
        s = touch(s, n, satisfaction=score)
    return touch(apply_task_missed(s, "t1", day(8)), 9, "no_answer")


@pytest.mark.parametrize("history, as_of, engagement", [
    (touch(customer(), 0), day(15), 0.85),               # half the tier B silence limit: half of 0.3
    (touch(customer(), 0), day(90), 0.7),                # three times the limit: still 0.3 at most
    (scored(3), day(0), 1.0),                            # a latest score equal to `below` is not low
    (scored(5, 5, 5, 4, 4, 4), day(5), 0.9),             # a drop of exactly min_drop (1) costs 0.1
    # unanswered 0.1 + complaint 0.2 + missed task 0.1 + latest score 2 < 3: 0.2 + drop 1.67: 0.1
    # + silence, 14 of tier A's 21 days: 0.2 = 0.9
    (every_warning_sign(), day(20), 0.1),
])
def test_engagement_penalties_add_up_each_capped(history, as_of, engagement):
    assert engagement_score(history, as_of, HealthConfig(), RulesConfig()) == pytest.approx(engagement)


def test_the_breakdown_rounds_each_part_to_four_places_and_keeps_the_weighted_sum_and_revenue():
    s = touch(with_purchases(customer(tier="C"), 0, amount="1000"), 90)
    cfg = HealthConfig(frequency_target=3, monetary_thresholds={"A": Decimal(100000), "B": Decimal(30000)})
    parts = health_breakdown(s, day(100), cfg)
    # recency: 100 days against the 90-day no-cycle gap, 1 - (100/90 - 1) / 2; frequency 1/3; monetary
    # 0.5 x 1000/30000; engagement 1 - 0.3 x 10/45 (tier C)
    assert parts == HealthBreakdown(63, 0.9444, 0.3333, 0.0167, 0.9333)
    assert parts.weighted == pytest.approx((30 * 17 / 18 + 20 / 3 + 20 / 60 + 30 * 14 / 15) / 100)
    assert parts.revenue_12m == Decimal(1000)


def test_sub_scores_stay_within_0_and_1_and_monetary_is_linear_below_b():
    frequent = with_purchases(customer(), 0, 10, 20, 30, 40)
    assert frequency_score(frequent, day(50), HealthConfig()) == 1.0          # 5 purchases, target 4
    big = with_purchases(customer(), 0, amount="150000")
    assert monetary_score(big, day(1), HealthConfig()) == 1.0                 # above A
    small = with_purchases(customer(), 0, amount="5000")
    assert monetary_score(small, day(1), HealthConfig()) == 0.125             # 0.5 x 5000 / 20000


def test_score_of_rounds_half_up_and_never_goes_below_zero():
    assert (score_of(0.125), score_of(0.705), score_of(0.0)) == (13, 71, 0)


def test_health_score_uses_the_rules_it_is_given():
    s = touch(customer(), 0)
    only_engagement = HealthConfig(weights=HealthWeights(recency=0, frequency=0, monetary=0, engagement=1))
    strict = RulesConfig.from_dict({"silence": {"days_by_tier": {"B": 10}}})
    assert health_score(s, day(10), only_engagement, strict) == 70      # 10 of 10 days: all of the 0.3
    assert health_score(s, day(10), only_engagement) == 90              # 10 of 30 days


def test_band_change_reads_the_old_score_with_the_same_thresholds():
    assert band_change(60, 50, BandThresholds(healthy=55, watch=52)) == BandChange("healthy", "at_risk")


# --- rules: each signal's value, threshold and detail --------------------------------------------------------------

def signals_of(rule: str, s: CustomerSignals, as_of: datetime, rules: RulesConfig = RulesConfig()):
    hit = fired(s, as_of, rules).get(rule)
    return hit.signals if hit else ()


@pytest.mark.parametrize("rule, history, as_of, expected", [
    ("silence", touch(customer(tier="A"), 0), day(21),
     Signal("days_since_contact", 21, 21, "no contact for 21 days since last contact; tier A limit is 21")),
    ("silence", customer(tier=None), day(45),
     Signal("days_since_contact", 45, 45,
            "no contact for 45 days since creation (never contacted); tier - limit is 45")),
    ("no_repurchase", with_purchases(customer(), 0, 20), day(111),
     Signal("days_since_purchase", 91, 90, "91 days since last purchase; limit 90 (no purchase cycle yet)")),
    ("no_repurchase", with_purchases(customer(), 0, 30, 60), day(106),
     Signal("days_since_purchase", 46, 45, "46 days since last purchase; limit 45 (usual interval 30 days x 1.5)")),
    ("interval_lengthening", with_purchases(customer(), 0, 30, 60, 106, 152), day(153),
     Signal("interval_ratio", 1.53, 1.5, "last 2 gaps average 46 days vs usual 30 days")),
    ("unanswered_followups", touch(touch(touch(customer(), 1, "no_answer"), 2, "no_answer"), 3, "declined"), day(3),
     Signal("unanswered_followups", 3, 3, "3 follow-ups in a row without an answer")),
    ("open_complaint", touch(customer(), 0, "open", iid="k1", kind="complaint"), day(8),
     Signal("complaint_open_days", 8, 7, "complaint k1 open for 8 days")),
])
def test_each_rule_reports_its_value_threshold_and_detail(rule, history, as_of, expected):
    assert signals_of(rule, history, as_of) == (expected,)


def test_low_satisfaction_reports_the_latest_score_and_the_drop():
    assert signals_of("low_satisfaction", scored(5, 5, 5, 2, 3, 2), day(10)) == (
        Signal("latest_satisfaction", 2, 3, "latest score 2 is below 3"),
        Signal("satisfaction_drop", 2.67, 1, "mean of the last 3 scores fell 2.67 points"))


def test_interval_lengthening_uses_the_configured_gap_counts():
    s = with_purchases(customer(), 0, 30, 60, 90, 150)                        # gaps 30 30 30 60
    one_after_three = RulesConfig.from_dict({"interval_lengthening": {"recent_gaps": 1, "min_earlier_gaps": 3}})
    assert signals_of("interval_lengthening", s, day(151), one_after_three) == (
        Signal("interval_ratio", 2, 1.5, "last 1 gaps average 60 days vs usual 30 days"),)
    one_after_four = RulesConfig.from_dict({"interval_lengthening": {"recent_gaps": 1, "min_earlier_gaps": 4}})
    assert signals_of("interval_lengthening", s, day(151), one_after_four) == ()


def test_evaluate_runs_only_the_rules_asked_for():
    s = touch(touch(touch(customer(), 0, "open", iid="k1", kind="complaint"), 1, "no_answer"), 2, "no_answer")
    s = touch(s, 3, "no_answer")
    assert [f.rule for f in evaluate(s, RulesConfig(), day(10))] == ["unanswered_followups", "open_complaint"]
    assert [f.rule for f in evaluate(s, RulesConfig(), day(10), only=frozenset({"open_complaint"}))] == [
        "open_complaint"]


# --- signals: folding, derived values, storage form ----------------------------------------------------------

def test_a_profile_snapshot_replaces_every_field_but_keeps_the_creation_time_it_lacks():
    known = CustomerSignals("c1", created_at=day(0))
    assert apply_profile(known, tier="A", lifecycle="active", owner_id="r1", team="north", archived=True) == \
        replace(known, tier="A", lifecycle="active", owner_id="r1", team="north", archived=True)


def test_customer_events_fold_their_whole_snapshot():
    snapshot = {"customer_id": "c1", "company": "Acme", "tier": "A", "lifecycle": "active", "owner_id": "r1",
                "team": "north", "created_at": "2024-01-01T10:00:00Z"}
    s = apply_event(CustomerSignals("c1"), "customer.created", CustomerCreated().load(snapshot))
    assert s == CustomerSignals("c1", "A", "active", "r1", "north", False, day(0))
    archived = CustomerUpdated().load({**snapshot, "archived": True, "changed_fields": ["archived"]})
    assert apply_event(s, "customer.updated", archived) == replace(s, archived=True)
    # a snapshot without the optional keys: not archived, the creation time already known is kept
    assert apply_event(s, "customer.updated", {"tier": "B", "lifecycle": "at_risk"}) == replace(
        s, tier="B", lifecycle="at_risk", owner_id=None, team=None)


@pytest.mark.parametrize("fold, field", [
    (lambda s: apply_purchase(s, "p1", NAIVE, Decimal(1)), "purchased_at"),
    (lambda s: apply_interaction(s, "i1", NAIVE, "reached"), "occurred_at"),
    (lambda s: apply_task_missed(s, "t1", NAIVE), "missed_at"),
])
def test_a_naive_fact_time_is_refused_naming_it(fold, field):
    assert refusal(fold, customer()) == ("must be a timezone-aware datetime", field)


def test_a_no_answer_at_the_moment_of_a_contact_is_no_streak_in_either_order():
    assert touch(touch(customer(), 1, "no_answer"), 1, "reached").consecutive_unanswered == 0
    assert touch(touch(customer(), 1, "reached"), 1, "no_answer").consecutive_unanswered == 0


def test_a_no_answer_delivered_twice_counts_once_and_is_stored_under_its_id():
    s = touch(touch(customer(), 1, "no_answer", iid="i1"), 1, "no_answer", iid="i1")
    assert s.consecutive_unanswered == 1
    assert signals_to_dict(s)["unanswered"] == [["i1", day(1).isoformat()]]


def test_a_complaint_logged_as_resolved_stays_closed_whichever_of_its_logs_comes_first():
    resolved_first = touch(touch(customer(), 2, "resolved", iid="k1", kind="complaint"), 1, "open", iid="k1",
                           kind="complaint")
    opened_first = touch(touch(customer(), 1, "open", iid="k1", kind="complaint"), 2, "resolved", iid="k1",
                         kind="complaint")
    assert resolved_first.open_complaints == opened_first.open_complaints == {}


def test_missed_tasks_count_from_the_as_of_day_back_less_than_the_window():
    s = customer()
    for n in (70, 71, 100, 101):                   # 30, 29 and 0 days before day 100, and one after it
        s = apply_task_missed(s, f"t{n}", day(n))
    assert missed_tasks_within(s, day(100), 30) == 2


def test_the_derived_values_read_as_of_their_day():
    assert purchase_gaps(with_purchases(customer(), 0, 30, 50, 200), day(100)) == [30, 20]
    assert (days_since_last_contact(touch(customer(), 3), day(10)), days_since_last_contact(customer(), day(10))) == (
        7, None)
    assert rolling_12m(with_purchases(customer(), 0, 300, 400, amount="10"), day(400)) == (2, Decimal(20))
    assert scores_until(scored(4, 2), day(0)) == [4]
    complaints = touch(touch(customer(), 5, "open", iid="k1", kind="complaint"), 2, "open", iid="k2", kind="complaint")
    assert list(open_complaint_ages(complaints, day(10)).items()) == [("k2", 8), ("k1", 5)]


def test_the_satisfaction_drop_compares_the_last_two_windows_of_three_by_default():
    s = scored(1, 1, 1, 5, 5, 5, 4, 4, 4)          # the oldest window does not count
    assert satisfaction_drop(s, day(10)) == Known(s, day(10)).satisfaction_drop() == 1.0


def test_the_interval_trend_compares_the_last_two_gaps_with_the_median_of_the_two_or_more_before():
    four_gaps = with_purchases(customer(), 0, 30, 60, 110, 160)               # gaps 30 30 50 50
    assert Known(four_gaps, day(200)).interval_trend() == (50.0, 30.0)
    assert interval_trend(four_gaps, day(200), recent_gaps=1, min_earlier_gaps=3) == (50.0, 30.0)
    assert interval_trend(four_gaps, day(200), recent_gaps=1, min_earlier_gaps=4) is None
    five_gaps = with_purchases(customer(), 0, 10, 30, 60, 110, 160)           # gaps 10 20 30 50 50
    assert interval_trend(five_gaps, day(200)) == (50.0, 20.0)


def test_the_storage_form_keeps_archived_resolved_complaints_and_absent_times():
    s = touch(apply_profile(CustomerSignals("c1"), tier="A", archived=True), 1, "resolved", iid="k1", kind="complaint")
    assert signals_from_dict(signals_to_dict(s)) == s
    assert signals_from_dict(signals_to_dict(CustomerSignals("c2"))) == CustomerSignals("c2")


def test_a_stored_row_without_the_lists_reads_as_a_customer_without_facts():
    assert signals_from_dict({"customer_id": "c1"}) == CustomerSignals("c1")
