"""Rows as the API and the events show them, and the loads the use cases start with."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import CrmError, NotFound
from services.customers.models import contacts, customer_tags, customers, reps

# what other services keep of a customer (customer.created / customer.updated)
SNAPSHOT_FIELDS = ("company", "industry", "source_channel", "owner_id", "team", "tags", "tier", "lifecycle",
                   "pipeline_stage", "important_dates", "external_id")


def load_customer(uow, actor: Principal, customer_id: str, for_update: bool = False):
    query = select(customers).where(customers.c.id == customer_id)
    if for_update:
        query = query.with_for_update()
    row = uow.session.execute(query).first()
    # out-of-scope customers answer exactly like missing ones: nothing leaks
    if row is None or not actor.can_see(row.owner_id, row.team):
        raise NotFound(f"customer {customer_id} not found")
    return row


def load_rep(uow, rep_id: str, field: str = "rep_id"):
    row = uow.session.execute(select(reps).where(reps.c.id == rep_id)).first()
    if row is None:
        raise CrmError(f"unknown rep {rep_id}", field=field)
    return row


def customer_view(uow, row) -> dict:
    return {
        "id": row.id, "external_id": row.external_id, "company": row.company, "industry": row.industry, "source_channel": row.source_channel,
        "owner_id": row.owner_id, "team": row.team, "notes": row.notes, "tags": _tags(uow, row.id),
        "contacts": _contacts(uow, row.id),
        "important_dates": [{**d, "date": date.fromisoformat(d["date"])} for d in row.important_dates or []],
        "tier": row.tier, "lifecycle": row.lifecycle, "pipeline_stage": row.pipeline_stage,
        "flagged_at_risk": row.flagged_at_risk, "rolling_12m_total": row.rolling_12m_total,
        "purchase_count": row.purchase_count, "first_purchase_at": utc(row.first_purchase_at),
        "last_purchase_at": utc(row.last_purchase_at), "last_interaction_at": utc(row.last_interaction_at),
        "created_at": utc(row.created_at), "updated_at": utc(row.updated_at), "archived_at": utc(row.archived_at),
    }


def customer_snapshot(view: dict) -> dict:
    snapshot = {k: view[k] for k in SNAPSHOT_FIELDS}
    snapshot.update(customer_id=view["id"], archived=view["archived_at"] is not None, created_at=view["created_at"])
    return snapshot


def rep_view(row) -> dict:
    return {"id": row.id, "name": row.name, "email": row.email, "team": row.team, "role": row.role,
            "manager_id": row.manager_id, "active": row.active, "tokens_valid_after": utc(row.tokens_valid_after)}


def rep_event(rep: dict) -> dict:
    return {"rep_id": rep["id"], **{k: rep[k] for k in ("name", "email", "team", "role", "manager_id", "active")},
            "tokens_valid_after": rep.get("tokens_valid_after")}


def _tags(uow, customer_id: str) -> list[str]:
    return sorted(uow.session.execute(
        select(customer_tags.c.tag).where(customer_tags.c.customer_id == customer_id)).scalars())


def _contacts(uow, customer_id: str) -> list[dict]:
    rows = uow.session.execute(select(contacts).where(contacts.c.customer_id == customer_id)
                               .order_by(contacts.c.id))
    return [{"name": r.name, "role": r.role, "phone": r.phone, "email": r.email,
             "is_decision_maker": r.is_decision_maker, "birthday": r.birthday} for r in rows]
