"""The customer record, its purchases and its pipeline stage: one transaction each, events via the outbox."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, bindparam, delete, func, insert, select, update

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import Conflict
from services.customers import classifier, domain, queries
from services.customers.models import contacts, customer_tags, customers, purchases, stage_history
from services.customers.views import SNAPSHOT_FIELDS, customer_snapshot, customer_view, load_customer, load_rep


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _diff(before: dict, after: dict) -> dict:
    return {k: [before.get(k), after[k]] for k in after if before.get(k) != after[k]}


# ---------------------------------------------------------------- the customer record

def _write_children(uow, customer_id: str, data: dict) -> None:
    if "tags" in data:
        uow.session.execute(delete(customer_tags).where(customer_tags.c.customer_id == customer_id))
        tags = domain.normalized_tags(data["tags"])
        if tags:
            uow.session.execute(insert(customer_tags), [{"customer_id": customer_id, "tag": t} for t in tags])
    if "contacts" in data:
        uow.session.execute(delete(contacts).where(contacts.c.customer_id == customer_id))
        if data["contacts"]:
            uow.session.execute(insert(contacts), [{"customer_id": customer_id, **c} for c in data["contacts"]])


def _jsonable_dates(items: list[dict]) -> list[dict]:
    return [{**d, "date": d["date"].isoformat()} for d in items]


@dataclass
class NewCustomer:
    """A customer about to be written: its rows and the view (and snapshot) it will have."""
    row: dict
    tags: list[str]
    contacts: list[dict]
    stage_move: dict
    view: dict


def plan_customer(actor: Principal, data: dict, owner, now: datetime,
                  policy: domain.ClassificationPolicy) -> NewCustomer:
    """The rules of creating a customer, without the database: `owner` is the directory row of the rep
    domain.requested_owner names (loaded by the caller), or None when it names nobody."""
    if owner is None:
        owner_id, team = None, domain.team_of_unowned(actor, data.get("team"))
    else:
        domain.check_can_own(actor, owner)
        domain.check_owner_team(owner, data.get("team"))
        owner_id, team = owner.id, owner.team
    created_at = utc(data.get("created_at") or now)
    domain.check_not_future(created_at, now, "created_at")
    stage = data.get("pipeline_stage") or domain.FIRST_STAGE
    row = {"id": new_id("cus"), "company": data["company"].strip(), "company_key": domain.company_key(data["company"]),
           "industry": data.get("industry"), "source_channel": data.get("source_channel"), "owner_id": owner_id,
           "team": team, "notes": data.get("notes", ""), "important_dates": data.get("important_dates", []),
           "tier": domain.tier_for(Decimal(0), policy), "lifecycle": domain.FIRST_LIFECYCLE, "pipeline_stage": stage,
           "flagged_at_risk": False, "rolling_12m_total": Decimal(0), "purchase_count": 0, "created_at": created_at,
           "updated_at": now, "external_id": data.get("external_id"), "next_review_at": created_at}
    tags = domain.normalized_tags(data.get("tags", []))
    people = [{"name": c["name"], "role": c.get("role"), "phone": c.get("phone"), "email": c.get("email"),
               "is_decision_maker": c.get("is_decision_maker", False), "birthday": c.get("birthday")}
              for c in data.get("contacts", [])]
    view = {**{k: row[k] for k in ("id", "external_id", "company", "industry", "source_channel", "owner_id", "team",
                                   "notes", "important_dates", "tier", "lifecycle", "pipeline_stage",
                                   "flagged_at_risk", "rolling_12m_total", "purchase_count", "created_at",
                                   "updated_at")},
            "tags": tags, "contacts": people, "first_purchase_at": None, "last_purchase_at": None,
            "last_interaction_at": None, "archived_at": None}
    stage_move = {"customer_id": row["id"], "from_stage": None, "to_stage": stage, "changed_at": created_at,
                  "changed_by": actor.user_id}
    return NewCustomer({**row, "important_dates": _jsonable_dates(row["important_dates"])}, tags, people,
                       stage_move, view)


def insert_customers(uow, actor: Principal, new: list[NewCustomer]) -> None:
    """New customers written in a few statements whatever their number, each with its customer.created."""
    if not new:
        return
    uow.session.execute(insert(customers), [n.row for n in new])
    tag_rows = [{"customer_id": n.row["id"], "tag": t} for n in new for t in n.tags]
    contact_rows = [{"customer_id": n.row["id"], **c} for n in new for c in n.contacts]
    for table, rows in ((customer_tags, tag_rows), (contacts, contact_rows), (stage_history, [n.stage_move for n in new])):
        if rows:
            uow.session.execute(insert(table), rows)
    for n in new:
        uow.emit("customer.created", n.row["id"], customer_snapshot(n.view), time=n.row["created_at"])
        uow.audit(actor, "customer.created", "customer", n.row["id"], {k: n.view[k] for k in SNAPSHOT_FIELDS})


def create_customer(uow, actor: Principal, data: dict, now: datetime, policy: domain.ClassificationPolicy) -> dict:
    owner_id = domain.requested_owner(actor, data.get("owner_id"))
    owner = load_rep(uow, owner_id, field="owner_id") if owner_id is not None else None
    new = plan_customer(actor, data, owner, now, policy)
    external_id = data.get("external_id")
    if external_id and uow.session.execute(select(customers.c.id).where(customers.c.external_id == external_id)).first():
        raise Conflict(f"a customer with external id {external_id} already exists", field="external_id")
    insert_customers(uow, actor, [new])
    return queries.get_customer(uow, actor, new.row["id"])


def import_customer(uow, actor: Principal, data: dict, now: datetime, policy: domain.ClassificationPolicy) -> dict:
    """A customer with its stage moves and purchase history; its class history follows from them once, at the end."""
    view = create_customer(uow, actor, data["customer"], now, policy)
    for move in sorted(data.get("stages", []), key=lambda m: m.get("changed_at") or now):
        move_stage(uow, actor, view["id"], move["stage"], move.get("changed_at"), now)
    for purchase in sorted(data.get("purchases", []), key=lambda p: p["purchased_at"]):
        record_purchase(uow, actor, view["id"], purchase, now, policy, reclassify_after=False)
    classifier.reclassify(uow, view["id"], now, policy, reason="imported")
    return queries.get_customer(uow, actor, view["id"])


def update_customer(uow, actor: Principal, customer_id: str, data: dict, now: datetime) -> dict:
    row = load_customer(uow, actor, customer_id, for_update=True)
    domain.check_update(row.archived_at, row.owner_id, row.pipeline_stage, data)
    before = customer_view(uow, row)
    values = {k: v for k, v in data.items() if k in ("company", "industry", "source_channel", "notes")}
    if "company" in values:
        values["company"], values["company_key"] = values["company"].strip(), domain.company_key(values["company"])
    if "important_dates" in data:
        values["important_dates"] = _jsonable_dates(data["important_dates"])
    uow.session.execute(update(customers).where(customers.c.id == customer_id).values(**values, updated_at=now))
    _write_children(uow, customer_id, data)
    after = queries.get_customer(uow, actor, customer_id)
    changes = _diff(before, after)
    changes.pop("updated_at", None)
    if changes:
        uow.emit("customer.updated", customer_id, {**customer_snapshot(after), "changed_fields": sorted(changes)},
                 time=now)
        uow.audit(actor, "customer.updated", "customer", customer_id, changes)
    return after


def archive_customer(uow, actor: Principal, customer_id: str, now: datetime) -> dict:
    row = load_customer(uow, actor, customer_id, for_update=True)
    domain.check_archive(actor, row.archived_at)
    uow.session.execute(update(customers).where(customers.c.id == customer_id)
                        .values(archived_at=now, updated_at=now))
    uow.emit("customer.archived", customer_id,
             {"customer_id": customer_id, "owner_id": row.owner_id, "team": row.team, "archived_at": now}, time=now)
    uow.audit(actor, "customer.archived", "customer", customer_id, {"archived_at": now})
    return queries.get_customer(uow, actor, customer_id)


# ---------------------------------------------------------------- purchases and the pipeline

def plan_purchase(actor: Principal, customer, data: dict, now: datetime, policy: domain.ClassificationPolicy) -> dict:
    """The rules of recording a purchase of `customer` (its row), without the database: the purchase's row."""
    domain.check_live(customer.archived_at)
    domain.check_not_future(data["purchased_at"], now, "purchased_at")
    amount = domain.parse_amount(data["amount"])
    return {"id": new_id("pur"), "customer_id": customer.id, "amount": amount, "currency": data["currency"],
            "amount_base": policy.to_base(amount, data["currency"]), "purchased_at": data["purchased_at"],
            "external_ref": data.get("external_ref")}


