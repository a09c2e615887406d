"""The reps directory and who owns which customer: registering and changing reps, transfers and a departing
rep's hand-over. One transaction each, events via the outbox."""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import insert, select, update

from crm_common.auth import SYSTEM, Principal
from crm_common.errors import Conflict
from services.customers import domain, queries
from services.customers.models import customers, ownership_history, reps, team_cursors
from services.customers.views import load_customer, load_rep, rep_event, rep_view
from services.customers.commands.records import _diff, new_id

HANDOVER_PREVIEW_ROWS = 500  # customers listed by a hand-over dry run (all are counted)


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
    if data.get("dry_run"):  # the caller does not commit: the round-robin cursor stays where it was
        return {"dry_run": True, "from_rep_id": from_rep_id, "moved": len(rows),
                "by_new_owner": dict(Counter(to_rep.id for to_rep in targets)),
                "deactivate": bool(data.get("deactivate", True)) and from_rep.active,
                "customers": [{"customer_id": row.id, "company": row.company, "to_owner_id": to_rep.id}
                              for row, to_rep in list(zip(rows, targets))[:HANDOVER_PREVIEW_ROWS]]}
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
