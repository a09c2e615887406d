"""Use cases of the alerts service: one transaction each, events via the outbox.

Every function takes a unit of work (already entered), the acting principal where a person acts, and plain
data already validated by the schemas. Time always comes in as an argument (the service's clock or an
``as_of``), never from the system clock, so a history replays the same way as of a fixed day.

Evaluation policy (docs/alerts.md, "When rules are evaluated"):

* Every event folds its fact into the customer's signals and refreshes the current health score as of the
  clock's now, at once.
* A *live* fact event (interaction.logged, purchase.recorded, task.missed, task.completed dated within the
  live window, ALERTS_LIVE_WINDOW_HOURS, 48 h by default) also records the score in the history (emitting
  health.score_changed on a band change) and raises, as of now, the rules that such a fact can set off:
  interaction.logged -> unanswered_followups, low_satisfaction; purchase.recorded -> interval_lengthening.
* Everything else — time-based rules (silence, no_repurchase, open_complaint), backfilled history, profile
  changes — is judged by the sweep, which evaluates every rule for every live customer as of a given day.
  Events of one customer may arrive in any order across queues, so a partial history must never raise an
  alert; and the sweep, a pure function of the folded signals as of ``as_of``, gives the same alerts for the
  same history whatever order it arrived in.
"""
from __future__ import annotations

import base64
import json
import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import Conflict, CrmError, NotFound
from crm_common.subscriber import EventRejected
from services.alerts import domain
from services.alerts.models import alert_settings, alerts, customer_signals, health_history, reps

log = logging.getLogger(__name__)

SNAPSHOT_EVENTS = frozenset({"customer.created", "customer.updated"})
# live facts of these kinds raise, at once, the rules they can set off; the sweep raises everything else
EVENT_RULES = {
    "interaction.logged": frozenset({"unanswered_followups", "low_satisfaction"}),
    "purchase.recorded": frozenset({"interval_lengthening"}),
    "task.missed": frozenset(),
    "task.completed": frozenset(),
}
SYSTEM_ACTOR = "system"
STATUSES = (domain.OPEN, domain.ACKNOWLEDGED, domain.ESCALATED, domain.RESOLVED)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# ---------------------------------------------------------------- settings

def _stored_overrides(uow):
    return uow.session.execute(select(alert_settings).where(alert_settings.c.key == "overrides")).first()


_config_cache: dict = {}  # (id(settings), version) -> (settings, config): building a config validates it all


def current_config(uow, settings: domain.AlertsSettings) -> domain.AlertsConfig:
    """Defaults <- ALERTS_* environment <- overrides an admin stored with PUT /v1/alert-rules.

    Read in every unit of work (one primary-key look-up), so a PUT takes effect on every replica at once;
    the parsed config is cached per stored version."""
    row = _stored_overrides(uow)
    key = (id(settings), row.version if row else 0)
    cached = _config_cache.get(key)
    if cached is not None and cached[0] is settings:
        return cached[1]
    try:
        config = settings.config(row.value if row else None)
    except domain.DomainError as err:  # the environment changed under a stored override: keep running on env
        log.error("stored alert-rules overrides no longer valid (%s); using the environment's settings", err)
        config = settings.config()
    if len(_config_cache) > 64:
        _config_cache.clear()
    _config_cache[key] = (settings, config)
    return config


def get_rules(uow, settings: domain.AlertsSettings) -> dict:
    row = _stored_overrides(uow)
    return {
        "config": domain.config_to_dict(current_config(uow, settings)),
        "overrides": row.value if row else {},
        "environment": dict(settings.config_overrides),
        "version": row.version if row else 0,
        "updated_at": utc(row.updated_at) if row else None,
        "updated_by": row.updated_by if row else None,
        "rules": list(domain.RULE_NAMES),
    }


