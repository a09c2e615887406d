"""Facts from other services that the customers service applies: its one table of consumed events.

The handlers only note each dated fact (an interaction, an at-risk flag raised or lifted);
``apply_changes`` (the batch's flush) then stores the facts of every customer the batch touches
and recomputes each one's class history once, from the earliest fact's date (classifier), so a
batch emits what one event at a time would have left recorded, with a few queries per batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, select, update

from crm_common.consumer import Consumes
from crm_common.db import utc
from services.customers import classifier, domain
from services.customers.models import customers, interaction_times, risk_flags


@dataclass(frozen=True)
class Fact:
    """One event's fact about a customer: an interaction, or the at-risk flag raised or lifted."""
    reason: str
    at: datetime
    interaction_id: str | None = None
    raised_alert_id: str | None = None
    lifts_flag: bool = False


@dataclass(frozen=True)
class Context:
    now: datetime
    policy: domain.ClassificationPolicy
    # customer id -> facts in the order the batch brought them
    facts: dict[str, list[Fact]] = field(default_factory=dict)

    def note(self, customer_id: str, fact: Fact) -> None:
        self.facts.setdefault(customer_id, []).append(fact)


def on_interaction_logged(uow, event, ctx: Context) -> None:
    data = event.data
    ctx.note(data["customer_id"], Fact("interaction logged", data["occurred_at"], interaction_id=data["interaction_id"]))


def on_alert_raised(uow, event, ctx: Context) -> None:
    """Flags the customer when the alert asks to (alerts says no for a dormant one or a prospect)."""
    data = event.data
    if data["flag_at_risk"]:
        ctx.note(data["customer_id"], Fact(f"alert {data['rule']} raised", data["raised_at"],
                                           raised_alert_id=data["alert_id"]))


def on_alert_resolved(uow, event, ctx: Context) -> None:
    data = event.data
    if domain.resolution_clears_flag(data.get("clears_at_risk"), data["outcome"]):
        ctx.note(data["customer_id"], Fact(f"alert resolved as {data['outcome']}", data["resolved_at"],
                                           lifts_flag=True))


def _store(uow, customer: dict, facts: list[Fact]) -> bool:
    """Store one customer's facts and update its row's copy (last interaction, flag); True when any is new."""
    session, customer_id, new = uow.session, customer["id"], False
    for fact in facts:
        if fact.interaction_id is not None:
            known = session.execute(select(interaction_times.c.occurred_at).where(
                interaction_times.c.customer_id == customer_id,
                interaction_times.c.interaction_id == fact.interaction_id)).first()
            if known is None:
                session.execute(interaction_times.insert().values(
                    customer_id=customer_id, interaction_id=fact.interaction_id, occurred_at=fact.at))
                if domain.refreshes_recency(utc(customer["last_interaction_at"]), fact.at):
                    customer["last_interaction_at"] = fact.at
                new = True
        elif fact.raised_alert_id is not None:
            if customer["last_purchase_at"] is None:
                continue  # a prospect is never flagged, so its first purchase makes it new, not at_risk
            known = session.execute(select(risk_flags.c.raised_at).where(
                risk_flags.c.customer_id == customer_id, risk_flags.c.alert_id == fact.raised_alert_id)).first()
            if known is None:
                session.execute(risk_flags.insert().values(
                    customer_id=customer_id, alert_id=fact.raised_alert_id, raised_at=fact.at))
                new = True
        elif fact.lifts_flag:
            lifted = session.execute(update(risk_flags).where(
                risk_flags.c.customer_id == customer_id, risk_flags.c.resolved_at.is_(None),
                risk_flags.c.raised_at <= fact.at).values(resolved_at=fact.at))
            new = new or lifted.rowcount > 0
    if new:
        customer["flagged_at_risk"] = session.execute(select(risk_flags.c.alert_id).where(
            risk_flags.c.customer_id == customer_id, risk_flags.c.resolved_at.is_(None)).limit(1)).first() is not None
    return new


def apply_changes(uow, ctx: Context) -> None:
    """Each touched customer locked and read once (in id order); unknown customers are skipped. An
    archived customer keeps its facts but is not reclassified."""
    if not ctx.facts:
        return
    rows = uow.session.execute(select(customers).where(customers.c.id.in_(list(ctx.facts)))
                               .order_by(customers.c.id).with_for_update()).all()
    changed, since, copies = [], {}, []
    for row in rows:
        customer = dict(row._mapping)
        if _store(uow, customer, ctx.facts[row.id]):
            changed.append(row)
            since[row.id] = min(fact.at for fact in ctx.facts[row.id])
            copies.append({"row_id": row.id, **{c: customer[c] for c in ("last_interaction_at", "flagged_at_risk")}})
    if copies:
        uow.session.execute(update(customers).where(customers.c.id == bindparam("row_id")), copies)
        reasons = {row.id: ", ".join(dict.fromkeys(fact.reason for fact in ctx.facts[row.id])) for row in changed}
        classifier.reclassify_rows(uow, changed, ctx.now, ctx.policy, reasons, since)


CONSUMES = Consumes({
    "interaction.logged": on_interaction_logged,
    "alert.raised": on_alert_raised,
    "alert.resolved": on_alert_resolved,
}, flush=apply_changes)
