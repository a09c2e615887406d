"""The counters table: every figure is read from it (``SqlCounters``), projections add to it.

Counters are integers (revenue in cents, domain.counters.to_stored); one row per (slice,
period bucket, metric), see docs/reports-definitions.md for the keys. Over a custom date range
(``DateRange``) an additive figure is the sum of the buckets that tile it and a distinct one is
counted from the distinct_marks table (mark_table.py).
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Iterable

from sqlalchemy import and_, insert, select, text, update
from sqlalchemy.dialects import sqlite

from services.reports import domain as d
from services.reports.domain.counters import STOCK_METRICS, CounterKey, Number, from_stored, range_flow, to_stored
from services.reports.mark_table import distinct_counts
from services.reports.models import counters

COUNTER_PK = ("dimension", "dimension_value", "period_kind", "period_start", "metric")



# PostgreSQL: every row of a batch in one statement with a fixed text (arrays as parameters), so it is
# one round trip and one prepared plan whatever the number of rows; rows are taken in array order.
_PG_UPSERT = text(
    "INSERT INTO counters (dimension, dimension_value, period_kind, period_start, metric, value) "
    "SELECT * FROM unnest(CAST(:dimensions AS varchar[]), CAST(:dimension_values AS varchar[]), "
    "CAST(:period_kinds AS varchar[]), CAST(:period_starts AS date[]), CAST(:metrics AS varchar[]), "
    "CAST(:amounts AS bigint[])) "
    "ON CONFLICT (dimension, dimension_value, period_kind, period_start, metric) "
    "DO UPDATE SET value = counters.value + excluded.value")
_SQLITE_UPSERT = None


def add_to_counters(session, amounts: dict[CounterKey, Number]) -> None:
    """Atomic increments (value = value + delta), one row per key: the deltas of a whole batch of
    events, added up (so a counter many events of the batch move is written once).

    ON CONFLICT DO UPDATE SET value = counters.value + excluded.value is atomic in PostgreSQL
    and SQLite, so replicas applying batches that share counter rows lose no increment. Rows go
    in key order, so two transactions touching the same rows lock them in the same order."""
    global _SQLITE_UPSERT
    rows = sorted((k.dimension, k.dimension_value, k.period_kind.value, k.period_start, k.metric,
                   to_stored(k.metric, v)) for k, v in amounts.items())
    rows = [r for r in rows if r[5]]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        columns = list(zip(*rows))
        session.execute(_PG_UPSERT, {"dimensions": list(columns[0]), "dimension_values": list(columns[1]),
                                     "period_kinds": list(columns[2]), "period_starts": list(columns[3]),
                                     "metrics": list(columns[4]), "amounts": list(columns[5])})
        return
    if dialect == "sqlite":  # one prepared statement, run per row inside sqlite3 (no network, no SQL parsing)
        if _SQLITE_UPSERT is None:
            statement = sqlite.insert(counters)
            _SQLITE_UPSERT = str(statement.on_conflict_do_update(
                index_elements=list(COUNTER_PK), set_={"value": counters.c.value + statement.excluded.value})
                .compile(dialect=sqlite.dialect()))
        session.connection().exec_driver_sql(  # (?, ?, ?, ?, ?, ?) in COUNTER_PK order, then value
            _SQLITE_UPSERT, [(r[0], r[1], r[2], r[3].isoformat(), r[4], r[5]) for r in rows])
        return
    params = [dict(zip((*COUNTER_PK[:4], "metric", "value"), r)) for r in rows]
    for row in params:  # portable: UPDATE, then INSERT when there was nothing to update
        done = session.execute(update(counters).where(*[counters.c[c] == row[c] for c in COUNTER_PK])
                               .values(value=counters.c.value + row["value"]))
        if done.rowcount == 0:
            session.execute(insert(counters).values(**row))


class SqlCounters:
    """``CounterSource`` over the counters table, loading whole (slice, bucket) groups per query."""

    def __init__(self, session):
        self.session = session
        self._flows: dict[tuple, dict[str, int]] = {}
        self._loaded: dict[tuple, frozenset | None] = {}  # metrics loaded per bucket; None: all of them
        self._stocks: dict[tuple, dict[str, int]] = {}
        self._distinct: dict[tuple, dict[str, int]] = {}  # (range, slice) -> distinct figures over it

    def _groups(self, slices: Iterable[d.Slice]) -> dict[str, list[str]]:
        groups: dict[str, set[str]] = defaultdict(set)
        for slice_ in slices:
            groups[slice_.dimension].add(slice_.value)
        return {dimension: sorted(values) for dimension, values in groups.items()}

    def preload_flows(self, slices: Iterable[d.Slice], periods: Iterable[d.Period],
                      metrics: Iterable[str] | None = None) -> None:
        """Load the flows of these slices in these periods (only `metrics`, when given) in few queries;
        for a DateRange, the buckets that tile it and its distinct figures."""
        slices, periods = list(slices), list(periods)
        metrics = None if metrics is None else frozenset(metrics)
        spans = [p for p in periods if isinstance(p, d.DateRange)]
        for span in spans:
            for slice_, found in distinct_counts(self.session, span, slices).items():
                self._distinct[(span, slice_)] = found
        by_kind: dict[str, set[date]] = defaultdict(set)
        for period in [p for p in periods if not isinstance(p, d.DateRange)] + [t for s in spans for t in s.tiles()]:
            by_kind[period.kind.value].add(period.start)
        for dimension, values in self._groups(slices).items():
            for kind, starts in by_kind.items():
                for value in values:
                    for start in starts:
                        self._flows[(dimension, value, kind, start)] = {}
                        self._loaded[(dimension, value, kind, start)] = metrics
                only = [] if metrics is None else [counters.c.metric.in_(sorted(metrics))]
                for (low, high), offset in ((run, offset) for run in _runs(kind, starts)
                                            for offset in range(0, len(values), 500)):
                    rows = self.session.execute(select(
                        counters.c.dimension_value, counters.c.period_start, counters.c.metric, counters.c.value)
                        .where(counters.c.dimension == dimension,
                               counters.c.dimension_value.in_(values[offset:offset + 500]),
                               counters.c.period_kind == kind, counters.c.period_start >= low,
                               counters.c.period_start <= high, *only))
                    for row in rows:
                        bucket = self._flows.get((dimension, row.dimension_value, kind, row.period_start))
                        if bucket is not None:
                            bucket[row.metric] = row.value

    def preload_stocks(self, slices: Iterable[d.Slice], days: Iterable[date]) -> None:
        """Every stock metric of these slices at the start of these days, with one query per slice group."""
        days = sorted(set(days))
        if not days:
            return
        plans = {day: d.stock_plan(day) for day in days}
        last_quarter = max(plan[0][2] for plan in plans.values())
        first_quarter = min(plan[1][1] for plan in plans.values())
        last_month = max(plan[1][2] for plan in plans.values())
        # day buckets: only the days of each date's own month before it (none for a month start)
        spans: list[list[date]] = []
        for low, high in sorted((plan[2][1], plan[2][2]) for plan in plans.values() if plan[2][1] < plan[2][2]):
            if spans and low <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], high)
            else:
                spans.append([low, high])
        ranges = [and_(counters.c.period_kind == "quarter", counters.c.period_start < last_quarter),
                  and_(counters.c.period_kind == "month", counters.c.period_start >= first_quarter,
                       counters.c.period_start < last_month)]
        ranges += [and_(counters.c.period_kind == "day", counters.c.period_start >= low, counters.c.period_start < high)
                   for low, high in spans]
        for dimension, values in self._groups(slices).items():
            found: dict[str, dict[str, dict[date, dict[str, int]]]] = defaultdict(lambda: defaultdict(dict))
            for offset in range(0, len(values), 500):
                for bucket_range in ranges:  # one query per range: each is an index range scan (an OR is not)
                    rows = self.session.execute(select(
                        counters.c.dimension_value, counters.c.period_kind, counters.c.period_start,
                        counters.c.metric, counters.c.value).where(
                        counters.c.dimension == dimension,
                        counters.c.dimension_value.in_(values[offset:offset + 500]),
                        bucket_range, counters.c.metric.in_(STOCK_METRICS)))
                    for row in rows:
                        found[row.dimension_value][row.period_kind].setdefault(
                            row.period_start, {})[row.metric] = row.value
            for value in values:
                buckets = found.get(value, {})
                quarters = sorted(buckets.get("quarter", {}).items())
                months, day_rows = buckets.get("month", {}), buckets.get("day", {})
                for day, plan in plans.items():
                    totals: dict[str, int] = defaultdict(int)
                    parts = [metrics for start, metrics in quarters if start < plan[0][2]]
                    month = plan[1][1]
                    while month < plan[1][2]:  # at most two months of the quarter
                        parts.append(months.get(month, {}))
                        month = d.period_end("month", month)
                    parts += [day_rows.get(plan[2][1] + timedelta(days=n), {})
                              for n in range((plan[2][2] - plan[2][1]).days)]  # at most 30 days of the month
                    for metrics in parts:
                        for metric, amount in metrics.items():
                            totals[metric] += amount
                    self._stocks[(dimension, value, day)] = dict(totals)

    def flow(self, metric: str, period: d.Period | d.DateRange, slice_: d.Slice = d.ALL) -> Number:
        if isinstance(period, d.DateRange):
            return range_flow(metric, period, slice_, self.flow, self._distinct_over)
        key = (slice_.dimension, slice_.value, period.kind.value, period.start)
        if key not in self._flows or (self._loaded[key] is not None and metric not in self._loaded[key]):
            self.preload_flows([slice_], [period])
        return from_stored(metric, self._flows[key].get(metric, 0))

    def _distinct_over(self, metric: str, span: d.DateRange, slice_: d.Slice) -> int:
        if (span, slice_) not in self._distinct:
            for found_slice, found in distinct_counts(self.session, span, [slice_]).items():
                self._distinct[(span, found_slice)] = found
        return self._distinct[(span, slice_)].get(metric, 0)

    def stock(self, metric: str, at: date, slice_: d.Slice = d.ALL) -> Number:
        key = (slice_.dimension, slice_.value, at)
        if key not in self._stocks:
            self.preload_stocks([slice_], [at])
        return from_stored(metric, self._stocks[key].get(metric, 0))



def _runs(kind: str, starts: Iterable[date]) -> list[tuple[date, date]]:
    """(first, last) start of each run of consecutive buckets: a range's tiles leave gaps (days at its ends),
    which a single min..max scan would read through."""
    runs: list[list[date]] = []
    for start in sorted(starts):
        if runs and d.period_end(kind, runs[-1][1]) == start:
            runs[-1][1] = start
        else:
            runs.append([start, start])
    return [(low, high) for low, high in runs]
