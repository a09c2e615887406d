"""Pipeline stages of a prospect and which moves between them are allowed."""
from __future__ import annotations

from datetime import datetime

from crm_common.errors import CrmError, DomainError

from .records import check_not_future

PIPELINE_STAGES = ("first_contact", "needs_analysis", "proposal", "won", "lost")
OPEN_STAGES = ("first_contact", "needs_analysis", "proposal")
FIRST_STAGE = "first_contact"


def check_stage_move(current: str | None, target: str) -> None:
    """Forward moves (skipping allowed), any open stage to lost, lost back to first contact."""
    if target not in PIPELINE_STAGES:
        raise DomainError(f"unknown stage {target}", field="stage")
    if current == target:
        raise DomainError(f"customer is already in stage {target}", field="stage")
    if current is None:
        return
    if current == "won":
        raise DomainError("a won customer leaves the pipeline; record purchases instead", field="stage")
    if current == "lost":
        if target != "first_contact":
            raise DomainError("a lost prospect can only be reopened at first_contact", field="stage")
        return
    if target == "lost":
        return
    if PIPELINE_STAGES.index(target) < PIPELINE_STAGES.index(current):
        raise DomainError(f"cannot move back from {current} to {target}", field="stage")


def check_stage_time(changed_at: datetime, previous_change: datetime | None, now: datetime) -> None:
    """A move may be backdated, but not into the future nor before the move it follows:
    the timeline (and reports' cycle times) cannot be rewritten."""
    check_not_future(changed_at, now, "changed_at")
    if previous_change is not None and changed_at < previous_change:
        raise CrmError("changed_at is before the previous stage change", field="changed_at")
