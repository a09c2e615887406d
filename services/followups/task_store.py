"""Tasks as rows: every change written together with the event that reports it, and who gets a task.

Used by commands, projections and jobs alike; the rules themselves come from ``domain``.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import insert, select, update

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import DomainError, NotFound
from services.followups import domain
from services.followups.models import rep_view, tasks, team_cursors

SYSTEM_ACTOR = "system"
TASK_EVENT_FIELDS = ("task_id", "customer_id", "assignee_id", "team", "kind", "purpose", "due_at")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def as_utc(moment: datetime | None) -> datetime | None:
    """Every stored time is UTC (SQLite keeps no offset, so mixed zones would compare wrongly)."""
    return None if moment is None else moment.astimezone(timezone.utc)


def _fields(task) -> dict:
    return task._mapping if hasattr(task, "_mapping") else task


def domain_task(task) -> domain.Task:
    """A task row (or its dict) as the domain's Task."""
    m = _fields(task)
    return domain.Task(task_id=m["id"], customer_id=m["customer_id"], kind=m["kind"], due_at=utc(m["due_at"]),
                       reason=m["reason"], purpose=m["purpose"], assignee_id=m["assignee_id"], team=m["team"],
                       created_at=utc(m["created_at"]), status=m["status"], reminder_state=m["reminder_state"],
                       closed_at=utc(m["closed_at"]), interaction_id=m["interaction_id"],
                       skip_reason=m["skip_reason"])


def task_view(task, extra: dict | None = None) -> dict:
    m = _fields(task)
    view = {"id": m["id"], "customer_id": m["customer_id"], "assignee_id": m["assignee_id"], "team": m["team"],
            "kind": m["kind"], "purpose": m["purpose"], "reason": m["reason"], "due_at": utc(m["due_at"]),
            "status": m["status"], "reminder_state": m["reminder_state"], "created_at": utc(m["created_at"]),
            "closed_at": utc(m["closed_at"]), "interaction_id": m["interaction_id"], "skip_reason": m["skip_reason"]}
    if extra:
        view.update(extra)
    return view


def event_fields(task: dict) -> dict:
    return {k: task[k if k != "task_id" else "id"] for k in TASK_EVENT_FIELDS}


def load_task(uow, task_id: str) -> dict:
    return dict(uow.session.execute(select(tasks).where(tasks.c.id == task_id)).first()._mapping)


# ------------------------------------------------------------------ who sees and who does a task

def scope_filter(actor: Principal) -> list:
    if actor.role == "admin":
        return []
    if actor.role == "manager":
        return [tasks.c.team == actor.team]
    return [tasks.c.assignee_id == actor.user_id]


def visible_task(uow, actor: Principal, task_id: str) -> dict:
    """The task (locked) when the caller may see it, else 404 naming task_id."""
    row = uow.session.execute(select(tasks).where(tasks.c.id == task_id, *scope_filter(actor))
                              .with_for_update()).first()
    if row is None:
        raise NotFound(f"task {task_id} not found", field="task_id")
    return dict(row._mapping)


def rep_row(uow, rep_id: str | None):
    """The rep's directory entry, read once per transaction (a batch assigns many tasks to few reps);
    forget_rep drops it when the transaction itself changes the entry."""
    if rep_id is None:
        return None
    known = uow.session.info.setdefault("rep_rows", {})
    if rep_id not in known:
        known[rep_id] = uow.session.execute(select(rep_view).where(rep_view.c.rep_id == rep_id)).first()
    return known[rep_id]


def forget_rep(uow, rep_id: str) -> None:
    uow.session.info.get("rep_rows", {}).pop(rep_id, None)


def choose_assignee(uow, customer, exclude: str | None = None) -> tuple[str | None, str | None]:
    """(assignee, team): the active owner, else the customer's team in turn, else nobody."""
    team = customer.team
    owner = customer.owner_id if customer.owner_id != exclude else None
    owner_rep = rep_row(uow, owner)
    owner_active = owner is not None and (owner_rep.active if owner_rep is not None else True)
    members = []
    if team is not None and not owner_active:  # the team takes turns only when the owner cannot take it
        members = [domain.TeamMember(r.rep_id, r.active and r.rep_id != exclude) for r in uow.session.execute(
            select(rep_view.c.rep_id, rep_view.c.active).where(rep_view.c.team == team, rep_view.c.role == "rep"))]
    cursor = None
    if team is not None and not owner_active:  # round-robin, locked: concurrent assignments take turns
        cursor = uow.lock_or_create(team_cursors, {"team": team}, {"cursor": -1}).cursor
    try:
        assignee, new_cursor = domain.choose_assignee(owner, members, cursor, owner_active=owner_active)
    except DomainError:
        return None, team
    if team is not None and new_cursor != cursor:
        uow.session.execute(update(team_cursors).where(team_cursors.c.team == team).values(cursor=new_cursor))
    rep = owner_rep if assignee == owner else rep_row(uow, assignee)
    return assignee, (rep.team if rep is not None and rep.team else team)


