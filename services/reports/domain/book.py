"""One customer's book: what the reports service knows about a customer, and the counters it moves.

Events about a customer come from three producers (customers, followups, alerts)
whose streams interleave in any order, and facts are often recorded after
later-dated ones (a backdated purchase, an import with history). So the service
does not fold events into counters blindly as they come; it keeps, per customer,

* the **timeline** of attribute changes (created, updated, tier / lifecycle /
  owner changed, health score, archived), ordered by when they happened - not by
  when they arrived: ``(at, rank, producer, sequence, event id)``, so two changes
  stamped with the same instant (a sweep moving tier and lifecycle at once) fold
  in the order their producer emitted them;
* every **record** of a fact (purchase, interaction, task outcome, stage move,
  alert event) with the **context** it was counted under: the customer's
  dimensions at the fact's time, plus the bit of history a figure needs (is a
  purchase a repeat? when did the prospect last enter first_contact? when was
  the alert raised?). Records of the same instant are ordered the same way
  (a stage entered and left at once, two purchases of one instant).

The counters a customer contributes are a pure function of its book. When new
entries arrive (one event's, or a whole batch's: ``recount_for``) only what is
dated at or after the earliest of them can change, so ``reconcile`` recomputes
the contexts from that time on and emits the difference: the new contribution
minus the old one. An event that arrives in time order (the normal case) only
adds its own deltas; one that arrives late (a change dated before facts already
counted) moves those facts to the slices they belong to. Live processing,
redelivery, any replay order and any batching therefore end with the same
counters.

Distinct counts ("customers that bought in July") need no marker table: a
customer's contribution to a distinct counter is 1 when at least one of its own
items maps to that counter key, and the items that can share a key lie in the
same year (every day, month, quarter and half-year bucket lies within one) or
ISO week (which can straddle two years), which ``reconcile`` reads back to decide.
Custom date ranges are counted exactly from each item's distinct marks
(``record_marks``, ``change_marks``: the customer or alert, the metric and the
day, under the dimensions it was counted with), kept in a table of their own.

Nothing here touches a database; the service loads and stores books.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Callable, Iterable

from .counters import (
    NONE_VALUE, AlertEvent, AlertFact, CounterDelta, CounterKey, CustomerChangeFact, CustomerState, Dims,
    InteractionFact, Number, PurchaseFact, StageChangeFact, TaskEvent, TaskFact, counter_updates,
)

UTC = timezone.utc

# the attributes a timeline folds; "rep" is the owner
ATTRIBUTES = ("team", "rep", "tier", "lifecycle", "industry", "score")
DIM_ATTRIBUTES = ("team", "rep", "tier", "lifecycle", "industry")
EXISTS, ARCHIVED = "exists", "archived"
RANK_CREATED, RANK_CHANGE, RANK_ARCHIVED = 0, 1, 2  # order of changes at the same instant

PURCHASE, INTERACTION, TASK, STAGE, ALERT = "purchase", "interaction", "task", "stage", "alert"
RECORD_KINDS = (PURCHASE, INTERACTION, TASK, STAGE, ALERT)
# records whose deltas include distinct counts (interactions only add)
DISTINCT_KINDS = (PURCHASE, TASK, STAGE, ALERT)

def to_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else to_utc(moment).isoformat()


def from_iso(text: str | None) -> datetime | None:
    return None if text is None else to_utc(datetime.fromisoformat(text))


# (producer, sequence) of the event an item comes from: the producer's own order, which decides
# between items of the same instant (a sequence only orders one producer's events of one customer;
# ("", 0) for events from before producers numbered them, which fall back to the event id)
Position = tuple[str, int]
UNNUMBERED: Position = ("", 0)


@dataclass
class Change:
    """One attribute change on the customer's timeline; ``applied`` is the state pair it was counted as."""
    id: str
    at: datetime
    rank: int
    sets: dict
    applied: dict | None = None
    position: Position = UNNUMBERED

    @property
    def order(self) -> tuple:
        return (self.at, self.rank, *self.position, self.id)


