"""Pure rules of the follow-ups service: no nameko, HTTP or SQL here.

Every time-dependent function takes the moment explicitly (``now`` / ``as_of``, timezone-aware);
rule violations raise crm_common.errors.DomainError with ``field`` naming the bad input.
The rules and their defaults are described in docs/followups-rules.md.
"""
from services.followups.domain.assignment import TeamMember, check_assignee, choose_assignee, tasks_to_reassign
from services.followups.domain.base import (
    IMPORTANT_DATE_KINDS, INTERACTION_KINDS, LIFECYCLES, OUTCOMES, PHASES, PIPELINE_STAGES,
    POST_SALE_LIFECYCLES, PRODUCTIVE_OUTCOMES, TASK_KINDS, TIERS, DomainError,
)
from services.followups.domain.cadence import (
    ANY, DEFAULT_CADENCE_DAYS, DEFAULT_CADENCE_POLICY, CadenceDecision, CadencePolicy, cadence_purpose,
    cadence_task_kind, next_cadence_due, reconcile_cadence, touch_completes_cadence_task,
)
from services.followups.domain.care import (
    DEFAULT_CARE_DATE_KINDS, DEFAULT_CARE_DUE_TIME, DEFAULT_HORIZON_DAYS, DEFAULT_LEAD_DAYS, ImportantDate,
    care_dedupe_key, care_tasks_due, next_occurrence,
)
from services.followups.domain.facts import (
    class_change, owner_change, purchase_change, snapshot_changes, stage_change, supersedes,
)
from services.followups.domain.interactions import (
    DEFAULT_CLOCK_SKEW, derive_phase, is_newer_touch, is_productive, phase_at, validate_interaction,
    validate_occurred_at, validate_satisfaction,
)
from services.followups.domain.key_moments import (
    DEFAULT_KEY_MOMENT_RULES, KeyMomentRules, is_past_moment, key_moment_tasks, settles_key_moment_follow_up,
)
from services.followups.domain.responses import (
    DEFAULT_COMPLAINT_DUE, DEFAULT_RECALL_DUE, complaint_task, recall_task,
)
from services.followups.domain.tasks import (
    DEFAULT_DUE_SOON_WINDOW, DEFAULT_GRACE_PERIOD, REMINDER_EVENTS, REMINDER_STATES, TASK_STATUSES, PlannedTask,
    Task, advance_reminders, check_due_at, complete, reassign, record_reminder, reminder_transitions, reschedule,
    skip,
)
from services.followups.domain.worklist import (
    MissedFollowUps, count_missed, end_of_day, may_view_worklist, prioritize, todays_tasks,
)

__all__ = [
    # vocabulary and error
    "DomainError", "INTERACTION_KINDS", "OUTCOMES", "PHASES", "TASK_KINDS", "TIERS", "LIFECYCLES",
    "PIPELINE_STAGES", "IMPORTANT_DATE_KINDS", "POST_SALE_LIFECYCLES", "PRODUCTIVE_OUTCOMES",
    # interactions
    "DEFAULT_CLOCK_SKEW", "validate_interaction", "validate_occurred_at", "validate_satisfaction",
    "derive_phase", "phase_at", "is_productive", "is_newer_touch",
    # tasks and reminders
    "Task", "PlannedTask", "TASK_STATUSES", "REMINDER_STATES", "REMINDER_EVENTS", "DEFAULT_DUE_SOON_WINDOW",
    "DEFAULT_GRACE_PERIOD", "complete", "skip", "reschedule", "reassign", "reminder_transitions",
    "record_reminder", "advance_reminders",
    # cadence
    "ANY", "DEFAULT_CADENCE_DAYS", "DEFAULT_CADENCE_POLICY", "CadencePolicy", "CadenceDecision",
    "cadence_task_kind", "cadence_purpose", "next_cadence_due", "reconcile_cadence", "touch_completes_cadence_task",
    # key moments
    "KeyMomentRules", "DEFAULT_KEY_MOMENT_RULES", "key_moment_tasks", "settles_key_moment_follow_up",
    "is_past_moment",
    # recalls and complaints
    "DEFAULT_RECALL_DUE", "DEFAULT_COMPLAINT_DUE", "recall_task", "complaint_task",
    # the read model's facts
    "supersedes", "snapshot_changes", "class_change", "stage_change", "owner_change", "purchase_change",
    # care
    "ImportantDate", "DEFAULT_CARE_DATE_KINDS", "DEFAULT_LEAD_DAYS", "DEFAULT_HORIZON_DAYS",
    "DEFAULT_CARE_DUE_TIME", "next_occurrence", "care_dedupe_key", "care_tasks_due",
    # assignment
    "TeamMember", "choose_assignee", "tasks_to_reassign", "check_assignee",
    # work list and measures
    "end_of_day", "todays_tasks", "prioritize", "may_view_worklist", "MissedFollowUps", "count_missed",
]