def put_rules(uow, actor: Principal, overrides: dict, settings: domain.AlertsSettings, now: datetime) -> dict:
    """Replace the runtime overrides (merged over the environment); 400 naming the dotted field at fault."""
    actor.require("admin")
    try:
        settings.config(overrides)
    except domain.DomainError as err:
        raise CrmError(err.reason, field=err.field or "body") from None
    row = uow.session.execute(select(alert_settings).where(alert_settings.c.key == "overrides")
                              .with_for_update()).first()
    if row is None:
        uow.session.execute(insert(alert_settings).values(key="overrides", value=overrides, version=1,
                                                          updated_at=now, updated_by=actor.user_id))
    else:
        uow.session.execute(update(alert_settings).where(alert_settings.c.key == "overrides").values(
            value=overrides, version=row.version + 1, updated_at=now, updated_by=actor.user_id))
    uow.audit(actor, "alert_rules.updated", "alert_rules", "overrides",
              {"before": row.value if row else {}, "after": overrides})
    return get_rules(uow, settings)


# ---------------------------------------------------------------- the read model, from events

def _newer(versions: dict, part: str, at: datetime) -> bool:
    seen = versions.get(part)
    return seen is None or at >= datetime.fromisoformat(seen)


def fold(signals: domain.CustomerSignals, versions: dict, event) -> tuple[domain.CustomerSignals, dict]:
    """Fold one event into the signals. Profile parts (tier, lifecycle, owner) keep the time of the fact that
    set them, so an older snapshot arriving late (another queue) never overwrites a newer change."""
    name, data, at = event.name, event.data, event.time
    versions = dict(versions)

    def take(part: str) -> bool:
        if _newer(versions, part, at):
            versions[part] = at.isoformat()
            return True
        return False

    if name in SNAPSHOT_EVENTS:
        changes = {"archived": signals.archived or bool(data.get("archived")),
                   "created_at": data.get("created_at") or signals.created_at}
        if take("tier"):
            changes["tier"] = data["tier"]
        if take("lifecycle"):
            changes["lifecycle"] = data["lifecycle"]
        if take("owner"):
            changes.update(owner_id=data.get("owner_id"), team=data.get("team"))
        return replace(signals, **changes), versions
    if name == "customer.archived":
        return domain.apply_archived(signals), versions
    if name == "customer.tier_changed":
        return (domain.apply_tier_changed(signals, data["new_tier"]) if take("tier") else signals), versions
    if name == "customer.lifecycle_changed":
        return (domain.apply_lifecycle_changed(signals, data["new_lifecycle"]) if take("lifecycle")
                else signals), versions
    if name == "customer.owner_changed":
        return (domain.apply_owner_changed(signals, data["new_owner_id"], data.get("new_team")) if take("owner")
                else signals), versions
    folded = domain.apply_event(signals, name, data)
    if name == "purchase.recorded" and "owner" not in versions and data.get("owner_id"):
        folded = replace(folded, owner_id=data["owner_id"], team=data.get("team"))  # until a snapshot says
    return folded, versions


def _lock_signals(uow, customer_id: str, now: datetime):
    """The customer's row, locked (SELECT ... FOR UPDATE) so concurrent events of one customer serialise;
    created first when this is the first event about the customer."""
    query = select(customer_signals).where(customer_signals.c.customer_id == customer_id).with_for_update()
    row = uow.session.execute(query).first()
    if row is not None:
        return row
    try:
        with uow.session.begin_nested():
            uow.session.execute(insert(customer_signals).values(
                customer_id=customer_id, signals=domain.signals_to_dict(domain.CustomerSignals(customer_id)),
                profile_versions={}, known=False, archived=False, updated_at=now))
    except IntegrityError:
        pass  # another transaction created it first; the select below waits for its lock
    return uow.session.execute(query).first()


def is_live(event, now: datetime, settings: domain.AlertsSettings) -> bool:
    return event.time >= now - timedelta(hours=settings.live_window_hours)


