"""Customers' domain rules pinned where mutation testing (bench/mutation.py, docs/testing.md) found mutants
the other unit tests let live: boundaries, fall-backs, the settings parser, and each refusal's exact error
(type, message and field: the field names the form field the API's error body points at)."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest

from crm_common.auth import Principal
from crm_common.errors import Conflict, CrmError, DomainError, Forbidden, NotFound
from services.customers.domain import (
    ClassificationPolicy, check_archive, check_can_hand_over, check_can_own, check_handover_to_rep,
    check_handover_to_team, check_live, check_not_future, check_stage_move, check_stage_time, check_transfer,
    check_update, company_key, facts_known_at, parse_amount, requested_owner, rolling_window_start, round_robin,
    team_of_unowned, tier_for,
)

NOW = datetime(2026, 6, 30, tzinfo=timezone.utc)
ADMIN, MANAGER, REP = Principal("a", "admin"), Principal("m", "manager", "north"), Principal("rep-1", "rep", "north")


def rep(rep_id, team="north", active=True, role="rep"):
    return SimpleNamespace(id=rep_id, team=team, role=role, active=active)


def refusal(call, *args):
    with pytest.raises(CrmError) as caught:
        call(*args)
    error = caught.value
    return type(error), error.message, error.field


REFUSALS = [
    (check_not_future, (NOW + timedelta(seconds=1), NOW, "occurred_at"),
     CrmError, "occurred_at cannot be in the future", "occurred_at"),
    (check_live, (NOW,), DomainError, "customer is archived", "customer_id"),
    (check_update, (None, "rep-1", None, {"owner_id": "rep-2"}),
     CrmError, "change the owner with POST /v1/customers/{id}/transfer", "owner_id"),
    (check_update, (None, None, "proposal", {"pipeline_stage": "won"}),
     CrmError, "move the stage with POST /v1/customers/{id}/stage", "pipeline_stage"),
    (check_archive, (REP, None), Forbidden, "only a manager or an admin archives customers", None),
    (check_archive, (MANAGER, NOW), Conflict, "customer is already archived", "customer_id"),
    (parse_amount, ("abc",), DomainError, "amount must be a number", "amount"),
    (parse_amount, ("0",), DomainError, "amount must be positive", "amount"),
    (ClassificationPolicy, ((("A", Decimal(10)), ("C", Decimal(1))),),
     DomainError, "tier thresholds must descend and end at 0", "tier_thresholds"),
    (lambda: ClassificationPolicy(new_days=0), (), DomainError, "day counts must be positive", "lifecycle_days"),
    (lambda: ClassificationPolicy(at_risk_days=180), (),
     DomainError, "active_days < at_risk_days < churned_days must hold", "lifecycle_days"),
    (lambda: ClassificationPolicy().to_base(Decimal(1), "CHF"), (),
     DomainError, "unsupported currency CHF; known: ['CNY', 'EUR', 'GBP', 'JPY', 'USD']", "currency"),
    (check_can_own, (ADMIN, rep("rep-2", active=False)), CrmError, "rep rep-2 is no longer active", "owner_id"),
    (check_can_own, (MANAGER, rep("rep-2", team="south")), Forbidden, "rep rep-2 is not in your team", "owner_id"),
    (check_can_own, (REP, rep("rep-2")), Forbidden, "a rep can only own customers themselves", "owner_id"),
    (check_transfer, (ADMIN, "rep-2", rep("rep-3", active=False)),
     CrmError, "rep rep-3 is no longer active", "to_owner_id"),
    (check_transfer, (ADMIN, "rep-2", rep("rep-2")), Conflict, "customer is already owned by rep-2", "to_owner_id"),
    (check_can_hand_over, (MANAGER, rep("rep-9", team="south")), NotFound, "rep rep-9 not found", None),
    (check_handover_to_rep, (ADMIN, "rep-1", rep("rep-1")), CrmError, "cannot hand over to the same rep", "to_owner_id"),
    (check_handover_to_rep, (MANAGER, "rep-1", rep("rep-2", team="south")),
     Forbidden, "rep rep-2 is not in your team", "to_owner_id"),
    (check_handover_to_team, (MANAGER, "south"), Forbidden, "managers hand over within their own team", "to_team"),
    (round_robin, ([], None, 1), DomainError, "the team has no active rep to take over", "to_team"),
    (check_stage_move, ("proposal", "closed"), DomainError, "unknown stage closed", "stage"),
    (check_stage_move, ("proposal", "proposal"), DomainError, "customer is already in stage proposal", "stage"),
    (check_stage_move, ("won", "lost"), DomainError,
     "a won customer leaves the pipeline; record purchases instead", "stage"),
    (check_stage_move, ("lost", "proposal"), DomainError,
     "a lost prospect can only be reopened at first_contact", "stage"),
    (check_stage_move, ("proposal", "needs_analysis"), DomainError,
     "cannot move back from proposal to needs_analysis", "stage"),
    (check_stage_time, (NOW - timedelta(days=2), NOW - timedelta(days=1), NOW),
     CrmError, "changed_at is before the previous stage change", "changed_at"),
]


@pytest.mark.parametrize("call,args,error_type,message,field", REFUSALS)
def test_each_refusal_names_its_error_message_and_field(call, args, error_type, message, field):
    assert refusal(call, *args) == (error_type, message, field)


# --- boundaries ---------------------------------------------------------------------------------------------

def test_a_moment_equal_to_now_is_not_in_the_future():
    check_not_future(NOW, NOW, "occurred_at")


def test_an_amount_is_kept_to_the_cent_and_one_is_positive():
    assert str(parse_amount("1")) == "1.00"
    assert str(parse_amount(7)) == "7.00"
    assert str(parse_amount("12.5")) == "12.50"


def test_a_day_count_of_one_is_positive():
    assert ClassificationPolicy(new_days=1, churn_contact_days=1).new_days == 1


def test_equal_lifecycle_day_counts_are_refused():
    with pytest.raises(DomainError):
        ClassificationPolicy(active_days=200, at_risk_days=200)
    with pytest.raises(DomainError):
        ClassificationPolicy(at_risk_days=540, churned_days=540)


def test_a_negative_total_falls_back_to_the_lowest_tier():
    assert tier_for(Decimal(-5), ClassificationPolicy()) == "C"


def test_the_rolling_window_is_the_365_days_before_as_of():
    assert rolling_window_start(NOW) == NOW - timedelta(days=365)


def test_facts_keep_an_interaction_at_as_of_and_every_given_fact():
    first, last, touch = NOW - timedelta(days=300), NOW - timedelta(days=10), NOW
    facts = facts_known_at(NOW, Decimal("123.45"), first, last, touch, True)
    assert (facts.rolling_12m_total, facts.first_purchase_at, facts.last_purchase_at, facts.last_interaction_at,
            facts.flagged_at_risk) == (Decimal("123.45"), first, last, touch, True)


# --- settings ---------------------------------------------------------------------------------------------

def test_every_lifecycle_day_setting_and_the_base_currency_are_read():
    policy = ClassificationPolicy.from_settings({
        "CUSTOMERS_NEW_DAYS": "30", "CUSTOMERS_ACTIVE_DAYS": "100", "CUSTOMERS_AT_RISK_DAYS": "300",
        "CUSTOMERS_CHURNED_DAYS": "600", "CUSTOMERS_CHURN_CONTACT_DAYS": "90", "CUSTOMERS_BASE_CURRENCY": "EUR"})
    assert (policy.new_days, policy.active_days, policy.at_risk_days, policy.churned_days,
            policy.churn_contact_days, policy.base_currency) == (30, 100, 300, 600, 90, "EUR")


def test_a_threshold_or_rate_with_two_colons_is_refused_not_read_from_its_last_colon():
    with pytest.raises(Exception):
        ClassificationPolicy.from_settings({"CUSTOMERS_TIER_THRESHOLDS": "A:1:0,C:0"})
    with pytest.raises(Exception):
        ClassificationPolicy.from_settings({"CUSTOMERS_FX_RATES": "EUR:1.1:2"})


# --- ownership ----------------------------------------------------------------------------------------------

def test_a_rep_creating_a_customer_without_owner_owns_it_others_leave_it_unowned():
    assert requested_owner(REP, None) == "rep-1"
    assert requested_owner(REP, "rep-1") == "rep-1"
    assert requested_owner(MANAGER, None) is None
    assert requested_owner(ADMIN, "rep-2") == "rep-2"


def test_an_unowned_customer_stays_in_its_managers_team_an_admins_in_none():
    assert team_of_unowned(MANAGER) == "north"
    assert team_of_unowned(ADMIN) is None
    assert team_of_unowned(REP) is None


def test_an_admin_hands_over_any_teams_rep_a_manager_their_own():
    check_can_hand_over(ADMIN, rep("rep-9", team="south"))
    check_can_hand_over(MANAGER, rep("rep-2"))


def test_a_hand_over_to_another_active_rep_of_the_team_is_allowed():
    check_handover_to_rep(MANAGER, "rep-1", rep("rep-2"))
    check_handover_to_team(MANAGER, "north")
    check_handover_to_team(ADMIN, "south")


def test_round_robin_wraps_to_the_first_rep_after_the_last_id():
    assert round_robin(["rep-b", "rep-a", "rep-c"], "rep-z", 2) == ["rep-a", "rep-b"]


def test_company_key_ignores_case_and_surrounding_blanks():
    assert company_key("  ACME Ltd ") == "acme ltd"
