from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest

from crm_common.auth import Principal
from crm_common.errors import Conflict, CrmError, DomainError, Forbidden, NotFound
from services.customers.domain import (
    ClassificationPolicy, CustomerFacts, check_can_hand_over, check_can_own, check_stage_move, check_stage_time,
    check_transfer, check_update, classify, facts_known_at, lifecycle_for, normalized_tags, parse_amount,
    refreshes_recency, resolution_clears_flag, round_robin, takes_handover, tier_for,
)

NOW = datetime(2026, 6, 30, tzinfo=timezone.utc)
POLICY = ClassificationPolicy()


def days_ago(n):
    return NOW - timedelta(days=n)


def facts(first=None, last=None, touch=None, total="0", flagged=False):
    return CustomerFacts(Decimal(total), first and days_ago(first), last and days_ago(last),
                         touch and days_ago(touch), flagged)


@pytest.mark.parametrize("total,tier", [("0", "C"), ("19999.99", "C"), ("20000", "B"), ("99999.99", "B"),
                                        ("100000", "A"), ("5000000", "A")])
def test_tier_thresholds(total, tier):
    assert tier_for(Decimal(total), POLICY) == tier


@pytest.mark.parametrize("first,last,touch,flagged,expected", [
    (None, None, None, False, "potential"),
    (90, 90, None, False, "new"),           # exactly new_days
    (91, 91, None, False, "active"),        # past new_days, last purchase within active_days
    (400, 180, None, False, "active"),      # exactly active_days
    (400, 181, None, False, "at_risk"),
    (400, 270, None, False, "at_risk"),
    (400, 271, None, False, "dormant"),
    (700, 540, None, False, "dormant"),     # exactly churned_days: not yet churned
    (700, 541, None, False, "churned"),
    (700, 541, 180, False, "dormant"),      # still in touch: not churned
    (700, 541, 181, False, "churned"),
])
def test_lifecycle(first, last, touch, flagged, expected):
    assert lifecycle_for(facts(first, last, touch, flagged=flagged), NOW, POLICY)[0] == expected


@pytest.mark.parametrize("first,last,touch,unflagged,flagged,reason", [
    (None, None, None, "potential", "potential", "no purchase yet"),   # a prospect is never at_risk
    (30, 30, None, "new", "at_risk", "open churn alert"),               # news for a new customer
    (90, 90, None, "new", "at_risk", "open churn alert"),               # last day of new
    (400, 30, None, "active", "at_risk", "open churn alert"),           # news for an active one
    (400, 180, None, "active", "at_risk", "open churn alert"),          # last day of active
    (400, 200, None, "at_risk", "at_risk", "no purchase for 200 days"),  # at_risk by silence already
    (400, 270, None, "at_risk", "at_risk", "no purchase for 270 days"),
    (400, 271, None, "dormant", "dormant", "no purchase for 271 days"),  # the flag does not hold it at at_risk
    (700, 541, 180, "dormant", "dormant", "no purchase for 541 days"),   # dormant but in touch
    (700, 541, None, "churned", "churned", "no purchase for 541 days and no contact for 180"),
])
def test_an_open_alert_makes_at_risk_only_where_that_is_news(first, last, touch, unflagged, flagged, reason):
    assert lifecycle_for(facts(first, last, touch), NOW, POLICY)[0] == unflagged
    assert lifecycle_for(facts(first, last, touch, flagged=True), NOW, POLICY) == (flagged, reason)


def test_classify_gives_reason():
    result = classify(facts(400, 200, total="25000"), NOW, POLICY)
    assert (result.tier, result.lifecycle) == ("B", "at_risk")
    assert "200 days" in result.reason


def test_policy_from_settings_and_validation():
    policy = ClassificationPolicy.from_settings({
        "CUSTOMERS_TIER_THRESHOLDS": "A:50000,B:10000,C:0", "CUSTOMERS_ACTIVE_DAYS": "120",
        "CUSTOMERS_FX_RATES": "USD:1,EUR:2"})
    assert tier_for(Decimal(60000), policy) == "A"
    assert policy.active_days == 120
    assert policy.to_base(Decimal("10.00"), "EUR") == Decimal("20.00")
    with pytest.raises(DomainError) as err:
        policy.to_base(Decimal(1), "XXX")
    assert err.value.field == "currency"
    with pytest.raises(DomainError):
        ClassificationPolicy(tier_thresholds=(("A", Decimal(10)), ("B", Decimal(20)), ("C", Decimal(0))))
    with pytest.raises(DomainError):
        ClassificationPolicy(active_days=300, at_risk_days=200)


@pytest.mark.parametrize("current,target", [(None, "first_contact"), ("first_contact", "proposal"),
                                            ("proposal", "won"), ("needs_analysis", "lost"),
                                            ("lost", "first_contact")])
def test_allowed_stage_moves(current, target):
    check_stage_move(current, target)


@pytest.mark.parametrize("current,target", [("proposal", "needs_analysis"), ("won", "lost"),
                                            ("lost", "proposal"), ("proposal", "proposal")])
def test_refused_stage_moves(current, target):
    with pytest.raises(DomainError) as err:
        check_stage_move(current, target)
    assert err.value.field == "stage"


def test_round_robin_continues_and_wraps():
    assert round_robin(["b", "a", "c"], None, 4) == ["a", "b", "c", "a"]
    assert round_robin(["a", "b", "c"], "b", 2) == ["c", "a"]
    assert round_robin(["a", "c"], "b", 2) == ["c", "a"]  # the last one left the team
    with pytest.raises(DomainError):
        round_robin([], None, 1)