def apply_customer_event(uow, event, settings: domain.AlertsSettings, now: datetime) -> dict:
    """Fold a customers/followups event into the customer's signals, rescore, and raise what it sets off."""
    customer_id = event.data.get("customer_id")
    if event.subject != customer_id:
        raise EventRejected(f"subject {event.subject!r} is not the payload's customer_id {customer_id!r}")
    row = _lock_signals(uow, customer_id, now)
    before = domain.signals_from_dict(row.signals)
    try:
        signals, versions = fold(before, row.profile_versions or {}, event)
    except (domain.DomainError, KeyError, TypeError, ValueError) as err:
        raise EventRejected(f"cannot fold {event.name}: {err}") from None
    known = row.known or event.name in SNAPSHOT_EVENTS
    last_fact = utc(row.last_fact_at)
    values = {
        "signals": domain.signals_to_dict(signals), "profile_versions": versions, "known": known,
        "owner_id": signals.owner_id, "team": signals.team, "tier": signals.tier, "lifecycle": signals.lifecycle,
        "archived": signals.archived, "updated_at": now,
        "last_fact_at": event.time if last_fact is None or event.time > last_fact else last_fact,
    }
    result = {"customer_id": customer_id, "raised": [], "score": row.score}
    if (signals.owner_id, signals.team) != (before.owner_id, before.team):
        _move_open_alerts(uow, customer_id, signals.owner_id, signals.team, now)
    if signals.archived and not before.archived:
        _close_open_alerts(uow, customer_id, now, note="customer archived", lifecycle=signals.lifecycle)
    if known and not signals.archived:
        cfg = current_config(uow, settings)
        breakdown = domain.health_breakdown(signals, now, cfg.health, cfg.rules)
        values.update(_score_values(breakdown, cfg, now))
        result["score"] = breakdown.score
        if event.name in EVENT_RULES and is_live(event, now, settings):
            if _record_score(uow, signals, row.recorded_score, breakdown, cfg, now, cause=event.name):
                values["recorded_score"] = breakdown.score
            wanted = EVENT_RULES[event.name]
            fired = [f for f in domain.evaluate(signals, cfg.rules, now) if f.rule in wanted]
            if fired:
                open_rules, resolved = _alert_state(uow, [customer_id], now - cfg.realert_cooldown)
                result["raised"] = _raise_alerts(uow, signals, fired, now, breakdown.score, event.name, cfg,
                                                 open_rules.get(customer_id, set()), resolved.get(customer_id))
    # bound parameters, not literal values: one cached statement per set of columns
    uow.session.execute(update(customer_signals).where(customer_signals.c.customer_id == bindparam("cid")),
                        [{"cid": customer_id, **values}])
    return result


def apply_rep_event(uow, event, now: datetime) -> bool:
    """rep.registered / rep.updated: the directory escalations use (the newest version wins)."""
    data = event.data
    if event.subject != data["rep_id"]:
        raise EventRejected(f"subject {event.subject!r} is not the payload's rep_id {data['rep_id']!r}")
    values = {k: data.get(k) for k in ("name", "team", "role", "manager_id", "active")}
    row = uow.session.execute(select(reps).where(reps.c.rep_id == data["rep_id"]).with_for_update()).first()
    if row is None:
        try:
            with uow.session.begin_nested():
                uow.session.execute(insert(reps).values(rep_id=data["rep_id"], as_of=event.time, **values))
            return True
        except IntegrityError:
            row = uow.session.execute(select(reps).where(reps.c.rep_id == data["rep_id"]).with_for_update()).first()
    if event.time < utc(row.as_of):
        return False  # an older version arriving late
    uow.session.execute(update(reps).where(reps.c.rep_id == data["rep_id"]).values(as_of=event.time, **values))
    return True


# ---------------------------------------------------------------- scores

def _breakdown_dict(b: domain.HealthBreakdown) -> dict:
    return {"recency": b.recency, "frequency": b.frequency, "monetary": b.monetary, "engagement": b.engagement}


def _score_values(b: domain.HealthBreakdown, cfg: domain.AlertsConfig, at: datetime) -> dict:
    return {"score": b.score, "band": domain.band(b.score, cfg.health.bands), "breakdown": _breakdown_dict(b),
            "scored_at": at}


