"""Use cases of the customers service: one transaction each, events via the outbox.

Every function takes a unit of work (already entered), the acting principal
where a person acts, and plain data already validated by the schemas.
"""
from __future__ import annotations

import base64
import json
import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select, tuple_, update

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import Conflict, CrmError, DomainError, Forbidden, NotFound
from services.customers import domain
from services.customers.models import (
    classification_history, contacts, customer_tags, customers, infrastructure, ownership_history, purchases,
    reps, stage_history, team_cursors,
)

SNAPSHOT_FIELDS = ("company", "industry", "source_channel", "owner_id", "team", "tags", "tier", "lifecycle",
                   "pipeline_stage", "important_dates")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


# ---------------------------------------------------------------- reps directory

def _rep_dict(row) -> dict:
    return {"id": row.id, "name": row.name, "email": row.email, "team": row.team, "role": row.role,
            "manager_id": row.manager_id, "active": row.active}


def _rep_event(rep: dict) -> dict:
    return {"rep_id": rep["id"], **{k: rep[k] for k in ("name", "email", "team", "role", "manager_id", "active")}}


def get_rep(uow, rep_id: str, field: str = "rep_id"):
    row = uow.session.execute(select(reps).where(reps.c.id == rep_id)).first()
    if row is None:
        raise CrmError(f"unknown rep {rep_id}", field=field)
    return row


def register_rep(uow, actor: Principal, data: dict, now: datetime) -> dict:
    actor.require("admin")
    if uow.session.execute(select(reps.c.id).where(reps.c.id == data["id"])).first():
        raise Conflict(f"rep {data['id']} already exists", field="id")
    if data.get("manager_id"):
        get_rep(uow, data["manager_id"], field="manager_id")
    rep = {"id": data["id"], "name": data["name"], "email": data.get("email"), "team": data.get("team"),
           "role": data.get("role", "rep"), "manager_id": data.get("manager_id"), "active": True}
    uow.session.execute(insert(reps).values(**rep, created_at=now))
    uow.emit("rep.registered", rep["id"], _rep_event(rep), time=now)
    uow.audit(actor, "rep.registered", "rep", rep["id"], rep)
    return rep


def update_rep(uow, actor: Principal, rep_id: str, data: dict, now: datetime) -> dict:
    actor.require("admin")
    row = get_rep(uow, rep_id)
    if data.get("manager_id"):
        get_rep(uow, data["manager_id"], field="manager_id")
    before = _rep_dict(row)
    uow.session.execute(update(reps).where(reps.c.id == rep_id).values(**data))
    after = {**before, **data}
    uow.emit("rep.updated", rep_id, _rep_event(after), time=now)
    uow.audit(actor, "rep.updated", "rep", rep_id, _diff(before, after))
    return after


def list_reps(uow, actor: Principal, team: str | None = None) -> list[dict]:
    query = select(reps).order_by(reps.c.id)
    if actor.role == "manager":
        query = query.where(reps.c.team == actor.team)
    elif actor.role == "rep":
        query = query.where(or_(reps.c.id == actor.user_id, reps.c.team == actor.team))
    if team:
        query = query.where(reps.c.team == team)
    return [_rep_dict(r) for r in uow.session.execute(query)]


# ---------------------------------------------------------------- customers

def _load_customer(uow, actor: Principal, customer_id: str, for_update: bool = False):
    query = select(customers).where(customers.c.id == customer_id)
    if for_update:
        query = query.with_for_update()
    row = uow.session.execute(query).first()
    # out-of-scope customers answer exactly like missing ones: nothing leaks
    if row is None or not actor.can_see(row.owner_id, row.team):
        raise NotFound(f"customer {customer_id} not found")
    return row


def _tags(uow, customer_id: str) -> list[str]:
    return sorted(uow.session.execute(
        select(customer_tags.c.tag).where(customer_tags.c.customer_id == customer_id)).scalars())


