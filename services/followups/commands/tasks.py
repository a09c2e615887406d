"""What people do to tasks through the API, and the cadence policy an admin stores."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import Conflict, CrmError, DomainError
from services.followups import cadence, domain, read_model, task_store
from services.followups.domain.cadence import CadencePolicy
from services.followups.domain.settings import FollowupsSettings
from services.followups.models import cadence_policy, interactions


def _check_assignee(uow, actor: Principal, assignee_id: str):
    rep = task_store.rep_row(uow, assignee_id)
    if rep is None:
        raise CrmError(f"unknown assignee {assignee_id}", field="assignee_id")
    domain.check_assignee(actor.role, actor.user_id, actor.team, assignee_id, rep.team, rep.active)
    return rep


def create_manual_task(uow, actor: Principal, data: dict, now: datetime, settings: FollowupsSettings,
                       policy: CadencePolicy, fetch_brief=None) -> dict:
    customer = read_model.visible_customer(uow, actor, data["customer_id"], now, fetch_brief, policy)
    if customer.archived:
        raise DomainError(f"customer {customer.customer_id} is archived", field="customer_id")
    domain.check_due_at(data["due_at"], customer.created_at)
    assignee_id, team = data.get("assignee_id"), None
    if assignee_id is not None:
        team = _check_assignee(uow, actor, assignee_id).team
    elif actor.role == "rep":
        assignee_id, team = actor.user_id, actor.team
    else:
        assignee_id, team = task_store.choose_assignee(uow, customer)
        if assignee_id is None:
            raise DomainError("no active owner or team member to assign the task to; give assignee_id",
                              field="assignee_id")
    task = task_store.create_task(uow, customer, data["kind"], data["purpose"], "manual", data["due_at"], now,
                                  anchor_at=now, assignee_id=assignee_id, team=team or customer.team,
                                  created_by=actor.user_id)
    uow.audit(actor, "task.scheduled", "task", task["id"], {k: task[k] for k in (
        "customer_id", "assignee_id", "kind", "purpose", "due_at")})
    return task_store.task_view(task)


def complete_task(uow, actor: Principal, task_id: str, interaction_id: str, now: datetime,
                  policy: CadencePolicy) -> dict:
    task = task_store.visible_task(uow, actor, task_id)
    interaction = uow.session.execute(select(interactions).where(interactions.c.id == interaction_id)).first()
    if interaction is None:
        raise CrmError(f"unknown interaction {interaction_id}", field="interaction_id")
    if interaction.customer_id != task["customer_id"]:
        raise DomainError(f"interaction {interaction_id} is with another customer", field="interaction_id")
    task_store.complete(uow, task, interaction_id, utc(interaction.occurred_at), customer_id=interaction.customer_id)
    if task["reason"] == "cadence":
        cadence.sync_cadence(uow, read_model.customer_row(uow, task["customer_id"]), now, policy)
    uow.audit(actor, "task.completed", "task", task_id, {"interaction_id": interaction_id})
    return task_store.task_view(task_store.load_task(uow, task_id))


def skip_task(uow, actor: Principal, task_id: str, reason: str, now: datetime, policy: CadencePolicy) -> dict:
    """Skip with a reason; a skipped cadence round starts the next one from now (not from the last touch)."""
    task = task_store.visible_task(uow, actor, task_id)
    task_store.skip(uow, task, reason, now)
    if task["reason"] == "cadence":
        cadence.sync_cadence(uow, read_model.customer_row(uow, task["customer_id"]), now, policy, last_touch_at=now)
    uow.audit(actor, "task.skipped", "task", task_id, {"reason": reason})
    return task_store.task_view(task_store.load_task(uow, task_id))


def reassign_task(uow, actor: Principal, task_id: str, assignee_id: str, reason: str, now: datetime) -> dict:
    actor.require("manager", "admin")
    task = task_store.visible_task(uow, actor, task_id)
    if task["status"] != "open":
        raise DomainError(f"cannot reassign task {task_id}: it is already {task['status']}", field="status")
    rep = _check_assignee(uow, actor, assignee_id)
    if assignee_id == task["assignee_id"]:
        raise Conflict(f"task is already assigned to {assignee_id}", field="assignee_id")
    task_store.reassign(uow, task, assignee_id, rep.team, reason or "manual", now)
    uow.audit(actor, "task.reassigned", "task", task_id, {"assignee_id": [task["assignee_id"], assignee_id]})
    return task_store.task_view(task_store.load_task(uow, task_id))


def put_policy(uow, actor: Principal, data: dict, settings: FollowupsSettings, now: datetime) -> dict:
    """Store the cadence policy; open cadence tasks follow it at the next reminder tick (jobs.run_cadence)."""
    actor.require("admin")
    policy = CadencePolicy.from_dict(data["intervals"], keep_defaults=data.get("keep_defaults", True))
    before, _ = cadence.current_policy(uow, settings)
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