def _score_change(signals: domain.CustomerSignals, previous: int | None, b: domain.HealthBreakdown,
                  cfg: domain.AlertsConfig, at: datetime, cause: str) -> tuple[dict | None, dict | None]:
    """(history row, health.score_changed payload) when the score moved since the last recorded one; the
    payload only when it crossed into another band."""
    if previous == b.score:
        return None, None
    row = {"customer_id": signals.customer_id, "as_of": at, "score": b.score,
           "band": domain.band(b.score, cfg.health.bands), "cause": cause, "recorded_at": at, **_breakdown_dict(b)}
    change = domain.band_change(previous, b.score, cfg.health.bands)
    payload = None if change is None else {
        "customer_id": signals.customer_id, "old_score": previous, "new_score": b.score, "old_band": change.old_band,
        "new_band": change.new_band, "owner_id": signals.owner_id, "team": signals.team, "as_of": at}
    return row, payload


def _record_score(uow, signals: domain.CustomerSignals, previous: int | None, b: domain.HealthBreakdown,
                  cfg: domain.AlertsConfig, at: datetime, cause: str) -> bool:
    """A history row when the score moved since the last recorded one; health.score_changed on a band move."""
    row, payload = _score_change(signals, previous, b, cfg, at, cause)
    if row is None:
        return False
    uow.session.execute(insert(health_history), [row])
    if payload is not None:
        uow.emit("health.score_changed", signals.customer_id, payload, time=at)
    return True


# ---------------------------------------------------------------- raising alerts

def _alert_state(uow, customer_ids: list[str], resolved_since: datetime):
    """Open rules per customer, and when each rule was last resolved (for the re-alert cooldown)."""
    rows = uow.session.execute(
        select(alerts.c.customer_id, alerts.c.rule, alerts.c.open_key, alerts.c.resolved_at)
        .where(alerts.c.customer_id.in_(customer_ids),
               or_(alerts.c.open_key.isnot(None), alerts.c.resolved_at >= resolved_since))).all()
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


def _new_alerts(signals: domain.CustomerSignals, fired: list, at: datetime, score: int | None, trigger: str,
                cfg: domain.AlertsConfig, open_rules: set, resolved_at_by_rule: dict | None) -> list[tuple]:
    """(alert, fired rule, row) for each fired rule with no open alert (nor one resolved within the cooldown)."""
    out = []
    for rule in domain.alerts_to_raise(fired, open_rules, resolved_at_by_rule=resolved_at_by_rule or None,
                                       as_of=at, cooldown=cfg.realert_cooldown):
        alert = domain.raise_alert(new_id("alr"), signals.customer_id, rule, at, owner_id=signals.owner_id,
                                   team=signals.team)
        row = {"alert_id": alert.alert_id, "customer_id": alert.customer_id, "rule": alert.rule,
               "status": alert.status, "open_key": f"{alert.customer_id}:{alert.rule}", "signals": rule.signal_dicts(),
               "health_score": score, "owner_id": alert.owner_id, "team": alert.team, "trigger": trigger,
               "raised_at": at, "note": "", "updated_at": at}
        out.append((alert, rule, row, signals.lifecycle))
    return out


def _insert_alerts(uow, candidates: list[tuple], cfg: domain.AlertsConfig) -> list[str]:
    """Insert and announce (alert.raised) the candidate alerts; returns the ids raised.

    The open_key unique constraint is the last word: if another transaction (a replica, the sweep) raised the
    same alert first, the insert fails inside a savepoint and that alert is dropped; the rest go on."""
    if not candidates:
        return []
    try:
        with uow.session.begin_nested():
            uow.session.execute(insert(alerts), [c[2] for c in candidates])
        inserted = candidates
    except IntegrityError:
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
        recall = next(c for c in commands if isinstance(c, domain.RequestRecallTask))
        uow.emit("alert.raised", alert.customer_id, {
            "alert_id": alert.alert_id, "customer_id": alert.customer_id, "rule": alert.rule,
            "owner_id": alert.owner_id, "team": alert.team, "signals": row["signals"],
            "health_score": row["health_score"], "raised_at": alert.raised_at, "recall_due_at": recall.due_at,
            "recall_purpose": recall.purpose, "flag_at_risk": any(isinstance(c, domain.FlagAtRisk) for c in commands),
            "trigger": row["trigger"]}, time=alert.raised_at)
    return [c[0].alert_id for c in inserted]


