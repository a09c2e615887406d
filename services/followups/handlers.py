"""Use cases of the followups service: one unit of work each, SQL via SQLAlchemy Core.

Every function takes a unit of work (already entered), the acting principal where a person acts,
plain data already validated by the schemas, and the moment ``now`` from the service clock.
Business rules come from ``services.followups.domain``; this module only loads, decides with the
domain, writes and emits.
"""
from __future__ import annotations

import base64
import json
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import Conflict, CrmError, DomainError, Forbidden, NotFound
from services.followups import domain
from services.followups.domain.cadence import CadencePolicy
from services.followups.domain.settings import FollowupsSettings, parse_utc_offset
from services.followups.models import (
    cadence_policy, customer_view, interactions, rep_view, tasks, team_cursors,
)

SYSTEM_ACTOR = "system"
TASK_EVENT_FIELDS = ("task_id", "customer_id", "assignee_id", "team", "kind", "purpose", "due_at")


class Unavailable(CrmError):
    """A service this answer depends on did not reply in time."""
    status = 503
    code = "unavailable"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _u(moment: datetime | None) -> datetime | None:
    """Every stored time is UTC (SQLite keeps no offset, so mixed zones would compare wrongly)."""
    return None if moment is None else moment.astimezone(timezone.utc)


def _newer(stored: datetime | None, incoming: datetime) -> bool:
    return stored is None or incoming >= utc(stored)


# ================================================================ read model: reps

def apply_rep(uow, data: dict, now: datetime) -> None:
    """rep.registered / rep.updated: upsert the directory entry; a rep who left hands over open tasks."""
    rep_id = data["rep_id"]
    values = {"name": data.get("name"), "team": data.get("team"), "role": data["role"], "active": data["active"],
              "updated_at": now}
    before = uow.session.execute(select(rep_view).where(rep_view.c.rep_id == rep_id).with_for_update()).first()
    if before is None:
        uow.session.execute(insert(rep_view).values(rep_id=rep_id, **values))
    else:
        uow.session.execute(update(rep_view).where(rep_view.c.rep_id == rep_id).values(**values))
    if not data["active"]:
        _hand_over_tasks_of_departed_rep(uow, rep_id, now)


def _hand_over_tasks_of_departed_rep(uow, rep_id: str, now: datetime) -> None:
    """Open tasks still held by a deactivated rep go to the customer's owner, else the team in turn.

    A proper hand-over moves customers first (customer.owner_changed), which moves their tasks;
    this catches what is left, e.g. a rep deactivated without a hand-over.
    """
    rows = uow.session.execute(select(tasks).where(tasks.c.assignee_id == rep_id, tasks.c.status == "open")
                               .order_by(tasks.c.due_at, tasks.c.id).with_for_update()).all()
    for row in rows:
        customer = _customer_row(uow, row.customer_id, lock=False)
        assignee, team = _choose_assignee(uow, customer, exclude=rep_id) if customer else (None, row.team)
        _reassign(uow, dict(row._mapping), assignee, team, "assignee left", now)


def _rep(uow, rep_id: str | None):
    if rep_id is None:
        return None
    return uow.session.execute(select(rep_view).where(rep_view.c.rep_id == rep_id)).first()


# ================================================================ read model: customers

def _customer_row(uow, customer_id: str, lock: bool = True) -> SimpleNamespace | None:
    """The read-model row as an attribute namespace (kept in step by _set_customer without re-reading)."""
    query = select(customer_view).where(customer_view.c.customer_id == customer_id)
    if lock:
        query = query.with_for_update()
    row = uow.session.execute(query).first()
    return None if row is None else SimpleNamespace(**row._mapping)


def _ensure_customer(uow, customer_id: str, now: datetime, owner_id=None, team=None):
    """The customer's read-model row, locked; a stub when a later fact arrived before customer.created."""
    row = _customer_row(uow, customer_id)
    if row is None:
        try:
            # a request and an event may both see the customer first: the loser re-reads the winner's row
            with uow.session.begin_nested():
                uow.session.execute(insert(customer_view).values(
                    customer_id=customer_id, owner_id=owner_id, team=team, important_dates=[], archived=False,
                    has_purchased=False, updated_at=now))
        except IntegrityError:
            pass
        row = _customer_row(uow, customer_id)
    elif row.owner_id is None and row.owner_as_of is None and owner_id is not None:
        row = _set_customer(uow, row, {"owner_id": owner_id, "team": team}, now)
    return row


def _set_customer(uow, customer, values: dict, now: datetime):
    """Write ``values`` to the customer's row and return the namespace updated alike."""
    if values:
        uow.session.execute(update(customer_view).where(customer_view.c.customer_id == customer.customer_id)
                            .values(**values, updated_at=now))
        for key, value in values.items():
            setattr(customer, key, value)
    return customer


def _dates_json(items) -> list[dict]:
    out = []
    for item in items or []:
        day = item["date"]
        if isinstance(day, dict):  # kombu's json form of a date
            day = day.get("__value__")
        out.append({"kind": item["kind"], "date": day.isoformat() if isinstance(day, date) else str(day)[:10],
                    "label": item.get("label") or ""})
    return out


