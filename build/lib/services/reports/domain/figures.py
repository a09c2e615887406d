"""The figures a sales manager runs the team by, read from counters.

Each figure takes a CounterSource, a period (or a date for stocks) and a slice,
and returns a number, or None when its denominator is 0. docs/reports-definitions.md
states every definition in words and as a formula.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from . import counters as c
from .counters import ALL, CounterSource, Dimension, Number, Slice
from .periods import Period

ACTIVE_BASE_LIFECYCLES = ("new", "active", "dormant", "at_risk")  # not potential, not churned
FUNNEL_STAGES = ("first_contact", "needs_analysis", "proposal", "won")
SECONDS_PER_DAY = 86400


def ratio(numerator: Number, denominator: Number) -> float | None:
    return None if not denominator else float(numerator) / float(denominator)


# --- customer base ----------------------------------------------------------
def active_base(src: CounterSource, at: date, slice_: Slice = ALL) -> int:
    """Customers neither potential nor churned (nor archived) at the start of day `at`."""
    return sum(src.stock(c.customers_in(lc), at, slice_) for lc in ACTIVE_BASE_LIFECYCLES)


def churn_rate(src: CounterSource, period: Period, slice_: Slice = ALL) -> float | None:
    return ratio(src.flow(c.CHURNED, period, slice_), active_base(src, period.start, slice_))


def retention_rate(src: CounterSource, period: Period, slice_: Slice = ALL) -> float | None:
    churn = churn_rate(src, period, slice_)
    return None if churn is None else 1 - churn


def distribution(src: CounterSource, at: date, dimension: Dimension | str, values: list[str],
                 scope: Slice = ALL, lifecycles: tuple[str, ...] = c.LIFECYCLES) -> dict[str, int]:
    """Customers per value of tier, lifecycle or industry at the start of day `at`."""
    dimension = Dimension(dimension)
    if dimension is Dimension.LIFECYCLE:  # lifecycle is in the stock's metric name already
        return {v: src.stock(c.customers_in(v), at, scope) if v in lifecycles else 0 for v in values}
    return {v: sum(src.stock(c.customers_in(lc), at, scope.with_value(dimension, v)) for lc in lifecycles)
            for v in values}


def movements(src: CounterSource, period: Period, dimension: Dimension | str,
              slice_: Slice = ALL) -> dict[tuple[str, str], int]:
    """(from, to) -> moves in the period, tier or lifecycle, only pairs that happened."""
    dimension = Dimension(dimension)
    vocabulary = {Dimension.TIER: c.TIERS, Dimension.LIFECYCLE: c.LIFECYCLES}[dimension]
    counts = {(old, new): src.flow(c.moved(dimension, old, new), period, slice_)
              for old in vocabulary for new in vocabulary if old != new}
    return {pair: n for pair, n in counts.items() if n}


def average_health_score(src: CounterSource, at: date, slice_: Slice = ALL) -> float | None:
    """Mean of every scored customer's latest score at the start of day `at`."""
    return ratio(src.stock(c.HEALTH_SUM, at, slice_), src.stock(c.HEALTH_SCORED, at, slice_))


# --- purchases --------------------------------------------------------------
def repurchase_rate(src: CounterSource, period: Period, slice_: Slice = ALL) -> float | None:
    return ratio(src.flow(c.REPEAT_BUYERS, period, slice_), src.flow(c.BUYERS, period, slice_))


def revenue(src: CounterSource, period: Period, slice_: Slice = ALL) -> Decimal:
    return Decimal(src.flow(c.REVENUE, period, slice_))


# --- follow-ups and interactions --------------------------------------------
def followup_coverage(src: CounterSource, period: Period, slice_: Slice = ALL) -> float | None:
    return ratio(src.flow(c.CUSTOMERS_TOUCHED, period, slice_), src.flow(c.CUSTOMERS_DUE, period, slice_))


def missed_followup_rate(src: CounterSource, period: Period, slice_: Slice = ALL) -> float | None:
    return ratio(src.flow(c.TASKS_MISSED, period, slice_), src.flow(c.TASKS_CAME_DUE, period, slice_))


@dataclass(frozen=True)
class InteractionCounts:
    total: int
    pre_sale: int
    post_sale: int


def interaction_counts(src: CounterSource, period: Period, slice_: Slice = ALL) -> InteractionCounts:
    return InteractionCounts(src.flow(c.INTERACTIONS, period, slice_),
                             src.flow(c.interactions_in("pre_sale"), period, slice_),
                             src.flow(c.interactions_in("post_sale"), period, slice_))


def interactions_per_rep(src: CounterSource, period: Period, rep_ids: list[str]) -> dict[str, InteractionCounts]:
    return {rep: interaction_counts(src, period, Slice(rep=rep)) for rep in rep_ids}


def average_satisfaction(src: CounterSource, period: Period, slice_: Slice = ALL) -> float | None:
    return ratio(src.flow(c.SATISFACTION_SUM, period, slice_), src.flow(c.SATISFACTION_COUNT, period, slice_))


def complaints(src: CounterSource, period: Period, slice_: Slice = ALL) -> int:
    return src.flow(c.COMPLAINTS, period, slice_)


# --- pipeline ---------------------------------------------------------------
@dataclass(frozen=True)
class FunnelStep:
    stage: str
    entered: int
    conversion: float | None  # entered / entered of the step before; None for the first step