def _raise_alerts(uow, signals: domain.CustomerSignals, fired: list, at: datetime, score: int | None,
                  trigger: str, cfg: domain.AlertsConfig, open_rules: set, resolved_at_by_rule: dict | None) -> list:
    """Raise one alert per fired rule that has none open (and was not resolved within the cooldown)."""
    return _insert_alerts(uow, _new_alerts(signals, fired, at, score, trigger, cfg, open_rules, resolved_at_by_rule),
                          cfg)


# ---------------------------------------------------------------- the sweep

def sweep_batch(uow, after_id: str | None, as_of: datetime, cfg: domain.AlertsConfig, batch_size: int,
                stats: dict) -> str | None:
    """Rescore and evaluate every rule, as of ``as_of``, for the next batch of live customers (by id).

    Returns the last id, or None when there is nothing left. Deterministic: the same signals and alerts as of
    the same day give the same result."""
    query = (select(customer_signals)
             .where(customer_signals.c.known.is_(True), customer_signals.c.archived.is_(False))
             .order_by(customer_signals.c.customer_id).limit(batch_size).with_for_update())
    if after_id is not None:
        query = query.where(customer_signals.c.customer_id > after_id)
    rows = uow.session.execute(query).all()
    if not rows:
        return None
    open_rules, resolved = _alert_state(uow, [r.customer_id for r in rows], as_of - cfg.realert_cooldown)
    changed, history, band_moves, candidates = [], [], [], []
    for row in rows:
        signals = domain.signals_from_dict(row.signals)
        breakdown = domain.health_breakdown(signals, as_of, cfg.health, cfg.rules)
        recorded = row.recorded_score
        history_row, band_move = _score_change(signals, recorded, breakdown, cfg, as_of, cause="sweep")
        if history_row is not None:
            history.append(history_row)
            recorded = breakdown.score
            if band_move is not None:
                band_moves.append(band_move)
        values = _score_values(breakdown, cfg, as_of)
        if (values["score"], values["breakdown"], recorded) != (row.score, row.breakdown, row.recorded_score) \
                or utc(row.scored_at) != as_of:
            changed.append({"cid": row.customer_id, "recorded_score": recorded, **values})
        fired = domain.evaluate(signals, cfg.rules, as_of)
        if fired:
            candidates += _new_alerts(signals, fired, as_of, breakdown.score, "sweep", cfg,
                                      open_rules.get(row.customer_id, set()), resolved.get(row.customer_id))
    if history:
        uow.session.execute(insert(health_history), history)
    for payload in band_moves:
        uow.emit("health.score_changed", payload["customer_id"], payload, time=as_of)
    raised = _insert_alerts(uow, candidates, cfg)
    if changed:
        uow.session.execute(
            update(customer_signals).where(customer_signals.c.customer_id == bindparam("cid"))
            .values(score=bindparam("score"), band=bindparam("band"), breakdown=bindparam("breakdown"),
                    scored_at=bindparam("scored_at"), recorded_score=bindparam("recorded_score")),
            changed)
    stats["scores_changed"] = stats.get("scores_changed", 0) + len(history)
    stats["alerts_raised"] = stats.get("alerts_raised", 0) + len(raised)
    stats["customers"] = stats.get("customers", 0) + len(rows)
    return rows[-1].customer_id


# ---------------------------------------------------------------- lifecycle: escalate, acknowledge, resolve

