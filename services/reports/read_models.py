"""The read models projections write, in the database: customers' books, the rep directory, the
dimension values met. Every function works on a whole batch's customers at once where it can
(one statement per table), so a batch costs a few queries plus those of each customer's recount.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Mapping

from sqlalchemy import and_, bindparam, false, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from crm_common.db import utc
from services.reports.domain import book
from services.reports.models import customer_changes, customer_records, customer_state, dimension_values, rep_directory

CHUNK = 500  # ids per IN (...) list

# customer id -> (its new changes, its new records): what a batch adds to each book
NewEntries = Mapping[str, tuple[list[book.Change], list[book.Record]]]


def _chunks(items: list, size: int = CHUNK):
    for offset in range(0, len(items), size):
        yield items[offset:offset + size]


def lock_customers(session, customers: list[str], now: datetime) -> None:
    """Each customer's row is its book's lock (created on its first event): a customer's batches are
    applied one after the other, by whichever replica, so each sees the book complete. Rows are
    locked in key order, so two batches sharing customers cannot deadlock."""
    found = _lock(session, customers)
    missing = [c for c in customers if c not in found]
    if missing:
        insert_missing(session, customer_state, [{"customer_id": c, "known": False, "archived": False,
                                                  "first_seen_at": now, "updated_at": now} for c in missing],
                       ["customer_id"])
        _lock(session, missing)  # those another transaction created meanwhile are locked too


def _lock(session, customers: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(sorted(customers)):
        found.update(session.execute(select(customer_state.c.customer_id).where(
            customer_state.c.customer_id.in_(chunk)).order_by(customer_state.c.customer_id).with_for_update())
            .scalars())
    return found


def date_alert_events(session, new: NewEntries) -> None:
    """Alert events that do not carry the raise take it from the batch, else from the book."""
    waiting = []
    for customer_id, (_, records) in new.items():
        book.date_by_raise(records, book.raises(records))
        if book.undated_alerts(records):
            waiting.append(customer_id)
    for chunk in _chunks(sorted(waiting)):
        alerts = sorted(set().union(*(book.undated_alerts(new[c][1]) for c in chunk)))
        raised: dict[str, dict[str, datetime]] = defaultdict(dict)
        for row in session.execute(select(customer_records.c.customer_id, customer_records.c.entity_id,
                                          customer_records.c.at).where(
                customer_records.c.customer_id.in_(chunk), customer_records.c.kind == book.ALERT,
                customer_records.c.entity_id.in_(alerts), customer_records.c.at.is_not(None))):
            raised[row.customer_id][row.entity_id] = utc(row.at)
        for customer_id in chunk:
            book.date_by_raise(new[customer_id][1], raised[customer_id])


def store_entries(session, new: NewEntries) -> None:
    changes = [{"event_id": c.id, "customer_id": customer_id, "at": c.at, "rank": c.rank, "sets": c.sets,
                "applied": None, "source": c.position[0], "sequence": c.position[1]}
               for customer_id, (entries, _) in new.items() for c in entries]
    records = [{"record_id": r.id, "customer_id": customer_id, "kind": r.kind, "at": r.at, "entity_id": r.entity,
                "data": r.data, "applied": None, "source": r.position[0], "sequence": r.position[1]}
               for customer_id, (_, entries) in new.items() for r in entries]
    if changes:
        session.execute(insert(customer_changes), changes)
    if records:
        session.execute(insert(customer_records), records)


def timelines(session, customers: list[str]) -> dict[str, book.Timeline]:
    """The customers' timelines, new changes included, in one query per chunk of customers."""
    changes: dict[str, list[book.Change]] = defaultdict(list)
    for chunk in _chunks(customers):
        for row in session.execute(select(customer_changes).where(customer_changes.c.customer_id.in_(chunk))):
            changes[row.customer_id].append(_change(row))
    return {customer_id: book.Timeline(changes[customer_id]) for customer_id in customers}


def recount(session, customer_id: str, timeline: book.Timeline, changes: list[book.Change],
            records: list[book.Record], ack_sla: timedelta) -> book.Outcome | None:
    """Reconcile one customer once with all of a batch's new entries (already stored); None when they
    cannot be counted yet (alert events waiting for their alert's raise)."""
    plan = book.recount_for(changes, records)
    if plan is None:
        return None
    if plan.kinds == frozenset() and not plan.alerts:
        recounted = list(records)  # facts that only add (interactions): no other record can change
    else:
        recounted = _records_from(session, customer_id, plan)
    knowledge = book.Knowledge(timeline, ack_sla=ack_sla)
    present = {r.kind for r in recounted}
    of_customer = customer_records.c.customer_id == customer_id
    if book.PURCHASE in present:
        first = session.execute(select(customer_records).where(of_customer, customer_records.c.kind == book.PURCHASE)
                                .order_by(*_record_order()).limit(1)).first()
        knowledge.first_purchase = _record(first).order if first else None
    if book.STAGE in present:
        stages = [_record(r) for r in session.execute(select(customer_records).where(
            of_customer, customer_records.c.kind == book.STAGE))]
        knowledge.first_contacts = sorted(s.order for s in stages if s.data.get("new_stage") == "first_contact")
    for record in recounted:
        if record.kind == book.ALERT:
            raised = record.at or book.from_iso(record.data.get("raised_at"))
            if raised is not None:
                knowledge.alert_raised[record.entity] = raised

    def neighbours(start: datetime, end: datetime) -> list[book.Record]:
        return [_record(r) for r in session.execute(select(customer_records).where(
            of_customer, customer_records.c.kind.in_(book.DISTINCT_KINDS),
            customer_records.c.at >= start, customer_records.c.at < end))]

    return book.reconcile(customer_id, knowledge, plan.since, recounted, neighbours)


