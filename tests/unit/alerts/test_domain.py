"""Unit tests of the alerts domain core: backdated histories, boundaries, determinism, lifecycle, config."""
from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.alerts.domain import (
    Alert, AlertsConfig, BandThresholds, ClearAtRisk, CustomerSignals, DomainError, FlagAtRisk, HealthConfig,
    RequestRecallTask, RulesConfig, Signal, FiredRule, acknowledge, alerts_to_raise, apply_event,
    apply_interaction, apply_profile, apply_purchase, apply_task_completed, apply_task_missed, band, band_change,
    commands_on_raise, commands_on_resolve, days_since_last_purchase, days_without_contact, escalate, evaluate,
    health_breakdown, health_score, interval_trend, needs_escalation, raise_alert, resolve, signals_from_dict,
    signals_to_dict, usual_purchase_interval,
)

UTC = timezone.utc
START = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
RULES = RulesConfig()


def day(n: float, hour: int = 10) -> datetime:
    return (START + timedelta(days=n)).replace(hour=hour)


def customer(tier: str | None = "B", lifecycle: str = "active", created: int = 0) -> CustomerSignals:
    return apply_profile(CustomerSignals("c1"), tier=tier, lifecycle=lifecycle, owner_id="rep1", team="north",
                         created_at=day(created))


def with_purchases(s: CustomerSignals, *days: float, amount: str = "1000") -> CustomerSignals:
    for n in days:
        s = apply_purchase(s, f"p{n}", day(n), Decimal(amount))
    return s


def touch(s: CustomerSignals, n: float, outcome: str = "reached", iid: str | None = None, **kw) -> CustomerSignals:
    return apply_interaction(s, iid or f"i{n}-{outcome}", day(n), outcome, **kw)


def fired(s: CustomerSignals, as_of: datetime, rules: RulesConfig = RULES) -> dict[str, FiredRule]:
    return {f.rule: f for f in evaluate(s, rules, as_of)}


# --- folding ----------------------------------------------------------------------------------------

def test_same_purchase_twice_changes_nothing():
    once = with_purchases(customer(), 0)
    assert apply_purchase(once, "p0", day(0), Decimal("1000")) == once
    assert len(once.purchases) == 1


def test_backdated_purchases_fold_to_the_same_model_in_any_order():
    days = [0, 40, 75, 130, 170]
    expected = with_purchases(customer(), *days)
    for seed in range(5):
        shuffled = days[:]
        random.Random(seed).shuffle(shuffled)
        assert with_purchases(customer(), *shuffled) == expected
    assert [p.purchased_at for p in expected.purchases] == sorted(p.purchased_at for p in expected.purchases)


def test_interactions_fold_to_the_same_model_in_any_order():
    facts = [
        ("a", 1, "no_answer", {}), ("b", 2, "reached", {"satisfaction": 4}), ("c", 3, "no_answer", {}),
        ("d", 4, "open", {"kind": "complaint"}), ("e", 5, "declined", {}), ("f", 6, "no_answer", {}),
        ("g", 7, "no_answer", {"satisfaction": 2}), ("h", 9, "resolved", {"resolves_complaint_id": "x"}),
        ("x", 8, "open", {"kind": "complaint"}),
    ]
    results = set()
    for seed in range(20):
        order = facts[:]
        random.Random(seed).shuffle(order)
        s = customer()
        for iid, n, outcome, kw in order + order:  # delivered twice: at-least-once bus
            s = apply_interaction(s, iid, day(n), outcome, **kw)
        results.add(json.dumps(signals_to_dict(s), sort_keys=True))
    assert len(results) == 1
    s = signals_from_dict(json.loads(results.pop()))
    assert s.last_contact_at == day(9)          # the resolving touch is a contact
    assert s.consecutive_unanswered == 0
    assert set(s.open_complaints) == {"d"}     # x was resolved, even though its resolution may come first
    assert [x.score for x in s.satisfaction] == [4, 2]