def funnel(src: CounterSource, period: Period, slice_: Slice = ALL) -> list[FunnelStep]:
    steps: list[FunnelStep] = []
    for stage in FUNNEL_STAGES:
        entered = src.flow(c.stage_entered(stage), period, slice_)
        steps.append(FunnelStep(stage, entered, ratio(entered, steps[-1].entered) if steps else None))
    return steps


def win_rate(src: CounterSource, period: Period, slice_: Slice = ALL) -> float | None:
    won = src.flow(c.stage_entered("won"), period, slice_)
    return ratio(won, won + src.flow(c.stage_entered("lost"), period, slice_))


def average_cycle_days(src: CounterSource, period: Period, slice_: Slice = ALL) -> float | None:
    seconds = ratio(src.flow(c.WON_CYCLE_SECONDS, period, slice_), src.flow(c.WON_WITH_CYCLE, period, slice_))
    return None if seconds is None else seconds / SECONDS_PER_DAY


# --- churn alerts -----------------------------------------------------------
@dataclass(frozen=True)
class AlertSummary:
    """Alerts raised in the period and what became of them so far."""
    raised: int
    handled: int
    handled_in_time: int
    escalated: int
    recovered: int
    lost: int
    false_alarm: int

    @property
    def open(self) -> int:
        return self.raised - self.recovered - self.lost - self.false_alarm


def alert_summary(src: CounterSource, period: Period, slice_: Slice = ALL) -> AlertSummary:
    def flow(metric: str) -> int:
        return src.flow(metric, period, slice_)

    return AlertSummary(flow(c.ALERTS_RAISED), flow(c.ALERTS_HANDLED), flow(c.ALERTS_HANDLED_IN_TIME),
                        flow(c.ALERTS_ESCALATED), flow(c.alerts_resolved("recovered")),
                        flow(c.alerts_resolved("lost")), flow(c.alerts_resolved("false_alarm")))


def handled_in_time_rate(src: CounterSource, period: Period, slice_: Slice = ALL) -> float | None:
    return ratio(src.flow(c.ALERTS_HANDLED_IN_TIME, period, slice_), src.flow(c.ALERTS_RAISED, period, slice_))


def recovery_rate(src: CounterSource, period: Period, slice_: Slice = ALL) -> float | None:
    recovered = src.flow(c.alerts_resolved("recovered"), period, slice_)
    return ratio(recovered, recovered + src.flow(c.alerts_resolved("lost"), period, slice_))


# --- one row of everything, for dashboards and CSV --------------------------
HEADLINE_COLUMNS = (
    "period", "active_base_at_start", "churned", "churn_rate", "retention_rate",
    "purchases", "revenue", "buyers", "repeat_buyers", "repurchase_rate",
    "interactions", "interactions_pre_sale", "interactions_post_sale", "average_satisfaction", "complaints",
    "tasks_came_due", "tasks_missed", "missed_followup_rate", "customers_due", "customers_touched",
    "followup_coverage", "won", "lost", "win_rate", "average_cycle_days",
    "alerts_raised", "alerts_handled_in_time", "handled_in_time_rate", "alerts_recovered", "alerts_lost",
    "recovery_rate", "average_health_score_at_end",
)


def headline_figures(src: CounterSource, period: Period, slice_: Slice = ALL) -> dict[str, object]:
    def flow(metric: str) -> Number:
        return src.flow(metric, period, slice_)

    talks = interaction_counts(src, period, slice_)
    return {
        "period": period.label,
        "active_base_at_start": active_base(src, period.start, slice_),
        "churned": flow(c.CHURNED),
        "churn_rate": churn_rate(src, period, slice_),
        "retention_rate": retention_rate(src, period, slice_),
        "purchases": flow(c.PURCHASES),
        "revenue": revenue(src, period, slice_),
        "buyers": flow(c.BUYERS),
        "repeat_buyers": flow(c.REPEAT_BUYERS),
        "repurchase_rate": repurchase_rate(src, period, slice_),
        "interactions": talks.total,
        "interactions_pre_sale": talks.pre_sale,
        "interactions_post_sale": talks.post_sale,
        "average_satisfaction": average_satisfaction(src, period, slice_),
        "complaints": complaints(src, period, slice_),
        "tasks_came_due": flow(c.TASKS_CAME_DUE),
        "tasks_missed": flow(c.TASKS_MISSED),
        "missed_followup_rate": missed_followup_rate(src, period, slice_),
        "customers_due": flow(c.CUSTOMERS_DUE),
        "customers_touched": flow(c.CUSTOMERS_TOUCHED),
        "followup_coverage": followup_coverage(src, period, slice_),
        "won": flow(c.stage_entered("won")),
        "lost": flow(c.stage_entered("lost")),
        "win_rate": win_rate(src, period, slice_),
        "average_cycle_days": average_cycle_days(src, period, slice_),
        "alerts_raised": flow(c.ALERTS_RAISED),
        "alerts_handled_in_time": flow(c.ALERTS_HANDLED_IN_TIME),
        "handled_in_time_rate": handled_in_time_rate(src, period, slice_),
        "alerts_recovered": flow(c.alerts_resolved("recovered")),
        "alerts_lost": flow(c.alerts_resolved("lost")),
        "recovery_rate": recovery_rate(src, period, slice_),
        "average_health_score_at_end": average_health_score(src, period.end, slice_),
    }
