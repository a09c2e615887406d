"""Use cases that change the customers service's data: one transaction each, events via the outbox.

Every function takes a unit of work (already entered), the acting principal and plain data already
validated by the schemas; the rules they apply are in domain/.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, delete, func, insert, select, update

from crm_common.auth import SYSTEM, Principal
from crm_common.db import utc
from crm_common.errors import Conflict
from services.customers import classifier, domain, queries
from services.customers.models import (
    contacts, customer_tags, customers, ownership_history, purchases, reps, stage_history, team_cursors,
)
from services.customers.views import (
    SNAPSHOT_FIELDS, customer_snapshot, customer_view, load_customer, load_rep, rep_event, rep_view,
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


# ---------------------------------------------------------------- reps directory

def register_rep(uow, actor: Principal, data: dict, now: datetime) -> dict:
    actor.require("admin")
    if uow.session.execute(select(reps.c.id).where(reps.c.id == data["id"])).first():
        raise Conflict(f"rep {data['id']} already exists", field="id")
    if data.get("manager_id"):
        load_rep(uow, data["manager_id"], field="manager_id")
    rep = {"id": data["id"], "name": data["name"], "email": data.get("email"), "team": data.get("team"),
           "role": data.get("role", "rep"), "manager_id": data.get("manager_id"), "active": True}
    uow.session.execute(insert(reps).values(**rep, created_at=now))
    uow.emit("rep.registered", rep["id"], rep_event(rep), time=now)
    uow.audit(actor, "rep.registered", "rep", rep["id"], rep)
    return rep


def ensure_admin(uow, user_id: str, now: datetime) -> bool:
    """The first admin (python -m crm admin): registered like any rep, or, when already in the directory, made an
    active admin and announced again (rep.updated), so a service that started later hears of them too. True if
    this call registered them."""
    if uow.session.execute(select(reps.c.id).where(reps.c.id == user_id)).first():
        update_rep(uow, SYSTEM, user_id, {"role": "admin", "active": True}, now)
        return False
    register_rep(uow, SYSTEM, {"id": user_id, "name": user_id, "role": "admin"}, now)
    return True


def update_rep(uow, actor: Principal, rep_id: str, data: dict, now: datetime) -> dict:
    actor.require("admin")
    before = rep_view(load_rep(uow, rep_id))
    if data.get("manager_id"):
        load_rep(uow, data["manager_id"], field="manager_id")
    uow.session.execute(update(reps).where(reps.c.id == rep_id).values(**data))
    after = {**before, **data}
    uow.emit("rep.updated", rep_id, rep_event(after), time=now)
    uow.audit(actor, "rep.updated", "rep", rep_id, _diff(before, after))
    return after


# ---------------------------------------------------------------- the customer record

def _owner_and_team(uow, actor: Principal, owner_id: str | None,
                    team: str | None = None) -> tuple[str | None, str | None]:
    owner_id = domain.requested_owner(actor, owner_id)
    if owner_id is None:
        return None, domain.team_of_unowned(actor, team)
    rep = load_rep(uow, owner_id, field="owner_id")
    domain.check_can_own(actor, rep)
    domain.check_owner_team(rep, team)
    return rep.id, rep.team


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


def _diff(before: dict, after: dict) -> dict:
    return {k: [before.get(k), after[k]] for k in after if before.get(k) != after[k]}


def create_customer(uow, actor: Principal, data: dict, now: datetime, policy: domain.ClassificationPolicy) -> dict:
    owner_id, team = _owner_and_team(uow, actor, data.get("owner_id"), data.get("team"))
    created_at = data.get("created_at") or now
    domain.check_not_future(created_at, now, "created_at")
    external_id = data.get("external_id")
    if external_id and uow.session.execute(select(customers.c.id).where(customers.c.external_id == external_id)).first():
        raise Conflict(f"a customer with external id {external_id} already exists", field="external_id")
    customer_id = new_id("cus")
    stage = data.get("pipeline_stage") or domain.FIRST_STAGE
    uow.session.execute(insert(customers).values(
        id=customer_id, company=data["company"].strip(), company_key=domain.company_key(data["company"]),
        industry=data.get("industry"), source_channel=data.get("source_channel"), owner_id=owner_id, team=team,
        notes=data.get("notes", ""), important_dates=_jsonable_dates(data.get("important_dates", [])),
        tier=domain.tier_for(Decimal(0), policy), lifecycle=domain.FIRST_LIFECYCLE, pipeline_stage=stage,
        flagged_at_risk=False, rolling_12m_total=Decimal(0), purchase_count=0,
        created_at=created_at, updated_at=now, external_id=external_id,
    ))
    _write_children(uow, customer_id, {"tags": data.get("tags", []), "contacts": data.get("contacts", [])})
    uow.session.execute(insert(stage_history).values(
        customer_id=customer_id, from_stage=None, to_stage=stage, changed_at=created_at, changed_by=actor.user_id))
    view = queries.get_customer(uow, actor, customer_id)
    uow.emit("customer.created", customer_id, customer_snapshot(view), time=created_at)
    uow.audit(actor, "customer.created", "customer", customer_id, {k: view[k] for k in SNAPSHOT_FIELDS})
    return view


def import_customer(uow, actor: Principal, data: dict, now: datetime, policy: domain.ClassificationPolicy) -> dict:
    """A customer with its stage moves and purchase history, classified once at the end."""
    view = create_customer(uow, actor, data["customer"], now, policy)
    for move in sorted(data.get("stages", []), key=lambda m: m.get("changed_at") or now):
        move_stage(uow, actor, view["id"], move["stage"], move.get("changed_at"), now)
    for purchase in sorted(data.get("purchases", []), key=lambda p: p["purchased_at"]):
        record_purchase(uow, actor, view["id"], purchase, now, policy, reclassify_after=False)
    if data.get("classify", True):
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

def record_purchase(uow, actor: Principal, customer_id: str, data: dict, now: datetime,
                    policy: domain.ClassificationPolicy, reclassify_after: bool = True) -> dict:
    row = load_customer(uow, actor, customer_id, for_update=True)
    domain.check_live(row.archived_at)
    domain.check_not_future(data["purchased_at"], now, "purchased_at")
    if data.get("external_ref") and uow.session.execute(select(purchases.c.id).where(and_(
            purchases.c.customer_id == customer_id, purchases.c.external_ref == data["external_ref"]))).first():
        raise Conflict(f"purchase {data['external_ref']} is already recorded", field="external_ref")
    amount = domain.parse_amount(data["amount"])
    purchase = {
        "id": new_id("pur"), "customer_id": customer_id, "amount": amount, "currency": data["currency"],
        "amount_base": policy.to_base(amount, data["currency"]), "purchased_at": data["purchased_at"],
        "external_ref": data.get("external_ref"),
    }
    uow.session.execute(insert(purchases).values(**purchase, recorded_by=actor.user_id, recorded_at=now))
    first, last = utc(row.first_purchase_at), utc(row.last_purchase_at)
    uow.session.execute(update(customers).where(customers.c.id == customer_id).values(
        purchase_count=customers.c.purchase_count + 1,
        first_purchase_at=min(first, data["purchased_at"]) if first else data["purchased_at"],
        last_purchase_at=max(last, data["purchased_at"]) if last else data["purchased_at"],
        updated_at=now,
    ))
    uow.emit("purchase.recorded", customer_id, {
        "customer_id": customer_id, "purchase_id": purchase["id"], "amount": amount, "currency": data["currency"],
        "amount_base": purchase["amount_base"], "base_currency": policy.base_currency,
        "purchased_at": data["purchased_at"], "owner_id": row.owner_id, "team": row.team,
    }, time=data["purchased_at"])
    uow.audit(actor, "purchase.recorded", "customer", customer_id, purchase)
    if reclassify_after:
        classifier.reclassify(uow, customer_id, now, policy, reason="purchase recorded")
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


# ---------------------------------------------------------------- ownership

def _move_owner(uow, actor: Principal, row, to_rep, transfer_id: str, reason: str, now: datetime) -> None:
    uow.session.execute(update(customers).where(customers.c.id == row.id)
                        .values(owner_id=to_rep.id, team=to_rep.team, updated_at=now))
    uow.session.execute(insert(ownership_history).values(
        customer_id=row.id, transfer_id=transfer_id, from_owner_id=row.owner_id, from_team=row.team,
        to_owner_id=to_rep.id, to_team=to_rep.team, reason=reason, changed_at=now, changed_by=actor.user_id))
    uow.emit("customer.owner_changed", row.id, {
        "customer_id": row.id, "old_owner_id": row.owner_id, "old_team": row.team, "new_owner_id": to_rep.id,
        "new_team": to_rep.team, "reason": reason, "transfer_id": transfer_id, "changed_by": actor.user_id},
        time=now)
    uow.audit(actor, "customer.owner_changed", "customer", row.id,
              {"owner_id": [row.owner_id, to_rep.id], "team": [row.team, to_rep.team], "transfer_id": transfer_id})


def transfer_customer(uow, actor: Principal, customer_id: str, to_owner_id: str, reason: str,
                      now: datetime) -> dict:
    actor.require("manager", "admin")
    row = load_customer(uow, actor, customer_id, for_update=True)
    domain.check_live(row.archived_at)
    to_rep = load_rep(uow, to_owner_id, field="to_owner_id")
    domain.check_transfer(actor, row.owner_id, to_rep)
    _move_owner(uow, actor, row, to_rep, new_id("trf"), reason, now)
    return queries.get_customer(uow, actor, customer_id)


def _team_rotation(uow, team: str, from_rep_id: str, count: int) -> list:
    """The next `count` reps of the team's round-robin; its cursor is locked, so two hand-overs
    into one team take turns instead of picking the same reps."""
    members = {r.id: r for r in uow.session.execute(select(reps).where(reps.c.team == team))
               if domain.takes_handover(r, from_rep_id)}
    cursor = uow.lock_or_create(team_cursors, {"team": team}).last_rep_id
    order = domain.round_robin(list(members), cursor, count) if count else []
    if order:
        uow.session.execute(update(team_cursors).where(team_cursors.c.team == team).values(last_rep_id=order[-1]))
    return [members[rep_id] for rep_id in order]


def handover(uow, actor: Principal, from_rep_id: str, data: dict, now: datetime) -> dict:
    """Move every customer of a (departing) rep to one rep or round-robin over a team, in one transaction."""
    actor.require("manager", "admin")
    from_rep = load_rep(uow, from_rep_id)
    domain.check_can_hand_over(actor, from_rep)
    rows = uow.session.execute(select(customers).where(customers.c.owner_id == from_rep_id)
                               .order_by(customers.c.id).with_for_update()).all()
    if data.get("to_owner_id"):
        to_rep = load_rep(uow, data["to_owner_id"], field="to_owner_id")
        domain.check_handover_to_rep(actor, from_rep_id, to_rep)
        targets = [to_rep] * len(rows)
    else:
        domain.check_handover_to_team(actor, data["to_team"])
        targets = _team_rotation(uow, data["to_team"], from_rep_id, len(rows))
    transfer_id = new_id("trf")
    moved: dict[str, int] = {}
    for row, to_rep in zip(rows, targets):
        _move_owner(uow, actor, row, to_rep, transfer_id, data.get("reason", ""), now)
        moved[to_rep.id] = moved.get(to_rep.id, 0) + 1
    if data.get("deactivate", True) and from_rep.active:
        uow.session.execute(update(reps).where(reps.c.id == from_rep_id).values(active=False))
        uow.emit("rep.updated", from_rep_id, rep_event({**rep_view(from_rep), "active": False}), time=now)
        uow.audit(actor, "rep.deactivated", "rep", from_rep_id, {"active": [True, False]})
    return {"transfer_id": transfer_id, "from_rep_id": from_rep_id, "moved": len(rows), "by_new_owner": moved}