def test_unanswered_streak_counts_trailing_attempts_and_a_contact_resets_it():
    s = touch(touch(touch(customer(), 1, "no_answer"), 2, "declined"), 3, "no_answer")
    assert s.consecutive_unanswered == 3
    s = touch(s, 4, "reached")
    assert s.consecutive_unanswered == 0
    s = touch(s, 5, "no_answer")
    assert s.consecutive_unanswered == 1
    assert touch(s, 3.5, "no_answer").consecutive_unanswered == 1  # backdated before the last contact


def test_complaint_logged_as_resolved_never_opens():
    s = touch(customer(), 1, "resolved", kind="complaint")
    assert s.open_complaints == {}


def test_missed_tasks_are_idempotent_and_a_late_completion_clears_them():
    s = apply_task_missed(customer(), "t1", day(3))
    assert apply_task_missed(s, "t1", day(4)) == s
    assert apply_task_completed(s, "t1").missed_tasks == {}
    assert apply_task_completed(s, "other") == s


def test_naive_datetimes_are_refused():
    with pytest.raises(DomainError):
        apply_purchase(customer(), "p", datetime(2024, 1, 1), Decimal(1))
    with pytest.raises(DomainError) as err:
        evaluate(customer(), RULES, datetime(2024, 1, 1))
    assert err.value.field == "as_of"


def test_apply_event_folds_contract_payloads():
    from crm_common.contracts import customers, followups

    created = customers.CustomerCreated().load({
        "customer_id": "c1", "company": "Acme", "tier": "A", "lifecycle": "active", "owner_id": "r1",
        "team": "north", "created_at": "2024-01-01T00:00:00Z"})
    purchase = customers.PurchaseRecorded().load({
        "customer_id": "c1", "purchase_id": "p1", "amount": "10.00", "currency": "EUR", "amount_base": "10.00",
        "base_currency": "EUR", "purchased_at": "2024-02-01T09:00:00Z"})
    touch_ = followups.InteractionLogged().load({
        "interaction_id": "i1", "customer_id": "c1", "rep_id": "r1", "kind": "complaint", "phase": "post_sale",
        "occurred_at": "2024-02-03T09:00:00+01:00", "outcome": "open", "satisfaction": 2})
    missed = followups.TaskMissed().load({
        "task_id": "t1", "customer_id": "c1", "kind": "follow_up", "due_at": "2024-02-04T09:00:00Z",
        "missed_at": "2024-02-05T09:00:00Z"})
    owner = customers.OwnerChanged().load({
        "customer_id": "c1", "new_owner_id": "r2", "new_team": "south", "transfer_id": "x", "changed_by": "m"})

    s = CustomerSignals("c1")
    for name, payload in [("customer.created", created), ("purchase.recorded", purchase),
                          ("crm.interaction.logged", touch_), ("task.missed", missed),
                          ("customer.owner_changed", owner), ("customer.tier_changed", {"new_tier": "B"}),
                          ("customer.lifecycle_changed", {"new_lifecycle": "dormant"}), ("task.due", {})]:
        s = apply_event(s, name, payload)
    assert (s.tier, s.lifecycle, s.owner_id, s.team) == ("B", "dormant", "r2", "south")
    assert [p.amount_base for p in s.purchases] == [Decimal("10.00")]
    assert list(s.open_complaints) == ["i1"] and s.satisfaction[0].score == 2
    assert list(s.missed_tasks) == ["t1"]
    assert apply_event(s, "customer.archived", {"customer_id": "c1"}).archived


def test_storage_form_round_trips_through_json():
    s = touch(touch(with_purchases(customer(), 0, 30, 60), 61, "open", kind="complaint", satisfaction=3), 62, "no_answer")
    s = apply_task_missed(s, "t1", day(63))
    assert signals_from_dict(json.loads(json.dumps(signals_to_dict(s)))) == s


# --- derived values ---------------------------------------------------------------------------------

def test_usual_interval_needs_three_purchase_days_and_merges_same_day_orders():
    s = with_purchases(customer(), 0, 30)
    assert usual_purchase_interval(s, day(100)) is None
    s = apply_purchase(s, "same-day", day(30, hour=18), Decimal(5))
    assert usual_purchase_interval(s, day(100)) is None
    s = with_purchases(s, 50)
    assert usual_purchase_interval(s, day(100)) == 25.0          # median of 30, 20
    assert usual_purchase_interval(s, day(40)) is None           # purchase on day 50 not yet known


