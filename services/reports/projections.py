"""Facts from other services that the reports service applies: its one table of consumed events.

A batch is applied in one transaction (``Transactions.apply_batch``). A handler only notes what its
event adds to its customer's book (domain/entries.py) in the batch's ``Context``; ``flush`` then, once
per batch, locks the batch's customers, stores their new entries, reconciles each customer once with
all of them (domain/book.py) and writes the counter deltas of the whole batch added up, one upsert per
counter. A customer's counters are a function of its book, so this ends where applying the events one
by one would. Rep directory entries are written as they come. Events that move no counter
(task.scheduled, .due, .rescheduled, .reassigned) are not consumed at all.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from crm_common.consumer import Consumes
from crm_common.db import EventFailed
from crm_common.events import Event
from services.reports import read_models
from services.reports.counter_table import add_to_counters
from services.reports.domain import book, entries
from services.reports.domain.counters import CounterKey, Number
from services.reports.domain.settings import ReportSettings


@dataclass
class Pending:
    """What one batch adds to one customer's book, and the events it comes from."""
    events: list[Event] = field(default_factory=list)
    changes: list[book.Change] = field(default_factory=list)
    records: list[book.Record] = field(default_factory=list)


@dataclass
class Context:
    now: datetime
    settings: ReportSettings
    books: dict[str, Pending] = field(default_factory=lambda: defaultdict(Pending))  # customer id -> its entries
    amounts: dict[CounterKey, Number] = field(default_factory=lambda: defaultdict(int))  # the batch's deltas
    values: set[tuple[str, str]] = field(default_factory=set)  # (dimension, value) met: teams, reps, industries


def into_book(entries_of: Callable[[entries.Origin, dict], entries.Entries]):
    """The handler of an event about a customer: its entries wait in the context for ``flush``."""
    def handler(uow, event: Event, ctx: Context) -> None:
        changes, records = entries_of(entries.Origin(event.name, event.id, event.time, event.source,
                                                     event.sequence or 0), event.data)
        pending = ctx.books[event.data["customer_id"]]
        pending.events.append(event)
        pending.changes += changes
        pending.records += records
    handler.__name__ = f"into_book_{entries_of.__name__}"
    return handler


def on_rep_entry(uow, event: Event, ctx: Context) -> None:
    read_models.note_rep(uow.session, event.data, event.time)


def flush(uow, ctx: Context) -> None:
    session = uow.session
    customers = sorted(ctx.books)
    if customers:
        new = {c: (ctx.books[c].changes, ctx.books[c].records) for c in customers}
        read_models.lock_customers(session, customers, ctx.now)
        read_models.date_alert_events(session, new)
        read_models.store_entries(session, new)
        timelines = read_models.timelines(session, customers)
        plans = {c: book.recount_for(changes, records) for c, (changes, records) in new.items()}
        # only alert events whose raise is unknown: stored, they wait for it
        stored = read_models.StoredBooks(session, {c: plan for c, plan in plans.items() if plan is not None})
        rewrites = read_models.Rewrites()
        for customer_id in stored.plans:
            pending, timeline = ctx.books[customer_id], timelines[customer_id]
            try:
                outcome = stored.recount(customer_id, timeline, pending.records, ctx.settings.ack_sla)
            except Exception as exc:  # names one event of the customer: the consumer retries it alone
                raise EventFailed(pending.events[0], exc) from exc
            rewrites.add(customer_id, outcome)
            for key, amount in outcome.amounts.items():
                ctx.amounts[key] += amount
            ctx.values |= outcome.values
            if pending.changes:
                rewrites.state(customer_id, timeline)
        rewrites.write(session, ctx.now)
    add_to_counters(session, ctx.amounts)
    read_models.note_values(session, ctx.values)


CONSUMES = Consumes({
    "customer.created": into_book(entries.customer_created),
    "customer.updated": into_book(entries.customer_updated),
    "customer.archived": into_book(entries.customer_archived),
    "customer.tier_changed": into_book(entries.tier_changed),
    "customer.lifecycle_changed": into_book(entries.lifecycle_changed),
    "customer.owner_changed": into_book(entries.owner_changed),
    "customer.stage_changed": into_book(entries.stage_changed),
    "purchase.recorded": into_book(entries.purchase_recorded),
    "health.score_changed": into_book(entries.health_score_changed),
    "interaction.logged": into_book(entries.interaction_logged),
    "task.overdue": into_book(entries.task_settled),
    "task.completed": into_book(entries.task_settled),
    "task.skipped": into_book(entries.task_settled),
    "task.missed": into_book(entries.task_settled),
    "alert.raised": into_book(entries.alert_event),
    "alert.acknowledged": into_book(entries.alert_event),
    "alert.escalated": into_book(entries.alert_event),
    "alert.resolved": into_book(entries.alert_event),
    "rep.registered": on_rep_entry,
    "rep.updated": on_rep_entry,
}, flush=flush, any_order=True)  # the books are dated: a purchase redelivered behind newer events still counts
