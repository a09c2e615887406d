"""The distinct_marks table read back: distinct figures over a custom date range, exactly.

Every counted item of a distinct figure left a mark (domain/ranges.py): the entity, the day, the
dimensions it counts under. Over a range, a slice's figure is COUNT(DISTINCT entity) of its marks
of that metric in the range: one grouped query per kind of slice (e.g. every "team.tier" slice asked
for at once), an index range scan on the day (everyone) or on the team or rep and the day.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from sqlalchemy import func, select

from services.reports import domain as d
from services.reports.domain.ranges import SLICE_FIELDS
from services.reports.models import distinct_marks

CHUNK = 500


def distinct_counts(session, span: d.DateRange, slices: Iterable[d.Slice]) -> dict[d.Slice, dict[str, int]]:
    """slice -> {metric: distinct entities marked in the range under it} (metrics with none are absent)."""
    groups: dict[tuple[str, ...], list[d.Slice]] = defaultdict(list)
    for slice_ in set(slices):
        groups[tuple(f for f in SLICE_FIELDS if getattr(slice_, f) is not None)].append(slice_)
    found: dict[d.Slice, dict[str, int]] = {s: {} for group in groups.values() for s in group}
    for fields, group in groups.items():
        wanted = {tuple(getattr(s, f) for f in fields): s for s in group}
        columns = [distinct_marks.c[f] for f in fields]
        # the scope (team or rep) narrows the scan through its index; a breakdown is grouped on
        keys = sorted(wanted)
        for offset in range(0, len(keys), CHUNK):
            chunk = keys[offset:offset + CHUNK]
            narrow = [columns[0].in_(sorted({k[0] for k in chunk}))] if fields else []
            rows = session.execute(
                select(distinct_marks.c.metric, *columns, func.count(distinct_marks.c.entity.distinct()))
                .where(distinct_marks.c.day >= span.start, distinct_marks.c.day < span.end, *narrow)
                .group_by(distinct_marks.c.metric, *columns))
            for row in rows:
                slice_ = wanted.get(tuple(row[1:1 + len(fields)]))
                if slice_ is not None:
                    found[slice_][row[0]] = row[-1]
    return found


def entities(session, metric: str, start, end, slice_: d.Slice, limit: int,
             after: str | None = None) -> tuple[int, list[tuple[str, object]]]:
    """The entities behind a distinct figure of a slice over [start, end): how many in all, and up to
    `limit` of them after `after` (in id order) with the first day each was counted."""
    where = [distinct_marks.c.metric == metric, distinct_marks.c.day >= start, distinct_marks.c.day < end,
             *(distinct_marks.c[f] == getattr(slice_, f) for f in SLICE_FIELDS if getattr(slice_, f) is not None)]
    total = session.execute(select(func.count(distinct_marks.c.entity.distinct())).where(*where)).scalar_one()
    page = select(distinct_marks.c.entity, func.min(distinct_marks.c.day)).where(*where)
    if after is not None:
        page = page.where(distinct_marks.c.entity > after)
    rows = session.execute(page.group_by(distinct_marks.c.entity).order_by(distinct_marks.c.entity).limit(limit))
    return total, [tuple(row) for row in rows]
