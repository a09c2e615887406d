"""Facts from other services that the customers service applies: its one table of consumed events.

The handlers only note what each event changes; ``apply_changes`` (the batch's flush) then loads
every customer the batch touches at once, replays its changes in order and writes each row once.
Replaying in order, one classification per change, keeps what a batch emits (lifecycle moves and
their history) the same as one event at a time would, with a few queries per batch instead of
several per event.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, select, update

from crm_common.consumer import Consumes
from crm_common.db import utc
from services.customers import classifier, domain
from services.customers.models import customers


@dataclass(frozen=True)
class Change:
    """One event's effect on a customer: a later interaction, or the at-risk flag set or cleared."""
    reason: str
    interaction_at: datetime | None = None
    flagged_at_risk: bool | None = None

    def values(self, customer: dict) -> dict:
        """The columns it changes on the customer as it stands now (nothing if already so)."""
        if self.interaction_at is not None:
            if domain.refreshes_recency(utc(customer["last_interaction_at"]), self.interaction_at):
                return {"last_interaction_at": self.interaction_at}
            return {}
        if self.flagged_at_risk and customer["last_purchase_at"] is None:
            return {}  # a prospect is never flagged, so its first purchase makes it new, not at_risk
        if self.flagged_at_risk is not None and customer["flagged_at_risk"] != self.flagged_at_risk:
            return {"flagged_at_risk": self.flagged_at_risk}
        return {}


@dataclass(frozen=True)
class Context:
    now: datetime
    policy: domain.ClassificationPolicy
    # customer id -> changes in the order the batch brought them
    changes: dict[str, list[Change]] = field(default_factory=dict)

    def note(self, customer_id: str, change: Change) -> None:
        self.changes.setdefault(customer_id, []).append(change)


def on_interaction_logged(uow, event, ctx: Context) -> None:
    ctx.note(event.data["customer_id"], Change("interaction logged", interaction_at=event.data["occurred_at"]))


def on_alert_raised(uow, event, ctx: Context) -> None:
    """Flags the customer when the alert asks to (alerts says no for a dormant one or a prospect)."""
    if event.data["flag_at_risk"]:
        ctx.note(event.data["customer_id"], Change(f"alert {event.data['rule']} raised", flagged_at_risk=True))


def on_alert_resolved(uow, event, ctx: Context) -> None:
    data = event.data
    if domain.resolution_clears_flag(data.get("clears_at_risk"), data["outcome"]):
        ctx.note(data["customer_id"], Change(f"alert resolved as {data['outcome']}", flagged_at_risk=False))


def apply_changes(uow, ctx: Context) -> None:
    """Each touched customer locked and read once (in id order), its purchases summed once; unknown
    customers are skipped. An archived customer keeps its facts up to date but is not reclassified."""
    if not ctx.changes:
        return
    rows = uow.session.execute(select(customers).where(customers.c.id.in_(list(ctx.changes)))
                               .order_by(customers.c.id).with_for_update()).all()
    facts = classifier.purchase_facts(uow, [r.id for r in rows if r.archived_at is None], ctx.now)
    updated: dict[str, dict] = {}  # customer id -> the row as it ends
    columns: set[str] = set()  # what any of them changed: one UPDATE writes these for all
    for row in rows:
        customer, written = dict(row._mapping), {}
        for change in ctx.changes[row.id]:
            values = change.values(customer)
            if not values:
                continue
            customer.update(values)
            if customer["archived_at"] is None:
                values |= classifier.record_classification(uow, customer, facts.get(row.id), ctx.now, ctx.policy,
                                                           change.reason)
                customer.update(values)
            written.update(values)
        if written:
            updated[row.id], columns = customer, columns | set(written)
    if updated:
        uow.session.execute(update(customers).where(customers.c.id == bindparam("row_id")),
                            [{"row_id": customer_id, **{c: customer[c] for c in sorted(columns)}}
                             for customer_id, customer in sorted(updated.items())])


CONSUMES = Consumes({
    "interaction.logged": on_interaction_logged,
    "alert.raised": on_alert_raised,
    "alert.resolved": on_alert_resolved,
}, flush=apply_changes)
