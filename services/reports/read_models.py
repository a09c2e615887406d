"""The read models projections write, in the database: customers' books, the rep directory, the
dimension values met. Every function works on a whole batch's customers at once where it can
(one statement per table); the recounts read what they need for all the batch's customers at once.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Mapping

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from crm_common.db import utc
from services.reports.domain import book, ranges
from services.reports.models import (
    customer_changes, customer_records, customer_state, dimension_values, distinct_marks, rep_directory,
)

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


class StoredBooks:
    """What the recounts of a batch read from the customers' stored books, loaded for all of them at
    once (a few queries per chunk of customers, not a few per customer): each customer's records dated
    from the start of the buckets around its plan's ``since`` on (what it recounts, and the neighbours
    its distinct counts look at), the undated events of its alerts, its first purchase and its
    entries into first_contact. A customer whose new entries only add (interactions) reads nothing."""

    def __init__(self, session, plans: Mapping[str, book.Recount]):
        self.session = session
        self.plans = plans
        self.low = {c: plan.since if plan.since == book.EPOCH else book.window_start(plan.since)
                    for c, plan in plans.items() if plan.kinds != frozenset() or plan.alerts}
        self.dated: dict[str, list[book.Record]] = defaultdict(list)
        self.recounted: dict[str, list[book.Record]] = defaultdict(list)
        self.first_purchase: dict[str, tuple] = {}
        self.first_contacts: dict[str, list[tuple]] = defaultdict(list)
        self._load_dated()
        self._load_undated()
        for customer_id in self.low:
            plan = self.plans[customer_id]
            self.recounted[customer_id] += [
                r for r in self.dated[customer_id]
                if r.id in plan.new_records or (r.at >= plan.since and (plan.kinds is None or r.kind in plan.kinds))]
        present = {kind: sorted(c for c, rs in self.recounted.items() if any(r.kind == kind for r in rs))
                   for kind in (book.PURCHASE, book.STAGE)}
        self._load_first_purchases(present[book.PURCHASE])
        self._load_first_contacts(present[book.STAGE])

    def _select(self, *conditions):
        return self.session.execute(select(customer_records).where(*conditions))

    def _load_dated(self) -> None:
        whole = sorted(c for c, low in self.low.items() if low == book.EPOCH)  # creation arrived: all of it
        since = sorted((c for c, low in self.low.items() if low != book.EPOCH), key=lambda c: (self.low[c], c))
        for chunk in _chunks(whole):
            for row in self._select(customer_records.c.customer_id.in_(chunk), customer_records.c.at.is_not(None)):
                self.dated[row.customer_id].append(_record(row))
        for chunk in _chunks(since):  # ordered by low: each chunk reads from its earliest customer's low
            for row in self._select(customer_records.c.customer_id.in_(chunk),
                                    customer_records.c.at >= self.low[chunk[0]]):
                record = _record(row)
                if record.at >= self.low[row.customer_id]:
                    self.dated[row.customer_id].append(record)

    def _load_undated(self) -> None:
        """Events of alerts whose raise just became known (or arrived without one)."""
        waiting = sorted(c for c in self.low if self.plans[c].alerts)
        for chunk in _chunks(waiting):
            for row in self._select(customer_records.c.customer_id.in_(chunk),
                                    customer_records.c.kind == book.ALERT, customer_records.c.at.is_(None)):
                if row.entity_id in self.plans[row.customer_id].alerts:
                    self.recounted[row.customer_id].append(_record(row))

    def _load_first_purchases(self, customers: list[str]) -> None:
        for chunk in _chunks(customers):
            ranked = select(customer_records, func.row_number().over(
                partition_by=customer_records.c.customer_id, order_by=_record_order()).label("rank")).where(
                customer_records.c.customer_id.in_(chunk), customer_records.c.kind == book.PURCHASE).subquery()
            for row in self.session.execute(select(ranked).where(ranked.c.rank == 1)):
                self.first_purchase[row.customer_id] = _record(row).order

    def _load_first_contacts(self, customers: list[str]) -> None:
        for chunk in _chunks(customers):
            for row in self._select(customer_records.c.customer_id.in_(chunk), customer_records.c.kind == book.STAGE):
                stage = _record(row)
                if stage.data.get("new_stage") == "first_contact":
                    self.first_contacts[row.customer_id].append(stage.order)

    def neighbours(self, customer_id: str, start: datetime, end: datetime) -> list[book.Record]:
        """The customer's records of the distinct kinds dated in [start, end)."""
        if customer_id in self.low and start >= self.low[customer_id]:
            return [r for r in self.dated[customer_id] if r.kind in book.DISTINCT_KINDS and start <= r.at < end]
        return [_record(r) for r in self._select(  # not loaded: read them (reconcile asks from window_start on)
            customer_records.c.customer_id == customer_id, customer_records.c.kind.in_(book.DISTINCT_KINDS),
            customer_records.c.at >= start, customer_records.c.at < end)]

    def recount(self, customer_id: str, timeline: book.Timeline, records: list[book.Record],
                ack_sla: timedelta) -> book.Outcome:
        """Reconcile one customer once with all of a batch's new entries (already stored)."""
        plan = self.plans[customer_id]
        recounted = self.recounted[customer_id] if customer_id in self.low else list(records)
        knowledge = book.Knowledge(timeline, ack_sla=ack_sla, first_purchase=self.first_purchase.get(customer_id),
                                   first_contacts=sorted(self.first_contacts.get(customer_id, [])))
        for record in recounted:
            if record.kind == book.ALERT:
                raised = record.at or book.from_iso(record.data.get("raised_at"))
                if raised is not None:
                    knowledge.alert_raised[record.entity] = raised
        return book.reconcile(customer_id, knowledge, plan.since, recounted,
                              lambda start, end: self.neighbours(customer_id, start, end))


@dataclass
class Rewrites:
    """Rows the recounts of a batch rewrite, written together at the end (one statement per table)."""
    changes: list[dict] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    states: list[dict] = field(default_factory=list)
    remarked: list[str] = field(default_factory=list)  # items whose distinct marks are rewritten
    marks: list[dict] = field(default_factory=list)

    def add(self, customer_id: str, outcome: book.Outcome) -> None:
        self.changes += [{"b_id": c.id, "b_applied": c.applied} for c in outcome.changes]
        self.records += [{"b_id": r.id, "b_applied": r.applied, "b_at": r.at} for r in outcome.records]
        # an item counted differently now has other distinct marks (or none): they follow its context
        for change in outcome.changes:
            self._mark(change.id, ranges.change_marks(customer_id, change, change.applied))
        for record in outcome.records:
            if record.kind in book.DISTINCT_KINDS:
                self._mark(record.id, ranges.record_marks(customer_id, record, record.applied))

    def _mark(self, item_id: str, marks: list[ranges.Mark]) -> None:
        self.remarked.append(item_id)
        self.marks += [{"item_id": item_id, "metric": m.metric, "entity": m.entity, "day": m.day, **m.dims}
                       for m in marks]

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
        for chunk in _chunks(sorted(set(self.remarked))):
            session.execute(delete(distinct_marks).where(distinct_marks.c.item_id.in_(chunk)))
        if self.marks:
            session.execute(insert(distinct_marks), self.marks)
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
              "active": bool(data.get("active", True)), "updated_at": at,
              "tokens_valid_after": data.get("tokens_valid_after")}
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