def apply_snapshot(uow, data: dict, at: datetime, now: datetime, policy: CadencePolicy,
                   settings: FollowupsSettings) -> None:
    """customer.created / customer.updated (or the brief): the full record as of ``at``."""
    customer_id = data["customer_id"]
    row = _ensure_customer(uow, customer_id, now)
    values = {"company": data.get("company"), "important_dates": _dates_json(data.get("important_dates")),
              "snapshot_at": at if row.snapshot_at is None or at > utc(row.snapshot_at) else row.snapshot_at}
    if data.get("created_at") is not None:
        values["created_at"] = _u(data["created_at"])
    if _newer(row.owner_as_of, at):
        values.update(owner_id=data.get("owner_id"), team=data.get("team"), owner_as_of=at)
    if _newer(row.tier_as_of, at) and data.get("tier"):
        values.update(tier=data["tier"], tier_as_of=at)
    if _newer(row.lifecycle_as_of, at) and data.get("lifecycle"):
        values.update(lifecycle=data["lifecycle"], lifecycle_as_of=at)
    if _newer(row.stage_as_of, at):
        values.update(pipeline_stage=data.get("pipeline_stage"), stage_as_of=at)
        if data.get("pipeline_stage") == "won" and row.won_at is None:
            values["won_at"] = at
    row = _set_customer(uow, row, values, now)
    if data.get("archived") and not row.archived:
        archive_customer(uow, customer_id, at, now)
        return
    sync_cadence(uow, row, now, policy)


def archive_customer(uow, customer_id: str, archived_at: datetime, now: datetime, owner_id=None,
                     team=None) -> None:
    """An archived customer leaves cadences: every open task is skipped with the reason."""
    _set_customer(uow, _ensure_customer(uow, customer_id, now, owner_id, team), {"archived": True}, now)
    rows = uow.session.execute(select(tasks).where(tasks.c.customer_id == customer_id, tasks.c.status == "open")
                               .with_for_update()).all()
    for row in rows:
        _skip(uow, dict(row._mapping), "customer archived", now)


def apply_tier(uow, data: dict, now: datetime, policy: CadencePolicy) -> None:
    row = _ensure_customer(uow, data["customer_id"], now, data.get("owner_id"), data.get("team"))
    if _newer(row.tier_as_of, data["as_of"]):
        row = _set_customer(uow, row, {"tier": data["new_tier"], "tier_as_of": data["as_of"]}, now)
    sync_cadence(uow, row, now, policy)


def apply_lifecycle(uow, data: dict, now: datetime, policy: CadencePolicy) -> None:
    row = _ensure_customer(uow, data["customer_id"], now, data.get("owner_id"), data.get("team"))
    if _newer(row.lifecycle_as_of, data["as_of"]):
        row = _set_customer(uow, row, {"lifecycle": data["new_lifecycle"], "lifecycle_as_of": data["as_of"]}, now)
    sync_cadence(uow, row, now, policy)


def apply_purchase(uow, data: dict, now: datetime) -> None:
    row = _ensure_customer(uow, data["customer_id"], now, data.get("owner_id"), data.get("team"))
    at = data["purchased_at"]
    values = {"has_purchased": True}
    if row.first_purchase_at is None or at < utc(row.first_purchase_at):
        values["first_purchase_at"] = at
    if row.last_purchase_at is None or at > utc(row.last_purchase_at):
        values["last_purchase_at"] = at
    _set_customer(uow, row, values, now)


def apply_stage(uow, data: dict, now: datetime, settings: FollowupsSettings) -> list[dict]:
    """customer.stage_changed: remember the stage; key moments get their task (once per change)."""
    row = _ensure_customer(uow, data["customer_id"], now, data.get("owner_id"), data.get("team"))
    changed_at = data["changed_at"]
    values = {}
    if _newer(row.stage_as_of, changed_at):
        values.update(pipeline_stage=data["new_stage"], stage_as_of=changed_at)
    if data["new_stage"] == "won" and (row.won_at is None or changed_at < utc(row.won_at)):
        values["won_at"] = changed_at
    row = _set_customer(uow, row, values, now)
    if row.archived or now - changed_at > settings.key_moment_max_age:
        return []  # imported history: that moment has long passed
    planned = domain.key_moment_tasks(
        row.customer_id, data.get("old_stage"), data["new_stage"], changed_at, now, rules=settings.key_moments,
        last_productive_touch_at=utc(row.last_productive_touch_at))
    created = []
    for plan in planned:
        task = create_task(uow, row, plan.kind, plan.purpose, plan.reason, plan.due_at, now,
                           anchor_at=changed_at, dedupe_key=plan.dedupe_key)
        if task:
            created.append(task)
    return created


def apply_owner_change(uow, data: dict, at: datetime, now: datetime) -> None:
    """Ownership moved: the customer's open tasks held by the old owner (or unassigned) move too."""
    row = _ensure_customer(uow, data["customer_id"], now)
    if _newer(row.owner_as_of, at):
        _set_customer(uow, row, {"owner_id": data["new_owner_id"], "team": data.get("new_team"),
                                 "owner_as_of": at}, now)
    open_rows = uow.session.execute(select(tasks).where(tasks.c.customer_id == row.customer_id,
                                                        tasks.c.status == "open").with_for_update()).all()
    by_id = {r.id: r for r in open_rows}
    moving = domain.tasks_to_reassign([_domain_task(r) for r in open_rows], row.customer_id, data.get("old_owner_id"))
    new_rep = _rep(uow, data["new_owner_id"])
    team = new_rep.team if new_rep is not None else data.get("new_team")
    for task in moving:
        _reassign(uow, dict(by_id[task.task_id]._mapping), data["new_owner_id"], team, "ownership change", now)


def apply_alert(uow, data: dict, now: datetime, settings: FollowupsSettings) -> dict | None:
    """alert.raised: a recall task for the owner, due ``recall_due`` after the alert (once per alert)."""
    row = _ensure_customer(uow, data["customer_id"], now, data.get("owner_id"), data.get("team"))
    due_at = max(data.get("recall_due_at") or data["raised_at"] + settings.recall_due, now)
    return create_task(uow, row, "recall", f"recall: churn alert {data['rule']}", "recall", due_at, now,
                       anchor_at=data["raised_at"], dedupe_key=f"recall:{data['alert_id']}")


# ================================================================ customers as seen by a caller