def _contacts(uow, customer_id: str) -> list[dict]:
    rows = uow.session.execute(select(contacts).where(contacts.c.customer_id == customer_id)
                               .order_by(contacts.c.id))
    return [{"name": r.name, "role": r.role, "phone": r.phone, "email": r.email,
             "is_decision_maker": r.is_decision_maker, "birthday": r.birthday} for r in rows]


def customer_view(uow, row) -> dict:
    return {
        "id": row.id, "company": row.company, "industry": row.industry, "source_channel": row.source_channel,
        "owner_id": row.owner_id, "team": row.team, "notes": row.notes, "tags": _tags(uow, row.id),
        "contacts": _contacts(uow, row.id), "important_dates": [{**d, "date": date.fromisoformat(d["date"])} for d in row.important_dates or []],
        "tier": row.tier, "lifecycle": row.lifecycle, "pipeline_stage": row.pipeline_stage,
        "flagged_at_risk": row.flagged_at_risk, "rolling_12m_total": row.rolling_12m_total,
        "purchase_count": row.purchase_count, "first_purchase_at": utc(row.first_purchase_at),
        "last_purchase_at": utc(row.last_purchase_at), "last_interaction_at": utc(row.last_interaction_at),
        "created_at": utc(row.created_at), "updated_at": utc(row.updated_at), "archived_at": utc(row.archived_at),
    }


def _snapshot(view: dict) -> dict:
    snapshot = {k: view[k] for k in SNAPSHOT_FIELDS}
    snapshot.update(customer_id=view["id"], archived=view["archived_at"] is not None, created_at=view["created_at"])
    return snapshot


def _resolve_owner(uow, actor: Principal, owner_id: str | None) -> tuple[str | None, str | None]:
    """Who may own a customer: a rep only themselves, a manager their team, an admin anyone active."""
    if owner_id is None:
        if actor.role == "rep":
            owner_id = actor.user_id
        else:
            return None, actor.team if actor.role == "manager" else None
    rep = get_rep(uow, owner_id, field="owner_id")
    if not rep.active:
        raise CrmError(f"rep {owner_id} is no longer active", field="owner_id")
    if actor.role == "rep" and owner_id != actor.user_id:
        raise Forbidden("a rep can only own customers themselves", field="owner_id")
    if actor.role == "manager" and rep.team != actor.team:
        raise Forbidden(f"rep {owner_id} is not in your team", field="owner_id")
    return rep.id, rep.team


def _write_children(uow, customer_id: str, data: dict) -> None:
    if "tags" in data:
        uow.session.execute(delete(customer_tags).where(customer_tags.c.customer_id == customer_id))
        tags = sorted({t.strip().lower() for t in data["tags"] if t.strip()})
        if tags:
            uow.session.execute(insert(customer_tags), [{"customer_id": customer_id, "tag": t} for t in tags])
    if "contacts" in data:
        uow.session.execute(delete(contacts).where(contacts.c.customer_id == customer_id))
        if data["contacts"]:
            uow.session.execute(insert(contacts), [{"customer_id": customer_id, **c} for c in data["contacts"]])


def _jsonable_dates(items: list[dict]) -> list[dict]:
    return [{**d, "date": d["date"].isoformat()} for d in items]