def insert_purchases(uow, actor: Principal, recorded: list[tuple], now: datetime,
                     policy: domain.ClassificationPolicy) -> None:
    """(customer row, purchase) pairs written in a few statements, each with its purchase.recorded; the
    customers' rows (locked by the caller) get their counts and first and last dates once each."""
    if not recorded:
        return
    uow.session.execute(insert(purchases), [{**p, "recorded_by": actor.user_id, "recorded_at": now}
                                            for _, p in recorded])
    totals: dict[str, dict] = {}
    for customer, purchase in recorded:
        at = purchase["purchased_at"]
        first, last = utc(customer.first_purchase_at), utc(customer.last_purchase_at)
        done = totals.setdefault(customer.id, {"key": customer.id, "count": customer.purchase_count,
                                               "first": first or at, "last": last or at})
        done.update(count=done["count"] + 1, first=min(done["first"], at), last=max(done["last"], at))
        uow.emit("purchase.recorded", customer.id, {
            "customer_id": customer.id, "purchase_id": purchase["id"], "amount": purchase["amount"],
            "currency": purchase["currency"], "amount_base": purchase["amount_base"],
            "base_currency": policy.base_currency, "purchased_at": at, "owner_id": customer.owner_id,
            "team": customer.team}, time=at)
        uow.audit(actor, "purchase.recorded", "customer", customer.id, purchase)
    uow.session.execute(update(customers).where(customers.c.id == bindparam("key")).values(
        purchase_count=bindparam("count"), first_purchase_at=bindparam("first"), last_purchase_at=bindparam("last"),
        updated_at=now), list(totals.values()))


