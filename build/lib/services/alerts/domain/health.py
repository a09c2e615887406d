"""Health score 0..100: a weighted sum of four 0..1 sub-scores (formulas in docs/alerts-rules.md)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.alerts.domain import signals as derived
from services.alerts.domain.common import require_aware
from services.alerts.domain.config import BandThresholds, HealthConfig, RulesConfig
from services.alerts.domain.signals import CustomerSignals

HEALTHY, WATCH, AT_RISK = "healthy", "watch", "at_risk"


@dataclass(frozen=True)
class HealthBreakdown:
    score: int
    recency: float
    frequency: float
    monetary: float
    engagement: float


def recency_score(s: CustomerSignals, as_of: datetime, cfg: HealthConfig) -> float:
    """1 within one reference gap of the last purchase, then linear down to 0 at recency_zero_ratio gaps."""
    days = derived.days_since_last_purchase(s, as_of)
    if days is None:
        return 0.0
    interval = derived.usual_purchase_interval(s, as_of)
    reference = max(interval if interval is not None else cfg.recency_no_cycle_days, cfg.recency_floor_days)
    ratio = days / reference
    return _clamp(1 - (ratio - 1) / (cfg.recency_zero_ratio - 1)) if ratio > 1 else 1.0


def frequency_score(s: CustomerSignals, as_of: datetime, cfg: HealthConfig) -> float:
    count, _ = derived.rolling_12m(s, as_of)
    return _clamp(count / cfg.frequency_target)


def monetary_score(s: CustomerSignals, as_of: datetime, cfg: HealthConfig) -> float:
    """0 -> 0, B threshold -> 0.5, A threshold -> 1, linear in between."""
    _, value = derived.rolling_12m(s, as_of)
    a, b = cfg.monetary_thresholds["A"], cfg.monetary_thresholds["B"]
    if value >= a:
        return 1.0
    if value >= b:
        return float(Decimal("0.5") + Decimal("0.5") * (value - b) / (a - b))
    return _clamp(float(Decimal("0.5") * value / b))


def engagement_score(s: CustomerSignals, as_of: datetime, cfg: HealthConfig, rules: RulesConfig) -> float:
    """1 minus capped penalties; silence and satisfaction use the rules' thresholds so both agree on 'bad'."""
    p = cfg.penalties
    penalty = min(p.max_unanswered, p.per_unanswered * s.consecutive_unanswered)
    penalty += min(p.max_open_complaints, p.per_open_complaint * len(s.open_complaints))
    missed = derived.missed_tasks_within(s, as_of, cfg.missed_task_window_days)
    penalty += min(p.max_missed_tasks, p.per_missed_task * missed)

    scores = derived.scores_until(s, as_of)
    if scores and scores[-1] < rules.low_satisfaction.below:
        penalty += p.low_satisfaction
    drop = derived.satisfaction_drop(s, as_of, rules.low_satisfaction.window)
    if drop is not None and drop >= rules.low_satisfaction.min_drop:
        penalty += p.falling_satisfaction

    silent_days = derived.days_without_contact(s, as_of)
    silence_share = 1.0 if silent_days is None else min(1.0, silent_days / rules.silence.days_for(s.tier))
    penalty += p.max_silence * silence_share
    return _clamp(1 - penalty)


def health_breakdown(s: CustomerSignals, as_of: datetime, cfg: HealthConfig | None = None,
                     rules: RulesConfig | None = None) -> HealthBreakdown:
    require_aware(as_of)
    cfg, rules = cfg or HealthConfig(), rules or RulesConfig()
    parts = {
        "recency": recency_score(s, as_of, cfg),
        "frequency": frequency_score(s, as_of, cfg),
        "monetary": monetary_score(s, as_of, cfg),
        "engagement": engagement_score(s, as_of, cfg, rules),
    }
    w = cfg.weights
    weighted = sum(getattr(w, name) * value for name, value in parts.items()) / w.total
    score = min(100, max(0, math.floor(weighted * 100 + 0.5 + 1e-9)))  # half-up; epsilon absorbs float dust
    return HealthBreakdown(score, **{name: round(value, 4) for name, value in parts.items()})


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