def create_customer(uow, actor: Principal, data: dict, now: datetime, policy: domain.ClassificationPolicy,
                    customer_id: str | None = None) -> dict:
    owner_id, team = _resolve_owner(uow, actor, data.get("owner_id"))
    created_at = data.get("created_at") or now
    if created_at > now:
        raise CrmError("created_at cannot be in the future", field="created_at")
    customer_id = customer_id or new_id("cus")
    stage = data.get("pipeline_stage") or "first_contact"
    uow.session.execute(insert(customers).values(
        id=customer_id, company=data["company"].strip(), company_key=data["company"].strip().lower(),
        industry=data.get("industry"), source_channel=data.get("source_channel"), owner_id=owner_id, team=team,
        notes=data.get("notes", ""), important_dates=_jsonable_dates(data.get("important_dates", [])),
        tier=domain.tier_for(Decimal(0), policy), lifecycle="potential", pipeline_stage=stage,
        flagged_at_risk=False, rolling_12m_total=Decimal(0), purchase_count=0,
        created_at=created_at, updated_at=now,
    ))
    _write_children(uow, customer_id, {"tags": data.get("tags", []), "contacts": data.get("contacts", [])})
    uow.session.execute(insert(stage_history).values(
        customer_id=customer_id, from_stage=None, to_stage=stage, changed_at=created_at, changed_by=actor.user_id))
    view = customer_view(uow, _load_customer(uow, actor, customer_id))
    uow.emit("customer.created", customer_id, _snapshot(view), time=created_at)
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
        reclassify(uow, view["id"], now, policy, reason="imported")
    return get_customer(uow, actor, view["id"])


def get_customer(uow, actor: Principal, customer_id: str) -> dict:
    return customer_view(uow, _load_customer(uow, actor, customer_id))


def update_customer(uow, actor: Principal, customer_id: str, data: dict, now: datetime) -> dict:
    row = _load_customer(uow, actor, customer_id, for_update=True)
    if row.archived_at is not None:
        raise DomainError("customer is archived", field="customer_id")
    if "owner_id" in data and data["owner_id"] != row.owner_id:
        raise CrmError("change the owner with POST /v1/customers/{id}/transfer", field="owner_id")
    if "pipeline_stage" in data and data["pipeline_stage"] != row.pipeline_stage:
        raise CrmError("move the stage with POST /v1/customers/{id}/stage", field="pipeline_stage")
    before = customer_view(uow, row)
    values = {k: v for k, v in data.items() if k in ("company", "industry", "source_channel", "notes")}
    if "company" in values:
        values["company"] = values["company"].strip()
        values["company_key"] = values["company"].lower()
    if "important_dates" in data:
        values["important_dates"] = _jsonable_dates(data["important_dates"])
    uow.session.execute(update(customers).where(customers.c.id == customer_id).values(**values, updated_at=now))
    _write_children(uow, customer_id, data)
    after = customer_view(uow, _load_customer(uow, actor, customer_id))
    changes = _diff(before, after)
    changes.pop("updated_at", None)
    if changes:
        uow.emit("customer.updated", customer_id, {**_snapshot(after), "changed_fields": sorted(changes)}, time=now)
        uow.audit(actor, "customer.updated", "customer", customer_id, changes)
    return after


def archive_customer(uow, actor: Principal, customer_id: str, now: datetime) -> dict:
    row = _load_customer(uow, actor, customer_id, for_update=True)
    if actor.role == "rep":
        raise Forbidden("only a manager or an admin archives customers")
    if row.archived_at is not None:
        raise Conflict("customer is already archived", field="customer_id")
    uow.session.execute(update(customers).where(customers.c.id == customer_id)
                        .values(archived_at=now, updated_at=now))
    uow.emit("customer.archived", customer_id,
             {"customer_id": customer_id, "owner_id": row.owner_id, "team": row.team, "archived_at": now}, time=now)
    uow.audit(actor, "customer.archived", "customer", customer_id, {"archived_at": now})
    return customer_view(uow, _load_customer(uow, actor, customer_id))


# ---------------------------------------------------------------- purchases & classification

