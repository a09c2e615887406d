"""What the customers service answers: customers, purchases, history, listings and the reps directory.
Read-only; every function takes a unit of work and the principal whose scope limits the answer."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import literal, or_, select, tuple_

from crm_common.auth import SYSTEM, Principal
from crm_common.cursors import decode_cursor, encode_cursor
from crm_common.db import utc
from crm_common.errors import NotFound
from services.customers.models import (
    classification_history, customer_tags, customers, infrastructure, ownership_history, purchases, reps,
    stage_history,
)
from services.customers.views import customer_view, load_customer, rep_view

BRIEF_FIELDS = ("id", "company", "owner_id", "team", "tier", "lifecycle", "pipeline_stage", "important_dates",
                "archived_at")


def list_reps(uow, actor: Principal, team: str | None = None) -> list[dict]:
    query = select(reps).order_by(reps.c.id)
    if actor.role == "manager":
        query = query.where(reps.c.team == actor.team)
    elif actor.role == "rep":
        query = query.where(or_(reps.c.id == actor.user_id, reps.c.team == actor.team))
    if team:
        query = query.where(reps.c.team == team)
    return [rep_view(r) for r in uow.session.execute(query)]


def get_customer(uow, actor: Principal, customer_id: str) -> dict:
    return customer_view(uow, load_customer(uow, actor, customer_id))


def customer_brief(uow, customer_id: str) -> dict | None:
    """Owner, team and class of a customer, or None: for other services validating input synchronously."""
    try:
        view = get_customer(uow, SYSTEM, customer_id)
    except NotFound:
        return None
    brief = {k: view[k] for k in BRIEF_FIELDS}
    brief["archived_at"] = str(view["archived_at"]) if view["archived_at"] else None
    return brief


def list_purchases(uow, actor: Principal, customer_id: str) -> list[dict]:
    load_customer(uow, actor, customer_id)
    rows = uow.session.execute(select(purchases).where(purchases.c.customer_id == customer_id)
                               .order_by(purchases.c.purchased_at.desc(), purchases.c.id))
    return [{"id": r.id, "amount": r.amount, "currency": r.currency, "amount_base": r.amount_base,
             "purchased_at": utc(r.purchased_at), "external_ref": r.external_ref, "recorded_by": r.recorded_by}
            for r in rows]


def stage_timeline(uow, actor: Principal, customer_id: str) -> list[dict]:
    load_customer(uow, actor, customer_id)
    rows = uow.session.execute(select(stage_history).where(stage_history.c.customer_id == customer_id)
                               .order_by(stage_history.c.changed_at, stage_history.c.id))
    return [{"from_stage": r.from_stage, "to_stage": r.to_stage, "changed_at": utc(r.changed_at),
             "changed_by": r.changed_by} for r in rows]


def customer_history(uow, actor: Principal, customer_id: str) -> dict:
    load_customer(uow, actor, customer_id)
    audit = infrastructure["audit_log"]
    entries = uow.session.execute(select(audit).where(audit.c.entity == "customer", audit.c.entity_id == customer_id)
                                  .order_by(audit.c.id))
    owners = uow.session.execute(select(ownership_history).where(ownership_history.c.customer_id == customer_id)
                                 .order_by(ownership_history.c.id))
    classes = uow.session.execute(select(classification_history)
                                  .where(classification_history.c.customer_id == customer_id)
                                  .order_by(classification_history.c.id))
    return {
        "audit": [{"at": utc(e.at), "actor_id": e.actor_id, "actor_role": e.actor_role, "action": e.action,
                   "changes": e.changes} for e in entries],
        "ownership": [{"transfer_id": o.transfer_id, "from_owner_id": o.from_owner_id, "from_team": o.from_team,
                       "to_owner_id": o.to_owner_id, "to_team": o.to_team, "reason": o.reason,
                       "changed_at": utc(o.changed_at), "changed_by": o.changed_by} for o in owners],
        "classification": [{"attribute": c.attribute, "old_value": c.old_value, "new_value": c.new_value,
                            "reason": c.reason, "as_of": utc(c.as_of)} for c in classes],
        "stages": stage_timeline(uow, actor, customer_id),
    }


# ---------------------------------------------------------------- listing

SORT_COLUMNS = {"created_at": customers.c.created_at, "company": customers.c.company_key,
                "rolling_12m_total": customers.c.rolling_12m_total, "last_purchase_at": customers.c.last_purchase_at}
FILTERS = (("owner_id", "owner_id"), ("team", "team"), ("tier", "tier"), ("lifecycle", "lifecycle"),
           ("stage", "pipeline_stage"), ("industry", "industry"), ("external_id", "external_id"))  # (parameter, column)


def list_customers(uow, actor: Principal, params: dict) -> dict:
    """Keyset pagination on (sort column, id): every page costs the same at any depth."""
    filters = [customers.c[k] == v for k, v in actor.scope().items()]
    for name, column in FILTERS:
        if name in params:
            filters.append(customers.c[column] == params[name])
    if not params.get("include_archived"):
        filters.append(customers.c.archived_at.is_(None))
    if "tag" in params:
        filters.append(select(customer_tags.c.customer_id).where(
            customer_tags.c.customer_id == customers.c.id, customer_tags.c.tag == params["tag"].lower()).exists())
    if "q" in params:
        needle = params["q"].lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        filters.append(customers.c.company_key.like(f"%{needle}%", escape="\\"))
    sort = params.get("sort", "created_at")
    descending = sort.startswith("-")
    column = SORT_COLUMNS[sort.lstrip("-")]
    if column is customers.c.last_purchase_at:
        filters.append(column.is_not(None))  # sorting by last purchase lists customers who bought
    if params.get("cursor"):
        value, last_id = _decode_cursor(params["cursor"], sort)
        # a row-value comparison walks the (column, id) index directly
        position, after = tuple_(column, customers.c.id), tuple_(literal(value), literal(last_id))
        filters.append(position < after if descending else position > after)
    order = (column.desc(), customers.c.id.desc()) if descending else (column.asc(), customers.c.id.asc())
    limit = params.get("limit", 50)
    rows = uow.session.execute(select(customers, column.label("sort_value")).where(*filters)
                               .order_by(*order).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = _encode_cursor(sort, page[-1].sort_value, page[-1].id) if len(rows) > limit else None
    return {"items": [_list_item(r) for r in page], "next_cursor": next_cursor}


def _list_item(row) -> dict:
    return {"id": row.id, "external_id": row.external_id, "company": row.company, "industry": row.industry,
            "owner_id": row.owner_id, "team": row.team, "tier": row.tier, "lifecycle": row.lifecycle, "pipeline_stage": row.pipeline_stage,
            "rolling_12m_total": row.rolling_12m_total, "last_purchase_at": utc(row.last_purchase_at),
            "created_at": utc(row.created_at), "archived": row.archived_at is not None}


def _encode_cursor(sort: str, value, last_id: str) -> str:
    """Opaque to clients: the sort it was made for, the last row's sort value and id."""
    if isinstance(value, datetime):
        value = {"t": utc(value).isoformat()}
    elif isinstance(value, Decimal):
        value = {"d": str(value)}
    return encode_cursor({"s": sort, "v": value, "id": last_id})


def _decode_cursor(cursor: str, sort: str):
    def read(key: dict):
        if key["s"] != sort:
            raise ValueError("cursor was made for another sort")
        value = key["v"]
        if isinstance(value, dict) and "t" in value:
            value = datetime.fromisoformat(value["t"])
        elif isinstance(value, dict) and "d" in value:
            value = Decimal(value["d"])
        if isinstance(value, (dict, list)):
            raise ValueError("not a sort value")
        return value, str(key["id"])
    return decode_cursor(cursor, read)
