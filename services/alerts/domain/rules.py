"""Churn rules: each looks at a customer's signals as of a day and says whether, and why, it fires."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from services.alerts.domain.common import require_aware
from services.alerts.domain.config import RulesConfig
from services.alerts.domain.signals import CustomerSignals, Known

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


def check_silence(k: Known, rules: RulesConfig) -> list[Signal]:
    s = k.signals
    days, limit = k.days_without_contact, rules.silence.days_for(s.tier)
    if days is None or days < limit:
        return []
    since = "last contact" if s.last_contact_at else "creation (never contacted)"
    return [Signal("days_since_contact", days, limit,
                   f"no contact for {days} days since {since}; tier {s.tier or '-'} limit is {limit}")]


def no_repurchase_limit(k: Known, rules: RulesConfig) -> tuple[float, str]:
    """Days since the last purchase beyond which no_repurchase fires, and why that many."""
    cfg = rules.no_repurchase
    interval = k.usual_interval
    if interval is None:
        return cfg.no_cycle_days, "no purchase cycle yet"
    return max(cfg.factor * interval, cfg.min_days), f"usual interval {_num(interval)} days x {_num(cfg.factor)}"


def check_no_repurchase(k: Known, rules: RulesConfig) -> list[Signal]:
    days = k.days_since_last_purchase
    if days is None:  # never bought: nothing to repurchase
        return []
    limit, why = no_repurchase_limit(k, rules)
    if days <= limit:
        return []
    return [Signal("days_since_purchase", days, _num(limit),
                   f"{days} days since last purchase; limit {_num(limit)} ({why})")]


def check_interval_lengthening(k: Known, rules: RulesConfig) -> list[Signal]:
    cfg = rules.interval_lengthening
    trend = k.interval_trend(cfg.recent_gaps, cfg.min_earlier_gaps)
    if trend is None:
        return []
    recent, usual = trend
    ratio = recent / usual
    if ratio <= cfg.factor:
        return []
    return [Signal("interval_ratio", _num(ratio), _num(cfg.factor),
                   f"last {cfg.recent_gaps} gaps average {_num(recent)} days vs usual {_num(usual)} days")]


def check_unanswered_followups(k: Known, rules: RulesConfig) -> list[Signal]:
    count, limit = k.signals.consecutive_unanswered, rules.unanswered_followups.min_in_row
    if count < limit:
        return []
    return [Signal("unanswered_followups", count, limit, f"{count} follow-ups in a row without an answer")]


def check_open_complaint(k: Known, rules: RulesConfig) -> list[Signal]:
    limit = rules.open_complaint.max_open_days
    return [Signal("complaint_open_days", days, limit, f"complaint {cid} open for {days} days")
            for cid, days in k.open_complaint_ages.items() if days > limit]


def check_low_satisfaction(k: Known, rules: RulesConfig) -> list[Signal]:
    cfg = rules.low_satisfaction
    scores = k.scores
    fired = []
    if scores and scores[-1] < cfg.below:
        fired.append(Signal("latest_satisfaction", scores[-1], cfg.below,
                            f"latest score {scores[-1]} is below {cfg.below}"))
    drop = k.satisfaction_drop(cfg.window)
    if drop is not None and drop >= cfg.min_drop:
        fired.append(Signal("satisfaction_drop", _num(drop), _num(cfg.min_drop),
                            f"mean of the last {cfg.window} scores fell {_num(drop)} points"))
    return fired


RuleCheck = Callable[[Known, RulesConfig], list[Signal]]
RULES: dict[str, RuleCheck] = {  # evaluation (and output) order
    "silence": check_silence,
    "no_repurchase": check_no_repurchase,
    "interval_lengthening": check_interval_lengthening,
    "unanswered_followups": check_unanswered_followups,
    "open_complaint": check_open_complaint,
    "low_satisfaction": check_low_satisfaction,
}
RULE_NAMES = tuple(RULES)


def can_fire(signals: CustomerSignals) -> bool:
    return not signals.archived and signals.lifecycle not in INACTIVE_LIFECYCLES


def evaluate(signals: CustomerSignals, rules: RulesConfig, as_of: datetime, known: Known | None = None,
             only: frozenset[str] | None = None) -> list[FiredRule]:
    """Every enabled rule (of ``only``, when given) that fires for this customer as of ``as_of``'s (UTC) day, in
    RULE_NAMES order; ``known`` (of the same signals and day) shares its work with the score."""
    require_aware(as_of)
    if not can_fire(signals):
        return []
    known = known or Known(signals, as_of)
    fired = []
    for name, check in RULES.items():
        if (only is None or name in only) and getattr(rules, name).enabled and (found := check(known, rules)):
            fired.append(FiredRule(name, tuple(found)))
    return fired