def record_purchase(uow, actor: Principal, customer_id: str, data: dict, now: datetime,
                    policy: domain.ClassificationPolicy, reclassify_after: bool = True) -> dict:
    row = _load_customer(uow, actor, customer_id, for_update=True)
    if row.archived_at is not None:
        raise DomainError("customer is archived", field="customer_id")
    if data["purchased_at"] > now:
        raise CrmError("purchased_at cannot be in the future", field="purchased_at")
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
    uow.session.execute(update(customers).where(customers.c.id == customer_id).values(
        purchase_count=customers.c.purchase_count + 1,
        first_purchase_at=_earliest(row.first_purchase_at, data["purchased_at"]),
        last_purchase_at=_latest(row.last_purchase_at, data["purchased_at"]),
        updated_at=now,
    ))
    uow.emit("purchase.recorded", customer_id, {
        "customer_id": customer_id, "purchase_id": purchase["id"], "amount": amount, "currency": data["currency"],
        "amount_base": purchase["amount_base"], "base_currency": policy.base_currency,
        "purchased_at": data["purchased_at"], "owner_id": row.owner_id, "team": row.team,
    }, time=data["purchased_at"])
    uow.audit(actor, "purchase.recorded", "customer", customer_id, purchase)
    if reclassify_after:
        reclassify(uow, customer_id, now, policy, reason="purchase recorded")
    return purchase


def _earliest(a, b):
    return b if a is None or b < utc(a) else a


def _latest(a, b):
    return b if a is None or b > utc(a) else a


def list_purchases(uow, actor: Principal, customer_id: str) -> list[dict]:
    _load_customer(uow, actor, customer_id)
    rows = uow.session.execute(select(purchases).where(purchases.c.customer_id == customer_id)
                               .order_by(purchases.c.purchased_at.desc(), purchases.c.id))
    return [{"id": r.id, "amount": r.amount, "currency": r.currency, "amount_base": r.amount_base,
             "purchased_at": utc(r.purchased_at), "external_ref": r.external_ref, "recorded_by": r.recorded_by}
            for r in rows]


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


def _apply_classification(uow, row, purchased: tuple | None, as_of: datetime, policy, reason: str) -> None:
    """Classify as of as_of from what was known then: a past as_of replays history (demo, backfill)."""
    total, first, last = purchased or (Decimal(0), None, None)
    touched = utc(row.last_interaction_at)
    facts = domain.CustomerFacts(
        rolling_12m_total=total, first_purchase_at=first, last_purchase_at=last,
        last_interaction_at=touched if touched is not None and touched <= as_of else None,
        flagged_at_risk=row.flagged_at_risk)
    result = domain.classify(facts, as_of, policy)
    values = {}
    if Decimal(row.rolling_12m_total) != total:
        values["rolling_12m_total"] = total
    if result.tier != row.tier:
        values["tier"] = result.tier
        uow.emit("customer.tier_changed", row.id, {
            "customer_id": row.id, "old_tier": row.tier, "new_tier": result.tier, "rolling_12m_total": total,
            "owner_id": row.owner_id, "team": row.team, "as_of": as_of}, time=as_of)
        uow.session.execute(insert(classification_history).values(
            customer_id=row.id, attribute="tier", old_value=row.tier, new_value=result.tier,
            reason=f"{reason}: rolling 12-month total {total}", as_of=as_of))
    if result.lifecycle != row.lifecycle:
        values["lifecycle"] = result.lifecycle
        uow.emit("customer.lifecycle_changed", row.id, {
            "customer_id": row.id, "old_lifecycle": row.lifecycle, "new_lifecycle": result.lifecycle,
            "reason": f"{reason}: {result.reason}", "owner_id": row.owner_id, "team": row.team,
            "as_of": as_of}, time=as_of)
        uow.session.execute(insert(classification_history).values(
            customer_id=row.id, attribute="lifecycle", old_value=row.lifecycle, new_value=result.lifecycle,
            reason=f"{reason}: {result.reason}", as_of=as_of))
    if values:
        uow.session.execute(update(customers).where(customers.c.id == row.id).values(**values))


def reclassify(uow, customer_id: str, as_of: datetime, policy, reason: str) -> None:
    row = uow.session.execute(select(customers).where(customers.c.id == customer_id)).first()
    if row is None or row.archived_at is not None:
        return
    _apply_classification(uow, row, purchase_facts(uow, [customer_id], as_of).get(customer_id), as_of, policy, reason)


