"""Writing a customer's class history: shared by purchases (commands), facts from other services
(projections) and the daily sweep (jobs). The rules are domain.classify and domain/history.py.

Each customer row says how far its history is exact (``classified_until``) and when time alone
may next change its class (``next_review_at``). A new fact dated `since` recomputes the history
from `since` (or from where it was exact, if that is earlier); the changes that differ from what
was recorded are recorded and published, dated when they happened.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Mapping

from sqlalchemy import bindparam, insert, select, update

from crm_common.db import utc
from services.customers import domain
from services.customers.domain.history import (
    FactHistory, Recorded, class_at, class_history, corrections, flag_periods, next_change,
)
from services.customers.models import classification_history, customers, interaction_times, purchases, risk_flags


def fact_histories(uow, customer_ids: list[str]) -> dict[str, FactHistory]:
    """Per customer, its purchases, interactions and at-risk flags with their dates (three queries)."""
    bought, talked, flagged = defaultdict(list), defaultdict(list), defaultdict(list)
    session = uow.session
    for cid, at, amount in session.execute(select(purchases.c.customer_id, purchases.c.purchased_at,
                                                  purchases.c.amount_base)
                                           .where(purchases.c.customer_id.in_(customer_ids))):
        bought[cid].append((utc(at), amount))
    for cid, at in session.execute(select(interaction_times.c.customer_id, interaction_times.c.occurred_at)
                                   .where(interaction_times.c.customer_id.in_(customer_ids))):
        talked[cid].append(utc(at))
    for cid, at, lifts in session.execute(select(risk_flags.c.customer_id, risk_flags.c.at, risk_flags.c.lifts)
                                          .where(risk_flags.c.customer_id.in_(customer_ids))):
        flagged[cid].append((utc(at), lifts))
    return {cid: FactHistory.of(bought[cid], talked[cid], flag_periods(flagged[cid])) for cid in customer_ids}


def recorded_histories(uow, customer_ids: list[str]) -> dict[str, list]:
    rows = uow.session.execute(select(classification_history.c.customer_id, classification_history.c.attribute,
                                      classification_history.c.old_value, classification_history.c.new_value,
                                      classification_history.c.as_of)
                               .where(classification_history.c.customer_id.in_(customer_ids))
                               .order_by(classification_history.c.id))
    history = defaultdict(list)
    for row in rows:
        history[row.customer_id].append(row)
    return history


def record_history(uow, customer: Mapping, facts: FactHistory, recorded: list, since: datetime | None,
                   until: datetime, policy: domain.ClassificationPolicy, reason: str, history: list) -> dict:
    """Recompute a live customer's class history from `since` (None: only time passing) to `until`; publish
    what differs and add its history rows to `history`. Returns the columns to write; the caller writes them
    (a batch writes each row once, and all the history rows in one statement)."""
    created = utc(customer["created_at"])
    exact_until = utc(customer["classified_until"]) or created
    start = max(created, min(exact_until, since) if since else exact_until)
    until = max(until, exact_until)
    initial = {attribute: next((r.old_value for r in recorded if r.attribute == attribute), customer[attribute])
               for attribute in ("tier", "lifecycle")}
    steps = class_history(facts, start, until, policy)
    customer_id = customer["id"]
    owner = {"owner_id": customer["owner_id"], "team": customer["team"]}
    for change in corrections(initial, [Recorded(utc(r.as_of), r.attribute, r.new_value) for r in recorded], steps):
        step = change.step
        if change.attribute == "tier":
            why = f"{reason}: rolling 12-month total {step.rolling_12m_total}"
            uow.emit("customer.tier_changed", customer_id, {
                "customer_id": customer_id, "old_tier": change.old, "new_tier": change.new,
                "rolling_12m_total": step.rolling_12m_total, **owner, "as_of": change.at}, time=change.at)
        else:
            why = f"{reason}: {step.reason}"
            uow.emit("customer.lifecycle_changed", customer_id, {
                "customer_id": customer_id, "old_lifecycle": change.old, "new_lifecycle": change.new,
                "reason": why, **owner, "as_of": change.at}, time=change.at)
        history.append({"customer_id": customer_id, "attribute": change.attribute, "old_value": change.old,
                        "new_value": change.new, "reason": why, "as_of": change.at})
    current = class_at(facts, until, policy)
    values = {"tier": current.tier, "lifecycle": current.lifecycle, "rolling_12m_total": current.rolling_12m_total,
              "flagged_at_risk": facts.facts_at(until).flagged_at_risk, "classified_until": until,
              "next_review_at": next_change(facts, until, policy)}
    return {k: v for k, v in values.items()
            if (utc(customer[k]) if isinstance(customer[k], datetime) else customer[k]) != v}


def reclassify_rows(uow, rows, until: datetime, policy: domain.ClassificationPolicy,
                    reason: str | Mapping[str, str], since: Mapping[str, datetime] | None = None) -> None:
    """Bring live customers' rows up to `until`, from `since[id]` where new facts are dated (with their facts
    and recorded histories in a few queries); `reason` for all, or per customer id."""
    live = [row for row in rows if row.archived_at is None]
    ids = [row.id for row in live]
    facts, recorded = fact_histories(uow, ids), recorded_histories(uow, ids)
    history, changed = [], defaultdict(list)  # the rows to update, by the columns that change
    for row in live:
        values = record_history(uow, row._mapping, facts[row.id], recorded.get(row.id, []),
                                (since or {}).get(row.id), until, policy,
                                reason if isinstance(reason, str) else reason[row.id], history)
        if values:
            changed[tuple(sorted(values))].append({"key": row.id, **{f"new_{k}": v for k, v in values.items()}})
    if history:
        uow.session.execute(insert(classification_history), history)
    for columns, updates in changed.items():
        uow.session.execute(update(customers).where(customers.c.id == bindparam("key")).values(
            {column: bindparam(f"new_{column}") for column in columns}), updates)


def reclassify(uow, customer_id: str, until: datetime, policy: domain.ClassificationPolicy, reason: str,
               since: datetime | None = None) -> None:
    row = uow.session.execute(select(customers).where(customers.c.id == customer_id)).first()
    if row is not None:
        reclassify_rows(uow, [row], until, policy, reason, {customer_id: since} if since else None)
