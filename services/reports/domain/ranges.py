"""Distinct figures over a custom date range, exactly: each counted item's distinct marks.

A distinct counter ("buyers in July") counts a customer once per bucket, so over a range made of
several buckets the counters cannot be added up: a customer buying in February and in April is
one buyer of February-April, not two. So every item of a customer's book that counts in a
distinct counter also leaves a **mark**: (metric, entity, day, dimensions) - the customer (or
alert) it counts, the day bucket it counts in and the dimensions it was counted under, i.e. the
same deltas ``counters.counter_updates`` gives, reduced to the day bucket of the "all" slice.
Over a range, a distinct figure of a slice is the number of distinct entities with a mark of that
metric on a day of the range under dimensions that match the slice. Marks follow the items'
applied contexts: when a late event moves an item to other slices, its marks are rewritten with
it (the service stores them in table ``distinct_marks``).
"""
from __future__ import annotations

from datetime import date
from typing import Iterable, NamedTuple

from .book import DIM_ATTRIBUTES, DISTINCT_KINDS, Change, Record, change_deltas, record_deltas
from .counters import ALL_DIMENSION, NONE_VALUE, CounterDelta, Slice
from .periods import PeriodKind

SLICE_FIELDS = ("team", "rep", "tier", "lifecycle", "industry")


class Mark(NamedTuple):
    metric: str
    entity: str  # the customer, or the alert for alert figures
    day: date
    dims: dict   # team, rep, tier, lifecycle, industry ("(none)" for a missing value)


def _marks(deltas: Iterable[CounterDelta], dims: dict) -> list[Mark]:
    values = {k: NONE_VALUE if dims.get(k) is None else dims[k] for k in DIM_ATTRIBUTES}
    return [Mark(delta.key.metric, delta.distinct_of, delta.key.period_start, values) for delta in deltas
            if delta.distinct_of is not None and delta.key.period_kind is PeriodKind.DAY
            and delta.key.dimension == ALL_DIMENSION]


def record_marks(customer_id: str, record: Record, context: dict | None) -> list[Mark]:
    """The marks of a record counted under `context` (none while it is not counted, none for interactions)."""
    if context is None or record.kind not in DISTINCT_KINDS:
        return []
    return _marks(record_deltas(customer_id, record, context), context["dims"])


def change_marks(customer_id: str, change: Change, counted: dict | None) -> list[Mark]:
    """A move into churned, counted in the slices the customer left."""
    if not counted or counted.get("before") is None:
        return []
    return _marks(change_deltas(customer_id, change, counted), counted["before"])


def matches(dims: dict, slice_: Slice) -> bool:
    """Whether an item counted under `dims` is in the slice."""
    return all(getattr(slice_, f) is None or dims.get(f, NONE_VALUE) == getattr(slice_, f) for f in SLICE_FIELDS)


def distinct_over(marks: Iterable[Mark], metric: str, start: date, end: date, slice_: Slice) -> int:
    """Distinct entities marked for `metric` on a day in [start, end) under the slice (the reference the
    service's SQL query answers the same as)."""
    return len({m.entity for m in marks if m.metric == metric and start <= m.day < end and matches(m.dims, slice_)})