def visible_customer(uow, actor: Principal, customer_id: str, now: datetime, fetch_brief, policy: CadencePolicy,
                     settings: FollowupsSettings):
    """The read-model row (locked) of a customer the caller may see, or 404 naming customer_id.

    A customer whose customer.created has not reached us yet is asked of the customers service
    (``fetch_brief``) once; its answer seeds the read model.
    """
    row = _customer_row(uow, customer_id)
    if (row is None or row.snapshot_at is None) and fetch_brief is not None:
        brief = fetch_brief(customer_id)
        if brief:
            apply_snapshot(uow, brief_to_snapshot(brief), now, now, policy, settings)
            row = _customer_row(uow, customer_id)
    if row is None or not actor.can_see(row.owner_id, row.team):
        raise NotFound(f"customer {customer_id} not found", field="customer_id")
    return row


def brief_to_snapshot(brief: dict) -> dict:
    return {"customer_id": brief["id"], "company": brief.get("company"), "owner_id": brief.get("owner_id"),
            "team": brief.get("team"), "tier": brief.get("tier"), "lifecycle": brief.get("lifecycle"),
            "pipeline_stage": brief.get("pipeline_stage"), "important_dates": brief.get("important_dates") or [],
            "archived": bool(brief.get("archived_at"))}


# ================================================================ tasks: shared mechanics

def _domain_task(row) -> domain.Task:
    return domain.Task(task_id=row.id, customer_id=row.customer_id, kind=row.kind, due_at=utc(row.due_at),
                       reason=row.reason, purpose=row.purpose, assignee_id=row.assignee_id, team=row.team,
                       created_at=utc(row.created_at), status=row.status, reminder_state=row.reminder_state,
                       closed_at=utc(row.closed_at), interaction_id=row.interaction_id, skip_reason=row.skip_reason)


def _event_fields(task: dict) -> dict:
    return {k: task[k if k != "task_id" else "id"] for k in TASK_EVENT_FIELDS}


def task_view(row, extra: dict | None = None) -> dict:
    m = row._mapping if hasattr(row, "_mapping") else row
    view = {"id": m["id"], "customer_id": m["customer_id"], "assignee_id": m["assignee_id"], "team": m["team"],
            "kind": m["kind"], "purpose": m["purpose"], "reason": m["reason"], "due_at": utc(m["due_at"]),
            "status": m["status"], "reminder_state": m["reminder_state"], "created_at": utc(m["created_at"]),
            "closed_at": utc(m["closed_at"]), "interaction_id": m["interaction_id"], "skip_reason": m["skip_reason"]}
    if extra:
        view.update(extra)
    return view


def _choose_assignee(uow, customer, exclude: str | None = None) -> tuple[str | None, str | None]:
    """(assignee, team): the active owner, else the customer's team in turn, else nobody."""
    team = customer.team
    owner = customer.owner_id if customer.owner_id != exclude else None
    owner_rep = _rep(uow, owner)
    owner_active = owner is not None and (owner_rep.active if owner_rep is not None else True)
    members = []
    if team is not None:
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
    rep = owner_rep if assignee == owner else _rep(uow, assignee)
    return assignee, (rep.team if rep is not None and rep.team else team)


def create_task(uow, customer, kind: str, purpose: str, reason: str, due_at: datetime, now: datetime, *,
                anchor_at: datetime | None = None, dedupe_key: str | None = None, assignee_id: str | None = None,
                team: str | None = None, created_by: str = SYSTEM_ACTOR) -> dict | None:
    """Insert an open task and emit task.scheduled; None when its dedupe key was scheduled before."""
    if dedupe_key is not None and uow.session.execute(
            select(tasks.c.id).where(tasks.c.dedupe_key == dedupe_key)).first():
        return None
    if assignee_id is None:
        assignee_id, team = _choose_assignee(uow, customer)
    task = {"id": new_id("tsk"), "customer_id": customer.customer_id, "assignee_id": assignee_id,
            "team": team if team is not None else customer.team, "kind": kind, "purpose": purpose, "reason": reason,
            "due_at": _u(due_at), "status": "open", "reminder_state": "none", "anchor_at": _u(anchor_at),
            "dedupe_key": dedupe_key, "created_at": now, "created_by": created_by, "closed_at": None,
            "interaction_id": None, "skip_reason": None}
    uow.session.execute(insert(tasks).values(**task))
    uow.emit("task.scheduled", task["customer_id"], {**_event_fields(task), "reason": reason}, time=now)
    return task


def _complete(uow, task: dict, interaction_id: str, at: datetime, customer_id: str | None = None) -> bool:
    model = _domain_task_from_dict(task)
    on_time = domain.complete(model, interaction_id, at, customer_id=customer_id)
    uow.session.execute(update(tasks).where(tasks.c.id == task["id"]).values(
        status="done", closed_at=_u(at), interaction_id=interaction_id))
    uow.emit("task.completed", task["customer_id"], {
        **_event_fields(task), "completed_at": at, "interaction_id": interaction_id, "on_time": on_time}, time=at)
    return on_time


def _skip(uow, task: dict, reason: str, now: datetime) -> None:
    model = _domain_task_from_dict(task)
    domain.skip(model, reason, now)
    uow.session.execute(update(tasks).where(tasks.c.id == task["id"]).values(
        status="skipped", closed_at=now, skip_reason=model.skip_reason))
    uow.emit("task.skipped", task["customer_id"], {**_event_fields(task), "skipped_at": now,
                                                   "reason": model.skip_reason}, time=now)


def _reassign(uow, task: dict, assignee_id: str | None, team: str | None, reason: str, now: datetime) -> None:
    if assignee_id == task["assignee_id"]:
        return
    model = _domain_task_from_dict(task)
    old = domain.reassign(model, assignee_id, team=team)
    uow.session.execute(update(tasks).where(tasks.c.id == task["id"]).values(assignee_id=assignee_id,
                                                                            team=model.team))
    moved = {**task, "assignee_id": assignee_id, "team": model.team}
    uow.emit("task.reassigned", task["customer_id"], {**_event_fields(moved), "old_assignee_id": old,
                                                      "reason": reason}, time=now)