def record_purchase(uow, actor: Principal, customer_id: str, data: dict, now: datetime,
                    policy: domain.ClassificationPolicy, reclassify_after: bool = True) -> dict:
    row = load_customer(uow, actor, customer_id, for_update=True)
    purchase = plan_purchase(actor, row, data, now, policy)
    if data.get("external_ref") and uow.session.execute(select(purchases.c.id).where(and_(
            purchases.c.customer_id == customer_id, purchases.c.external_ref == data["external_ref"]))).first():
        raise Conflict(f"purchase {data['external_ref']} is already recorded", field="external_ref")
    insert_purchases(uow, actor, [(row, purchase)], now, policy)
    if reclassify_after:
        classifier.reclassify(uow, customer_id, now, policy, reason="purchase recorded", since=data["purchased_at"])
    return purchase


def move_stage(uow, actor: Principal, customer_id: str, stage: str, changed_at: datetime | None,
               now: datetime) -> dict:
    row = load_customer(uow, actor, customer_id, for_update=True)
    domain.check_live(row.archived_at)
    changed_at = changed_at or now
    previous = uow.session.execute(select(func.max(stage_history.c.changed_at))
                                   .where(stage_history.c.customer_id == customer_id)).scalar()
    domain.check_stage_time(changed_at, utc(previous), now)
    domain.check_stage_move(row.pipeline_stage, stage)
    uow.session.execute(update(customers).where(customers.c.id == customer_id)
                        .values(pipeline_stage=stage, updated_at=now))
    uow.session.execute(insert(stage_history).values(
        customer_id=customer_id, from_stage=row.pipeline_stage, to_stage=stage, changed_at=changed_at,
        changed_by=actor.user_id))
    uow.emit("customer.stage_changed", customer_id, {
        "customer_id": customer_id, "old_stage": row.pipeline_stage, "new_stage": stage, "changed_at": changed_at,
        "owner_id": row.owner_id, "team": row.team}, time=changed_at)
    uow.audit(actor, "customer.stage_changed", "customer", customer_id,
              {"pipeline_stage": [row.pipeline_stage, stage]})
    return queries.get_customer(uow, actor, customer_id)