def _alert(row) -> domain.Alert:
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


def _fields(alert: domain.Alert) -> dict:
    return {"alert_id": alert.alert_id, "customer_id": alert.customer_id, "rule": alert.rule,
            "owner_id": alert.owner_id, "team": alert.team}


def _load_alert(uow, actor: Principal, alert_id: str, for_update: bool = False):
    query = select(alerts).where(alerts.c.alert_id == alert_id)
    if for_update:
        query = query.with_for_update()
    row = uow.session.execute(query).first()
    if row is None or not actor.can_see(row.owner_id, row.team):
        raise NotFound(f"alert {alert_id} not found")
    return row


def _transition(step):
    try:
        return step()
    except domain.DomainError as err:
        raise Conflict(err.reason, field=err.field) from None


def manager_for(uow, owner_id: str | None, team: str | None) -> str | None:
    """The owner's manager from the reps directory; else an active manager of the team; else nobody."""
    if owner_id:
        owner = uow.session.execute(select(reps.c.manager_id).where(reps.c.rep_id == owner_id)).first()
        if owner is not None and owner.manager_id:
            return owner.manager_id
    if team:
        return uow.session.execute(
            select(reps.c.rep_id).where(reps.c.team == team, reps.c.role == "manager", reps.c.active.is_(True))
            .order_by(reps.c.rep_id).limit(1)).scalar()
    return None


def escalate_due(uow, as_of: datetime, cfg: domain.AlertsConfig, batch_size: int = 500) -> int:
    """Escalate the next batch of alerts still open escalate_after after they were raised; how many."""
    rows = uow.session.execute(
        select(alerts).where(alerts.c.status == domain.OPEN, alerts.c.raised_at <= as_of - cfg.escalate_after)
        .order_by(alerts.c.raised_at, alerts.c.alert_id).limit(batch_size).with_for_update(skip_locked=True)).all()
    for row in rows:
        to = manager_for(uow, row.owner_id, row.team)
        done = domain.escalate(_alert(row), as_of, cfg.escalate_after, to=to)
        uow.session.execute(update(alerts).where(alerts.c.alert_id == row.alert_id).values(
            status=done.status, escalated_at=as_of, escalated_to=to, updated_at=as_of))
        uow.emit("alert.escalated", done.customer_id, {
            **_fields(done), "escalated_to": to, "escalated_at": as_of, "raised_at": done.raised_at}, time=as_of)
    return len(rows)


def acknowledge(uow, actor: Principal, alert_id: str, note: str | None, now: datetime) -> dict:
    row = _load_alert(uow, actor, alert_id, for_update=True)
    done = _transition(lambda: domain.acknowledge(_alert(row), actor.user_id, now))
    values = {"status": done.status, "acknowledged_at": now, "acknowledged_by": actor.user_id, "updated_at": now}
    if note:
        values["note"] = note
    uow.session.execute(update(alerts).where(alerts.c.alert_id == alert_id).values(**values))
    uow.emit("alert.acknowledged", done.customer_id, {
        **_fields(done), "acknowledged_by": actor.user_id, "acknowledged_at": now, "note": note or ""}, time=now)
    uow.audit(actor, "alert.acknowledged", "alert", alert_id, {"status": [row.status, done.status]})
    return alert_view(_load_alert(uow, actor, alert_id))


def _resolve(uow, row, outcome: str, by: str, note: str, now: datetime, lifecycle: str | None) -> domain.Alert:
    at = max(now, utc(row.raised_at))
    done = _transition(lambda: domain.resolve(_alert(row), outcome, by, at))
    uow.session.execute(update(alerts).where(alerts.c.alert_id == row.alert_id).values(
        status=done.status, open_key=None, resolved_at=at, resolved_by=by, outcome=outcome,
        note=note or row.note or "", updated_at=now))
    others = uow.session.execute(select(func.count()).select_from(alerts).where(
        alerts.c.customer_id == row.customer_id, alerts.c.open_key.isnot(None))).scalar_one()
    clears = bool(domain.commands_on_resolve(done, others, lifecycle))
    uow.emit("alert.resolved", done.customer_id, {
        **_fields(done), "outcome": outcome, "resolved_by": by, "resolved_at": at, "raised_at": done.raised_at,
        "clears_at_risk": clears, "open_alerts": others, "note": note or ""}, time=at)
    return done


