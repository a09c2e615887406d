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
    ({"rules": {"unanswered_followups": {"min_in_row": 1}}}, "must be a whole number >= 2 (at most 100000), got 1",
     "rules.unanswered_followups.min_in_row"),
    ({"rules": {"low_satisfaction": {"below": 6}}}, "must be a score between 2 and 5, got 6",
     "rules.low_satisfaction.below"),
    ({"rules": {"low_satisfaction": {"below": 1}}}, "must be a score between 2 and 5 (at most 100000), got 1",
     "rules.low_satisfaction.below"),
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
    ({"health": {"bands": {"watch": 70}}}, "must be below healthy (70), got 70", "health.bands.watch"),
    ({"health": {"monetary_thresholds": {"C": 5}}}, "needs exactly the tiers A and B", "health.monetary_thresholds"),
    ({"health": {"monetary_thresholds": {"B": 100000}}}, "A must be above B", "health.monetary_thresholds.A"),
    ({"health": {"monetary_thresholds": {"A": "lots"}}}, "must be a positive amount (at most 10^15), got 'lots'",
     "health.monetary_thresholds.A"),
    ({"health": {"monetary_thresholds": {"B": 0}}}, "must be a positive amount (at most 10^15), got 0",
     "health.monetary_thresholds.B"),
    ({"health": {"monetary_thresholds": {"B": True}}}, "must be a positive amount (at most 10^15), got True",
     "health.monetary_thresholds.B"),
    ({"health": {"recency_zero_ratio": 1.0}}, "must be > 1, got 1.0", "health.recency_zero_ratio"),
    ({"health": {"frequency_target": 0}}, f"{WHOLE} 0", "health.frequency_target"),
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
