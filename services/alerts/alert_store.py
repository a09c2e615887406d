"""Alert rows: reading them back as domain alerts, raising, resolving and moving them, with their events.

The open_key unique constraint ("<customer>:<rule>" while unresolved) is the last word on duplicates: if
another transaction (a replica, the sweep) raised the same alert first, our insert fails inside a savepoint
and that alert is dropped; the rest go on.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import Conflict, NotFound
from services.alerts import bulk, domain
from services.alerts.models import alerts, reps

SYSTEM_ACTOR = "system"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def as_alert(row) -> domain.Alert:
    return domain.Alert(
        alert_id=row.alert_id, customer_id=row.customer_id, rule=row.rule,
        signals=tuple(domain.Signal(s["name"], s.get("value"), s.get("threshold"), s.get("detail", ""))
                      for s in row.signals),
        raised_at=utc(row.raised_at), owner_id=row.owner_id, team=row.team, status=row.status,
        acknowledged_at=utc(row.acknowledged_at), acknowledged_by=row.acknowledged_by,
        escalated_at=utc(row.escalated_at), escalated_to=row.escalated_to, resolved_at=utc(row.resolved_at),
        resolved_by=row.resolved_by, outcome=row.outcome)


def alert_view(row) -> dict:
    return {
        "id": row.alert_id, "customer_id": row.customer_id, "rule": row.rule, "status": row.status,
        "signals": row.signals, "health_score": row.health_score, "owner_id": row.owner_id, "team": row.team,
        "trigger": row.trigger, "raised_at": utc(row.raised_at), "acknowledged_at": utc(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by, "escalated_at": utc(row.escalated_at),
        "escalated_to": row.escalated_to, "resolved_at": utc(row.resolved_at), "resolved_by": row.resolved_by,
        "outcome": row.outcome, "note": row.note or "",
    }


def event_fields(alert: domain.Alert) -> dict:
    return {"alert_id": alert.alert_id, "customer_id": alert.customer_id, "rule": alert.rule,
            "owner_id": alert.owner_id, "team": alert.team}


def load_alert(uow, actor: Principal, alert_id: str, for_update: bool = False):
    """The alert's row, or NotFound when it does not exist or is out of the actor's scope."""
    query = select(alerts).where(alerts.c.alert_id == alert_id)
    row = uow.session.execute(query.with_for_update() if for_update else query).first()
    if row is None or not actor.can_see(row.owner_id, row.team):
        raise NotFound(f"alert {alert_id} not found")
    return row


def transition(step):
    try:
        return step()
    except domain.DomainError as err:
        raise Conflict(err.reason, field=err.field) from None


def alert_state(uow, resolved_since: datetime, ids: list[str] | None = None,
                id_range: tuple[str, str] | None = None) -> tuple[dict[str, set], dict[str, dict]]:
    """Open rules per customer, and when each rule was last resolved since ``resolved_since`` (the re-alert
    cooldown), for the customers ``ids`` or those with ids in ``id_range`` (inclusive): one query."""
    of = alerts.c.customer_id.in_(ids) if ids is not None else alerts.c.customer_id.between(*id_range)
    rows = uow.session.execute(
        select(alerts.c.customer_id, alerts.c.rule, alerts.c.open_key, alerts.c.resolved_at)
        .where(of, or_(alerts.c.open_key.isnot(None), alerts.c.resolved_at >= resolved_since))).all()
    open_rules: dict[str, set] = {}
    resolved: dict[str, dict] = {}
    for r in rows:
        if r.open_key is not None:
            open_rules.setdefault(r.customer_id, set()).add(r.rule)
        else:
            at = utc(r.resolved_at)
            seen = resolved.setdefault(r.customer_id, {})
            if r.rule not in seen or at > seen[r.rule]:
                seen[r.rule] = at
    return open_rules, resolved


def new_alerts(signals: domain.CustomerSignals, to_raise: list, at: datetime, score: int | None,
               trigger) -> list[tuple]:
    """(alert, fired rule, row, lifecycle) for each rule to raise; ``trigger`` names what raised it, or maps a
    rule to the event that set it off."""
    out = []
    for rule in to_raise:
        alert = domain.raise_alert(new_id("alr"), signals.customer_id, rule, at, owner_id=signals.owner_id,
                                   team=signals.team)
        row = {"alert_id": alert.alert_id, "customer_id": alert.customer_id, "rule": alert.rule,
               "status": alert.status, "open_key": f"{alert.customer_id}:{alert.rule}", "signals": rule.signal_dicts(),
               "health_score": score, "owner_id": alert.owner_id, "team": alert.team,
               "trigger": trigger if isinstance(trigger, str) else trigger[rule.rule],
               "raised_at": at, "note": "", "updated_at": at}
        out.append((alert, rule, row, signals.lifecycle))
    return out


def insert_alerts(uow, candidates: list[tuple], cfg: domain.AlertsConfig) -> list[str]:
    """Insert the candidate alerts (one statement) and announce each (alert.raised); the ids raised."""
    if not candidates:
        return []
    try:
        with uow.session.begin_nested():
            bulk.write(uow, alerts, [c[2] for c in candidates])
        inserted = candidates
    except IntegrityError:  # someone raised one of them first: insert one by one, skipping theirs
        inserted = []
        for candidate in candidates:
            try:
                with uow.session.begin_nested():
                    uow.session.execute(insert(alerts), [candidate[2]])
                inserted.append(candidate)
            except IntegrityError:
                continue
    for alert, rule, row, lifecycle in inserted:
        commands = domain.commands_on_raise(alert, lifecycle, cfg.recall_due_in)
        recall = next((c for c in commands if isinstance(c, domain.RequestRecallTask)), None)
        uow.emit("alert.raised", alert.customer_id, {
            "alert_id": alert.alert_id, "customer_id": alert.customer_id, "rule": alert.rule,
            "owner_id": alert.owner_id, "team": alert.team, "signals": row["signals"],
            "health_score": row["health_score"], "raised_at": alert.raised_at, "recall": recall is not None,
            "recall_due_at": recall and recall.due_at, "recall_purpose": recall.purpose if recall else "",
            "flag_at_risk": any(isinstance(c, domain.FlagAtRisk) for c in commands),
            "trigger": row["trigger"]}, time=alert.raised_at)
    return [c[0].alert_id for c in inserted]


def resolve_row(uow, row, outcome: str, by: str, note: str, now: datetime) -> domain.Alert:
    at = max(now, utc(row.raised_at))
    done = transition(lambda: domain.resolve(as_alert(row), outcome, by, at))
    uow.session.execute(update(alerts).where(alerts.c.alert_id == row.alert_id).values(
        status=done.status, open_key=None, resolved_at=at, resolved_by=by, outcome=outcome,
        note=note or row.note or "", updated_at=now))
    others = uow.session.execute(select(func.count()).select_from(alerts).where(
        alerts.c.customer_id == row.customer_id, alerts.c.open_key.isnot(None))).scalar_one()
    clears = bool(domain.commands_on_resolve(done, others))
    uow.emit("alert.resolved", done.customer_id, {
        **event_fields(done), "outcome": outcome, "resolved_by": by, "resolved_at": at, "raised_at": done.raised_at,
        "clears_at_risk": clears, "open_alerts": others, "note": note or ""}, time=at)
    return done


def close_open_alerts(uow, customer_id: str, now: datetime, note: str) -> None:
    """An archived customer is gone: its open alerts close as lost (no at_risk flag is lifted)."""
    rows = uow.session.execute(select(alerts).where(alerts.c.customer_id == customer_id,
                                                    alerts.c.open_key.isnot(None))
                               .order_by(alerts.c.alert_id).with_for_update()).all()
    for row in rows:
        resolve_row(uow, row, "lost", SYSTEM_ACTOR, note, now)


def move_open_alerts(uow, moves: list[dict], now: datetime) -> None:
    """Open alerts follow their customers to the new owner (scope and escalation use the alert's owner);
    ``moves``: {"cid", "owner_id", "team"} each, one statement for all."""
    if moves:
        uow.session.execute(
            update(alerts).where(alerts.c.customer_id == bindparam("cid"), alerts.c.open_key.isnot(None))
            .values(owner_id=bindparam("new_owner"), team=bindparam("new_team"), updated_at=now),
            [{"cid": m["cid"], "new_owner": m["owner_id"], "new_team": m["team"]} for m in moves])


def managers_for(uow, owners: set[tuple]) -> dict[tuple, str | None]:
    """(owner_id, team) -> who an alert of theirs escalates to: the owner's manager from the reps directory;
    else an active manager of the team (the first by id); else nobody. Two queries for any number."""
    owner_ids = {owner for owner, _ in owners if owner}
    teams = {team for _, team in owners if team}
    managers = dict(uow.session.execute(select(reps.c.rep_id, reps.c.manager_id).where(
        reps.c.rep_id.in_(owner_ids), reps.c.manager_id.isnot(None))).all()) if owner_ids else {}
    team_managers: dict = {}
    if teams:
        for rep_id, team in uow.session.execute(
                select(reps.c.rep_id, reps.c.team).where(reps.c.team.in_(teams), reps.c.role == "manager",
                                                         reps.c.active.is_(True)).order_by(reps.c.rep_id)):
            team_managers.setdefault(team, rep_id)
    return {(owner, team): managers.get(owner) or team_managers.get(team) for owner, team in owners}
