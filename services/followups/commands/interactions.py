"""Logging a touch: what it completes, resolves and schedules next (POST /v1/interactions)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from crm_common.auth import Principal
from crm_common.db import utc
from marshmallow import ValidationError

from crm_common.errors import Conflict, CrmError, DomainError
from services.followups import cadence, domain, read_model, task_store
from services.followups.domain.cadence import CadencePolicy
from services.followups.domain.settings import FollowupsSettings
from services.followups.models import interactions, tasks
from services.followups.queries import interaction_view


def log_interaction(uow, actor: Principal, data: dict, now: datetime, settings: FollowupsSettings,
                    policy: CadencePolicy, fetch_brief=None) -> dict:
    """Record a touch; complete what it completes, resolve what it resolves, schedule what comes next."""
    occurred_at = data["occurred_at"]
    domain.validate_interaction(kind=data["kind"], outcome=data["outcome"], occurred_at=occurred_at, now=now,
                                satisfaction=data.get("satisfaction"), clock_skew=settings.clock_skew)
    customer = read_model.visible_customer(uow, actor, data["customer_id"], now, fetch_brief, policy)
    customer_id = customer.customer_id
    explicit_task = _task_to_complete(uow, customer_id, data.get("completes_task_id"))
    complaint = _complaint_to_resolve(uow, customer_id, data.get("resolves_complaint_id"))
    record = _record(uow, actor, customer, data, now)
    interaction_id = record["id"]
    completed: list[str] = []

    if explicit_task is not None:
        task_store.complete(uow, explicit_task, interaction_id, occurred_at, customer_id=customer_id)
        completed.append(explicit_task["id"])
    if complaint is not None:
        uow.session.execute(update(interactions).where(interactions.c.id == complaint.id).values(
            complaint_status="resolved", resolved_by_interaction_id=interaction_id))
        task = uow.session.execute(select(tasks).where(tasks.c.dedupe_key == f"complaint:{complaint.id}",
                                                       tasks.c.status == "open").with_for_update()).first()
        if task is not None:
            task_store.complete(uow, dict(task._mapping), interaction_id, max(occurred_at, utc(task.created_at)),
                                customer_id=customer_id)
            completed.append(task.id)
    if data["kind"] == "complaint" and not customer.archived:
        plan = domain.complaint_task(customer_id, interaction_id, record["summary"], occurred_at, now,
                                     complaint_due=settings.complaint_due)
        task_store.create_planned(uow, customer, plan, now, anchor_at=occurred_at)

    newest = domain.is_newer_touch(customer.last_touch_at, occurred_at)
    productive = domain.is_productive(data["outcome"])
    values = {"last_touch_at": occurred_at} if newest else {}
    if productive and domain.is_newer_touch(customer.last_productive_touch_at, occurred_at):
        values["last_productive_touch_at"] = occurred_at
    customer = read_model.set_customer(uow, customer, values, now)
    if productive:
        completed += _settle_key_moment_follow_ups(uow, customer_id, interaction_id, data["outcome"], occurred_at,
                                                   completed)

    next_task = None
    if not customer.archived:
        open_task = cadence.open_cadence_task(uow, customer_id)
        if newest:
            if (open_task and open_task["id"] not in completed
                    and domain.touch_completes_cadence_task(task_store.domain_task(open_task), occurred_at)):
                task_store.complete(uow, open_task, interaction_id, occurred_at, customer_id=customer_id)
                completed.append(open_task["id"])
                open_task = None
            open_task = cadence.sync_cadence(uow, customer, now, policy, open_task=open_task)
        elif open_task and open_task["id"] in completed:
            open_task = None
        next_task = task_store.task_view(open_task) if open_task else None
    uow.audit(actor, "interaction.logged", "customer", customer_id,
              {"interaction_id": interaction_id, "kind": data["kind"], "outcome": data["outcome"],
               "completed_tasks": completed})
    return {**interaction_view(record), "completed_task_ids": completed, "next_cadence_task": next_task}


def _task_to_complete(uow, customer_id: str, task_id: str | None) -> dict | None:
    if not task_id:
        return None
    row = uow.session.execute(select(tasks).where(tasks.c.id == task_id).with_for_update()).first()
    if row is None or row.customer_id != customer_id:
        raise CrmError(f"no task {task_id} for customer {customer_id}", field="completes_task_id")
    if row.status != "open":
        raise DomainError(f"task {row.id} is already {row.status}", field="completes_task_id")
    return dict(row._mapping)


def _complaint_to_resolve(uow, customer_id: str, complaint_id: str | None):
    if not complaint_id:
        return None
    complaint = uow.session.execute(select(interactions).where(
        interactions.c.id == complaint_id).with_for_update()).first()
    if complaint is None or complaint.customer_id != customer_id or complaint.kind != "complaint":
        raise CrmError(f"no complaint {complaint_id} for customer {customer_id}", field="resolves_complaint_id")
    if complaint.complaint_status != "open":
        raise Conflict(f"complaint {complaint.id} is already resolved", field="resolves_complaint_id")
    return complaint


def _record(uow, actor: Principal, customer, data: dict, now: datetime) -> dict:
    """Insert the interaction and emit interaction.logged; returns the stored record."""
    occurred_at = data["occurred_at"]
    phase = domain.phase_at(occurred_at, data.get("phase"), first_purchase_at=customer.first_purchase_at,
                            won_at=customer.won_at, lifecycle=customer.lifecycle,
                            pipeline_stage=customer.pipeline_stage, has_purchased=customer.has_purchased)
    record = {"id": task_store.new_id("int"), "customer_id": customer.customer_id,
              "rep_id": data.get("rep_id") or actor.user_id, "external_ref": data.get("external_ref"),
              "team": customer.team, "kind": data["kind"], "phase": phase, "occurred_at": occurred_at,
              "outcome": data["outcome"], "satisfaction": data.get("satisfaction"),
              "summary": data.get("summary") or "", "next_step": data.get("next_step"),
              "completes_task_id": data.get("completes_task_id"),
              "resolves_complaint_id": data.get("resolves_complaint_id"),
              "complaint_status": "open" if data["kind"] == "complaint" else None,
              "resolved_by_interaction_id": None, "logged_at": now, "logged_by": actor.user_id}
    uow.session.execute(insert(interactions).values(**record))
    uow.emit("interaction.logged", customer.customer_id, {
        "interaction_id": record["id"], **{k: record[k] for k in (
            "customer_id", "rep_id", "team", "kind", "phase", "occurred_at", "outcome", "satisfaction", "summary",
            "next_step", "completes_task_id", "resolves_complaint_id")}}, time=occurred_at)
    return record


def _settle_key_moment_follow_ups(uow, customer_id: str, interaction_id: str, outcome: str, occurred_at: datetime,
                                  completed: list[str]) -> list[str]:
    """A productive touch settles an open needs-analysis follow-up; returns the ids it completed."""
    settled = []
    for row in uow.session.execute(select(tasks).where(
            tasks.c.customer_id == customer_id, tasks.c.status == "open", tasks.c.reason == "key_moment",
            tasks.c.kind == "follow_up").with_for_update()).all():
        if row.id in completed:
            continue
        if domain.settles_key_moment_follow_up(task_store.domain_task(row), outcome, occurred_at,
                                               since=utc(row.anchor_at) or utc(row.created_at)):
            task_store.complete(uow, dict(row._mapping), interaction_id, occurred_at, customer_id=customer_id)
            settled.append(row.id)
    return settled


def import_interactions(uow, actor: Principal, rows: list[dict], dry_run: bool, load, now: datetime,
                        settings: FollowupsSettings, policy: CadencePolicy, fetch_brief=None) -> list[dict]:
    """Rows of an import (customer and rep already resolved by the customers service), each logged like a touch
    typed in, in its own savepoint (undone in a dry run); an answer per row. A row whose external_ref is stored
    already is unchanged, so importing a file again changes nothing."""
    answers = []
    for row in rows:
        if uow.session.execute(select(interactions.c.id).where(
                interactions.c.customer_id == row["customer_id"],
                interactions.c.external_ref == row["external_ref"])).first():
            answers.append({"status": "unchanged"})
            continue
        try:
            data = load({k: v for k, v in row.items() if k not in ("rep_id", "external_ref")})
            with uow.savepoint(keep=not dry_run):
                log_interaction(uow, actor, {**data, "rep_id": row["rep_id"], "external_ref": row["external_ref"]},
                                now, settings, policy, fetch_brief)
            answers.append({"status": "imported"})
        except ValidationError as exc:
            field, messages = next(iter(exc.messages.items()))
            answers.append({"status": "rejected", "field": field, "reason": "; ".join(map(str, messages))})
        except CrmError as exc:
            answers.append({"status": "rejected", "field": exc.field, "reason": exc.message})
    return answers