def resolve(uow, actor: Principal, alert_id: str, outcome: str, note: str | None, now: datetime) -> dict:
    row = _load_alert(uow, actor, alert_id, for_update=True)
    lifecycle = uow.session.execute(select(customer_signals.c.lifecycle)
                                    .where(customer_signals.c.customer_id == row.customer_id)).scalar()
    _resolve(uow, row, outcome, actor.user_id, note or "", now, lifecycle)
    uow.audit(actor, "alert.resolved", "alert", alert_id, {"status": [row.status, "resolved"], "outcome": outcome})
    return alert_view(_load_alert(uow, actor, alert_id))


def _close_open_alerts(uow, customer_id: str, now: datetime, note: str, lifecycle: str | None) -> None:
    """An archived customer is gone: its open alerts close as lost (no at_risk flag is lifted)."""
    rows = uow.session.execute(select(alerts).where(alerts.c.customer_id == customer_id,
                                                    alerts.c.open_key.isnot(None))
                               .order_by(alerts.c.alert_id).with_for_update()).all()
    for row in rows:
        _resolve(uow, row, "lost", SYSTEM_ACTOR, note, now, lifecycle)


def _move_open_alerts(uow, customer_id: str, owner_id: str | None, team: str | None, now: datetime) -> None:
    """Open alerts follow the customer to its new owner (scope and escalation use the alert's owner)."""
    uow.session.execute(update(alerts).where(alerts.c.customer_id == customer_id, alerts.c.open_key.isnot(None))
                        .values(owner_id=owner_id, team=team, updated_at=now))


# ---------------------------------------------------------------- reading

def get_alert(uow, actor: Principal, alert_id: str) -> dict:
    return alert_view(_load_alert(uow, actor, alert_id))