def _reschedule(uow, task: dict, due_at: datetime, kind: str, reason: str, now: datetime) -> None:
    model = _domain_task_from_dict(task)
    old_due = domain.reschedule(model, _u(due_at), kind=kind)
    uow.session.execute(update(tasks).where(tasks.c.id == task["id"]).values(
        due_at=model.due_at, kind=model.kind, reminder_state="none"))
    moved = {**task, "due_at": model.due_at, "kind": model.kind}
    uow.emit("task.rescheduled", task["customer_id"], {**_event_fields(moved), "old_due_at": old_due,
                                                       "reason": reason}, time=now)


def _domain_task_from_dict(task: dict) -> domain.Task:
    return domain.Task(task_id=task["id"], customer_id=task["customer_id"], kind=task["kind"],
                       due_at=utc(task["due_at"]), reason=task["reason"], purpose=task["purpose"],
                       assignee_id=task["assignee_id"], team=task["team"], created_at=utc(task["created_at"]),
                       status=task["status"], reminder_state=task["reminder_state"],
                       closed_at=utc(task["closed_at"]), interaction_id=task["interaction_id"],
                       skip_reason=task["skip_reason"])


# ================================================================ cadence

def _open_cadence_task(uow, customer_id: str) -> dict | None:
    row = uow.session.execute(select(tasks).where(tasks.c.customer_id == customer_id, tasks.c.reason == "cadence",
                                                  tasks.c.status == "open").with_for_update()).first()
    return dict(row._mapping) if row else None


def _cadence_purpose(policy: CadencePolicy, tier: str, lifecycle: str, kind: str) -> str:
    days = policy.interval_for(tier, lifecycle)
    return f"{kind.replace('_', ' ')}: touch every {days} days (tier {tier}, {lifecycle})"


NOT_LOADED = object()


def sync_cadence(uow, customer, now: datetime, policy: CadencePolicy, last_touch_at: datetime | None = None,
                 open_task=NOT_LOADED) -> dict | None:
    """Bring the customer's one open cadence task in line with its class and last touch; returns it."""
    if customer is None or customer.tier is None or customer.lifecycle is None or customer.archived:
        return None
    if open_task is NOT_LOADED:
        open_task = _open_cadence_task(uow, customer.customer_id)
    if last_touch_at is None:
        last_touch_at = utc(customer.last_touch_at) or utc(customer.created_at) or now
    decision = domain.reconcile_cadence(policy, _domain_task_from_dict(open_task) if open_task else None,
                                        customer.tier, customer.lifecycle, last_touch_at, now)
    if decision.action == "schedule":
        return create_task(uow, customer, decision.kind,
                           _cadence_purpose(policy, customer.tier, customer.lifecycle, decision.kind),
                           "cadence", decision.due_at, now, anchor_at=last_touch_at)
    if decision.action == "reschedule":
        _reschedule(uow, open_task, decision.due_at, decision.kind, decision.reason, now)
        purpose = _cadence_purpose(policy, customer.tier, customer.lifecycle, decision.kind)
        if decision.kind != open_task["kind"]:
            uow.session.execute(update(tasks).where(tasks.c.id == open_task["id"]).values(purpose=purpose))
        return {**open_task, "due_at": _u(decision.due_at), "kind": decision.kind, "reminder_state": "none",
                "purpose": purpose if decision.kind != open_task["kind"] else open_task["purpose"]}
    if decision.action == "cancel":
        _skip(uow, open_task, decision.reason, now)
        return None
    return open_task


def reconcile_cadence_batch(uow, after_id: str | None, now: datetime, policy: CadencePolicy,
                            batch_size: int = 500) -> str | None:
    """Apply a changed cadence policy to the next batch of customers; returns the last id or None when done."""
    query = (select(customer_view).where(customer_view.c.archived.is_(False))
             .order_by(customer_view.c.customer_id).limit(batch_size))
    if after_id is not None:
        query = query.where(customer_view.c.customer_id > after_id)
    rows = uow.session.execute(query.with_for_update()).all()
    for row in rows:
        sync_cadence(uow, row, now, policy)
    return rows[-1].customer_id if rows else None


def current_policy(uow, settings: FollowupsSettings) -> tuple[CadencePolicy, dict]:
    row = uow.session.execute(select(cadence_policy).where(cadence_policy.c.id == 1)).first()
    if row is None:
        return settings.cadence, {"source": "settings", "updated_at": None, "updated_by": None}
    policy = CadencePolicy.from_dict(row.intervals, keep_defaults=False)
    return policy, {"source": "api", "updated_at": utc(row.updated_at), "updated_by": row.updated_by}


def policy_version(uow) -> str | None:
    """Identifies the stored policy (its update time), so a changed policy is applied once."""
    updated_at = uow.session.execute(select(cadence_policy.c.updated_at).where(cadence_policy.c.id == 1)).scalar()
    return None if updated_at is None else utc(updated_at).strftime("%Y%m%dT%H%M%S%f")


def get_policy(uow, settings: FollowupsSettings) -> dict:
    policy, meta = current_policy(uow, settings)
    return {"intervals": policy.to_dict(), **meta}


