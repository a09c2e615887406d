"""The class history from dated facts (domain/history.py), on small hand-computed histories.

Default policy: new 90 days after the first purchase, active to 180 days of silence, at_risk to 270,
dormant after, churned after 540 with no interaction in the last 180; tiers A >= 100k, B >= 20k.
"""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from services.customers.domain import ClassificationPolicy
from services.customers.domain.history import (
    FactHistory, Recorded, class_at, class_history, corrections, flag_periods, next_change,
)

POLICY = ClassificationPolicy()
P = datetime(2025, 1, 10, 9, 30, tzinfo=timezone.utc)  # the first purchase
CREATED = P - timedelta(days=30)
SECOND = timedelta(seconds=1)


def days(n):
    return timedelta(days=n)


def one_purchase(amount="5000", **facts):
    return FactHistory.of([(P, Decimal(amount))], **facts)


def lifecycle(facts, moment):
    return class_at(facts, moment, POLICY).lifecycle


def steps(facts, until, since=CREATED):
    return [(s.at, s.tier, s.lifecycle) for s in class_history(facts, since, until, POLICY)]


def test_each_lifecycle_boundary_of_one_purchase():
    facts = one_purchase()
    assert lifecycle(facts, P - SECOND) == "potential"
    assert lifecycle(facts, P) == "new"
    assert lifecycle(facts, P + days(91) - SECOND) == "new"       # 90 whole days
    assert lifecycle(facts, P + days(91)) == "active"
    assert lifecycle(facts, P + days(181) - SECOND) == "active"   # 180 whole days
    assert lifecycle(facts, P + days(181)) == "at_risk"
    assert lifecycle(facts, P + days(271) - SECOND) == "at_risk"
    assert lifecycle(facts, P + days(271)) == "dormant"
    assert lifecycle(facts, P + days(541) - SECOND) == "dormant"
    assert lifecycle(facts, P + days(541)) == "churned"


def test_the_history_of_one_purchase_is_dated_at_each_boundary():
    assert steps(one_purchase(), P + days(600)) == [
        (CREATED, "C", "potential"), (P, "C", "new"), (P + days(91), "C", "active"),
        (P + days(181), "C", "at_risk"), (P + days(271), "C", "dormant"), (P + days(541), "C", "churned")]


def test_an_interaction_keeps_a_silent_customer_from_churning_for_180_days():
    talked = P + days(400)
    facts = one_purchase(interactions=[talked])
    assert lifecycle(facts, P + days(541)) == "dormant"
    assert lifecycle(facts, talked + days(181) - SECOND) == "dormant"
    assert lifecycle(facts, talked + days(181)) == "churned"
    assert steps(facts, P + days(700), since=P + days(500)) == [
        (P + days(500), "C", "dormant"), (talked + days(181), "C", "churned")]


def test_a_purchase_leaves_the_rolling_window_365_days_after_it():
    facts = FactHistory.of([(P, Decimal("150000")), (P + days(100), Decimal("30000"))])
    assert class_at(facts, P + days(365) - SECOND, POLICY).rolling_12m_total == Decimal("180000")
    assert class_at(facts, P + days(365), POLICY).rolling_12m_total == Decimal("30000")
    assert [(at, tier) for at, tier, _ in steps(facts, P + days(500))
            if at in (P, P + days(365), P + days(465))] == [(P, "A"), (P + days(365), "B"), (P + days(465), "C")]


def test_a_later_purchase_restarts_the_silence():
    facts = FactHistory.of([(P, Decimal(5000)), (P + days(200), Decimal(5000))])
    assert steps(facts, P + days(300)) == [
        (CREATED, "C", "potential"), (P, "C", "new"), (P + days(91), "C", "active"),
        (P + days(181), "C", "at_risk"), (P + days(200), "C", "active")]
    # the first purchase's silence boundaries (day 271, 541) no longer count; its leaving the window does
    assert next_change(facts, P + days(300), POLICY) == P + days(365)
    assert next_change(facts, P + days(365), POLICY) == P + days(200) + days(181)


def test_a_flag_marks_at_risk_only_while_new_or_active_and_only_while_open():
    raised, resolved = P + days(100), P + days(120)
    facts = one_purchase(flags=[(raised, resolved)])
    assert [lifecycle(facts, m) for m in (raised - SECOND, raised, resolved - SECOND, resolved)] == [
        "active", "at_risk", "at_risk", "active"]
    new = one_purchase(flags=[(P + days(10), None)])
    assert lifecycle(new, P + days(10)) == "at_risk"
    dormant = one_purchase(flags=[(P + days(300), None)])
    assert lifecycle(dormant, P + days(300)) == "dormant"            # a dormant customer stays dormant
    assert lifecycle(dormant, P + days(541)) == "churned"
    churned = one_purchase(flags=[(P + days(560), None)])
    assert lifecycle(churned, P + days(560)) == "churned"             # nor a churned one
    prospect = FactHistory.of(flags=[(CREATED, None)])
    assert lifecycle(prospect, P) == "potential"                      # a prospect is never at risk
    still_open = one_purchase(flags=[(P + days(100), None)])
    assert lifecycle(still_open, P + days(200)) == "at_risk"          # going quiet: at_risk anyway
    assert lifecycle(still_open, P + days(271)) == "dormant"          # a flag does not hold it past dormant


