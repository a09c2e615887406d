"""The one open cadence task per customer, kept in line with its class, and the policy in force."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from crm_common.db import utc
from services.followups import domain, task_store
from services.followups.domain.cadence import CadencePolicy
from services.followups.domain.settings import FollowupsSettings
from services.followups.models import cadence_policy, tasks

NOT_LOADED = object()


def open_cadence_task(uow, customer_id: str) -> dict | None:
    row = uow.session.execute(select(tasks).where(tasks.c.customer_id == customer_id, tasks.c.reason == "cadence",
                                                  tasks.c.status == "open").with_for_update()).first()
    return dict(row._mapping) if row else None


def sync_cadence(uow, customer, now: datetime, policy: CadencePolicy, last_touch_at: datetime | None = None,
                 open_task=NOT_LOADED) -> dict | None:
    """Bring the customer's open cadence task in line with its class (due time, kind and text) and last
    touch; returns it (None when the customer has no cadence, or its class is not known yet)."""
    if customer is None or customer.tier is None or customer.lifecycle is None or customer.archived:
        return None
    if open_task is NOT_LOADED:
        open_task = open_cadence_task(uow, customer.customer_id)
    if last_touch_at is None:
        last_touch_at = utc(customer.last_touch_at) or utc(customer.created_at) or now
    decision = domain.reconcile_cadence(policy, task_store.domain_task(open_task) if open_task else None,
                                        customer.tier, customer.lifecycle, last_touch_at, now)
    if decision.action == "schedule":
        return task_store.create_task(uow, customer, decision.kind, decision.purpose, "cadence", decision.due_at,
                                      now, anchor_at=last_touch_at)
    if decision.action == "reschedule":
        return task_store.reschedule(uow, open_task, decision.due_at, decision.kind, decision.reason, now,
                                     purpose=decision.purpose)
    if decision.action == "cancel":
        task_store.skip(uow, open_task, decision.reason, now)
        return None
    return open_task


def current_policy(uow, settings: FollowupsSettings) -> tuple[CadencePolicy, dict]:
    """The policy an admin stored, else the one from settings; and where it came from."""
    row = uow.session.execute(select(cadence_policy).where(cadence_policy.c.id == 1)).first()
    if row is None:
        return settings.cadence, {"source": "settings", "updated_at": None, "updated_by": None}
    policy = CadencePolicy.from_dict(row.intervals, keep_defaults=False)
    return policy, {"source": "api", "updated_at": utc(row.updated_at), "updated_by": row.updated_by}


def policy_version(uow) -> str | None:
    """Identifies the stored policy (its update time), so a changed policy is applied once."""
    updated_at = uow.session.execute(select(cadence_policy.c.updated_at).where(cadence_policy.c.id == 1)).scalar()
    return None if updated_at is None else utc(updated_at).strftime("%Y%m%dT%H%M%S%f")
