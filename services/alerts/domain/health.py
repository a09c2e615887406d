"""Health score 0..100: a weighted sum of four 0..1 sub-scores (formulas in docs/alerts-rules.md)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.alerts.domain.common import require_aware
from services.alerts.domain.config import BandThresholds, HealthConfig, RulesConfig
from services.alerts.domain.signals import CustomerSignals, Known

HEALTHY, WATCH, AT_RISK = "healthy", "watch", "at_risk"


@dataclass(frozen=True)
class HealthBreakdown:
    score: int
    recency: float
    frequency: float
    monetary: float
    engagement: float
    weighted: float = field(default=0.0, compare=False, repr=False)  # unrounded 0..1 sum: how far from a band edge
    revenue_12m: Decimal = field(default=Decimal(0), compare=False, repr=False)  # what value_at_stake weighs


def recency_score(s: CustomerSignals, as_of: datetime, cfg: HealthConfig) -> float:
    return _recency(Known(s, as_of), cfg)


def frequency_score(s: CustomerSignals, as_of: datetime, cfg: HealthConfig) -> float:
    return _frequency(Known(s, as_of), cfg)


def monetary_score(s: CustomerSignals, as_of: datetime, cfg: HealthConfig) -> float:
    return _monetary(Known(s, as_of), cfg)


def engagement_score(s: CustomerSignals, as_of: datetime, cfg: HealthConfig, rules: RulesConfig) -> float:
    return _engagement(Known(s, as_of), cfg, rules)


def recency_reference(known: Known, cfg: HealthConfig) -> float:
    """The gap recency measures against: the usual interval (or recency_no_cycle_days), floored."""
    interval = known.usual_interval
    return max(interval if interval is not None else cfg.recency_no_cycle_days, cfg.recency_floor_days)


def _recency(known: Known, cfg: HealthConfig) -> float:
    """1 within one reference gap of the last purchase, then linear down to 0 at recency_zero_ratio gaps."""
    days = known.days_since_last_purchase
    if days is None:
        return 0.0
    ratio = days / recency_reference(known, cfg)
    return _clamp(1 - (ratio - 1) / (cfg.recency_zero_ratio - 1)) if ratio > 1 else 1.0


def _frequency(known: Known, cfg: HealthConfig) -> float:
    count, _ = known.rolling_12m
    return _clamp(count / cfg.frequency_target)


def _monetary(known: Known, cfg: HealthConfig) -> float:
    """0 -> 0, B threshold -> 0.5, A threshold -> 1, linear in between."""
    _, value = known.rolling_12m
    a, b = cfg.monetary_thresholds["A"], cfg.monetary_thresholds["B"]
    if value >= a:
        return 1.0
    if value >= b:
        return float(Decimal("0.5") + Decimal("0.5") * (value - b) / (a - b))
    return _clamp(float(Decimal("0.5") * value / b))


def _engagement(known: Known, cfg: HealthConfig, rules: RulesConfig) -> float:
    """1 minus capped penalties; silence and satisfaction use the rules' thresholds so both agree on 'bad'."""
    s, p = known.signals, cfg.penalties
    penalty = min(p.max_unanswered, p.per_unanswered * s.consecutive_unanswered)
    penalty += min(p.max_open_complaints, p.per_open_complaint * len(s.open_complaints))
    penalty += min(p.max_missed_tasks, p.per_missed_task * known.missed_tasks_within(cfg.missed_task_window_days))

    scores = known.scores
    if scores and scores[-1] < rules.low_satisfaction.below:
        penalty += p.low_satisfaction
    drop = known.satisfaction_drop(rules.low_satisfaction.window)
    if drop is not None and drop >= rules.low_satisfaction.min_drop:
        penalty += p.falling_satisfaction

    silent_days = known.days_without_contact
    silence_share = 1.0 if silent_days is None else min(1.0, silent_days / rules.silence.days_for(s.tier))
    penalty += p.max_silence * silence_share
    return _clamp(1 - penalty)


def health_breakdown(s: CustomerSignals, as_of: datetime, cfg: HealthConfig | None = None,
                     rules: RulesConfig | None = None, known: Known | None = None) -> HealthBreakdown:
    """The score and its parts; ``known`` (of the same signals and day) shares its work with the rules."""
    require_aware(as_of)
    cfg, rules = cfg or HealthConfig(), rules or RulesConfig()
    known = known or Known(s, as_of)
    recency, frequency = _recency(known, cfg), _frequency(known, cfg)
    monetary, engagement = _monetary(known, cfg), _engagement(known, cfg, rules)
    w = cfg.weights
    weighted = (w.recency * recency + w.frequency * frequency + w.monetary * monetary
                + w.engagement * engagement) / w.total
    return HealthBreakdown(score_of(weighted), round(recency, 4), round(frequency, 4), round(monetary, 4),
                           round(engagement, 4), weighted, known.rolling_12m[1])


def risk_of(score: int | None) -> Decimal:
    """How likely the customer is lost, 0..1: the health score's complement (no score yet: 1)."""
    return Decimal(1) if score is None else Decimal(100 - score) / 100


def value_at_stake(revenue_12m: Decimal | None, score: int | None) -> Decimal:
    """What the alert queue ranks by: rolling 12-month revenue times the risk (docs/alerts-rules.md)."""
    return ((revenue_12m or Decimal(0)) * risk_of(score)).quantize(Decimal("0.01"))


def score_of(weighted: float) -> int:
    """0..1 weighted sum -> 0..100, half-up; the epsilon absorbs float dust."""
    return min(100, max(0, math.floor(weighted * 100 + 0.5 + 1e-9)))


def health_score(s: CustomerSignals, as_of: datetime, cfg: HealthConfig | None = None,
                 rules: RulesConfig | None = None) -> int:
    return health_breakdown(s, as_of, cfg, rules).score


def band(score: int, thresholds: BandThresholds | None = None) -> str:
    t = thresholds or BandThresholds()
    return HEALTHY if score >= t.healthy else WATCH if score >= t.watch else AT_RISK


@dataclass(frozen=True)
class BandChange:
    old_band: str | None
    new_band: str


def band_change(old_score: int | None, new_score: int, thresholds: BandThresholds | None = None) -> BandChange | None:
    """The band move worth a health.score_changed event, or None; a first score (old None) always counts."""
    old_band = band(old_score, thresholds) if old_score is not None else None
    new_band = band(new_score, thresholds)
    return None if old_band == new_band else BandChange(old_band, new_band)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))