def sweep_batch(uow, after_id: str | None, as_of: datetime, policy, batch_size: int = 1000) -> str | None:
    """Reclassify the next batch of live customers by id; returns the last id or None when done."""
    query = select(customers).where(customers.c.archived_at.is_(None), customers.c.created_at <= as_of) \
        .order_by(customers.c.id).limit(batch_size)
    if after_id is not None:
        query = query.where(customers.c.id > after_id)
    rows = uow.session.execute(query.with_for_update(skip_locked=False)).all()
    if not rows:
        return None
    facts = purchase_facts(uow, [r.id for r in rows], as_of)
    for row in rows:
        _apply_classification(uow, row, facts.get(row.id), as_of, policy, reason="sweep")
    return rows[-1].id


def note_interaction(uow, customer_id: str, occurred_at: datetime, now: datetime, policy) -> bool:
    """A logged interaction (from followups) refreshes recency; False when the customer is unknown."""
    row = uow.session.execute(select(customers).where(customers.c.id == customer_id).with_for_update()).first()
    if row is None:
        return False
    if row.last_interaction_at is None or occurred_at > utc(row.last_interaction_at):
        uow.session.execute(update(customers).where(customers.c.id == customer_id)
                            .values(last_interaction_at=occurred_at))
        reclassify(uow, customer_id, now, policy, reason="interaction logged")
    return True


def set_risk_flag(uow, customer_id: str, flagged: bool, now: datetime, policy, reason: str) -> bool:
    row = uow.session.execute(select(customers).where(customers.c.id == customer_id).with_for_update()).first()
    if row is None:
        return False
    if row.flagged_at_risk != flagged:
        uow.session.execute(update(customers).where(customers.c.id == customer_id).values(flagged_at_risk=flagged))
        reclassify(uow, customer_id, now, policy, reason=reason)
    return True


def note_alert_resolved(uow, data: dict, now: datetime, policy) -> None:
    """The alerts service says whether the at-risk flag goes (no other alert still open)."""
    clears = data.get("clears_at_risk")
    if clears is None:
        clears = data["outcome"] == "recovered"
    if clears:
        set_risk_flag(uow, data["customer_id"], False, now, policy, reason=f"alert resolved as {data['outcome']}")


# ---------------------------------------------------------------- pipeline

def move_stage(uow, actor: Principal, customer_id: str, stage: str, changed_at: datetime | None,
               now: datetime) -> dict:
    row = _load_customer(uow, actor, customer_id, for_update=True)
    changed_at = changed_at or now
    if changed_at > now:
        raise CrmError("changed_at cannot be in the future", field="changed_at")
    last = uow.session.execute(select(func.max(stage_history.c.changed_at))
                               .where(stage_history.c.customer_id == customer_id)).scalar()
    if last is not None and changed_at < utc(last):
        raise CrmError("changed_at is before the previous stage change", field="changed_at")
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
    return customer_view(uow, _load_customer(uow, actor, customer_id))


def stage_timeline(uow, actor: Principal, customer_id: str) -> list[dict]:
    _load_customer(uow, actor, customer_id)
    rows = uow.session.execute(select(stage_history).where(stage_history.c.customer_id == customer_id)
                               .order_by(stage_history.c.changed_at, stage_history.c.id))
    return [{"from_stage": r.from_stage, "to_stage": r.to_stage, "changed_at": utc(r.changed_at),
             "changed_by": r.changed_by} for r in rows]


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


def _check_can_assign(actor: Principal, rep, field: str) -> None:
    if not rep.active:
        raise CrmError(f"rep {rep.id} is no longer active", field=field)
    if actor.role == "manager" and rep.team != actor.team:
        raise Forbidden(f"rep {rep.id} is not in your team", field=field)