def put_policy(uow, actor: Principal, data: dict, settings: FollowupsSettings, now: datetime) -> dict:
    actor.require("admin")
    policy = CadencePolicy.from_dict(data["intervals"], keep_defaults=data.get("keep_defaults", True))
    before, _ = current_policy(uow, settings)
    stored = policy.to_dict()
    if uow.session.execute(select(cadence_policy.c.id).where(cadence_policy.c.id == 1)).first():
        uow.session.execute(update(cadence_policy).where(cadence_policy.c.id == 1).values(
            intervals=stored, updated_at=now, updated_by=actor.user_id))
    else:
        uow.session.execute(insert(cadence_policy).values(id=1, intervals=stored, updated_at=now,
                                                          updated_by=actor.user_id))
    uow.audit(actor, "cadence_policy.updated", "cadence_policy", 1,
              {"before": before.to_dict(), "after": stored})
    return {"intervals": stored, "source": "api", "updated_at": now, "updated_by": actor.user_id}


# ================================================================ interactions

def _interaction_view(row) -> dict:
    m = row._mapping if hasattr(row, "_mapping") else row
    return {"id": m["id"], "customer_id": m["customer_id"], "rep_id": m["rep_id"], "team": m["team"],
            "kind": m["kind"], "phase": m["phase"], "occurred_at": utc(m["occurred_at"]), "outcome": m["outcome"],
            "satisfaction": m["satisfaction"], "summary": m["summary"], "next_step": m["next_step"],
            "completes_task_id": m["completes_task_id"], "resolves_complaint_id": m["resolves_complaint_id"],
            "complaint_status": m["complaint_status"],
            "resolved_by_interaction_id": m["resolved_by_interaction_id"], "logged_at": utc(m["logged_at"])}


def _phase(customer, explicit: str | None, occurred_at: datetime) -> str:
    """Pre-sale or post-sale as the customer stood when the touch happened (or as given)."""
    if explicit is not None:
        return domain.derive_phase(explicit)
    first, won = utc(customer.first_purchase_at), utc(customer.won_at)
    if first is not None or won is not None:
        return domain.derive_phase(None, has_purchased=first is not None and first <= occurred_at,
                                   pipeline_stage="won" if won is not None and won <= occurred_at else None)
    return domain.derive_phase(None, lifecycle=customer.lifecycle, pipeline_stage=customer.pipeline_stage,
                               has_purchased=customer.has_purchased)


def log_interaction(uow, actor: Principal, data: dict, now: datetime, settings: FollowupsSettings,
                    policy: CadencePolicy, fetch_brief=None) -> dict:
    """Record a touch; complete what it completes, resolve what it resolves, schedule what comes next."""
    occurred_at = data["occurred_at"]
    domain.validate_interaction(kind=data["kind"], outcome=data["outcome"], occurred_at=occurred_at, now=now,
                                satisfaction=data.get("satisfaction"), clock_skew=settings.clock_skew)
    customer = visible_customer(uow, actor, data["customer_id"], now, fetch_brief, policy, settings)
    customer_id = customer.customer_id
    phase = _phase(customer, data.get("phase"), occurred_at)
    interaction_id = new_id("int")

    explicit_task = None
    if data.get("completes_task_id"):
        row = uow.session.execute(select(tasks).where(tasks.c.id == data["completes_task_id"]).with_for_update()).first()
        if row is None or row.customer_id != customer_id:
            raise CrmError(f"no task {data['completes_task_id']} for customer {customer_id}", field="completes_task_id")
        if row.status != "open":
            raise DomainError(f"task {row.id} is already {row.status}", field="completes_task_id")
        explicit_task = dict(row._mapping)
    complaint = None
    if data.get("resolves_complaint_id"):
        complaint = uow.session.execute(select(interactions).where(
            interactions.c.id == data["resolves_complaint_id"]).with_for_update()).first()
        if complaint is None or complaint.customer_id != customer_id or complaint.kind != "complaint":
            raise CrmError(f"no complaint {data['resolves_complaint_id']} for customer {customer_id}",
                           field="resolves_complaint_id")
        if complaint.complaint_status != "open":
            raise Conflict(f"complaint {complaint.id} is already resolved", field="resolves_complaint_id")

    record = {"id": interaction_id, "customer_id": customer_id, "rep_id": actor.user_id, "team": customer.team,
              "kind": data["kind"], "phase": phase, "occurred_at": occurred_at, "outcome": data["outcome"],
              "satisfaction": data.get("satisfaction"), "summary": data.get("summary") or "",
              "next_step": data.get("next_step"), "completes_task_id": data.get("completes_task_id"),
              "resolves_complaint_id": data.get("resolves_complaint_id"),
              "complaint_status": "open" if data["kind"] == "complaint" else None,
              "resolved_by_interaction_id": None, "logged_at": now, "logged_by": actor.user_id}
    uow.session.execute(insert(interactions).values(**record))
    uow.emit("interaction.logged", customer_id, {
        "interaction_id": interaction_id, "customer_id": customer_id, "rep_id": actor.user_id, "team": customer.team,
        "kind": data["kind"], "phase": phase, "occurred_at": occurred_at, "outcome": data["outcome"],
        "satisfaction": data.get("satisfaction"), "summary": record["summary"], "next_step": record["next_step"],
        "completes_task_id": record["completes_task_id"], "resolves_complaint_id": record["resolves_complaint_id"],
    }, time=occurred_at)
    completed: list[str] = []

    if explicit_task is not None:
        _complete(uow, explicit_task, interaction_id, occurred_at, customer_id=customer_id)
        completed.append(explicit_task["id"])
    if complaint is not None:
        uow.session.execute(update(interactions).where(interactions.c.id == complaint.id).values(
            complaint_status="resolved", resolved_by_interaction_id=interaction_id))
        task = uow.session.execute(select(tasks).where(tasks.c.dedupe_key == f"complaint:{complaint.id}",
                                                       tasks.c.status == "open").with_for_update()).first()
        if task is not None:
            _complete(uow, dict(task._mapping), interaction_id, max(occurred_at, utc(task.created_at)),
                      customer_id=customer_id)
            completed.append(task.id)
    if data["kind"] == "complaint" and not customer.archived:
        create_task(uow, customer, "follow_up", f"resolve complaint: {record['summary'][:200]}".rstrip(": "),
                    "complaint", max(occurred_at + settings.complaint_due, now), now, anchor_at=occurred_at,
                    dedupe_key=f"complaint:{interaction_id}")

    # recency: only a touch newer than the last one moves the cadence
    values = {}
    newest = customer.last_touch_at is None or occurred_at > utc(customer.last_touch_at)
    if newest:
        values["last_touch_at"] = occurred_at
    if domain.is_productive(data["outcome"]) and (customer.last_productive_touch_at is None
                                                  or occurred_at > utc(customer.last_productive_touch_at)):
        values["last_productive_touch_at"] = occurred_at
    customer = _set_customer(uow, customer, values, now)

    # a productive touch settles an open needs-analysis follow-up
    if domain.is_productive(data["outcome"]):
        for row in uow.session.execute(select(tasks).where(
                tasks.c.customer_id == customer_id, tasks.c.status == "open", tasks.c.reason == "key_moment",
                tasks.c.kind == "follow_up").with_for_update()).all():
            if row.id in completed:
                continue
            if domain.settles_key_moment_follow_up(_domain_task(row), data["outcome"], occurred_at,
                                                   since=utc(row.anchor_at) or utc(row.created_at)):
                _complete(uow, dict(row._mapping), interaction_id, occurred_at, customer_id=customer_id)
                completed.append(row.id)

    next_task = None
    if not customer.archived:
        open_task = _open_cadence_task(uow, customer_id)
        if newest:
            if open_task and open_task["id"] not in completed and occurred_at >= utc(open_task["created_at"]):
                _complete(uow, open_task, interaction_id, occurred_at, customer_id=customer_id)
                completed.append(open_task["id"])
                open_task = None
            open_task = sync_cadence(uow, customer, now, policy, open_task=open_task)
        elif open_task and open_task["id"] in completed:
            open_task = None
        next_task = task_view(open_task) if open_task else None
    uow.audit(actor, "interaction.logged", "customer", customer_id,
              {"interaction_id": interaction_id, "kind": data["kind"], "outcome": data["outcome"],
               "completed_tasks": completed})
    return {**_interaction_view(record), "completed_task_ids": completed, "next_cadence_task": next_task}


