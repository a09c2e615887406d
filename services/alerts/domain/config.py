"""Tunable knobs of the churn rules and the health score.

Every setting has a documented default (docs/alerts-rules.md). Settings come from a plain dict
(YAML, env) through ``AlertsConfig.from_dict`` / ``RulesConfig.from_dict`` / ``HealthConfig.from_dict``;
a partial dict only overrides what it names. Bad values raise DomainError naming the dotted field,
e.g. ``silence.days_by_tier.A``; unknown keys are errors too, so a typo never silently keeps a default.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, TypeVar

from services.alerts.domain.common import TIERS, DomainError

T = TypeVar("T")


# --- validation helpers: each returns the normalised value or raises DomainError(field) ---------------

def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise DomainError(f"must be true or false, got {value!r}", name)
    return value


MAX_WHOLE = 100_000  # days or hours: more overflows the timedelta arithmetic of the sweep


def _whole(value: Any, name: str, minimum: int = 1, what: str = "a positive whole number") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_WHOLE:
        raise DomainError(f"must be {what} (at most {MAX_WHOLE}), got {value!r}", name)
    return value


def _number(value: Any, name: str, low: float, high: float | None = None, *,
            low_inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise DomainError(f"must be a number, got {value!r}", name)
    number = float(value)
    too_low = number < low if low_inclusive else number <= low
    if too_low or (high is not None and number > high):
        bounds = f"{'>=' if low_inclusive else '>'} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        raise DomainError(f"must be {bounds}, got {value!r}", name)
    return number


def _money(value: Any, name: str) -> Decimal:
    try:
        amount = Decimal(str(value)) if not isinstance(value, bool) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or not 0 < amount <= 10 ** 15:
        raise DomainError(f"must be a positive amount (at most 10^15), got {value!r}", name)
    return amount


def _tier_map(mapping: Mapping[str, Any], name: str, check) -> dict[str, Any]:
    unknown = set(mapping) - set(TIERS)
    if unknown:
        raise DomainError(f"unknown tier {sorted(unknown)[0]!r} (tiers are {', '.join(TIERS)})", name)
    return {tier: check(value, f"{name}.{tier}") for tier, value in mapping.items()}


def _set(obj: Any, **values: Any) -> None:
    for key, value in values.items():
        object.__setattr__(obj, key, value)  # frozen dataclasses normalise their own fields once


# --- rules ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SilenceRule:
    """No contact for N days (N by tier; >= N fires). Untiered customers get the most lenient N."""
    enabled: bool = True
    days_by_tier: Mapping[str, int] = field(default_factory=lambda: {"A": 21, "B": 30, "C": 45})

    def __post_init__(self) -> None:
        _flag(self.enabled, "enabled")
        _set(self, days_by_tier=_tier_map(self.days_by_tier, "days_by_tier", _whole))

    def days_for(self, tier: str | None) -> int:
        return self.days_by_tier.get(tier) or max(self.days_by_tier.values())


@dataclass(frozen=True)
class NoRepurchaseRule:
    """Days since last purchase > factor x usual interval (floored at min_days), or > no_cycle_days without a cycle."""
    enabled: bool = True
    factor: float = 1.5
    no_cycle_days: int = 90
    min_days: int = 14  # a burst of same-fortnight orders must not make a 2-day "cycle"

    def __post_init__(self) -> None:
        _flag(self.enabled, "enabled")
        _set(self, factor=_number(self.factor, "factor", 1.0, 10.0))
        _whole(self.no_cycle_days, "no_cycle_days")
        _whole(self.min_days, "min_days")


@dataclass(frozen=True)
class IntervalLengtheningRule:
    """Mean of the last ``recent_gaps`` gaps > factor x median of the earlier gaps (needs min_earlier_gaps of them)."""
    enabled: bool = True
    factor: float = 1.5
    recent_gaps: int = 2
    min_earlier_gaps: int = 2

    def __post_init__(self) -> None:
        _flag(self.enabled, "enabled")
        _set(self, factor=_number(self.factor, "factor", 1.0, 10.0, low_inclusive=False))
        _whole(self.recent_gaps, "recent_gaps")
        _whole(self.min_earlier_gaps, "min_earlier_gaps")


@dataclass(frozen=True)
class UnansweredFollowupsRule:
    """``min_in_row`` or more unanswered touches (no_answer/declined) since the last contact."""
    enabled: bool = True
    min_in_row: int = 3

    def __post_init__(self) -> None:
        _flag(self.enabled, "enabled")
        _whole(self.min_in_row, "min_in_row", minimum=2, what="a whole number >= 2")


@dataclass(frozen=True)
class OpenComplaintRule:
    """A complaint open for more than ``max_open_days`` days."""
    enabled: bool = True
    max_open_days: int = 7

    def __post_init__(self) -> None:
        _flag(self.enabled, "enabled")
        _whole(self.max_open_days, "max_open_days")


@dataclass(frozen=True)
class LowSatisfactionRule:
    """Latest score < ``below``, or the mean of the last ``window`` scores >= ``min_drop`` under the window before."""
    enabled: bool = True
    below: int = 3
    window: int = 3
    min_drop: float = 1.0

    def __post_init__(self) -> None:
        _flag(self.enabled, "enabled")
        _whole(self.below, "below", minimum=2, what="a score between 2 and 5")
        if self.below > 5:
            raise DomainError(f"must be a score between 2 and 5, got {self.below!r}", "below")
        _whole(self.window, "window")
        _set(self, min_drop=_number(self.min_drop, "min_drop", 0.0, 4.0, low_inclusive=False))


@dataclass(frozen=True)
class RulesConfig:
    silence: SilenceRule = field(default_factory=SilenceRule)
    no_repurchase: NoRepurchaseRule = field(default_factory=NoRepurchaseRule)
    interval_lengthening: IntervalLengtheningRule = field(default_factory=IntervalLengtheningRule)
    unanswered_followups: UnansweredFollowupsRule = field(default_factory=UnansweredFollowupsRule)
    open_complaint: OpenComplaintRule = field(default_factory=OpenComplaintRule)
    low_satisfaction: LowSatisfactionRule = field(default_factory=LowSatisfactionRule)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "RulesConfig":
        return _build(cls, data, "")


# --- health score -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class HealthWeights:
    """Relative weights of the sub-scores; they are normalised, so they need not add up to 100."""
    recency: float = 30
    frequency: float = 20
    monetary: float = 20
    engagement: float = 30

    def __post_init__(self) -> None:
        for name in ("recency", "frequency", "monetary", "engagement"):
            _set(self, **{name: _number(getattr(self, name), name, 0.0)})
        if self.total <= 0:
            raise DomainError("at least one weight must be positive")  # the caller's path names "weights"

    @property
    def total(self) -> float:
        return self.recency + self.frequency + self.monetary + self.engagement


@dataclass(frozen=True)
class EngagementPenalties:
    """What each warning sign takes off the engagement sub-score (1.0 = perfect), with caps per sign."""
    per_unanswered: float = 0.1
    max_unanswered: float = 0.3
    per_open_complaint: float = 0.2
    max_open_complaints: float = 0.4
    low_satisfaction: float = 0.2
    falling_satisfaction: float = 0.1
    per_missed_task: float = 0.1
    max_missed_tasks: float = 0.3
    max_silence: float = 0.3  # reached when days without contact hit the tier's silence limit

    def __post_init__(self) -> None:
        for f in fields(self):
            _set(self, **{f.name: _number(getattr(self, f.name), f.name, 0.0, 1.0)})


@dataclass(frozen=True)
class BandThresholds:
    """healthy >= healthy > watch >= watch > at_risk."""
    healthy: int = 70
    watch: int = 40

    def __post_init__(self) -> None:
        _whole(self.healthy, "healthy", what="a score between 1 and 100")
        _whole(self.watch, "watch", what="a score between 1 and 100")
        if self.healthy > 100:
            raise DomainError(f"must be a score between 1 and 100, got {self.healthy!r}", "healthy")
        if self.watch >= self.healthy:
            raise DomainError(f"must be below healthy ({self.healthy}), got {self.watch!r}", "watch")


@dataclass(frozen=True)
class HealthConfig:
    weights: HealthWeights = field(default_factory=HealthWeights)
    # rolling 12-month value (base currency) that scores 1.0 (A) and 0.5 (B); linear in between and below
    monetary_thresholds: Mapping[str, Decimal] = field(
        default_factory=lambda: {"A": Decimal("100000"), "B": Decimal("20000")})
    frequency_target: int = 4              # purchases in the last 12 months that score 1.0
    recency_no_cycle_days: int = 90        # reference gap when the customer has no usual interval yet
    recency_floor_days: int = 14           # the reference gap is never shorter than this
    recency_zero_ratio: float = 3.0        # recency reaches 0 at this many reference gaps
    missed_task_window_days: int = 30
    penalties: EngagementPenalties = field(default_factory=EngagementPenalties)
    bands: BandThresholds = field(default_factory=BandThresholds)

    def __post_init__(self) -> None:
        thresholds = dict(self.monetary_thresholds)
        if set(thresholds) != {"A", "B"}:
            raise DomainError("needs exactly the tiers A and B", "monetary_thresholds")
        thresholds = {tier: _money(value, f"monetary_thresholds.{tier}") for tier, value in thresholds.items()}
        if thresholds["A"] <= thresholds["B"]:
            raise DomainError("A must be above B", "monetary_thresholds.A")
        _set(self, monetary_thresholds=thresholds)
        _whole(self.frequency_target, "frequency_target")
        _whole(self.recency_no_cycle_days, "recency_no_cycle_days")
        _whole(self.recency_floor_days, "recency_floor_days")
        _set(self, recency_zero_ratio=_number(self.recency_zero_ratio, "recency_zero_ratio", 1.0,
                                              low_inclusive=False))
        _whole(self.missed_task_window_days, "missed_task_window_days")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "HealthConfig":
        return _build(cls, data, "")


# --- everything together --------------------------------------------------------------------------

@dataclass(frozen=True)
class AlertsConfig:
    rules: RulesConfig = field(default_factory=RulesConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    escalate_after_hours: int = 48      # an open alert nobody acknowledged by then is escalated
    recall_due_hours: int = 24          # the recall task asked for on raise is due this long after
    realert_cooldown_days: int = 14     # a rule resolved this recently is not raised again

    def __post_init__(self) -> None:
        _whole(self.escalate_after_hours, "escalate_after_hours")
        _whole(self.recall_due_hours, "recall_due_hours")
        _whole(self.realert_cooldown_days, "realert_cooldown_days", minimum=0, what="a whole number >= 0")

    @property
    def escalate_after(self) -> timedelta:
        return timedelta(hours=self.escalate_after_hours)

    @property
    def recall_due_in(self) -> timedelta:
        return timedelta(hours=self.recall_due_hours)

    @property
    def realert_cooldown(self) -> timedelta:
        return timedelta(days=self.realert_cooldown_days)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "AlertsConfig":
        return _build(cls, data, "")


def _build(cls: type[T], data: Mapping[str, Any] | None, path: str) -> T:
    """Defaults overridden by ``data``; nested settings merge, and errors carry the dotted path."""
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise DomainError("must be a mapping", path or cls.__name__)
    defaults = cls()
    known = {f.name for f in fields(cls)}
    overrides: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{path}.{key}" if path else str(key)
        if key not in known:
            raise DomainError("unknown setting", name)
        current = getattr(defaults, key)
        if is_dataclass(current):
            value = _build(type(current), value, name)
        elif isinstance(current, Mapping):
            if not isinstance(value, Mapping):
                raise DomainError("must be a mapping", name)
            value = {**current, **value}
        overrides[key] = value
    try:
        return cls(**overrides)
    except DomainError as err:
        raise DomainError(err.reason, f"{path}.{err.field}" if path and err.field else err.field or path) from None


# --- storage / API form -------------------------------------------------------------------------------

def config_to_dict(value: Any) -> Any:
    """A config (or any part of it) as plain JSON-able data that ``from_dict`` reads back to an equal config."""
    if is_dataclass(value):
        return {f.name: config_to_dict(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): config_to_dict(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def merge_settings(base: Mapping[str, Any] | None, override: Mapping[str, Any] | None) -> dict[str, Any]:
    """Deep merge of two settings mappings (``override`` wins; nested mappings merge key by key)."""
    merged: dict[str, Any] = dict(base or {})
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged
