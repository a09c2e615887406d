"""Who does a task: the customer's owner, else the team in turn."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from crm_common.errors import CrmError, Forbidden
from services.followups.domain.base import DomainError
from services.followups.domain.tasks import Task


@dataclass(frozen=True)
class TeamMember:
    rep_id: str
    active: bool = True


def choose_assignee(customer_owner_id: str | None, team_members: Iterable[TeamMember], cursor: int | None,
                    *, owner_active: bool | None = None) -> tuple[str, int | None]:
    """Return (assignee, new_cursor).

    The owner gets the task when set and active (``owner_active`` if given, else an active entry
    in ``team_members``); the cursor is then unchanged. Otherwise round-robin over the active
    members sorted by id; ``cursor`` is the index used last (None = start at the first) and wraps.
    """
    active_ids = sorted({member.rep_id for member in team_members if member.active})
    owner_available = owner_active if owner_active is not None else customer_owner_id in active_ids
    if customer_owner_id is not None and owner_available:
        return customer_owner_id, cursor
    if not active_ids:
        raise DomainError("no active owner or team member to assign the task to", field="assignee_id")
    index = 0 if cursor is None else (cursor + 1) % len(active_ids)
    return active_ids[index], index


def tasks_to_reassign(tasks: Iterable[Task], customer_id: str, old_owner_id: str | None) -> list[Task]:
    """On an ownership change, the customer's open tasks held by the old owner (or unassigned) move.

    Tasks someone else deliberately took over stay with them.
    """
    return [task for task in tasks
            if task.is_open and task.customer_id == customer_id and task.assignee_id == old_owner_id]


def check_assignee(actor_role: str, actor_id: str, actor_team: str | None, assignee_id: str,
                   assignee_team: str | None, assignee_active: bool) -> None:
    """Who may give a task to whom: only to an active rep; a rep only to themselves, a manager only
    within the team, an admin to anyone."""
    if not assignee_active:
        raise CrmError(f"rep {assignee_id} is no longer active", field="assignee_id")
    if actor_role == "rep" and assignee_id != actor_id:
        raise Forbidden("a rep can only assign tasks to themselves", field="assignee_id")
    if actor_role == "manager" and assignee_team != actor_team:
        raise Forbidden(f"rep {assignee_id} is not in your team", field="assignee_id")