def customer_timeline(uow, actor: Principal, customer_id: str, limit: int, now: datetime, fetch_brief,
                      policy: CadencePolicy, settings: FollowupsSettings) -> dict:
    visible_customer(uow, actor, customer_id, now, fetch_brief, policy, settings)
    rows = uow.session.execute(select(interactions).where(interactions.c.customer_id == customer_id)
                               .order_by(interactions.c.occurred_at.desc(), interactions.c.id.desc())
                               .limit(limit)).all()
    open_tasks = uow.session.execute(select(tasks).where(tasks.c.customer_id == customer_id, tasks.c.status == "open")
                                     .order_by(tasks.c.due_at, tasks.c.id)).all()
    return {"customer_id": customer_id, "items": [_interaction_view(r) for r in rows],
            "open_tasks": [task_view(r) for r in open_tasks]}


# ================================================================ tasks through the API

def _scope_filter(actor: Principal):
    if actor.role == "admin":
        return []
    if actor.role == "manager":
        return [tasks.c.team == actor.team]
    return [tasks.c.assignee_id == actor.user_id]


def _visible_task(uow, actor: Principal, task_id: str) -> dict:
    row = uow.session.execute(select(tasks).where(tasks.c.id == task_id, *_scope_filter(actor))
                              .with_for_update()).first()
    if row is None:
        raise NotFound(f"task {task_id} not found", field="task_id")
    return dict(row._mapping)


def _check_assignee(uow, actor: Principal, assignee_id: str):
    rep = _rep(uow, assignee_id)
    if rep is None:
        raise CrmError(f"unknown assignee {assignee_id}", field="assignee_id")
    if not rep.active:
        raise CrmError(f"rep {assignee_id} is no longer active", field="assignee_id")
    if actor.role == "rep" and assignee_id != actor.user_id:
        raise Forbidden("a rep can only assign tasks to themselves", field="assignee_id")
    if actor.role == "manager" and rep.team != actor.team:
        raise Forbidden(f"rep {assignee_id} is not in your team", field="assignee_id")
    return rep


def create_manual_task(uow, actor: Principal, data: dict, now: datetime, settings: FollowupsSettings,
                       policy: CadencePolicy, fetch_brief=None) -> dict:
    customer = visible_customer(uow, actor, data["customer_id"], now, fetch_brief, policy, settings)
    if customer.archived:
        raise DomainError(f"customer {customer.customer_id} is archived", field="customer_id")
    assignee_id, team = data.get("assignee_id"), None
    if assignee_id is not None:
        team = _check_assignee(uow, actor, assignee_id).team
    elif actor.role == "rep":
        assignee_id, team = actor.user_id, actor.team
    else:
        assignee_id, team = _choose_assignee(uow, customer)
        if assignee_id is None:
            raise DomainError("no active owner or team member to assign the task to; give assignee_id",
                              field="assignee_id")
    task = create_task(uow, customer, data["kind"], data["purpose"], "manual", data["due_at"], now,
                       anchor_at=now, assignee_id=assignee_id, team=team or customer.team, created_by=actor.user_id)
    uow.audit(actor, "task.scheduled", "task", task["id"], {k: task[k] for k in (
        "customer_id", "assignee_id", "kind", "purpose", "due_at")})
    return task_view(task)