@dataclass
class Record:
    """One fact about the customer; ``applied`` is the context it was counted under (None: not yet)."""
    id: str
    kind: str
    at: datetime | None  # the fact's time: the customer's dims are read, and it is bucketed, there
    entity: str | None   # purchase, interaction, task or alert id
    data: dict
    applied: dict | None = None
    position: Position = UNNUMBERED

    @property
    def order(self) -> tuple:
        """Where the record stands among the customer's records of its kind (dated ones only)."""
        return (self.at, *self.position, self.id)


# ---------------------------------------------------------------- the timeline

class Timeline:
    """The customer's changes folded in time order: the state after each, and at any moment."""

    def __init__(self, changes: Iterable[Change]):
        self.changes = sorted(changes, key=lambda c: c.order)
        self._times = [c.at for c in self.changes]
        self._after: list[dict] = []
        self._counted: list[dict] = []
        attrs: dict = dict.fromkeys(ATTRIBUTES)
        exists = archived = False
        self._created: int | None = None  # index of customer.created on the timeline
        for index, change in enumerate(self.changes):
            if EXISTS in change.sets and self._created is None:
                self._created = index
            before = dict(attrs) if exists and not archived else None
            for key, value in change.sets.items():
                if key == EXISTS:
                    exists = True
                elif key == ARCHIVED:
                    archived = bool(value)
                else:
                    attrs[key] = value
            self._after.append(dict(attrs))
            # a customer is in the stocks from its creation until archived
            self._counted.append({"before": before, "after": dict(attrs) if exists and not archived else None})
        self.current, self.exists, self.archived = attrs, exists, archived

    def counted(self, index: int) -> dict:
        return self._counted[index]

    def attrs_at(self, moment: datetime) -> dict:
        """Attributes after every change dated at or before `moment`; never-set ones are None.

        A fact dated before the customer was created (a customer entered today with its
        purchase history) takes the customer's attributes as created."""
        index = bisect.bisect_right(self._times, moment)
        if self._created is not None and index <= self._created:
            return dict(self._after[self._created])
        return dict(self._after[index - 1]) if index else dict.fromkeys(ATTRIBUTES)


def _state(counted: dict | None) -> CustomerState | None:
    if counted is None:
        return None
    return CustomerState(Dims(**{k: counted.get(k) for k in DIM_ATTRIBUTES}), counted.get("score"))


def change_deltas(customer_id: str, change: Change, counted: dict) -> list[CounterDelta]:
    return counter_updates(CustomerChangeFact(customer_id, change.at, _state(counted["before"]),
                                              _state(counted["after"])))


# ---------------------------------------------------------------- record contexts

@dataclass
class Knowledge:
    """What contexts are computed from, beyond the timeline."""
    timeline: Timeline
    first_purchase: tuple | None = None                       # Record.order of the earliest purchase
    first_contacts: list[tuple] = field(default_factory=list)  # Record.order of each entry into first_contact
    alert_raised: dict[str, datetime] = field(default_factory=dict)
    ack_sla: timedelta = timedelta(hours=48)


def _dims(attrs: dict, **actor) -> dict:
    dims = {k: attrs.get(k) for k in DIM_ATTRIBUTES}
    dims.update(actor)
    return dims


def record_time(record: Record, knowledge: Knowledge) -> datetime | None:
    """Alerts are dated by their raise, which an acknowledgement does not carry."""
    if record.kind == ALERT:
        return knowledge.alert_raised.get(record.entity, record.at)
    return record.at


def context_for(record: Record, knowledge: Knowledge) -> dict | None:
    """The context a record is counted under now; None while it cannot be counted yet."""
    at = record_time(record, knowledge)
    if at is None:
        return None
    attrs = knowledge.timeline.attrs_at(at)
    if record.kind == INTERACTION:
        return {"dims": _dims(attrs, rep=record.data["rep"], team=record.data["team"])}
    if record.kind == TASK:
        return {"dims": _dims(attrs, rep=record.data["assignee"], team=record.data["team"])}
    if record.kind == PURCHASE:
        first = knowledge.first_purchase
        return {"dims": _dims(attrs), "repeat": first is not None and record.order > first}
    if record.kind == STAGE:
        position = bisect.bisect_right(knowledge.first_contacts, record.order)
        started = knowledge.first_contacts[position - 1][0] if position else None
        return {"dims": _dims(attrs), "first_contact_at": iso(started)}
    if record.kind == ALERT:
        # the SLA an alert was first counted with stays with it ("a changed SLA applies from then on")
        sla = (record.applied or {}).get("sla", int(knowledge.ack_sla.total_seconds()))
        return {"dims": _dims(attrs), "raised_at": iso(at), "sla": sla}
    raise ValueError(f"unknown record kind {record.kind}")