def test_day_counts_are_whole_utc_days():
    s = with_purchases(customer(), 0)
    assert days_since_last_purchase(s, day(5, hour=0)) == days_since_last_purchase(s, day(5, hour=23)) == 5
    assert days_since_last_purchase(customer(), day(5)) is None
    assert days_without_contact(customer(created=2), day(5)) == 3
    assert days_without_contact(CustomerSignals("x"), day(5)) is None


def test_interval_trend_needs_enough_gaps():
    assert interval_trend(with_purchases(customer(), 0, 30, 60, 90), day(100)) is None
    assert interval_trend(with_purchases(customer(), 0, 30, 60, 110, 160), day(200)) == (50.0, 30.0)


# --- rules: silence -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tier, limit", [("A", 21), ("B", 30), ("C", 45), (None, 45)])
def test_silence_fires_from_the_tier_limit_on(tier, limit):
    s = touch(customer(tier=tier), 0)
    assert "silence" not in fired(s, day(limit - 1))
    hit = fired(s, day(limit))["silence"]
    assert hit.signals == (Signal("days_since_contact", limit, limit, hit.signals[0].detail),)


def test_silence_counts_from_creation_for_a_never_contacted_customer():
    s = customer(tier="A", created=10)
    assert "silence" not in fired(s, day(30))
    assert "since creation" in fired(s, day(31))["silence"].signals[0].detail
    assert "silence" not in fired(CustomerSignals("x", tier="A"), day(300))


def test_unanswered_attempts_are_not_contact():
    s = touch(touch(customer(tier="A"), 0), 15, "no_answer")
    assert "silence" in fired(s, day(21))


def test_silence_days_are_configurable():
    rules = RulesConfig.from_dict({"silence": {"days_by_tier": {"B": 10}}})
    assert "silence" in fired(touch(customer(), 0), day(10), rules)
    assert rules.silence.days_by_tier == {"A": 21, "B": 10, "C": 45}


# --- rules: no_repurchase -------------------------------------------------------------------------------

def test_no_repurchase_never_fires_without_purchases():
    assert "no_repurchase" not in fired(customer(), day(1000))


def test_no_repurchase_without_a_cycle_waits_90_days():
    s = with_purchases(customer(), 0, 20)
    assert "no_repurchase" not in fired(s, day(110))
    hit = fired(s, day(111))["no_repurchase"].signals[0]
    assert (hit.name, hit.value, hit.threshold) == ("days_since_purchase", 91, 90)


def test_no_repurchase_fires_past_one_and_a_half_usual_intervals():
    s = with_purchases(customer(), 0, 30, 60)                   # usual interval 30 -> limit 45
    assert "no_repurchase" not in fired(s, day(105))
    assert fired(s, day(106))["no_repurchase"].signals[0].threshold == 45


def test_no_repurchase_limit_is_floored_for_bursty_buyers():
    s = with_purchases(customer(), 0, 2, 4)                     # 1.5 x 2 = 3 days, floored to 14
    assert "no_repurchase" not in fired(s, day(18))
    assert "no_repurchase" in fired(s, day(19))


# --- rules: interval_lengthening ------------------------------------------------------------------------

@pytest.mark.parametrize("days, fires", [
    ((0, 30, 60, 90, 120), False),
    ((0, 30, 60, 105, 150), False),        # recent gaps 45 = exactly 1.5 x 30: not more
    ((0, 30, 60, 106, 152), True),         # 46 / 30 > 1.5
    ((0, 30, 60, 150), False),             # not enough earlier gaps
])
def test_interval_lengthening(days, fires):
    s = with_purchases(customer(), *days)
    as_of = day(days[-1] + 1)
    assert ("interval_lengthening" in fired(s, as_of)) is fires


# --- rules: unanswered_followups ------------------------------------------------------------------------