def complete_task(uow, actor: Principal, task_id: str, interaction_id: str, now: datetime,
                  policy: CadencePolicy) -> dict:
    task = _visible_task(uow, actor, task_id)
    interaction = uow.session.execute(select(interactions).where(interactions.c.id == interaction_id)).first()
    if interaction is None:
        raise CrmError(f"unknown interaction {interaction_id}", field="interaction_id")
    if interaction.customer_id != task["customer_id"]:
        raise DomainError(f"interaction {interaction_id} is with another customer", field="interaction_id")
    _complete(uow, task, interaction_id, utc(interaction.occurred_at), customer_id=interaction.customer_id)
    if task["reason"] == "cadence":
        sync_cadence(uow, _customer_row(uow, task["customer_id"]), now, policy)
    uow.audit(actor, "task.completed", "task", task_id, {"interaction_id": interaction_id})
    return task_view(uow.session.execute(select(tasks).where(tasks.c.id == task_id)).first())


def skip_task(uow, actor: Principal, task_id: str, reason: str, now: datetime, policy: CadencePolicy) -> dict:
    """Skip with a reason; a skipped cadence round starts the next one from now (not from the last touch)."""
    task = _visible_task(uow, actor, task_id)
    _skip(uow, task, reason, now)
    if task["reason"] == "cadence":
        sync_cadence(uow, _customer_row(uow, task["customer_id"]), now, policy, last_touch_at=now)
    uow.audit(actor, "task.skipped", "task", task_id, {"reason": reason})
    return task_view(uow.session.execute(select(tasks).where(tasks.c.id == task_id)).first())


def reassign_task(uow, actor: Principal, task_id: str, assignee_id: str, reason: str, now: datetime) -> dict:
    actor.require("manager", "admin")
    task = _visible_task(uow, actor, task_id)
    if task["status"] != "open":
        raise DomainError(f"cannot reassign task {task_id}: it is already {task['status']}", field="status")
    rep = _check_assignee(uow, actor, assignee_id)
    if assignee_id == task["assignee_id"]:
        raise Conflict(f"task is already assigned to {assignee_id}", field="assignee_id")
    _reassign(uow, task, assignee_id, rep.team, reason or "manual", now)
    uow.audit(actor, "task.reassigned", "task", task_id, {"assignee_id": [task["assignee_id"], assignee_id]})
    return task_view(uow.session.execute(select(tasks).where(tasks.c.id == task_id)).first())


