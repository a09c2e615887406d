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
from services.customers.domain.history import flag_periods
from services.customers.models import customers, interaction_times, risk_flags


@dataclass(frozen=True)
class Fact:
    """One event's dated fact about a customer: an interaction, or the at-risk flag raised or lifted."""
    reason: str
    at: datetime
    interaction_id: str | None = None
    alert_id: str | None = None
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
        ctx.note(data["customer_id"], Fact(f"alert {data['rule']} raised", data["raised_at"], alert_id=data["alert_id"]))


def on_alert_resolved(uow, event, ctx: Context) -> None:
    data = event.data
    if domain.resolution_clears_flag(data.get("clears_at_risk"), data["outcome"]):
        ctx.note(data["customer_id"], Fact(f"alert resolved as {data['outcome']}", data["resolved_at"],
                                           alert_id=data["alert_id"], lifts_flag=True))


def _insert_new(session, table, key: dict, values: dict) -> bool:
    """The fact's row unless it is stored already (a redelivered or replayed event); True when it was new."""
    if session.execute(select(*table.primary_key.columns).where(*(table.c[k] == v for k, v in key.items()))).first():
        return False
    session.execute(table.insert().values(**key, **values))
    return True


def _store(uow, customer: dict, facts: list[Fact]) -> bool:
    """Store one customer's facts and update its row's copy (last interaction, flag); True when any is new.
    Facts are kept by their own dates, so a stream's events may come in any order (CONSUMES any_order)."""
    session, customer_id, new = uow.session, customer["id"], False
    for fact in facts:
        if fact.interaction_id is not None:
            if _insert_new(session, interaction_times, {"customer_id": customer_id,
                                                        "interaction_id": fact.interaction_id},
                           {"occurred_at": fact.at}):
                if domain.refreshes_recency(utc(customer["last_interaction_at"]), fact.at):
                    customer["last_interaction_at"] = fact.at
                new = True
        elif fact.lifts_flag or customer["last_purchase_at"] is not None:
            # (a prospect is never flagged, so its first purchase makes it new, not at_risk)
            key = f"lift:{fact.alert_id}" if fact.lifts_flag else fact.alert_id
            new |= _insert_new(session, risk_flags, {"customer_id": customer_id, "event_key": key},
                               {"at": fact.at, "lifts": fact.lifts_flag})
    if new:
        stored = session.execute(select(risk_flags.c.at, risk_flags.c.lifts)
                                 .where(risk_flags.c.customer_id == customer_id)).all()
        customer["flagged_at_risk"] = any(end is None for _, end in flag_periods(
            [(utc(at), lifts) for at, lifts in stored]))
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
}, flush=apply_changes, any_order=True)
