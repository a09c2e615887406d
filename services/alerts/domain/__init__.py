"""Pure domain core of the alerts service (churn early warning): no nameko, HTTP, SQL or clock in here.

Every time-dependent function takes an explicit, timezone-aware ``as_of``; rules and scores count whole
UTC days, so any hour of the same day gives the same answer. docs/alerts-rules.md documents the rules.
"""
from services.alerts.domain.common import TIERS, DomainError, days_between, utc_day
from services.alerts.domain.config import (
    AlertsConfig, BandThresholds, EngagementPenalties, HealthConfig, HealthWeights, IntervalLengtheningRule,
    LowSatisfactionRule, NoRepurchaseRule, OpenComplaintRule, RulesConfig, SilenceRule, UnansweredFollowupsRule,
    config_to_dict, merge_settings,
)
from services.alerts.domain.health import (
    AT_RISK, HEALTHY, WATCH, BandChange, HealthBreakdown, band, band_change, engagement_score, frequency_score,
    health_breakdown, health_score, monetary_score, recency_reference, recency_score, risk_of, score_of,
    value_at_stake,
)
from services.alerts.domain.judgement import RECHECK_AT_LEAST_EVERY, Judgement, judge, next_check
from services.alerts.domain.lifecycle import (
    ACKNOWLEDGED, DEFAULT_ESCALATE_AFTER, DEFAULT_RECALL_DUE_IN, ESCALATED, OPEN, OUTCOMES, RESOLVED, Alert,
    ClearAtRisk, Command, FlagAtRisk, RequestRecallTask, acknowledge, alerts_to_raise, commands_on_raise,
    commands_on_resolve, escalate, needs_escalation, raise_alert, resolve,
)
from services.alerts.domain.read_model import EVENT_RULES, SNAPSHOT_EVENTS, BatchFold, ReadModel, fold, is_live
from services.alerts.domain.rules import RULE_NAMES, RULES, FiredRule, Signal, can_fire, evaluate, no_repurchase_limit
from services.alerts.domain.signals import (
    CONSUMED_EVENTS, CONTACT_OUTCOMES, MIN_PURCHASE_DAYS_FOR_CYCLE, UNANSWERED_OUTCOMES, CustomerSignals, Purchase,
    Known, SatisfactionScore, UnansweredAttempt, apply_archived, apply_event, apply_interaction,
    apply_lifecycle_changed,
    apply_owner_changed, apply_profile, apply_purchase, apply_task_completed, apply_task_missed, apply_tier_changed,
    days_since_last_contact, days_since_last_purchase, days_without_contact, interval_trend, missed_tasks_within,
    open_complaint_ages, purchase_gaps, rolling_12m, satisfaction_drop, scores_until, signals_from_dict,
    signals_to_dict, usual_purchase_interval,
)

from services.alerts.domain.settings import AlertsSettings

__all__ = [name for name in dir() if not name.startswith("_") and name not in {"common", "config", "health",
                                                                                "lifecycle", "rules", "signals",
                                                                                "settings", "judgement",
                                                                                "read_model"}]