def test_unanswered_followups_fire_at_three_in_a_row():
    s = touch(touch(touch(customer(), 0), 1, "no_answer"), 2, "declined")
    assert "unanswered_followups" not in fired(s, day(3))
    s = touch(s, 3, "no_answer")
    assert fired(s, day(3))["unanswered_followups"].signals[0].value == 3
    assert "unanswered_followups" not in fired(touch(s, 4, "positive"), day(4))


def test_unanswered_followups_threshold_is_configurable():
    rules = RulesConfig.from_dict({"unanswered_followups": {"min_in_row": 2}})
    s = touch(touch(customer(), 1, "no_answer"), 2, "no_answer")
    assert "unanswered_followups" in fired(s, day(3), rules)


# --- rules: open_complaint ------------------------------------------------------------------------------

def test_open_complaint_fires_after_seven_days_open():
    s = touch(customer(), 0, "open", iid="k1", kind="complaint")
    assert "open_complaint" not in fired(s, day(7))
    assert fired(s, day(8))["open_complaint"].signals[0].value == 8
    closed = touch(s, 5, "resolved", resolves_complaint_id="k1")
    assert "open_complaint" not in fired(closed, day(30))


def test_each_overdue_complaint_is_a_signal():
    s = touch(touch(customer(), 0, "open", iid="k1", kind="complaint"), 5, "open", iid="k2", kind="complaint")
    assert [sig.value for sig in fired(s, day(12))["open_complaint"].signals] == [12]
    assert [sig.value for sig in fired(s, day(13))["open_complaint"].signals] == [13, 8]


# --- rules: low_satisfaction ----------------------------------------------------------------------------

def scored(*scores: int) -> CustomerSignals:
    s = customer()
    for n, score in enumerate(scores):
        s = touch(s, n, satisfaction=score)
    return s


@pytest.mark.parametrize("scores, signal_names", [
    ((4, 3), []),
    ((4, 2), ["latest_satisfaction"]),
    ((5, 5, 5, 4, 4, 4), ["satisfaction_drop"]),       # drop of exactly 1 counts
    ((5, 5, 5, 4, 4, 5), []),                          # drop 0.67
    ((5, 5, 5, 2, 3, 2), ["latest_satisfaction", "satisfaction_drop"]),
    ((2, 5), []),                                      # only the latest score matters
])
def test_low_satisfaction(scores, signal_names):
    hit = fired(scored(*scores), day(10)).get("low_satisfaction")
    assert ([sig.name for sig in hit.signals] if hit else []) == signal_names


def test_satisfaction_after_as_of_is_not_yet_known():
    assert "low_satisfaction" not in fired(touch(scored(4), 20, satisfaction=1), day(10))


# --- evaluate -------------------------------------------------------------------------------------------

def troubled() -> CustomerSignals:
    s = with_purchases(touch(customer(tier="A"), 0, "open", kind="complaint", satisfaction=1), 0, 30, 60)
    for n in (70, 71, 72):
        s = touch(s, n, "no_answer")
    return s


def test_evaluate_is_deterministic_within_a_day():
    s = troubled()
    first = evaluate(s, RULES, day(120, hour=0))
    assert first == evaluate(s, RULES, day(120, hour=0)) == evaluate(s, RULES, day(120, hour=23))
    assert [f.rule for f in first] == ["silence", "no_repurchase", "unanswered_followups", "open_complaint",
                                       "low_satisfaction"]


def test_fired_signals_fit_the_alert_raised_contract():
    from crm_common.contracts.alerts import AlertRaised

    for f in evaluate(troubled(), RULES, day(120)):
        payload = {"alert_id": "a1", "customer_id": "c1", "rule": f.rule, "signals": f.signal_dicts(),
                   "raised_at": day(120).isoformat()}
        assert AlertRaised().validate(payload) == {}
        json.dumps(payload)


@pytest.mark.parametrize("change", [{"archived": True}, {"lifecycle": "churned"}])
def test_archived_or_churned_customers_raise_nothing(change):
    assert evaluate(replace(troubled(), **change), RULES, day(120)) == []


def test_disabled_rules_stay_silent():
    rules = RulesConfig.from_dict({name: {"enabled": False} for name in ("silence", "open_complaint")})
    names = [f.rule for f in evaluate(troubled(), rules, day(120))]
    assert "silence" not in names and "open_complaint" not in names and "no_repurchase" in names


