"""This service's read model of customers: rows as attribute namespaces, full snapshots merged in.

Built from the customers service's events (projections.py) and, for a customer no event has brought
yet, from one RPC answer (``visible_customer``). Which fact wins is the domain's rule (domain/facts.py).
"""
from __future__ import annotations

from datetime import date, datetime
from types import SimpleNamespace

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import NotFound
from services.followups import cadence, domain, task_store
from services.followups.domain.cadence import CadencePolicy
from services.followups.models import customer_view, tasks


def customer_row(uow, customer_id: str, lock: bool = True) -> SimpleNamespace | None:
    """The row as a namespace, times aware (kept in step by CustomerRows.set without re-reading)."""
    query = select(customer_view).where(customer_view.c.customer_id == customer_id)
    if lock:
        query = query.with_for_update()
    row = uow.session.execute(query).first()
    return None if row is None else as_namespace(row)


def as_namespace(row) -> SimpleNamespace:
    """A customer_view row as a namespace whose times are aware (SQLite gives them back naive)."""
    return SimpleNamespace(**{k: utc(v) if isinstance(v, datetime) else v for k, v in row._mapping.items()})


class CustomerRows:
    """The customer rows a transaction works on, locked and read once each (``load`` takes many in one
    query). Changes go to the row in memory; ``deferred`` keeps them until ``write`` (one insert of the
    new rows, one update of the changed), else each is written at once."""

    def __init__(self, now: datetime, deferred: bool = False):
        self.now, self.deferred = now, deferred
        self.rows: dict[str, SimpleNamespace] = {}
        self.absent: set[str] = set()  # looked for, not there
        self.new: set[str] = set()
        self.changed: set[str] = set()
        self.columns: set[str] = set()  # the columns changed, written for every changed row

    def load(self, uow, customer_ids) -> None:
        wanted = sorted(set(customer_ids) - set(self.rows) - self.absent)
        self.absent |= set(wanted)
        for start in range(0, len(wanted), 500):  # in id order, so two batches lock alike
            for row in uow.session.execute(select(customer_view).where(
                    customer_view.c.customer_id.in_(wanted[start:start + 500]))
                    .order_by(customer_view.c.customer_id).with_for_update()):
                self.rows[row.customer_id] = as_namespace(row)
                self.absent.discard(row.customer_id)

    def get(self, uow, customer_id: str) -> SimpleNamespace | None:
        if customer_id not in self.rows:
            self.load(uow, [customer_id])
        return self.rows.get(customer_id)

    def ensure(self, uow, customer_id: str, owner_id=None, team=None) -> SimpleNamespace:
        """The customer's row; a stub when a later fact arrived before customer.created."""
        row = self.get(uow, customer_id)
        if row is None:
            row = SimpleNamespace(**{column.name: None for column in customer_view.columns})
            row.__dict__.update(customer_id=customer_id, owner_id=owner_id, team=team, important_dates=[],
                                archived=False, has_purchased=False, updated_at=self.now)
            self.rows[customer_id] = row
            self.new.add(customer_id)
            if not self.deferred:
                self.write(uow)
                row = self.rows[customer_id]
        elif row.owner_id is None and row.owner_as_of is None and owner_id is not None:
            row = self.set(uow, row, {"owner_id": owner_id, "team": team})
        return row

    def set(self, uow, customer: SimpleNamespace, values: dict) -> SimpleNamespace:
        """``values`` on the customer's row (and on the namespace given)."""
        if values:
            row = self.rows.setdefault(customer.customer_id, customer)
            for key, value in {**values, "updated_at": self.now}.items():
                setattr(row, key, utc(value) if isinstance(value, datetime) else value)
                setattr(customer, key, getattr(row, key))
            self.changed.add(customer.customer_id)
            self.columns |= set(values) | {"updated_at"}
            if not self.deferred:
                self.write(uow)
        return customer

    def write(self, uow) -> None:
        new, changed = sorted(self.new), sorted(self.changed - self.new)
        if self.deferred and new:  # a row inserted meanwhile by a request fails the batch, which is retried
            uow.session.execute(insert(customer_view), [vars(self.rows[c]) for c in new])
        for customer_id in [] if self.deferred else new:
            try:
                # a request and an event may both see the customer first: the loser re-reads the winner's row
                with uow.session.begin_nested():
                    uow.session.execute(insert(customer_view).values(**vars(self.rows[customer_id])))
            except IntegrityError:
                del self.rows[customer_id]
                self.absent.discard(customer_id)
                self.get(uow, customer_id)
        if changed:
            uow.session.execute(update(customer_view).where(customer_view.c.customer_id == bindparam("row_id")),
                                [{"row_id": customer_id, **{column: getattr(self.rows[customer_id], column)
                                                            for column in sorted(self.columns)}}
                                 for customer_id in changed])
        self.new, self.changed, self.columns = set(), set(), set()


def set_customer(uow, customer: SimpleNamespace, values: dict, now: datetime) -> SimpleNamespace:
    """Write ``values`` to the customer's row at once and return the namespace updated alike."""
    return CustomerRows(now).set(uow, customer, values)


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
                   in_stream_order: bool = False, rows: CustomerRows | None = None) -> None:
    """customer.created / customer.updated (or the RPC answer): the full record as of ``at``."""
    rows = rows or CustomerRows(now)
    row = rows.ensure(uow, data["customer_id"])
    snapshot = {**data, "important_dates": dates_json(data.get("important_dates")),
                "created_at": task_store.as_utc(data.get("created_at"))}
    row = rows.set(uow, row, domain.snapshot_changes(row, snapshot, at, in_stream_order=in_stream_order))
    if data.get("archived") and not row.archived:
        archive_customer(uow, row.customer_id, now, rows=rows)
        return
    cadence.sync_cadence(uow, row, now, policy)


def archive_customer(uow, customer_id: str, now: datetime, owner_id=None, team=None,
                     rows: CustomerRows | None = None) -> None:
    """An archived customer leaves cadences: every open task is skipped with the reason."""
    rows = rows or CustomerRows(now)
    rows.set(uow, rows.ensure(uow, customer_id, owner_id, team), {"archived": True})
    open_tasks = uow.session.execute(select(tasks).where(tasks.c.customer_id == customer_id,
                                                         tasks.c.status == "open").with_for_update()).all()
    for task in open_tasks:
        task_store.skip(uow, dict(task._mapping), "customer archived", now)


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
