"""Key moments of the pipeline that deserve a task of their own."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.followups.domain.base import (
    PIPELINE_STAGES, PRODUCTIVE_OUTCOMES, require_aware, require_choice, require_days,
)
from services.followups.domain.tasks import PlannedTask, Task

NEEDS_ANALYSIS_PURPOSE = "follow up on the needs analysis"
WON_REVISIT_PURPOSE = "revisit after the deal was won"


@dataclass(frozen=True)
class KeyMomentRules:
    needs_analysis_follow_up_days: int = 3  # a prospect who shared needs expects to hear back soon
    won_revisit_days: int = 30  # about a month in, the customer has used what they bought

    def __post_init__(self) -> None:
        require_days(self.needs_analysis_follow_up_days, "needs_analysis_follow_up_days")
        require_days(self.won_revisit_days, "won_revisit_days")


DEFAULT_KEY_MOMENT_RULES = KeyMomentRules()


def key_moment_tasks(customer_id: str, old_stage: str | None, new_stage: str, changed_at: datetime,
                     now: datetime, *, rules: KeyMomentRules = DEFAULT_KEY_MOMENT_RULES,
                     last_productive_touch_at: datetime | None = None) -> list[PlannedTask]:
    """Tasks a pipeline stage change calls for.

    entering needs_analysis -> follow_up due changed_at + needs_analysis_follow_up_days, unless a
                               reached/positive touch happened at or after changed_at
    entering won            -> maintenance revisit due changed_at + won_revisit_days
    A backdated change never yields a due time before ``now``. The dedupe key makes a
    redelivered event harmless.
    """
    if old_stage is not None:
        require_choice(old_stage, PIPELINE_STAGES, "old_stage")
    require_choice(new_stage, PIPELINE_STAGES, "new_stage")
    require_aware(changed_at, "changed_at")
    require_aware(now, "now")
    if old_stage == new_stage:
        return []
    key = f"key_moment:{customer_id}:{new_stage}:{changed_at.isoformat()}"
    if new_stage == "needs_analysis":
        if last_productive_touch_at is not None and require_aware(last_productive_touch_at,
                                                                  "last_productive_touch_at") >= changed_at:
            return []
        due_at = changed_at + timedelta(days=rules.needs_analysis_follow_up_days)
        return [PlannedTask(customer_id, "follow_up", NEEDS_ANALYSIS_PURPOSE, max(due_at, now), "key_moment", key)]
    if new_stage == "won":
        due_at = changed_at + timedelta(days=rules.won_revisit_days)
        return [PlannedTask(customer_id, "maintenance", WON_REVISIT_PURPOSE, max(due_at, now), "key_moment", key)]
    return []


def settles_key_moment_follow_up(task: Task, outcome: str, occurred_at: datetime, *,
                                 since: datetime | None = None) -> bool:
    """Does this touch make an open needs-analysis follow-up pointless?

    True for a reached/positive touch on the same open key-moment follow-up, not older than
    ``since`` (the stage change the task came from; default: the task's creation); the service
    then completes the task with that interaction.
    """
    require_aware(occurred_at, "occurred_at")
    since = task.created_at if since is None else require_aware(since, "since")
    return (task.is_open and task.reason == "key_moment" and task.kind == "follow_up"
            and outcome in PRODUCTIVE_OUTCOMES
            and (since is None or occurred_at >= since))


def is_past_moment(changed_at: datetime, now: datetime, max_age: timedelta) -> bool:
    """A stage change reaching us longer than max_age after it happened (an imported history)
    schedules nothing: that moment has passed."""
    return now - require_aware(changed_at, "changed_at") > max_age