def _records_from(session, customer_id: str, plan: book.Recount) -> list[book.Record]:
    condition = customer_records.c.at >= plan.since
    if plan.kinds is not None:
        condition = and_(condition, customer_records.c.kind.in_(sorted(plan.kinds))) if plan.kinds else false()
    condition = or_(condition, customer_records.c.record_id.in_(sorted(plan.new_records)))
    if plan.alerts:  # events that waited for their alert's raise
        condition = or_(condition, and_(customer_records.c.kind == book.ALERT, customer_records.c.at.is_(None),
                                        customer_records.c.entity_id.in_(sorted(plan.alerts))))
    return [_record(r) for r in session.execute(
        select(customer_records).where(customer_records.c.customer_id == customer_id, condition))]


@dataclass
class Rewrites:
    """Rows the recounts of a batch rewrite, written together at the end (one statement per table)."""
    changes: list[dict] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    states: list[dict] = field(default_factory=list)

    def add(self, outcome: book.Outcome) -> None:
        self.changes += [{"b_id": c.id, "b_applied": c.applied} for c in outcome.changes]
        self.records += [{"b_id": r.id, "b_applied": r.applied, "b_at": r.at} for r in outcome.records]

    def state(self, customer_id: str, timeline: book.Timeline) -> None:
        """The customer's current attributes, for operators (reports read counters only)."""
        current = timeline.current
        self.states.append({"b_id": customer_id, "b_known": timeline.exists, "b_archived": timeline.archived,
                            **{f"b_{k}": current[k] for k in ("team", "rep", "tier", "lifecycle", "industry")},
                            "b_score": current["score"]})

    def write(self, session, now: datetime) -> None:
        if self.changes:
            session.execute(update(customer_changes).where(customer_changes.c.event_id == bindparam("b_id"))
                            .values(applied=bindparam("b_applied")), self.changes)
        if self.records:
            session.execute(update(customer_records).where(customer_records.c.record_id == bindparam("b_id"))
                            .values(applied=bindparam("b_applied"), at=bindparam("b_at")), self.records)
        if self.states:
            session.execute(update(customer_state).where(customer_state.c.customer_id == bindparam("b_id")).values(
                known=bindparam("b_known"), archived=bindparam("b_archived"), team=bindparam("b_team"),
                owner_id=bindparam("b_rep"), tier=bindparam("b_tier"), lifecycle=bindparam("b_lifecycle"),
                industry=bindparam("b_industry"), health_score=bindparam("b_score"), updated_at=now), self.states)


def note_rep(session, data: dict, at: datetime) -> None:
    """The directory keeps the latest entry of each rep, whatever the order entries arrive in."""
    row = session.execute(select(rep_directory.c.updated_at).where(rep_directory.c.rep_id == data["rep_id"])
                          .with_for_update()).first()
    values = {"name": data.get("name"), "team": data.get("team"), "role": data.get("role"),
              "active": bool(data.get("active", True)), "updated_at": at}
    if row is None:
        insert_missing(session, rep_directory, [{"rep_id": data["rep_id"], **values}], ["rep_id"])
    elif utc(row.updated_at) <= at:
        session.execute(update(rep_directory).where(rep_directory.c.rep_id == data["rep_id"]).values(**values))


def note_values(session, values: Iterable[tuple[str, str]]) -> None:
    """Every team, rep and industry met, for the breakdowns that list them (a batch meets few new ones)."""
    wanted = {(dimension, value[:100]) for dimension, value in values}
    if not wanted:
        return
    known = set(session.execute(select(dimension_values.c.dimension, dimension_values.c.value).where(
        dimension_values.c.value.in_(sorted({value for _, value in wanted})))).tuples())
    insert_missing(session, dimension_values, [{"dimension": dimension, "value": value}
                                               for dimension, value in sorted(wanted - known)], ["dimension", "value"])


def _change(row) -> book.Change:
    return book.Change(row.event_id, utc(row.at), row.rank, row.sets, row.applied,
                       (row.source or "", row.sequence or 0))


def _record(row) -> book.Record:
    return book.Record(row.record_id, row.kind, utc(row.at), row.entity_id, row.data, row.applied,
                       (row.source or "", row.sequence or 0))


def _record_order(table=customer_records) -> tuple:
    """Record.order in SQL (an unnumbered record sorts as ("", 0), as in Python)."""
    return (table.c.at, func.coalesce(table.c.source, ""), func.coalesce(table.c.sequence, 0), table.c.record_id)


def insert_missing(session, table, rows: list[dict], keys: list[str]) -> None:
    """INSERT rows the caller found missing; should another transaction have inserted some meanwhile,
    skip those (ON CONFLICT DO NOTHING). A plain INSERT first: SQLAlchemy caches its compiled form,
    not that of ON CONFLICT, which costs a compilation per statement."""
    if not rows:
        return
    try:
        with session.begin_nested():
            session.execute(insert(table), rows)
    except IntegrityError:
        module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(module.insert(table).on_conflict_do_nothing(index_elements=keys), rows)