# ------------------------------------------------------------------ changes, each with its event

def create_task(uow, customer, kind: str, purpose: str, reason: str, due_at: datetime, now: datetime, *,
                anchor_at: datetime | None = None, dedupe_key: str | None = None, assignee_id: str | None = None,
                team: str | None = None, created_by: str = SYSTEM_ACTOR) -> dict | None:
    """Insert an open task and emit task.scheduled; None when its dedupe key was scheduled before."""
    if dedupe_key is not None and uow.session.execute(
            select(tasks.c.id).where(tasks.c.dedupe_key == dedupe_key)).first():
        return None
    if assignee_id is None:
        assignee_id, team = choose_assignee(uow, customer)
    task = {"id": new_id("tsk"), "customer_id": customer.customer_id, "assignee_id": assignee_id,
            "team": team if team is not None else customer.team, "kind": kind, "purpose": purpose, "reason": reason,
            "due_at": as_utc(due_at), "status": "open", "reminder_state": "none", "anchor_at": as_utc(anchor_at),
            "dedupe_key": dedupe_key, "created_at": now, "created_by": created_by, "closed_at": None,
            "interaction_id": None, "skip_reason": None}
    uow.session.execute(insert(tasks).values(**task))
    uow.emit("task.scheduled", task["customer_id"], {**event_fields(task), "reason": reason}, time=now)
    return task


def create_planned(uow, customer, plan: domain.PlannedTask, now: datetime, anchor_at: datetime) -> dict | None:
    return create_task(uow, customer, plan.kind, plan.purpose, plan.reason, plan.due_at, now,
                       anchor_at=anchor_at, dedupe_key=plan.dedupe_key)


def complete(uow, task: dict, interaction_id: str, at: datetime, customer_id: str | None = None) -> bool:
    on_time = domain.complete(domain_task(task), interaction_id, at, customer_id=customer_id)
    uow.session.execute(update(tasks).where(tasks.c.id == task["id"]).values(
        status="done", closed_at=as_utc(at), interaction_id=interaction_id))
    uow.emit("task.completed", task["customer_id"], {
        **event_fields(task), "completed_at": at, "interaction_id": interaction_id, "on_time": on_time}, time=at)
    return on_time


def skip(uow, task: dict, reason: str, now: datetime) -> None:
    model = domain_task(task)
    domain.skip(model, reason, now)
    uow.session.execute(update(tasks).where(tasks.c.id == task["id"]).values(
        status="skipped", closed_at=now, skip_reason=model.skip_reason))
    uow.emit("task.skipped", task["customer_id"], {**event_fields(task), "skipped_at": now,
                                                   "reason": model.skip_reason}, time=now)


def reassign(uow, task: dict, assignee_id: str | None, team: str | None, reason: str, now: datetime) -> None:
    if assignee_id == task["assignee_id"]:
        return
    model = domain_task(task)
    old = domain.reassign(model, assignee_id, team=team)
    uow.session.execute(update(tasks).where(tasks.c.id == task["id"]).values(assignee_id=assignee_id,
                                                                            team=model.team))
    moved = {**task, "assignee_id": assignee_id, "team": model.team}
    uow.emit("task.reassigned", task["customer_id"], {**event_fields(moved), "old_assignee_id": old,
                                                      "reason": reason}, time=now)


def reschedule(uow, task: dict, due_at: datetime, kind: str, reason: str, now: datetime,
               purpose: str | None = None) -> dict:
    """Move (re-kind, retitle) an open task; task.rescheduled carries what it became. Returns the new task."""
    model = domain_task(task)
    old_due = domain.reschedule(model, as_utc(due_at), kind=kind)
    moved = {**task, "due_at": model.due_at, "kind": model.kind, "reminder_state": model.reminder_state,
             "purpose": task["purpose"] if purpose is None else purpose}
    uow.session.execute(update(tasks).where(tasks.c.id == task["id"]).values(
        due_at=moved["due_at"], kind=moved["kind"], reminder_state=moved["reminder_state"],
        purpose=moved["purpose"]))
    uow.emit("task.rescheduled", task["customer_id"], {**event_fields(moved), "old_due_at": old_due,
                                                       "reason": reason}, time=now)
    return moved