# --- config validation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data, field", [
    ({"silence": {"days_by_tier": {"A": 0}}}, "silence.days_by_tier.A"),
    ({"silence": {"days_by_tier": {"Z": 5}}}, "silence.days_by_tier"),
    ({"silence": {"enabled": "yes"}}, "silence.enabled"),
    ({"no_repurchase": {"factor": 0.5}}, "no_repurchase.factor"),
    ({"no_repurchase": {"no_cycle_days": -1}}, "no_repurchase.no_cycle_days"),
    ({"interval_lengthening": {"factor": 1}}, "interval_lengthening.factor"),
    ({"unanswered_followups": {"min_in_row": 1}}, "unanswered_followups.min_in_row"),
    ({"open_complaint": {"max_open_days": 0}}, "open_complaint.max_open_days"),
    ({"low_satisfaction": {"below": 6}}, "low_satisfaction.below"),
    ({"low_satisfaction": {"min_drop": 0}}, "low_satisfaction.min_drop"),
    ({"silence": {"dayz": 3}}, "silence.dayz"),
    ({"nosuch": {}}, "nosuch"),
])
def test_bad_rule_settings_name_the_field(data, field):
    with pytest.raises(DomainError) as err:
        RulesConfig.from_dict(data)
    assert err.value.field == field


@pytest.mark.parametrize("data, field", [
    ({"health": {"monetary_thresholds": {"A": 100, "B": 200}}}, "health.monetary_thresholds.A"),
    ({"health": {"monetary_thresholds": {"B": 0}}}, "health.monetary_thresholds.B"),
    ({"health": {"weights": {"recency": -1}}}, "health.weights.recency"),
    ({"health": {"bands": {"watch": 80}}}, "health.bands.watch"),
    ({"health": {"penalties": {"max_silence": 2}}}, "health.penalties.max_silence"),
    ({"escalate_after_hours": 0}, "escalate_after_hours"),
    ({"rules": {"silence": {"days_by_tier": {"C": 1.5}}}}, "rules.silence.days_by_tier.C"),
])
def test_bad_alerts_settings_name_the_field(data, field):
    with pytest.raises(DomainError) as err:
        AlertsConfig.from_dict(data)
    assert err.value.field == field


def test_config_defaults_and_overrides():
    cfg = AlertsConfig.from_dict({"escalate_after_hours": 24, "health": {"weights": {"monetary": 0}}})
    assert cfg.escalate_after == timedelta(hours=24)
    assert cfg.health.weights.monetary == 0 and cfg.health.weights.recency == 30
    assert AlertsConfig.from_dict(None) == AlertsConfig() == AlertsConfig.from_dict({})


# --- health score -------------------------------------------------------------------------------------

def star() -> CustomerSignals:
    s = with_purchases(customer(tier="A"), 0, 30, 60, 90, 120, amount="30000")
    return touch(s, 120, satisfaction=5)


def test_perfect_and_empty_customers_span_the_scale():
    assert health_score(star(), day(121)) == 100
    empty = health_breakdown(CustomerSignals("x"), day(0))   # no purchases; only the silence penalty applies
    assert (empty.recency, empty.frequency, empty.monetary, empty.engagement, empty.score) == (0, 0, 0, 0.7, 21)
    assert band(health_score(troubled(), day(200))) == "at_risk"


def test_scores_are_bounded_integers_for_many_histories():
    rng = random.Random(7)
    for _ in range(200):
        s = customer(tier=rng.choice("ABC"))
        for n in sorted(rng.sample(range(300), rng.randint(0, 8))):
            s = apply_purchase(s, f"p{n}", day(n), Decimal(rng.randint(1, 90000)))
        for n in sorted(rng.sample(range(300), rng.randint(0, 8))):
            s = touch(s, n, rng.choice(["reached", "no_answer", "declined", "open"]),
                      kind=rng.choice(["call", "complaint"]), satisfaction=rng.choice([None, 1, 3, 5]))
        score = health_score(s, day(300))
        assert isinstance(score, int) and 0 <= score <= 100


