"""Writing a customer's class: shared by purchases (commands), facts from other services
(projections) and the daily sweep (jobs). The rules themselves are domain.classify."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Mapping

from sqlalchemy import case, func, insert, select, update

from crm_common.db import utc
from services.customers import domain
from services.customers.models import classification_history, customers, purchases


def purchase_facts(uow, customer_ids: list[str], as_of: datetime) -> dict[str, tuple]:
    """Per customer, from purchases dated up to as_of: (rolling 12-month total, first, last purchase)."""
    in_window = purchases.c.purchased_at > domain.rolling_window_start(as_of)
    rows = uow.session.execute(
        select(purchases.c.customer_id,
               func.sum(case((in_window, purchases.c.amount_base), else_=0)),
               func.min(purchases.c.purchased_at), func.max(purchases.c.purchased_at))
        .where(purchases.c.customer_id.in_(customer_ids), purchases.c.purchased_at <= as_of)
        .group_by(purchases.c.customer_id))
    return {cid: (Decimal(total or 0), utc(first), utc(last)) for cid, total, first, last in rows}


def record_classification(uow, customer: Mapping, purchased: tuple | None, as_of: datetime,
                          policy: domain.ClassificationPolicy, reason: str) -> dict:
    """Classify a customer (its row's values) as of as_of; emit and keep in the history what changed.
    Returns the columns to write; the caller writes them (a batch writes each row once)."""
    total, first, last = purchased or (Decimal(0), None, None)
    facts = domain.facts_known_at(as_of, total, first, last, utc(customer["last_interaction_at"]),
                                  customer["flagged_at_risk"])
    result = domain.classify(facts, as_of, policy)
    customer_id, old_tier, old_lifecycle = customer["id"], customer["tier"], customer["lifecycle"]
    owner = {"owner_id": customer["owner_id"], "team": customer["team"]}
    values = {}
    if Decimal(customer["rolling_12m_total"]) != total:
        values["rolling_12m_total"] = total
    if result.tier != old_tier:
        values["tier"] = result.tier
        uow.emit("customer.tier_changed", customer_id, {
            "customer_id": customer_id, "old_tier": old_tier, "new_tier": result.tier, "rolling_12m_total": total,
            **owner, "as_of": as_of}, time=as_of)
        uow.session.execute(insert(classification_history).values(
            customer_id=customer_id, attribute="tier", old_value=old_tier, new_value=result.tier,
            reason=f"{reason}: rolling 12-month total {total}", as_of=as_of))
    if result.lifecycle != old_lifecycle:
        values["lifecycle"] = result.lifecycle
        uow.emit("customer.lifecycle_changed", customer_id, {
            "customer_id": customer_id, "old_lifecycle": old_lifecycle, "new_lifecycle": result.lifecycle,
            "reason": f"{reason}: {result.reason}", **owner, "as_of": as_of}, time=as_of)
        uow.session.execute(insert(classification_history).values(
            customer_id=customer_id, attribute="lifecycle", old_value=old_lifecycle, new_value=result.lifecycle,
            reason=f"{reason}: {result.reason}", as_of=as_of))
    return values


def reclassify_rows(uow, rows, as_of: datetime, policy: domain.ClassificationPolicy, reason: str) -> None:
    """Reclassify live customers' rows, with their purchase facts in one query."""
    facts = purchase_facts(uow, [row.id for row in rows], as_of)
    for row in rows:
        values = record_classification(uow, row._mapping, facts.get(row.id), as_of, policy, reason)
        if values:
            uow.session.execute(update(customers).where(customers.c.id == row.id).values(**values))


def reclassify(uow, customer_id: str, as_of: datetime, policy: domain.ClassificationPolicy, reason: str) -> None:
    row = uow.session.execute(select(customers).where(customers.c.id == customer_id)).first()
    if row is not None and row.archived_at is None:
        reclassify_rows(uow, [row], as_of, policy, reason)
