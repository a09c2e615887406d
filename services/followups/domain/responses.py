"""Tasks that answer a signal: a churn alert (recall) or a logged complaint (follow-up)."""
from __future__ import annotations

from datetime import datetime, timedelta

from services.followups.domain.base import require_aware, require_non_negative
from services.followups.domain.tasks import PlannedTask

DEFAULT_RECALL_DUE = timedelta(hours=24)
DEFAULT_COMPLAINT_DUE = timedelta(hours=24)


def recall_task(customer_id: str, alert_id: str, rule: str, raised_at: datetime, now: datetime, *,
                recall_due: timedelta = DEFAULT_RECALL_DUE, recall_due_at: datetime | None = None) -> PlannedTask:
    """A recall for the owner, due when the alert asks (``recall_due_at``) or ``recall_due`` after it was
    raised, never before now; once per alert."""
    require_aware(raised_at, "raised_at")
    require_aware(now, "now")
    require_non_negative(recall_due, "recall_due")
    due_at = recall_due_at if recall_due_at is not None else raised_at + recall_due
    return PlannedTask(customer_id, "recall", f"recall: churn alert {rule}", max(due_at, now), "recall",
                       f"recall:{alert_id}")


def complaint_task(customer_id: str, interaction_id: str, summary: str, occurred_at: datetime, now: datetime, *,
                   complaint_due: timedelta = DEFAULT_COMPLAINT_DUE) -> PlannedTask:
    """A follow-up due ``complaint_due`` after the complaint was made, never before now; the touch that
    resolves the complaint completes it."""
    require_aware(occurred_at, "occurred_at")
    require_aware(now, "now")
    require_non_negative(complaint_due, "complaint_due")
    return PlannedTask(customer_id, "follow_up", f"resolve complaint: {summary[:200]}".rstrip(": "),
                       max(occurred_at + complaint_due, now), "complaint", f"complaint:{interaction_id}")