@pytest.mark.parametrize("value", ["0", "-5", "abc", "NaN", "Infinity"])
def test_amount_must_be_positive_number(value):
    with pytest.raises(DomainError):
        parse_amount(value)


def test_facts_forget_interactions_after_as_of():
    """A sweep as of a past day sees the customer as it was: a later touch had not happened."""
    before, after = days_ago(10), days_ago(1)
    assert facts_known_at(days_ago(5), Decimal(0), None, None, after, False).last_interaction_at is None
    assert facts_known_at(days_ago(5), Decimal(0), None, None, before, False).last_interaction_at == before


def test_only_a_later_interaction_refreshes_recency():
    assert refreshes_recency(None, days_ago(400))
    assert refreshes_recency(days_ago(5), days_ago(1))
    assert not refreshes_recency(days_ago(1), days_ago(5))
    assert not refreshes_recency(days_ago(1), days_ago(1))


@pytest.mark.parametrize("clears,outcome,expected", [
    (None, "recovered", True), (None, "false_alarm", False), (None, "lost", False),  # older producers
    (True, "false_alarm", True), (False, "recovered", False),                     # the alerts service decides
])
def test_resolution_clears_the_flag(clears, outcome, expected):
    assert resolution_clears_flag(clears, outcome) is expected


def test_stage_times_cannot_be_in_the_future_or_before_the_last_move():
    check_stage_time(days_ago(3), days_ago(3), NOW)
    for changed_at, previous in ((NOW + timedelta(seconds=1), None), (days_ago(4), days_ago(3))):
        with pytest.raises(CrmError) as err:
            check_stage_time(changed_at, previous, NOW)
        assert err.value.field == "changed_at" and err.value.status == 400


def test_owner_and_stage_change_through_their_own_use_cases():
    check_update(None, "rep-1", "proposal", {"owner_id": "rep-1", "pipeline_stage": "proposal", "notes": "x"})
    for change, field in (({"owner_id": "rep-2"}, "owner_id"), ({"pipeline_stage": "won"}, "pipeline_stage")):
        with pytest.raises(CrmError) as err:
            check_update(None, "rep-1", "proposal", change)
        assert err.value.field == field
    with pytest.raises(DomainError):
        check_update(NOW, "rep-1", "proposal", {"notes": "x"})


def rep(rep_id, team="north", role="rep", active=True):
    return SimpleNamespace(id=rep_id, team=team, role=role, active=active)


def test_who_may_own_and_take_customers():
    manager, rep_1 = Principal("m", "manager", "north"), Principal("rep-1", "rep", "north")
    check_can_own(rep_1, rep("rep-1"))
    check_can_own(manager, rep("rep-2"))
    with pytest.raises(Forbidden):
        check_can_own(rep_1, rep("rep-2"))
    with pytest.raises(Forbidden):
        check_can_own(manager, rep("rep-s", team="south"))
    with pytest.raises(CrmError) as err:
        check_can_own(Principal("a", "admin"), rep("rep-2", active=False))
    assert err.value.field == "owner_id" and err.value.status == 400
    with pytest.raises(Conflict):
        check_transfer(manager, "rep-2", rep("rep-2"))
    with pytest.raises(NotFound):  # another team's rep is not even visible to a manager
        check_can_hand_over(manager, rep("rep-s", team="south"))


def test_who_shares_a_team_handover():
    assert takes_handover(rep("rep-2"), "rep-1")
    assert not takes_handover(rep("rep-1"), "rep-1")
    assert not takes_handover(rep("rep-2", active=False), "rep-1")
    assert not takes_handover(rep("m", role="manager"), "rep-1")


def test_tags_are_case_insensitive_and_unique():
    assert normalized_tags(["VIP", " vip ", "Export", "  "]) == ["export", "vip"]


def test_stored_overrides_replace_what_they_name_and_keep_the_order_of_things():
    from decimal import Decimal

    from crm_common.errors import DomainError
    base = ClassificationPolicy()
    policy = base.with_overrides({"tier_minimums": {"B": "50000"}, "active_days": 120})
    assert policy.tier_thresholds == (("A", Decimal(100000)), ("B", Decimal(50000)), ("C", Decimal(0)))
    assert (policy.active_days, policy.at_risk_days, policy.new_days) == (120, 270, 90)
    assert base.with_overrides({}) == base
    for overrides, field in (({"tier_minimums": {"B": "100000"}}, "tier_minimums.B"),
                             ({"tier_minimums": {"A": "10000"}}, "tier_minimums.B"),
                             ({"tier_minimums": {"C": "1"}}, "tier_minimums.C"),
                             ({"active_days": 270}, "at_risk_days"), ({"at_risk_days": 600}, "churned_days")):
        with pytest.raises(DomainError) as refused:
            base.with_overrides(overrides)
        assert refused.value.field == field, overrides


def test_the_policy_dependency_never_fails_a_worker_when_the_database_is_away():
    """nameko stops the whole container when a dependency raises (the fault test saw customers die with a
    PostgreSQL restart): the stored settings unreadable, the last known policy (or the environment's) serves."""
    from services.customers.policy_store import EffectivePolicy

    class Away:
        def unit_of_work(self):
            raise ConnectionRefusedError("the database is away")

    provider = EffectivePolicy()
    provider.base, provider._cached = ClassificationPolicy(), None
    provider._store = Away
    assert provider.current() is provider.base
    known = ClassificationPolicy().with_overrides({"active_days": 120})
    provider._cached = (-10.0, {"active_days": 120}, known)  # stale: it tries to read, fails, keeps what it had
    assert provider.current() is known