def record_deltas(customer_id: str, record: Record, context: dict) -> list[CounterDelta]:
    dims = Dims(**context["dims"])
    data, at = record.data, record.at
    if record.kind == INTERACTION:
        return counter_updates(InteractionFact(record.entity or record.id, customer_id, data["kind"], data["phase"],
                                               at, data.get("satisfaction"), dims))
    if record.kind == TASK:
        return counter_updates(TaskFact(record.entity, customer_id, TaskEvent(data["event"]), at, dims,
                                        bool(data.get("on_time"))))
    if record.kind == PURCHASE:
        # a repeat is counted in its own bucket: "previous first" at or before it says exactly that
        return counter_updates(PurchaseFact(customer_id, record.entity, Decimal(data["amount_base"]), at, dims,
                                            at if context["repeat"] else None))
    if record.kind == STAGE:
        return counter_updates(StageChangeFact(customer_id, data.get("old_stage"), data["new_stage"], at, dims,
                                               from_iso(context.get("first_contact_at"))))
    if record.kind == ALERT:
        return counter_updates(AlertFact(record.entity, customer_id, AlertEvent(data["event"]),
                                         from_iso(data["happened_at"]), from_iso(context["raised_at"]), dims,
                                         data.get("outcome")),
                               ack_sla=timedelta(seconds=context["sla"]))
    raise ValueError(f"unknown record kind {record.kind}")


# ---------------------------------------------------------------- reconcile

@dataclass
class Outcome:
    amounts: dict[CounterKey, Number]  # net counter increments to apply
    changes: list[Change]              # changes counted differently than before (applied updated)
    records: list[Record]              # records counted differently than before (applied / at updated)
    values: set[tuple[str, str]]       # (dimension, value) of every team, rep, industry met


