"""A rep's work list for today and the missed follow-ups measure."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Iterable, Mapping

from services.followups.domain.base import TIERS, require_aware
from services.followups.domain.tasks import Task

TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}  # unknown tiers sort after C
ONE_DAY = timedelta(days=1)


def end_of_day(now: datetime, tz: tzinfo | timedelta = timezone.utc) -> datetime:
    """Midnight that ends ``now``'s day in the rep's timezone (a tzinfo or a fixed UTC offset)."""
    require_aware(now, "now")
    zone = timezone(tz) if isinstance(tz, timedelta) else tz
    local_day = now.astimezone(zone).date()
    return datetime.combine(local_day + ONE_DAY, time(0), tzinfo=zone)


def todays_tasks(tasks: Iterable[Task], now: datetime, tz: tzinfo | timedelta = timezone.utc) -> list[Task]:
    """Open tasks due before the rep's day ends, overdue ones included."""
    day_end = end_of_day(now, tz)
    return [task for task in tasks if task.is_open and task.due_at < day_end]


def prioritize(tasks: Iterable[Task], now: datetime, tiers: Mapping[str, str]) -> list[Task]:
    """Order a work list: overdue first, most days late first; then tier A, B, C; then earliest due.

    Lateness counts in whole days so that tier still matters between tasks a few hours apart.
    ``tiers`` maps customer_id -> tier.
    """
    require_aware(now, "now")

    def priority(task: Task) -> tuple:
        lateness = now - task.due_at
        overdue = lateness > timedelta(0)
        days_late = lateness // ONE_DAY if overdue else 0
        tier_rank = TIER_RANK.get(tiers.get(task.customer_id), len(TIER_RANK))
        return (not overdue, -days_late, tier_rank, task.due_at, task.task_id)

    return sorted(tasks, key=priority)


def may_view_worklist(actor_role: str, actor_id: str, actor_team: str | None, rep_id: str,
                      rep_team: str | None, rep_known: bool = True) -> bool:
    """Everyone sees their own work list; a manager those of the team's reps, an admin anyone's."""
    if rep_id == actor_id:
        return True
    if actor_role == "rep" or not rep_known:
        return False
    return actor_role == "admin" or rep_team == actor_team


@dataclass(frozen=True)
class MissedFollowUps:
    missed: int
    closed: int  # done + skipped + missed

    @property
    def rate(self) -> float | None:
        return self.missed / self.closed if self.closed else None


def count_missed(tasks: Iterable[Task], start: datetime, end: datetime) -> MissedFollowUps:
    """Missed over closed (done + skipped + missed) among tasks closed in [start, end)."""
    require_aware(start, "start")
    require_aware(end, "end")
    closed = [task for task in tasks
              if not task.is_open and task.closed_at is not None and start <= task.closed_at < end]
    return MissedFollowUps(missed=sum(task.status == "missed" for task in closed), closed=len(closed))