def test_more_silence_never_raises_the_score():
    base = with_purchases(customer(tier="B"), 0, 40, 80)
    scores = [health_score(touch(base, 200 - gap), day(200)) for gap in range(0, 120)]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]


def test_time_passing_never_raises_the_score_without_new_facts():
    s = touch(with_purchases(customer(tier="A"), 0, 30, 60, amount="40000"), 60)
    scores = [health_score(s, day(n)) for n in range(60, 500, 3)]
    assert scores == sorted(scores, reverse=True)


def test_warning_signs_never_raise_the_score():
    s = star()
    before = health_score(s, day(121))
    for n in (120.1, 120.2, 120.3, 120.4):
        s = touch(s, n, "no_answer")
        after = health_score(s, day(121))
        assert after <= before
        before = after
    assert health_score(touch(s, 120.5, "open", kind="complaint"), day(121)) <= before


def test_health_breakdown_follows_the_documented_formulas():
    s = with_purchases(customer(tier="B"), 0, 30, 60, amount="20000")   # 60000 in 12 months, 3 purchases
    parts = health_breakdown(s, day(60))
    assert (parts.recency, parts.frequency, parts.monetary) == (1.0, 0.75, 0.75)
    assert health_breakdown(s, day(60 + 90)).recency == 0.0              # 3 usual intervals later
    assert health_breakdown(s, day(60 + 60)).recency == 0.5
    only_recency = HealthConfig.from_dict({"weights": {"frequency": 0, "monetary": 0, "engagement": 0}})
    assert health_score(s, day(120), only_recency) == 50


def test_health_is_deterministic_within_a_day():
    assert health_breakdown(troubled(), day(90, hour=1)) == health_breakdown(troubled(), day(90, hour=22))


@pytest.mark.parametrize("score, expected", [(100, "healthy"), (70, "healthy"), (69, "watch"), (40, "watch"),
                                             (39, "at_risk"), (0, "at_risk")])
def test_bands(score, expected):
    assert band(score) == expected


def test_band_change_only_when_a_threshold_is_crossed():
    assert band_change(75, 71) is None
    assert band_change(71, 69).new_band == "watch"
    first = band_change(None, 50)
    assert (first.old_band, first.new_band) == (None, "watch")
    assert band_change(55, 50, BandThresholds(healthy=90, watch=52)).new_band == "at_risk"


# --- alert lifecycle ----------------------------------------------------------------------------------

FIRED = FiredRule("silence", (Signal("days_since_contact", 30, 30, "quiet"),))


def new_alert() -> Alert:
    return raise_alert("a1", "c1", FIRED, day(0), owner_id="rep1", team="north")


def test_acknowledge_from_open_or_escalated():
    alert = acknowledge(new_alert(), "rep1", day(1))
    assert (alert.status, alert.acknowledged_by) == ("acknowledged", "rep1")
    escalated = escalate(new_alert(), day(2))
    assert acknowledge(escalated, "boss", day(3)).status == "acknowledged"


@pytest.mark.parametrize("hours, due", [(47.99, False), (48, True)])
def test_needs_escalation_after_48_hours_unacknowledged(hours, due):
    as_of = day(0) + timedelta(hours=hours)
    assert needs_escalation(new_alert(), as_of) is due
    assert needs_escalation(acknowledge(new_alert(), "rep1", day(0.5)), day(10)) is False
    assert needs_escalation(new_alert(), day(1), escalate_after=timedelta(hours=24)) is True


@pytest.mark.parametrize("transition", [
    lambda: acknowledge(acknowledge(new_alert(), "r", day(1)), "r", day(1)),
    lambda: acknowledge(resolve(new_alert(), "lost", "r", day(1)), "r", day(2)),
    lambda: escalate(new_alert(), day(1)),                                   # not due yet
    lambda: escalate(acknowledge(new_alert(), "r", day(1)), day(5)),
    lambda: escalate(escalate(new_alert(), day(3)), day(4)),
    lambda: resolve(resolve(new_alert(), "recovered", "r", day(1)), "lost", "r", day(2)),
    lambda: resolve(new_alert(), "forgotten", "r", day(1)),
    lambda: resolve(new_alert(), "lost", "r", day(-1)),                       # before it was raised
    lambda: raise_alert("a", "c", FiredRule("silence", ()), day(0)),
])
def test_illegal_transitions_raise(transition):
    with pytest.raises(DomainError):
        transition()