def _encode_cursor(raised_at: datetime, alert_id: str) -> str:
    raw = json.dumps({"t": utc(raised_at).isoformat(), "id": alert_id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(raw["t"]), str(raw["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CrmError(f"invalid cursor: {exc}", field="cursor") from None


def _scope_filters(actor: Principal, table) -> list:
    return [table.c[k] == v for k, v in actor.scope().items()]


def list_alerts(uow, actor: Principal, params: dict) -> dict:
    """Newest first; keyset pagination on (raised_at, alert_id) so every page costs the same."""
    filters = _scope_filters(actor, alerts)
    for name in ("owner_id", "team", "rule", "customer_id"):
        if name in params:
            filters.append(alerts.c[name] == params[name])
    status = params.get("status")
    if status == "unresolved":
        filters.append(alerts.c.status != domain.RESOLVED)
    elif status:
        filters.append(alerts.c.status == status)
    if params.get("cursor"):
        raised_at, last_id = _decode_cursor(params["cursor"])
        filters.append(or_(alerts.c.raised_at < raised_at,
                           and_(alerts.c.raised_at == raised_at, alerts.c.alert_id < last_id)))
    limit = params.get("limit", 50)
    rows = uow.session.execute(select(alerts).where(*filters)
                               .order_by(alerts.c.raised_at.desc(), alerts.c.alert_id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1].raised_at, page[-1].alert_id) if len(rows) > limit else None
    return {"items": [alert_view(r) for r in page], "next_cursor": next_cursor}


def summary(uow, actor: Principal) -> dict:
    """Alert counts by rule and status, and customers by health band, within the caller's scope."""
    rows = uow.session.execute(select(alerts.c.rule, alerts.c.status, func.count())
                               .where(*_scope_filters(actor, alerts)).group_by(alerts.c.rule, alerts.c.status)).all()
    by_rule = {rule: {status: 0 for status in STATUSES} for rule in domain.RULE_NAMES}
    for rule, status, count in rows:
        by_rule.setdefault(rule, {s: 0 for s in STATUSES})[status] = count
    bands = uow.session.execute(
        select(customer_signals.c.band, func.count())
        .where(customer_signals.c.known.is_(True), customer_signals.c.archived.is_(False),
               customer_signals.c.band.isnot(None), *_scope_filters(actor, customer_signals))
        .group_by(customer_signals.c.band)).all()
    by_status = {status: sum(counts[status] for counts in by_rule.values()) for status in STATUSES}
    return {"by_rule": by_rule, "by_status": by_status,
            "health_bands": {band: dict(bands).get(band, 0) for band in (domain.HEALTHY, domain.WATCH, domain.AT_RISK)}}


def _signal_summary(s: domain.CustomerSignals, as_of: datetime, cfg: domain.AlertsConfig) -> dict:
    scores = domain.scores_until(s, as_of)
    count, total = domain.rolling_12m(s, as_of)
    return {
        "days_since_last_purchase": domain.days_since_last_purchase(s, as_of),
        "days_without_contact": domain.days_without_contact(s, as_of),
        "last_contact_at": s.last_contact_at,
        "usual_purchase_interval_days": domain.usual_purchase_interval(s, as_of),
        "purchases_12m": count, "value_12m": total,
        "unanswered_in_a_row": s.consecutive_unanswered,
        "open_complaints": domain.open_complaint_ages(s, as_of),
        "latest_satisfaction": scores[-1] if scores else None,
        "satisfaction_drop": domain.satisfaction_drop(s, as_of, cfg.rules.low_satisfaction.window),
        "missed_tasks_recent": domain.missed_tasks_within(s, as_of, cfg.health.missed_task_window_days),
    }


def customer_health(uow, actor: Principal, customer_id: str, settings: domain.AlertsSettings, now: datetime,
                    as_of: datetime | None = None, history_limit: int = 50) -> dict:
    """The stored score with its breakdown and history; with ``as_of``, the score computed as of that day
    (read only: nothing is recorded)."""
    row = uow.session.execute(select(customer_signals)
                              .where(customer_signals.c.customer_id == customer_id)).first()
    if row is None or not row.known or not actor.can_see(row.owner_id, row.team):
        raise NotFound(f"customer {customer_id} not found")
    cfg = current_config(uow, settings)
    signals = domain.signals_from_dict(row.signals)
    if as_of is not None or row.score is None:
        at = as_of or now
        b = domain.health_breakdown(signals, at, cfg.health, cfg.rules)
        score, band, breakdown = b.score, domain.band(b.score, cfg.health.bands), _breakdown_dict(b)
    else:
        at, score, band, breakdown = utc(row.scored_at), row.score, row.band, row.breakdown
    history = uow.session.execute(select(health_history).where(health_history.c.customer_id == customer_id)
                                  .order_by(health_history.c.id.desc()).limit(history_limit)).all()
    open_alerts = uow.session.execute(select(alerts).where(alerts.c.customer_id == customer_id,
                                                           alerts.c.open_key.isnot(None))
                                      .order_by(alerts.c.raised_at, alerts.c.alert_id)).all()
    return {
        "customer_id": customer_id, "owner_id": row.owner_id, "team": row.team, "tier": row.tier,
        "lifecycle": row.lifecycle, "archived": row.archived,
        "score": score, "band": band, "as_of": at, "breakdown": breakdown,
        "weights": domain.config_to_dict(cfg.health.weights),
        "signals": _signal_summary(signals, at, cfg),
        "open_alerts": [alert_view(a) for a in open_alerts],
        "history": [{"as_of": utc(h.as_of), "score": h.score, "band": h.band, "cause": h.cause,
                     "breakdown": {"recency": h.recency, "frequency": h.frequency, "monetary": h.monetary,
                                   "engagement": h.engagement}} for h in history],
    }
