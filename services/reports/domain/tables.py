"""The report tables: for each figure, its columns and how one period x slice is computed.

``GET /v1/reports/<figure>`` answers one row per period (x breakdown value) with
these columns, in this order; CSV export uses the same columns. Every value comes
from the figure functions in figures.py (definitions in docs/reports-definitions.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Callable

from . import counters as c
from . import figures as f
from .counters import ALL, CounterSource, Dimension, InMemoryCounters, Slice
from .periods import Period, PeriodKind

Row = dict[str, object]


@dataclass(frozen=True)
class FigureTable:
    name: str
    description: str
    columns: tuple[str, ...]
    rows: Callable[[CounterSource, Period, Slice], list[Row]]
    metrics: tuple[str, ...] = ()  # the flow metrics its rows read (so only those are loaded)

    def stock_dates(self, period: Period) -> list[date]:
        """Days whose stocks the rows read (so they can be loaded in one go)."""
        return [period.start, period.end]


def _one(fn):
    return lambda src, period, slice_: [fn(src, period, slice_)]


def _churn(src: CounterSource, period: Period, slice_: Slice) -> Row:
    return {"active_base_at_start": f.active_base(src, period.start, slice_),
            "churned": src.flow(c.CHURNED, period, slice_),
            "churn_rate": f.churn_rate(src, period, slice_),
            "retention_rate": f.retention_rate(src, period, slice_)}


def _repurchase(src: CounterSource, period: Period, slice_: Slice) -> Row:
    return {"purchases": src.flow(c.PURCHASES, period, slice_), "revenue": f.revenue(src, period, slice_),
            "buyers": src.flow(c.BUYERS, period, slice_), "repeat_buyers": src.flow(c.REPEAT_BUYERS, period, slice_),
            "repurchase_rate": f.repurchase_rate(src, period, slice_)}


def _followups(src: CounterSource, period: Period, slice_: Slice) -> Row:
    def flow(metric):
        return src.flow(metric, period, slice_)

    return {"tasks_came_due": flow(c.TASKS_CAME_DUE), "tasks_completed": flow(c.TASKS_COMPLETED),
            "tasks_completed_on_time": flow(c.TASKS_COMPLETED_ON_TIME), "tasks_skipped": flow(c.TASKS_SKIPPED),
            "tasks_missed": flow(c.TASKS_MISSED), "tasks_overdue": flow(c.TASKS_OVERDUE),
            "missed_followup_rate": f.missed_followup_rate(src, period, slice_),
            "customers_due": flow(c.CUSTOMERS_DUE), "customers_touched": flow(c.CUSTOMERS_TOUCHED),
            "followup_coverage": f.followup_coverage(src, period, slice_)}


def _interactions(src: CounterSource, period: Period, slice_: Slice) -> Row:
    talks = f.interaction_counts(src, period, slice_)
    return {"interactions": talks.total, "interactions_pre_sale": talks.pre_sale,
            "interactions_post_sale": talks.post_sale,
            "satisfaction_ratings": src.flow(c.SATISFACTION_COUNT, period, slice_),
            "average_satisfaction": f.average_satisfaction(src, period, slice_),
            "complaints": f.complaints(src, period, slice_)}


def _satisfaction(src: CounterSource, period: Period, slice_: Slice) -> Row:
    return {"satisfaction_ratings": src.flow(c.SATISFACTION_COUNT, period, slice_),
            "satisfaction_sum": src.flow(c.SATISFACTION_SUM, period, slice_),
            "average_satisfaction": f.average_satisfaction(src, period, slice_),
            "complaints": f.complaints(src, period, slice_)}


def _funnel(src: CounterSource, period: Period, slice_: Slice) -> Row:
    steps = f.funnel(src, period, slice_)
    row: Row = {f"entered_{s.stage}": s.entered for s in steps}
    row["entered_lost"] = src.flow(c.stage_entered("lost"), period, slice_)
    row.update({f"conversion_{s.stage}": s.conversion for s in steps[1:]})
    row.update({"win_rate": f.win_rate(src, period, slice_),
                "wins_with_cycle": src.flow(c.WON_WITH_CYCLE, period, slice_),
                "average_cycle_days": f.average_cycle_days(src, period, slice_)})
    return row


def _alerts(src: CounterSource, period: Period, slice_: Slice) -> Row:
    summary = f.alert_summary(src, period, slice_)
    return {"alerts_raised": summary.raised, "alerts_handled": summary.handled,
            "alerts_handled_in_time": summary.handled_in_time,
            "handled_in_time_rate": f.handled_in_time_rate(src, period, slice_),
            "alerts_escalated": summary.escalated, "alerts_recovered": summary.recovered,
            "alerts_lost": summary.lost, "alerts_false_alarm": summary.false_alarm, "alerts_open": summary.open,
            "recovery_rate": f.recovery_rate(src, period, slice_)}


def _health(src: CounterSource, period: Period, slice_: Slice) -> Row:
    return {"active_base_at_start": f.active_base(src, period.start, slice_),
            "active_base_at_end": f.active_base(src, period.end, slice_),
            "scored_customers_at_end": src.stock(c.HEALTH_SCORED, period.end, slice_),
            "average_health_score_at_start": f.average_health_score(src, period.start, slice_),
            "average_health_score_at_end": f.average_health_score(src, period.end, slice_)}


def _movements(src: CounterSource, period: Period, slice_: Slice) -> list[Row]:
    rows = []
    for dimension in (Dimension.TIER, Dimension.LIFECYCLE):
        for (old, new), moves in sorted(f.movements(src, period, dimension, slice_).items()):
            rows.append({"attribute": dimension.value, "from": old, "to": new, "moves": moves})
    return rows


def _summary(src: CounterSource, period: Period, slice_: Slice) -> Row:
    row = f.headline_figures(src, period, slice_)
    row.pop("period")
    return row


class _Recorder(InMemoryCounters):
    """Empty counters that note which flow metrics a row reads."""

    def __init__(self):
        super().__init__()
        self.read: set[str] = set()

    def flow(self, metric, period, slice_=ALL):
        self.read.add(metric)
        return 0


def _table(name: str, description: str, fn, columns: tuple[str, ...] | None = None) -> FigureTable:
    recorder = _Recorder()
    rows = fn(recorder, Period(PeriodKind.MONTH, date(2026, 1, 1)), ALL)
    return FigureTable(name, description, columns or tuple(rows[0]), fn, tuple(sorted(recorder.read)))


TABLES: dict[str, FigureTable] = {
    name: _table(name, description, _one(fn))
    for name, description, fn in (
        ("summary", "every headline figure of the period", _summary),
        ("churn", "active base at period start, customers churned, churn and retention rate", _churn),
        ("repurchase", "purchases, revenue, buyers, repeat buyers and repurchase rate", _repurchase),
        ("followups", "tasks come due by outcome, missed follow-up rate, customers due / touched, coverage",
         _followups),
        ("interactions", "interactions, pre-sale vs post-sale (maintenance), satisfaction, complaints",
         _interactions),
        ("satisfaction", "satisfaction ratings, their sum and average, complaints", _satisfaction),
        ("funnel", "entries per pipeline stage, step conversion, win rate, average cycle days", _funnel),
        ("alerts", "alerts raised in the period and what became of them; handled-in-time and recovery rates",
         _alerts),
        ("health", "active base and average health score at period start and end", _health),
    )
}
TABLES["movements"] = _table("movements", "moves between tiers and between lifecycle stages (one row per move)",
                             _movements, ("attribute", "from", "to", "moves"))

TABLE_NAMES = tuple(TABLES)
