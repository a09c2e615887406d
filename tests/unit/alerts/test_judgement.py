"""judge and next_check: until the moment next_check names, time alone changes neither the band nor which rules
fire nor which are held back by the re-alert cooldown (so the sweep may leave the customer alone till then)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st

from services.alerts.domain import (
    RECHECK_AT_LEAST_EVERY, AlertsConfig, CustomerSignals, apply_interaction, apply_profile, apply_purchase,
    apply_task_missed, judge,
)

AS_OF = datetime(2026, 6, 30, 9, 30, tzinfo=timezone.utc)
CFG = AlertsConfig()


def at(days: float) -> datetime:
    return AS_OF + timedelta(days=days)


interactions = st.tuples(st.floats(-120, 6), st.sampled_from(["reached", "no_answer", "declined", "positive", "open"]),
                         st.sampled_from([None, 1, 2, 3, 4, 5]), st.booleans())


@st.composite
def customers(draw):
    s = apply_profile(CustomerSignals("c"), tier=draw(st.sampled_from(["A", "B", "C", None])),
                      lifecycle=draw(st.sampled_from(["active", "at_risk", "churned", None])),
                      created_at=draw(st.one_of(st.none(), st.floats(-600, 3).map(at))))
    first, cycle = draw(st.floats(-500, -5)), draw(st.floats(4, 90))
    for n in range(draw(st.integers(0, 14))):
        day = first + n * cycle * draw(st.floats(0.6, 1.8))
        if day < 20:
            s = apply_purchase(s, f"p{n}", at(day), Decimal(draw(st.sampled_from(["500", "9000", "60000"]))))
    for n, (day, outcome, score, complaint) in enumerate(draw(st.lists(interactions, max_size=8))):
        s = apply_interaction(s, f"i{n}", at(day), outcome, kind="complaint" if complaint else "call",
                              satisfaction=score)
    for n, day in enumerate(draw(st.lists(st.floats(-45, 5), max_size=3))):
        s = apply_task_missed(s, f"t{n}", at(day))
    return s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signals=customers(), resolved=st.dictionaries(st.sampled_from(["silence", "no_repurchase", "open_complaint"]),
                                                      st.floats(-20, 0).map(at), max_size=2),
       hours=st.integers(-9, 14))
def test_nothing_changes_before_next_check(signals, resolved, hours):
    today = judge(signals, AS_OF, CFG, resolved_at_by_rule=resolved, schedule=True)
    assert AS_OF < today.next_check_at <= AS_OF + RECHECK_AT_LEAST_EVERY + timedelta(days=1)

    def outcome(verdict, moment):
        held = {rule for rule, when in resolved.items() if moment < when + CFG.realert_cooldown}
        return verdict.band, sorted(f.rule for f in verdict.fired), held

    expected = outcome(today, AS_OF)
    day = 0
    while True:
        day += 1
        moment = AS_OF + timedelta(days=day, hours=hours)
        if moment >= today.next_check_at or day > 120:
            break
        later = judge(signals, moment, CFG, resolved_at_by_rule=resolved)
        assert outcome(later, moment) == expected, (day, hours)


def test_a_quiet_customer_is_due_on_the_day_silence_fires():
    s = apply_profile(CustomerSignals("c"), tier="B", lifecycle="active", created_at=at(-400))
    s = apply_interaction(s, "i1", at(-10), "reached")
    verdict = judge(s, AS_OF, CFG, schedule=True)
    silence_day = (AS_OF - timedelta(days=10) + timedelta(days=30)).replace(hour=0, minute=0)
    assert verdict.next_check_at <= silence_day
    assert [f.rule for f in judge(s, silence_day, CFG).fired] == ["silence"]


def test_a_customer_whose_verdict_cannot_change_waits_for_the_safety_net():
    s = apply_profile(CustomerSignals("c"), tier="C", lifecycle="active", created_at=at(-900))
    s = apply_purchase(s, "p1", at(-800), Decimal("100"))            # long gone: every part of the score is flat
    s = apply_interaction(s, "i1", at(-700), "reached")
    verdict = judge(s, AS_OF, CFG, schedule=True)
    assert verdict.band == "at_risk"
    assert verdict.next_check_at.date() == (AS_OF + RECHECK_AT_LEAST_EVERY).date()
