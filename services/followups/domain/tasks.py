"""The follow-up task: its states, legal moves and reminder steps.

status          open -> done | skipped | missed   (the last three are final)
reminder_state  none -> due_notified -> overdue_notified   (then status becomes missed)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.followups.domain.base import (
    TASK_KINDS, DomainError, require_aware, require_choice, require_non_negative,
)

TASK_STATUSES = ("open", "done", "skipped", "missed")
REMINDER_STATES = ("none", "due_notified", "overdue_notified")
REMINDER_EVENTS = ("due", "overdue", "missed")

# The work list already shows everything due today, so "due" is a short heads-up, not a planning aid.
DEFAULT_DUE_SOON_WINDOW = timedelta(hours=1)
# An overdue task still counts as done late until this much time has passed; after it, it is missed.
DEFAULT_GRACE_PERIOD = timedelta(days=2)

# reminder event -> (state it requires, state it leads to); "missed" closes the task instead.
_REMINDER_STEPS = {
    "due": ("none", "due_notified"),
    "overdue": ("due_notified", "overdue_notified"),
    "missed": ("overdue_notified", None),
}


@dataclass(frozen=True)
class PlannedTask:
    """A task a rule wants scheduled; the service gives it an id and an assignee."""
    customer_id: str
    kind: str
    purpose: str
    due_at: datetime
    reason: str  # cadence, key_moment, care, recall or manual (task.scheduled.reason)
    dedupe_key: str | None = None  # same key => same task; the service stores it to schedule once


@dataclass
class Task:
    task_id: str
    customer_id: str
    kind: str
    due_at: datetime
    reason: str = "manual"
    purpose: str = ""
    assignee_id: str | None = None
    team: str | None = None
    created_at: datetime | None = None
    status: str = "open"
    reminder_state: str = "none"
    closed_at: datetime | None = None  # when it became done, skipped or missed
    interaction_id: str | None = None  # the touch that completed it
    skip_reason: str | None = None

    def __post_init__(self) -> None:
        require_choice(self.kind, TASK_KINDS, "kind")
        require_choice(self.status, TASK_STATUSES, "status")
        require_choice(self.reminder_state, REMINDER_STATES, "reminder_state")
        require_aware(self.due_at, "due_at")

    @property
    def is_open(self) -> bool:
        return self.status == "open"


# a task may be due a little before its customer was entered (today's call, keyed in tonight), never earlier
DUE_BEFORE_CUSTOMER_GRACE = timedelta(days=1)


def check_due_at(due_at: datetime, customer_created_at: datetime | None) -> None:
    """A manual task's due time: the past is allowed (imported history), not before the customer existed."""
    if customer_created_at is not None and due_at < customer_created_at - DUE_BEFORE_CUSTOMER_GRACE:
        raise DomainError(f"due_at is before the customer was created ({customer_created_at.isoformat()})",
                          field="due_at")


def _require_open(task: Task, action: str) -> None:
    if not task.is_open:
        raise DomainError(f"cannot {action} task {task.task_id}: it is already {task.status}", field="status")


def complete(task: Task, interaction_id: str | None, at: datetime, *, customer_id: str | None = None) -> bool:
    """Mark done by a touch at ``at``; returns True when done by the due time (at <= due_at).

    ``customer_id`` is the interaction's customer: a touch with one customer cannot complete
    another customer's task.
    """
    _require_open(task, "complete")
    require_aware(at, "completed_at")
    if customer_id is not None and customer_id != task.customer_id:
        raise DomainError(f"task {task.task_id} belongs to another customer", field="completes_task_id")
    task.status, task.closed_at, task.interaction_id = "done", at, interaction_id
    return at <= task.due_at


def skip(task: Task, reason: str, at: datetime) -> None:
    """Skipping is a deliberate decision, so it must say why."""
    _require_open(task, "skip")
    require_aware(at, "skipped_at")
    if not isinstance(reason, str) or not reason.strip():
        raise DomainError("a skipped task needs a reason", field="reason")
    task.status, task.closed_at, task.skip_reason = "skipped", at, reason.strip()


def reschedule(task: Task, new_due_at: datetime, *, kind: str | None = None) -> datetime:
    """Move an open task and return the old due time. Reminders start over: they referred to the old time."""
    _require_open(task, "reschedule")
    require_aware(new_due_at, "due_at")
    if kind is not None:
        task.kind = require_choice(kind, TASK_KINDS, "kind")
    old_due_at, task.due_at, task.reminder_state = task.due_at, new_due_at, "none"
    return old_due_at


def reassign(task: Task, new_assignee_id: str | None, *, team: str | None = None) -> str | None:
    """Give an open task to someone else; returns the previous assignee."""
    _require_open(task, "reassign")
    old_assignee_id, task.assignee_id = task.assignee_id, new_assignee_id
    if team is not None:
        task.team = team
    return old_assignee_id


def reminder_transitions(task: Task, now: datetime, due_soon_window: timedelta = DEFAULT_DUE_SOON_WINDOW,
                         grace_period: timedelta = DEFAULT_GRACE_PERIOD) -> list[str]:
    """Reminder events to emit now, in order, given the reminder state already reached.

    due      now >= due_at - due_soon_window
    overdue  now >  due_at
    missed   now >  due_at + grace_period
    Each state yields its next step at most once. After a sweep outage the skipped steps are all
    returned (e.g. ["due", "overdue", "missed"]) so every task still gets exactly one of each.
    Pure: apply the result with record_reminder (or use advance_reminders).
    """
    require_aware(now, "now")
    require_non_negative(due_soon_window, "due_soon_window")
    require_non_negative(grace_period, "grace_period")
    if not task.is_open:
        return []
    thresholds = {
        "due": now >= task.due_at - due_soon_window,
        "overdue": now > task.due_at,
        "missed": now > task.due_at + grace_period,
    }
    events, state = [], task.reminder_state
    for event in REMINDER_EVENTS:
        required_state, next_state = _REMINDER_STEPS[event]
        if state != required_state or not thresholds[event]:
            continue
        events.append(event)
        state = next_state
    return events


def record_reminder(task: Task, event: str, at: datetime) -> None:
    """Advance the reminder state once ``event`` was published, so it is never sent again."""
    require_choice(event, REMINDER_EVENTS, "event")
    _require_open(task, f"record reminder {event!r} for")
    required_state, next_state = _REMINDER_STEPS[event]
    if task.reminder_state != required_state:
        raise DomainError(f"reminder {event!r} needs state {required_state!r}, task is {task.reminder_state!r}",
                          field="reminder_state")
    if next_state is None:
        task.status, task.closed_at = "missed", require_aware(at, "missed_at")
    else:
        task.reminder_state = next_state


def advance_reminders(task: Task, now: datetime, due_soon_window: timedelta = DEFAULT_DUE_SOON_WINDOW,
                      grace_period: timedelta = DEFAULT_GRACE_PERIOD) -> list[str]:
    """reminder_transitions + record_reminder in one step: returns the events the sweep should publish."""
    events = reminder_transitions(task, now, due_soon_window, grace_period)
    for event in events:
        record_reminder(task, event, now)
    return events