def transfer_customer(uow, actor: Principal, customer_id: str, to_owner_id: str, reason: str,
                      now: datetime) -> dict:
    actor.require("manager", "admin")
    row = _load_customer(uow, actor, customer_id, for_update=True)
    to_rep = get_rep(uow, to_owner_id, field="to_owner_id")
    _check_can_assign(actor, to_rep, "to_owner_id")
    if row.owner_id == to_rep.id:
        raise Conflict(f"customer is already owned by {to_rep.id}", field="to_owner_id")
    _move_owner(uow, actor, row, to_rep, new_id("trf"), reason, now)
    return customer_view(uow, _load_customer(uow, actor, customer_id))


def handover(uow, actor: Principal, from_rep_id: str, data: dict, now: datetime) -> dict:
    """Move every customer of a (departing) rep to one rep or round-robin over a team, in one transaction."""
    actor.require("manager", "admin")
    from_rep = get_rep(uow, from_rep_id)
    if actor.role == "manager" and from_rep.team != actor.team:
        raise NotFound(f"rep {from_rep_id} not found")
    rows = uow.session.execute(select(customers).where(customers.c.owner_id == from_rep_id)
                               .order_by(customers.c.id).with_for_update()).all()
    if data.get("to_owner_id"):
        to_rep = get_rep(uow, data["to_owner_id"], field="to_owner_id")
        _check_can_assign(actor, to_rep, "to_owner_id")
        if to_rep.id == from_rep_id:
            raise CrmError("cannot hand over to the same rep", field="to_owner_id")
        targets = [to_rep] * len(rows)
    else:
        team = data["to_team"]
        if actor.role == "manager" and team != actor.team:
            raise Forbidden("managers hand over within their own team", field="to_team")
        members = {r.id: r for r in uow.session.execute(select(reps).where(
            reps.c.team == team, reps.c.active.is_(True), reps.c.role == "rep", reps.c.id != from_rep_id))}
        # locked: two hand-overs into one team take turns instead of picking the same reps
        cursor = uow.lock_or_create(team_cursors, {"team": team}).last_rep_id
        order = domain.round_robin(list(members), cursor, len(rows)) if rows else []
        targets = [members[rep_id] for rep_id in order]
        if order:
            uow.session.execute(update(team_cursors).where(team_cursors.c.team == team)
                                .values(last_rep_id=order[-1]))
    transfer_id = new_id("trf")
    moved: dict[str, int] = {}
    for row, to_rep in zip(rows, targets):
        _move_owner(uow, actor, row, to_rep, transfer_id, data.get("reason", ""), now)
        moved[to_rep.id] = moved.get(to_rep.id, 0) + 1
    if data.get("deactivate", True) and from_rep.active:
        uow.session.execute(update(reps).where(reps.c.id == from_rep_id).values(active=False))
        uow.emit("rep.updated", from_rep_id, _rep_event({**_rep_dict(from_rep), "active": False}), time=now)
        uow.audit(actor, "rep.deactivated", "rep", from_rep_id, {"active": [True, False]})
    return {"transfer_id": transfer_id, "from_rep_id": from_rep_id, "moved": len(rows), "by_new_owner": moved}


def customer_history(uow, actor: Principal, customer_id: str) -> dict:
    _load_customer(uow, actor, customer_id)
    audit = infrastructure["audit_log"]
    entries = uow.session.execute(select(audit).where(audit.c.entity == "customer", audit.c.entity_id == customer_id)
                                  .order_by(audit.c.id))
    owners = uow.session.execute(select(ownership_history).where(ownership_history.c.customer_id == customer_id)
                                 .order_by(ownership_history.c.id))
    classes = uow.session.execute(select(classification_history)
                                  .where(classification_history.c.customer_id == customer_id)
                                  .order_by(classification_history.c.id))
    return {
        "audit": [{"at": utc(e.at), "actor_id": e.actor_id, "actor_role": e.actor_role, "action": e.action,
                   "changes": e.changes} for e in entries],
        "ownership": [{"transfer_id": o.transfer_id, "from_owner_id": o.from_owner_id, "from_team": o.from_team,
                       "to_owner_id": o.to_owner_id, "to_team": o.to_team, "reason": o.reason,
                       "changed_at": utc(o.changed_at), "changed_by": o.changed_by} for o in owners],
        "classification": [{"attribute": c.attribute, "old_value": c.old_value, "new_value": c.new_value,
                            "reason": c.reason, "as_of": utc(c.as_of)} for c in classes],
        "stages": stage_timeline(uow, actor, customer_id),
    }