def _encode_cursor(due_at: datetime, task_id: str) -> str:
    raw = json.dumps({"d": utc(due_at).isoformat(), "id": task_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(raw["d"]).astimezone(timezone.utc), str(raw["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CrmError(f"invalid cursor: {exc}", field="cursor") from None


def list_tasks(uow, actor: Principal, params: dict) -> dict:
    """Keyset pagination on (due_at, id), within the caller's scope."""
    filters = _scope_filter(actor)
    for name in ("assignee_id", "status", "kind", "customer_id", "team"):
        if name in params:
            filters.append(tasks.c[name] == params[name])
    if "due_before" in params:
        filters.append(tasks.c.due_at < params["due_before"])
    if params.get("cursor"):
        due, last_id = _decode_cursor(params["cursor"])
        filters.append(or_(tasks.c.due_at > due, and_(tasks.c.due_at == due, tasks.c.id > last_id)))
    limit = params.get("limit", 100)
    rows = uow.session.execute(select(tasks).where(*filters).order_by(tasks.c.due_at, tasks.c.id)
                               .limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1].due_at, page[-1].id) if len(rows) > limit else None
    return {"items": [task_view(r) for r in page], "next_cursor": next_cursor}


WORKLIST_SCAN_LIMIT = 5000


def worklist(uow, actor: Principal, params: dict, now: datetime, settings: FollowupsSettings) -> dict:
    """A rep's open tasks due before their day ends (overdue included), most urgent first."""
    rep_id = params.get("rep_id") or actor.user_id
    if rep_id != actor.user_id:
        rep = _rep(uow, rep_id)
        if actor.role == "rep" or rep is None or (actor.role == "manager" and rep.team != actor.team):
            raise NotFound(f"rep {rep_id} not found", field="rep_id")
    zone = parse_utc_offset(params["tz"], "tz") if params.get("tz") else settings.timezone
    day_ends = domain.end_of_day(now, zone).astimezone(timezone.utc)
    rows = uow.session.execute(select(tasks).where(tasks.c.assignee_id == rep_id, tasks.c.status == "open",
                                                   tasks.c.due_at < day_ends)
                               .order_by(tasks.c.due_at, tasks.c.id).limit(WORKLIST_SCAN_LIMIT)).all()
    customer_ids = sorted({r.customer_id for r in rows})
    info = {}
    for start in range(0, len(customer_ids), 500):
        for c in uow.session.execute(select(customer_view.c.customer_id, customer_view.c.company,
                                            customer_view.c.tier, customer_view.c.lifecycle)
                                     .where(customer_view.c.customer_id.in_(customer_ids[start:start + 500]))):
            info[c.customer_id] = c
    by_id = {r.id: r for r in rows}
    ordered = domain.prioritize([_domain_task(r) for r in rows], now,
                                {cid: c.tier for cid, c in info.items() if c.tier})
    items = []
    overdue = 0
    for task in ordered:
        late = now - task.due_at
        is_overdue = late > timedelta(0)
        overdue += is_overdue
        customer = info.get(task.customer_id)
        if len(items) < params.get("limit", 200):
            items.append(task_view(by_id[task.task_id], {
                "company": customer.company if customer else None, "tier": customer.tier if customer else None,
                "lifecycle": customer.lifecycle if customer else None, "overdue": is_overdue,
                "days_late": late.days if is_overdue else 0}))
    return {"rep_id": rep_id, "as_of": now, "day_ends_at": day_ends,
            "counts": {"total": len(ordered), "overdue": overdue, "due_today": len(ordered) - overdue},
            "truncated": len(rows) >= WORKLIST_SCAN_LIMIT, "items": items}


def missed_stats(uow, actor: Principal, params: dict) -> dict:
    """Missed follow-ups among tasks closed in [period_start, period_end), per rep and per team in scope."""
    start, end = params["period_start"], params["period_end"]
    filters = [tasks.c.closed_at >= start, tasks.c.closed_at < end,
               tasks.c.status.in_(("done", "skipped", "missed")), *_scope_filter(actor)]
    if "team" in params:
        filters.append(tasks.c.team == params["team"])
    rows = uow.session.execute(select(tasks.c.assignee_id, tasks.c.team, tasks.c.status, func.count())
                               .where(*filters).group_by(tasks.c.assignee_id, tasks.c.team, tasks.c.status)).all()
    reps: dict = defaultdict(Counter)
    teams: dict = defaultdict(Counter)
    total: Counter = Counter()
    for assignee, team, status, count in rows:
        for bucket in (reps[(assignee, team)], teams[team], total):
            bucket[status] += count

    def summary(counter: Counter) -> dict:
        measure = domain.MissedFollowUps(missed=counter["missed"], closed=sum(counter.values()))
        return {"missed": measure.missed, "done": counter["done"], "skipped": counter["skipped"],
                "closed": measure.closed, "missed_rate": None if measure.rate is None else round(measure.rate, 4)}

    return {"period_start": start, "period_end": end, "total": summary(total),
            "by_team": [{"team": team, **summary(c)} for team, c in sorted(teams.items(), key=lambda i: str(i[0]))],
            "by_rep": [{"rep_id": rep, "team": team, **summary(c)}
                       for (rep, team), c in sorted(reps.items(), key=lambda i: (str(i[0][1]), str(i[0][0])))]}


# ================================================================ periodic work

# (reminder state, condition on due_at that makes its next step due) — each a range scan of ix_tasks_sweep
def _sweep_steps(now: datetime, settings: FollowupsSettings):
    return (("none", tasks.c.due_at <= now + settings.due_soon_window),
            ("due_notified", tasks.c.due_at < now),
            ("overdue_notified", tasks.c.due_at < now - settings.grace_period))


def reminder_batch(uow, now: datetime, settings: FollowupsSettings, batch_size: int | None = None) -> Counter:
    """One batch of the reminder sweep: emits task.due / task.overdue / task.missed, advancing each task's
    reminder_state in the same transaction. Rows are claimed FOR UPDATE SKIP LOCKED, so replicas running
    the sweep at once share the work and no task gets a reminder twice. Returns events emitted by kind
    (empty when there is nothing left to do)."""
    batch_size = batch_size or settings.sweep_batch_size
    emitted: Counter = Counter()
    for state, due_condition in _sweep_steps(now, settings):
        rows = uow.session.execute(
            select(tasks).where(tasks.c.status == "open", tasks.c.reminder_state == state, due_condition)
            .order_by(tasks.c.due_at).limit(batch_size).with_for_update(skip_locked=True)).all()
        if not rows:
            continue
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for row in rows:
            task = _domain_task(row)
            steps = domain.advance_reminders(task, now, settings.due_soon_window, settings.grace_period)
            fields = {"task_id": row.id, "customer_id": row.customer_id, "assignee_id": row.assignee_id,
                      "team": row.team, "kind": row.kind, "purpose": row.purpose, "due_at": task.due_at}
            for step in steps:
                payload = {**fields, "missed_at": now} if step == "missed" else fields
                uow.emit(f"task.{step}", row.customer_id, payload, time=now)
                emitted[step] += 1
            groups[(task.reminder_state, task.status)].append(row.id)
        for (reminder_state, status), ids in groups.items():
            values = {"reminder_state": reminder_state, "status": status}
            if status == "missed":
                values["closed_at"] = now
            for start in range(0, len(ids), 500):
                uow.session.execute(update(tasks).where(tasks.c.id.in_(ids[start:start + 500])).values(**values))
    return emitted


def care_batch(uow, after_id: str | None, as_of: datetime, settings: FollowupsSettings,
               batch_size: int = 1000) -> tuple[str | None, int]:
    """Care tasks for the next batch of customers by id: (last id or None when done, tasks created)."""
    query = (select(customer_view).where(customer_view.c.archived.is_(False))
             .order_by(customer_view.c.customer_id).limit(batch_size))
    if after_id is not None:
        query = query.where(customer_view.c.customer_id > after_id)
    rows = uow.session.execute(query).all()
    if not rows:
        return None, 0
    by_id = {r.customer_id: r for r in rows}
    dates = []
    for row in rows:
        for item in row.important_dates or []:
            try:
                dates.append(domain.ImportantDate(row.customer_id, item["kind"], date.fromisoformat(item["date"]),
                                                  item.get("label") or ""))
            except (DomainError, KeyError, ValueError):
                continue  # a date we cannot read never blocks the others
    planned = domain.care_tasks_due(dates, as_of.astimezone(settings.timezone), settings.care_lead_days,
                                    settings.care_horizon_days, kinds=settings.care_kinds,
                                    due_time=settings.care_due_time)
    keys = [p.dedupe_key for p in planned]
    existing = set()
    for start in range(0, len(keys), 500):
        existing |= set(uow.session.execute(select(tasks.c.dedupe_key).where(
            tasks.c.dedupe_key.in_(keys[start:start + 500]))).scalars())
    created = 0
    for plan in planned:
        if plan.dedupe_key in existing:
            continue
        customer = _customer_row(uow, plan.customer_id)
        if create_task(uow, customer or by_id[plan.customer_id], plan.kind, plan.purpose, plan.reason,
                       plan.due_at, as_of, anchor_at=plan.due_at, dedupe_key=plan.dedupe_key):
            created += 1
    return rows[-1].customer_id, created