def test_next_change_is_the_first_moment_time_alone_moves():
    facts = one_purchase(interactions=[P + days(400)])
    assert next_change(facts, P + days(5), POLICY) == P + days(91)
    assert next_change(facts, P + days(541), POLICY) == P + days(581)  # the interaction's 181st day
    assert next_change(facts, P + days(600), POLICY) is None           # churned: nothing left to age
    assert next_change(FactHistory.of(), CREATED, POLICY) is None      # a prospect without facts


def test_corrections_turn_a_recorded_history_into_the_true_one():
    facts = one_purchase()
    truth = class_history(facts, CREATED, P + days(300), POLICY)
    initial = {"tier": "C", "lifecycle": "potential"}
    # recorded by sweeps on the first of some months: new missed, active too early, at_risk late
    april, august = datetime(2025, 4, 1, tzinfo=timezone.utc), datetime(2025, 8, 1, tzinfo=timezone.utc)
    recorded = [Recorded(april, "lifecycle", "active"), Recorded(august, "lifecycle", "at_risk")]
    fixes = [(c.at, c.attribute, c.old, c.new) for c in corrections(initial, recorded, truth)]
    assert fixes == [
        (P, "lifecycle", "potential", "new"),
        (april, "lifecycle", "active", "new"),           # recorded too early: undone where it stands
        (P + days(91), "lifecycle", "new", "active"),
        (P + days(181), "lifecycle", "active", "at_risk"),
        # August's at_risk is right by then: nothing
        (P + days(271), "lifecycle", "at_risk", "dormant"),
    ]
    assert corrections(initial, [*recorded, *[Recorded(at, a, new) for at, a, _, new in fixes]], truth) == []


# ---------------------------------------------------------------- any arrival order, the same history

def fold(initial, recorded):
    """What a consumer folding the changes in time order (the last of an instant winning) holds at each moment."""
    def at(moment):
        state = dict(initial)
        for change in sorted(recorded, key=lambda c: c.at):
            if change.at <= moment:
                state[change.attribute] = change.value
        return state["tier"], state["lifecycle"]
    return at


facts_strategy = st.lists(st.tuples(st.sampled_from(["purchase", "interaction", "flag"]),
                                    st.integers(min_value=0, max_value=900),
                                    st.sampled_from([1000, 15000, 60000])), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(facts_strategy, st.randoms(use_true_random=False))
def test_facts_recorded_in_any_order_make_the_history_they_make_at_once(items, rng):
    """Each fact recorded when it arrives (its own date, arrival later), history recomputed from its date:
    what ends recorded folds to the history all the facts give at once, at every moment."""
    rng.shuffle(items)
    start = CREATED
    arrived = {"purchases": [], "interactions": [], "flags": []}
    recorded, initial = [], {"tier": "C", "lifecycle": "potential"}
    now = start + days(1000)
    for kind, offset, amount in items:
        moment = start + days(offset)
        if kind == "purchase":
            arrived["purchases"].append((moment, Decimal(amount)))
        elif kind == "interaction":
            arrived["interactions"].append(moment)
        else:
            arrived["flags"].append((moment, moment + days(amount // 1000)))
        facts = FactHistory.of(**arrived)
        history = class_history(facts, moment, now, POLICY)
        recorded += [Recorded(c.at, c.attribute, c.new) for c in corrections(initial, recorded, history)]
    truth = class_history(FactHistory.of(**arrived), start, now, POLICY)
    ours = fold(initial, recorded)
    for moment in sorted({s.at for s in truth} | {c.at for c in recorded} | {start + days(d) for d in range(0, 1000, 7)}):
        expected = truth[max(i for i, s in enumerate(truth) if s.at <= moment)]
        assert ours(moment) == (expected.tier, expected.lifecycle), moment


def test_flag_periods_follow_from_the_raises_and_lifts_in_any_order():
    raised, lifted, again = P, P + days(5), P + days(9)
    facts = [(raised, False), (lifted, True), (again, False)]
    assert flag_periods(facts) == [(raised, lifted), (again, None)]
    assert flag_periods(reversed(facts)) == flag_periods(facts)
    assert flag_periods([(raised, False), (raised, True)]) == [(raised, raised)]  # lifted at once: never up
    assert flag_periods([(lifted, True), (raised, False), (P + days(1), False)]) == [(raised, lifted),
                                                                                    (P + days(1), lifted)]