def window_start(moment: datetime) -> datetime:
    """The earliest start of any period bucket holding `moment` (its year or its ISO week)."""
    day = to_utc(moment).date()
    year = date(day.year, 1, 1)
    week = day - timedelta(days=day.weekday())
    return datetime.combine(min(year, week), time(), tzinfo=UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def undated_alerts(records: Iterable[Record]) -> set[str]:
    """Alerts with an event that does not say when the alert was raised (an acknowledgement, an escalation)."""
    return {r.entity for r in records if r.kind == ALERT and r.at is None}


def date_by_raise(records: Iterable[Record], raised: dict[str, datetime]) -> None:
    """Date the alert records that carry no raise by their alert's raise, where it is known."""
    for record in records:
        if record.kind == ALERT and record.at is None:
            record.at = raised.get(record.entity)


def raises(records: Iterable[Record]) -> dict[str, datetime]:
    """alert id -> when it was raised, from the alert records that say so."""
    return {r.entity: r.at for r in records if r.kind == ALERT and r.at is not None}


@dataclass(frozen=True)
class Recount:
    """What new items of one customer make recount (``reconcile``): its items dated at or after
    `since` (of `kinds` only, when given), the new records, and the waiting events of `alerts`."""
    since: datetime
    kinds: frozenset[str] | None
    new_records: frozenset[str]
    alerts: frozenset[str]


def recount_for(changes: list[Change], records: list[Record]) -> Recount | None:
    """From when new items can change what is counted: their earliest time, or the beginning when the
    customer's creation arrives (facts dated before it take its attributes). A timeline change can
    move every later fact; a fact only later facts of its own kind (each distinct metric belongs to
    one kind). None: nothing to count yet (alert events whose raise is unknown wait for it)."""
    if any(EXISTS in change.sets for change in changes):
        since = EPOCH
    else:
        times = [item.at for item in (*changes, *records) if item.at is not None]
        if not times:
            return None
        since = min(times)
    kinds = None if changes else frozenset(r.kind for r in records) & frozenset(DISTINCT_KINDS)
    return Recount(since, kinds, frozenset(r.id for r in records),
                   frozenset(r.entity for r in records if r.kind == ALERT))


def reconcile(customer_id: str, knowledge: Knowledge, since: datetime, records: list[Record],
              neighbours: Callable[[datetime, datetime], list[Record]]) -> Outcome:
    """Recount everything dated at or after `since`.

    `records` are the customer's records dated at or after `since` - of every kind
    when the event changed the timeline (it may move any later fact), else of the
    kinds just added (a purchase can make a later one a repeat, a stage entry
    change a later win's cycle, a task share a distinct count with a later one;
    each distinct metric belongs to one kind) - plus the ones just added and the
    not-yet-dated ones of an alert whose raise just became known.
    `neighbours(start, end)` returns the customer's other records dated in
    [start, end) of the kinds in DISTINCT_KINDS, with their applied contexts.
    The caller persists the returned changes, records and amounts together.
    """
    amounts: dict[CounterKey, Number] = defaultdict(int)
    old_distinct: dict[tuple[CounterKey, str], int] = defaultdict(int)
    new_distinct: dict[tuple[CounterKey, str], int] = defaultdict(int)
    weight: dict[tuple[CounterKey, str], Number] = {}
    stable: list[Callable[[], list[CounterDelta]]] = []  # recounted the same: needed only for distinct counts
    values: set[tuple[str, str]] = set()

    def collect(deltas: list[CounterDelta], sign: int) -> None:
        for delta in deltas:
            if delta.distinct_of is None:
                amounts[delta.key] += sign * delta.amount
            else:
                pair = (delta.key, delta.distinct_of)
                (new_distinct if sign > 0 else old_distinct)[pair] += 1
                weight[pair] = delta.amount

    def note(dims: dict | None) -> None:
        if dims:
            for dimension in ("team", "rep", "industry"):
                value = dims.get(dimension)
                values.add((dimension, NONE_VALUE if value is None else value))

    timeline = knowledge.timeline
    changed_changes: list[Change] = []
    for index, change in enumerate(timeline.changes):
        if change.at < since:
            continue
        counted = timeline.counted(index)
        note(counted["after"])
        if counted == change.applied:
            stable.append(lambda c=change, s=counted: change_deltas(customer_id, c, s))
            continue
        if change.applied is not None:
            collect(change_deltas(customer_id, change, change.applied), -1)
        collect(change_deltas(customer_id, change, counted), +1)
        change.applied = counted
        changed_changes.append(change)

    changed_records: list[Record] = []
    for record in records:
        at = record_time(record, knowledge)
        context = context_for(record, knowledge)
        if context is not None:
            note(context["dims"])
        if context == record.applied and at == record.at:
            if context is not None and record.kind in DISTINCT_KINDS:
                stable.append(lambda r=record, c=context: record_deltas(customer_id, r, c))
            continue
        if record.applied is not None:
            collect(record_deltas(customer_id, record, record.applied), -1)
        record.at = at
        if context is not None:
            collect(record_deltas(customer_id, record, context), +1)
        record.applied = context
        changed_records.append(record)

    touched = set(old_distinct) | set(new_distinct)
    if touched:
        # how often the customer's other items count each touched (key, entity): they decide
        # whether the entity was, and still is, counted once under that key
        base: dict[tuple[CounterKey, str], int] = defaultdict(int)

        def count(deltas: list[CounterDelta]) -> None:
            for delta in deltas:
                if delta.distinct_of is not None and (delta.key, delta.distinct_of) in touched:
                    base[(delta.key, delta.distinct_of)] += 1

        start = datetime.combine(min(key.period_start for key, _ in touched), time(), tzinfo=UTC)
        for change in timeline.changes:
            if start <= change.at < since and change.applied is not None:
                count(change_deltas(customer_id, change, change.applied))
        for provide in stable:
            count(provide())
        if start < since:
            for record in neighbours(start, since):
                if record.applied is not None:
                    count(record_deltas(customer_id, record, record.applied))
        for pair in touched:
            was = base[pair] + old_distinct[pair] > 0
            now = base[pair] + new_distinct[pair] > 0
            if was != now:
                amounts[pair[0]] += weight[pair] if now else -weight[pair]
    return Outcome({k: v for k, v in amounts.items() if v}, changed_changes, changed_records, values)
