from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crm_common.errors import DomainError
from services.customers.domain import (
    ClassificationPolicy, CustomerFacts, check_stage_move, classify, lifecycle_for, parse_amount, round_robin,
    tier_for,
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
    (400, 30, None, True, "at_risk"),       # an open churn alert flags it
    (700, 600, None, True, "churned"),      # churned wins over the flag
])
def test_lifecycle(first, last, touch, flagged, expected):
    assert lifecycle_for(facts(first, last, touch, flagged=flagged), NOW, POLICY)[0] == expected


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