# ---------------------------------------------------------------- listing

SORT_COLUMNS = {"created_at": customers.c.created_at, "company": customers.c.company_key,
                "rolling_12m_total": customers.c.rolling_12m_total, "last_purchase_at": customers.c.last_purchase_at}


def _encode_cursor(sort: str, value, last_id: str) -> str:
    if isinstance(value, datetime):
        value = {"t": utc(value).isoformat()}
    elif isinstance(value, Decimal):
        value = {"d": str(value)}
    raw = json.dumps({"s": sort, "v": value, "id": last_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str):
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if raw["s"] != sort:
            raise ValueError("cursor was made for another sort")
        value = raw["v"]
        if isinstance(value, dict) and "t" in value:
            value = datetime.fromisoformat(value["t"])
        elif isinstance(value, dict) and "d" in value:
            value = Decimal(value["d"])
        return value, str(raw["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CrmError(f"invalid cursor: {exc}", field="cursor") from None


def list_customers(uow, actor: Principal, params: dict) -> dict:
    """Keyset pagination on (sort column, id): every page costs the same at any depth."""
    filters = [customers.c[k] == v for k, v in actor.scope().items()]
    for name, column in (("owner_id", "owner_id"), ("team", "team"), ("tier", "tier"), ("lifecycle", "lifecycle"),
                         ("stage", "pipeline_stage"), ("industry", "industry")):
        if name in params:
            filters.append(customers.c[column] == params[name])
    if not params.get("include_archived"):
        filters.append(customers.c.archived_at.is_(None))
    if "tag" in params:
        filters.append(select(customer_tags.c.customer_id).where(
            customer_tags.c.customer_id == customers.c.id, customer_tags.c.tag == params["tag"].lower()).exists())
    if "q" in params:
        needle = params["q"].lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        filters.append(customers.c.company_key.like(f"%{needle}%", escape="\\"))
    sort = params.get("sort", "created_at")
    descending = sort.startswith("-")
    column = SORT_COLUMNS[sort.lstrip("-")]
    sort_expr = column
    if column is customers.c.last_purchase_at:
        filters.append(column.is_not(None))  # sorting by last purchase lists customers who bought
    if params.get("cursor"):
        value, last_id = _decode_cursor(params["cursor"], sort)
        # a row-value comparison walks the (column, id) index directly
        position, after = tuple_(sort_expr, customers.c.id), tuple_(literal(value), literal(last_id))
        filters.append(position < after if descending else position > after)
    order = (sort_expr.desc(), customers.c.id.desc()) if descending else (sort_expr.asc(), customers.c.id.asc())
    limit = params.get("limit", 50)
    rows = uow.session.execute(select(customers, sort_expr.label("sort_value")).where(*filters)
                               .order_by(*order).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = _encode_cursor(sort, page[-1].sort_value, page[-1].id)
    return {"items": [_list_item(r) for r in page], "next_cursor": next_cursor}


def _list_item(row) -> dict:
    return {"id": row.id, "company": row.company, "industry": row.industry, "owner_id": row.owner_id,
            "team": row.team, "tier": row.tier, "lifecycle": row.lifecycle, "pipeline_stage": row.pipeline_stage,
            "rolling_12m_total": row.rolling_12m_total, "last_purchase_at": utc(row.last_purchase_at),
            "created_at": utc(row.created_at), "archived": row.archived_at is not None}


def _diff(before: dict, after: dict) -> dict:
    return {k: [before.get(k), after[k]] for k in after if before.get(k) != after[k]}
