"""This service's read model of customers: rows as attribute namespaces, full snapshots merged in.

Built from the customers service's events (projections.py) and, for a customer no event has brought
yet, from one RPC answer (``visible_customer``). Which fact wins is the domain's rule (domain/facts.py).
"""
from __future__ import annotations

from datetime import date, datetime
from types import SimpleNamespace

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import NotFound
from services.followups import cadence, domain, task_store
from services.followups.domain.cadence import CadencePolicy
from services.followups.models import customer_view, tasks


def customer_row(uow, customer_id: str, lock: bool = True) -> SimpleNamespace | None:
    """The row as a namespace, times aware (kept in step by set_customer without re-reading)."""
    query = select(customer_view).where(customer_view.c.customer_id == customer_id)
    if lock:
        query = query.with_for_update()
    row = uow.session.execute(query).first()
    return None if row is None else as_namespace(row)


def as_namespace(row) -> SimpleNamespace:
    """A customer_view row as a namespace whose times are aware (SQLite gives them back naive)."""
    return SimpleNamespace(**{k: utc(v) if isinstance(v, datetime) else v for k, v in row._mapping.items()})


def ensure_customer(uow, customer_id: str, now: datetime, owner_id=None, team=None) -> SimpleNamespace:
    """The customer's row, locked; a stub when a later fact arrived before customer.created."""
    row = customer_row(uow, customer_id)
    if row is None:
        try:
            # a request and an event may both see the customer first: the loser re-reads the winner's row
            with uow.session.begin_nested():
                uow.session.execute(insert(customer_view).values(
                    customer_id=customer_id, owner_id=owner_id, team=team, important_dates=[], archived=False,
                    has_purchased=False, updated_at=now))
        except IntegrityError:
            pass
        row = customer_row(uow, customer_id)
    elif row.owner_id is None and row.owner_as_of is None and owner_id is not None:
        row = set_customer(uow, row, {"owner_id": owner_id, "team": team}, now)
    return row


def set_customer(uow, customer: SimpleNamespace, values: dict, now: datetime) -> SimpleNamespace:
    """Write ``values`` to the customer's row and return the namespace updated alike."""
    if values:
        uow.session.execute(update(customer_view).where(customer_view.c.customer_id == customer.customer_id)
                            .values(**values, updated_at=now))
        for key, value in values.items():
            setattr(customer, key, utc(value) if isinstance(value, datetime) else value)
    return customer


def dates_json(items) -> list[dict]:
    out = []
    for item in items or []:
        day = item["date"]
        if isinstance(day, dict):  # kombu's json form of a date
            day = day.get("__value__")
        out.append({"kind": item["kind"], "date": day.isoformat() if isinstance(day, date) else str(day)[:10],
                    "label": item.get("label") or ""})
    return out


def apply_snapshot(uow, data: dict, at: datetime, now: datetime, policy: CadencePolicy, *,
                   in_stream_order: bool = False) -> None:
    """customer.created / customer.updated (or the RPC answer): the full record as of ``at``."""
    row = ensure_customer(uow, data["customer_id"], now)
    snapshot = {**data, "important_dates": dates_json(data.get("important_dates")),
                "created_at": task_store.as_utc(data.get("created_at"))}
    row = set_customer(uow, row, domain.snapshot_changes(row, snapshot, at, in_stream_order=in_stream_order), now)
    if data.get("archived") and not row.archived:
        archive_customer(uow, row.customer_id, now)
        return
    cadence.sync_cadence(uow, row, now, policy)


def archive_customer(uow, customer_id: str, now: datetime, owner_id=None, team=None) -> None:
    """An archived customer leaves cadences: every open task is skipped with the reason."""
    set_customer(uow, ensure_customer(uow, customer_id, now, owner_id, team), {"archived": True}, now)
    rows = uow.session.execute(select(tasks).where(tasks.c.customer_id == customer_id, tasks.c.status == "open")
                               .with_for_update()).all()
    for row in rows:
        task_store.skip(uow, dict(row._mapping), "customer archived", now)


def brief_to_snapshot(brief: dict) -> dict:
    return {"customer_id": brief["id"], "company": brief.get("company"), "owner_id": brief.get("owner_id"),
            "team": brief.get("team"), "tier": brief.get("tier"), "lifecycle": brief.get("lifecycle"),
            "pipeline_stage": brief.get("pipeline_stage"), "important_dates": brief.get("important_dates") or [],
            "archived": bool(brief.get("archived_at"))}


def visible_customer(uow, actor: Principal, customer_id: str, now: datetime, fetch_brief,
                     policy: CadencePolicy) -> SimpleNamespace:
    """The row (locked) of a customer the caller may see, or 404 naming customer_id.

    A customer whose customer.created has not reached us yet is asked of the customers service
    (``fetch_brief``) once; its answer, dated now, stands in until the customer's events, applied in
    their order, take over (domain/facts.py).
    """
    row = customer_row(uow, customer_id)
    if (row is None or row.snapshot_at is None) and fetch_brief is not None:
        brief = fetch_brief(customer_id)
        if brief:
            apply_snapshot(uow, brief_to_snapshot(brief), now, now, policy)
            row = customer_row(uow, customer_id)
    if row is None or not actor.can_see(row.owner_id, row.team):
        raise NotFound(f"customer {customer_id} not found", field="customer_id")
    return row
