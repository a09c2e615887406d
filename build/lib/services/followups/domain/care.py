"""Care tasks: a touch shortly before a customer's birthday or anniversary."""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Collection, Iterable

from services.followups.domain.base import (
    IMPORTANT_DATE_KINDS, DomainError, require_aware, require_choice, require_days,
)
from services.followups.domain.tasks import PlannedTask

# "other" dates are free-form (a product launch, a fiscal year end) and not necessarily worth a call.
DEFAULT_CARE_DATE_KINDS = ("birthday", "contract_anniversary", "founding_day")
DEFAULT_LEAD_DAYS = 3
DEFAULT_HORIZON_DAYS = 30
DEFAULT_CARE_DUE_TIME = time(9, 0)


@dataclass(frozen=True)
class ImportantDate:
    customer_id: str
    kind: str
    date: date
    label: str = ""

    def __post_init__(self) -> None:
        require_choice(self.kind, IMPORTANT_DATE_KINDS, "kind")
        if not isinstance(self.date, date) or isinstance(self.date, datetime):
            raise DomainError(f"must be a calendar date, got {self.date!r}", field="date")


def _in_year(original: date, year: int) -> date:
    if (original.month, original.day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28)  # Feb 29 is celebrated on Feb 28 in common years
    return original.replace(year=year)


def next_occurrence(original: date, as_of: date | datetime) -> date:
    """First anniversary of ``original`` on or after ``as_of`` (a datetime counts in its own timezone).

    The original day itself is not an occurrence: a contract signed today has its first
    anniversary next year.
    """
    today = require_aware(as_of, "as_of").date() if isinstance(as_of, datetime) else as_of
    year = max(today.year, original.year + 1)
    occurrence = _in_year(original, year)
    return occurrence if occurrence >= today else _in_year(original, year + 1)


def care_dedupe_key(important: ImportantDate, occurrence_year: int) -> str:
    """Stable per customer, date kind (and label, so two birthdays don't collide) and year."""
    label = important.label.strip().lower()
    parts = ["care", important.customer_id, important.kind] + ([label] if label else []) + [str(occurrence_year)]
    return ":".join(parts)


def care_tasks_due(important_dates: Iterable[ImportantDate], as_of: datetime,
                   lead_days: int = DEFAULT_LEAD_DAYS, horizon_days: int = DEFAULT_HORIZON_DAYS, *,
                   kinds: Collection[str] = DEFAULT_CARE_DATE_KINDS, already_scheduled: Collection[str] = (),
                   due_time: time = DEFAULT_CARE_DUE_TIME) -> list[PlannedTask]:
    """Care tasks for occurrences within ``horizon_days`` of ``as_of``'s day.

    Each is due ``lead_days`` before the occurrence at ``due_time`` in as_of's timezone, but never
    before ``as_of`` (a date entered late is still honoured right away). Keys already in
    ``already_scheduled`` (or repeated in the input) are left out, so a daily sweep is idempotent.
    """
    require_aware(as_of, "as_of")
    require_days(lead_days, "lead_days", minimum=0)
    require_days(horizon_days, "horizon_days", minimum=0)
    for kind in kinds:
        require_choice(kind, IMPORTANT_DATE_KINDS, "kinds")
    today = as_of.date()
    last_day = today + timedelta(days=horizon_days)
    planned: dict[str, PlannedTask] = {}
    for important in important_dates:
        if important.kind not in kinds:
            continue
        occurrence = next_occurrence(important.date, today)
        key = care_dedupe_key(important, occurrence.year)
        if occurrence > last_day or key in already_scheduled or key in planned:
            continue
        due_at = datetime.combine(occurrence - timedelta(days=lead_days), due_time, tzinfo=as_of.tzinfo)
        what = important.label.strip() or important.kind.replace("_", " ")
        planned[key] = PlannedTask(important.customer_id, "care", f"{what} on {occurrence.isoformat()}",
                                   max(due_at, as_of), "care", key)
    return sorted(planned.values(), key=lambda task: (task.due_at, task.dedupe_key))