@pytest.mark.parametrize("outcome", ["recovered", "lost", "false_alarm"])
def test_resolve_from_any_unresolved_state(outcome):
    for alert in (new_alert(), acknowledge(new_alert(), "r", day(1)), escalate(new_alert(), day(2))):
        done = resolve(alert, outcome, "r", day(3))
        assert (done.status, done.outcome, done.resolved_at, done.is_open) == ("resolved", outcome, day(3), False)


def test_one_open_alert_per_rule():
    rules = [FIRED, FiredRule("open_complaint", (Signal("complaint_open_days", 9, 7),))]
    assert alerts_to_raise(rules, {"silence"}) == [rules[1]]
    assert alerts_to_raise(rules, []) == rules
    assert alerts_to_raise(rules, ["silence", "open_complaint"]) == []


def test_recently_resolved_rules_wait_for_the_cooldown():
    recent = {"silence": day(10)}
    assert alerts_to_raise([FIRED], [], resolved_at_by_rule=recent, as_of=day(20), cooldown=timedelta(days=14)) == []
    assert alerts_to_raise([FIRED], [], resolved_at_by_rule=recent, as_of=day(24), cooldown=timedelta(days=14)) == [FIRED]
    with pytest.raises(DomainError):
        alerts_to_raise([FIRED], [], resolved_at_by_rule=recent, cooldown=timedelta(days=1))


# --- side effects as commands ------------------------------------------------------------------------

def test_raising_asks_for_a_recall_task_and_flags_at_risk():
    commands = commands_on_raise(new_alert(), "active")
    recall, flag = commands
    assert isinstance(recall, RequestRecallTask) and recall.owner_id == "rep1" and recall.due_at == day(1)
    assert flag == FlagAtRisk("c1", "a1")


@pytest.mark.parametrize("lifecycle,asks", [
    ("potential", [RequestRecallTask]),             # a prospect is never flagged
    ("new", [RequestRecallTask, FlagAtRisk]),        # at_risk is news
    ("active", [RequestRecallTask, FlagAtRisk]),
    ("at_risk", [RequestRecallTask]),               # already at_risk: the immediate recall
    ("dormant", []),                                # stays dormant: its quarterly wake-up answers
    ("churned", [RequestRecallTask]),
    (None, [RequestRecallTask, FlagAtRisk]),         # not known here yet: customers decides on the flag
])
def test_what_raising_asks_from_every_stage(lifecycle, asks):
    assert [type(c) for c in commands_on_raise(new_alert(), lifecycle)] == asks


def test_resolution_effects():
    recovered = resolve(new_alert(), "recovered", "r", day(1))
    assert commands_on_resolve(recovered) == [ClearAtRisk("c1", "a1")]
    assert commands_on_resolve(recovered, other_open_alerts=1) == []
    assert commands_on_resolve(resolve(new_alert(), "false_alarm", "r", day(1)))[0].reason == "alert_false_alarm"
    assert commands_on_resolve(resolve(new_alert(), "lost", "r", day(1))) == []
    with pytest.raises(DomainError):
        commands_on_resolve(new_alert())


@pytest.mark.parametrize("revenue,score,stake", [
    ("33000", 40, "19800.00"),     # 33,000 x (100 - 40) / 100
    ("33000", 100, "0.00"),        # a perfectly healthy customer risks nothing
    ("0", 5, "0.00"),              # a prospect: no revenue, nothing at stake however many rules fired
    ("1234.56", 33, "827.16"),     # 1,234.56 x 0.67 = 827.1552, to the cent
    ("500", None, "500.00"),       # not scored yet: all of it
    (None, 10, "0.00"),
])
def test_value_at_stake_is_revenue_times_risk(revenue, score, stake):
    from services.alerts.domain import value_at_stake
    assert value_at_stake(None if revenue is None else Decimal(revenue), score) == Decimal(stake)
