"""Churn rules: each looks at a customer's signals as of a day and says whether, and why, it fires."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from services.alerts.domain import signals as derived
from services.alerts.domain.common import require_aware
from services.alerts.domain.config import RulesConfig
from services.alerts.domain.signals import CustomerSignals

INACTIVE_LIFECYCLES = frozenset({"churned"})  # nobody left to warn about


@dataclass(frozen=True)
class Signal:
    """One measured value that crossed its threshold; the shape alert.raised carries."""
    name: str
    value: Any
    threshold: Any
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "threshold": self.threshold, "detail": self.detail}


@dataclass(frozen=True)
class FiredRule:
    rule: str
    signals: tuple[Signal, ...]

    def signal_dicts(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.signals]


def _num(value: float) -> int | float:
    """Whole numbers print as ints; others are rounded to 2 places so payloads stay stable and readable."""
    return int(value) if float(value).is_integer() else round(value, 2)


def check_silence(s: CustomerSignals, rules: RulesConfig, as_of: datetime) -> list[Signal]:
    days, limit = derived.days_without_contact(s, as_of), rules.silence.days_for(s.tier)
    if days is None or days < limit:
        return []
    since = "last contact" if s.last_contact_at else "creation (never contacted)"
    return [Signal("days_since_contact", days, limit,
                   f"no contact for {days} days since {since}; tier {s.tier or '-'} limit is {limit}")]


def check_no_repurchase(s: CustomerSignals, rules: RulesConfig, as_of: datetime) -> list[Signal]:
    cfg = rules.no_repurchase
    days = derived.days_since_last_purchase(s, as_of)
    if days is None:  # never bought: nothing to repurchase
        return []
    interval = derived.usual_purchase_interval(s, as_of)
    if interval is None:
        limit, why = cfg.no_cycle_days, "no purchase cycle yet"
    else:
        limit = max(cfg.factor * interval, cfg.min_days)
        why = f"usual interval {_num(interval)} days x {_num(cfg.factor)}"
    if days <= limit:
        return []
    return [Signal("days_since_purchase", days, _num(limit), f"{days} days since last purchase; limit {_num(limit)} ({why})")]


def check_interval_lengthening(s: CustomerSignals, rules: RulesConfig, as_of: datetime) -> list[Signal]:
    cfg = rules.interval_lengthening
    trend = derived.interval_trend(s, as_of, cfg.recent_gaps, cfg.min_earlier_gaps)
    if trend is None:
        return []
    recent, usual = trend
    ratio = recent / usual
    if ratio <= cfg.factor:
        return []
    return [Signal("interval_ratio", _num(ratio), _num(cfg.factor),
                   f"last {cfg.recent_gaps} gaps average {_num(recent)} days vs usual {_num(usual)} days")]


def check_unanswered_followups(s: CustomerSignals, rules: RulesConfig, as_of: datetime) -> list[Signal]:
    count, limit = s.consecutive_unanswered, rules.unanswered_followups.min_in_row
    if count < limit:
        return []
    return [Signal("unanswered_followups", count, limit, f"{count} follow-ups in a row without an answer")]


def check_open_complaint(s: CustomerSignals, rules: RulesConfig, as_of: datetime) -> list[Signal]:
    limit = rules.open_complaint.max_open_days
    return [Signal("complaint_open_days", days, limit, f"complaint {cid} open for {days} days")
            for cid, days in derived.open_complaint_ages(s, as_of).items() if days > limit]


def check_low_satisfaction(s: CustomerSignals, rules: RulesConfig, as_of: datetime) -> list[Signal]:
    cfg = rules.low_satisfaction
    scores = derived.scores_until(s, as_of)
    fired = []
    if scores and scores[-1] < cfg.below:
        fired.append(Signal("latest_satisfaction", scores[-1], cfg.below, f"latest score {scores[-1]} is below {cfg.below}"))
    drop = derived.satisfaction_drop(s, as_of, cfg.window)
    if drop is not None and drop >= cfg.min_drop:
        fired.append(Signal("satisfaction_drop", _num(drop), _num(cfg.min_drop),
                            f"mean of the last {cfg.window} scores fell {_num(drop)} points"))
    return fired


RuleCheck = Callable[[CustomerSignals, RulesConfig, datetime], list[Signal]]
RULES: dict[str, RuleCheck] = {  # evaluation (and output) order
    "silence": check_silence,
    "no_repurchase": check_no_repurchase,
    "interval_lengthening": check_interval_lengthening,
    "unanswered_followups": check_unanswered_followups,
    "open_complaint": check_open_complaint,
    "low_satisfaction": check_low_satisfaction,
}
RULE_NAMES = tuple(RULES)


def evaluate(signals: CustomerSignals, rules: RulesConfig, as_of: datetime) -> list[FiredRule]:
    """Every enabled rule that fires for this customer as of ``as_of``'s (UTC) day, in RULE_NAMES order."""
    require_aware(as_of)
    if signals.archived or signals.lifecycle in INACTIVE_LIFECYCLES:
        return []
    fired = []
    for name, check in RULES.items():
        if getattr(rules, name).enabled and (found := check(signals, rules, as_of)):
            fired.append(FiredRule(name, tuple(found)))
    return fired
