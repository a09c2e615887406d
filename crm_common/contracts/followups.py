"""Events published by the followups service (source "crm/followups")."""
from marshmallow import Schema, fields, validate

from crm_common.contracts.fields import Id, OneOf, OptionalId, Timestamp
from crm_common.events import define

PRODUCER = "followups"

INTERACTION_KINDS = ("call", "message", "email", "visit", "meeting", "complaint", "survey")
OUTCOMES = ("reached", "no_answer", "declined", "positive", "negative", "neutral", "resolved", "open")
PHASES = ("pre_sale", "post_sale")
TASK_KINDS = ("follow_up", "maintenance", "care", "recall")


@define("interaction.logged", 1, PRODUCER,
        "A touch with a customer was logged (backdated history allowed). A complaint opens with kind=complaint; "
        "an interaction with resolves_complaint_id closes that complaint.")
class InteractionLogged(Schema):
    interaction_id = Id(required=True)
    customer_id = Id(required=True)
    rep_id = Id(required=True)
    team = fields.String(allow_none=True, load_default=None)
    kind = OneOf(INTERACTION_KINDS, required=True)
    phase = OneOf(PHASES, required=True)
    occurred_at = Timestamp(required=True)
    outcome = OneOf(OUTCOMES, required=True)
    satisfaction = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1, max=5))
    summary = fields.String(load_default="")
    next_step = fields.String(allow_none=True, load_default=None)
    completes_task_id = OptionalId()
    resolves_complaint_id = OptionalId()


class TaskFields(Schema):
    task_id = Id(required=True)
    customer_id = Id(required=True)
    assignee_id = OptionalId()
    team = fields.String(allow_none=True, load_default=None)
    kind = OneOf(TASK_KINDS, required=True)
    purpose = fields.String(load_default="")
    due_at = Timestamp(required=True)


@define("task.scheduled", 1, PRODUCER,
        "A follow-up task was scheduled; reason is cadence, key_moment, care, recall, complaint or manual.")
class TaskScheduled(TaskFields):
    reason = fields.String(required=True)


@define("task.rescheduled", 1, PRODUCER, "An open task's due time, kind or purpose changed (class change or manual).")
class TaskRescheduled(TaskFields):
    old_due_at = Timestamp(required=True)
    reason = fields.String(required=True)


@define("task.reassigned", 1, PRODUCER, "An open task moved to another assignee (ownership change or manual).")
class TaskReassigned(TaskFields):
    old_assignee_id = OptionalId()
    reason = fields.String(load_default="")  # ownership change, assignee left, or the manager's words


@define("task.due", 1, PRODUCER, "Reminder: an open task comes due (emitted once per task).")
class TaskDue(TaskFields):
    pass


@define("task.overdue", 1, PRODUCER, "Reminder: an open task is past its due time (emitted once per task).")
class TaskOverdue(TaskFields):
    pass


@define("task.completed", 1, PRODUCER, "A task was done; interaction_id is the touch that completed it.")
class TaskCompleted(TaskFields):
    completed_at = Timestamp(required=True)
    interaction_id = OptionalId()
    on_time = fields.Boolean(required=True)


@define("task.skipped", 1, PRODUCER, "A task was skipped on purpose, with a reason.")
class TaskSkipped(TaskFields):
    skipped_at = Timestamp(required=True)
    reason = fields.String(required=True)


@define("task.missed", 1, PRODUCER, "An overdue task passed its grace period without being done: a missed follow-up.")
class TaskMissed(TaskFields):
    missed_at = Timestamp(required=True)
