"""What the HTTP API reads: alerts, their summary, a customer's health, the rules in effect. Read only."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, func, or_, select

from crm_common.auth import Principal
from crm_common.cursors import decode_cursor, encode_cursor
from crm_common.db import utc
from crm_common.errors import NotFound
from services.alerts import alert_store, customer_store, domain, rules_store
from services.alerts.models import alerts, customer_signals, health_history
from services.alerts.models import customer_health as health_rows

STATUSES = (domain.OPEN, domain.ACKNOWLEDGED, domain.ESCALATED, domain.RESOLVED)


def get_alert(uow, actor: Principal, alert_id: str) -> dict:
    return alert_store.alert_view(alert_store.load_alert(uow, actor, alert_id))


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
        raised_at, last_id = decode_cursor(params["cursor"], lambda key: (datetime.fromisoformat(key["t"]),
                                                                           str(key["id"])))
        filters.append(or_(alerts.c.raised_at < raised_at,
                           and_(alerts.c.raised_at == raised_at, alerts.c.alert_id < last_id)))
    limit = params.get("limit", 50)
    rows = uow.session.execute(select(alerts).where(*filters)
                               .order_by(alerts.c.raised_at.desc(), alerts.c.alert_id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    next_cursor = last and encode_cursor({"t": utc(last.raised_at).isoformat(), "id": last.alert_id})
    return {"items": [alert_store.alert_view(r) for r in page], "next_cursor": next_cursor}


def alert_queue(uow, actor: Principal, params: dict) -> dict:
    """One entry per customer with unresolved alerts, naming each alert, most value at stake first (keyset
    pagination on stake and customer id). Scope and filters follow the customer's owner and team now."""
    filters, stake = _queue_filters(actor, params), QUEUE_RANK
    if params.get("cursor"):
        last_stake, last_id = decode_cursor(params["cursor"], _queue_key)
        filters.append(or_(stake < last_stake, and_(stake == last_stake, customer_signals.c.customer_id > last_id)))
    limit = params.get("limit", 50)
    rows = uow.session.execute(
        select(customer_signals.c.customer_id, customer_signals.c.owner_id, customer_signals.c.team,
               customer_signals.c.tier, customer_signals.c.lifecycle, health_rows.c.score, health_rows.c.band,
               health_rows.c.revenue_12m, health_rows.c.stake, stake.label("rank"))
        .join(health_rows, health_rows.c.customer_id == customer_signals.c.customer_id)
        .where(*filters).order_by(stake.desc(), customer_signals.c.customer_id).limit(limit + 1)).all()
    page = rows[:limit]
    by_customer: dict[str, list] = {row.customer_id: [] for row in page}
    for alert in uow.session.execute(select(alerts).where(alerts.c.customer_id.in_(list(by_customer)),
                                                          alerts.c.open_key.isnot(None))
                                     .order_by(alerts.c.raised_at, alerts.c.alert_id)):
        by_customer[alert.customer_id].append(alert_store.alert_view(alert))
    items = [{"customer_id": r.customer_id, "owner_id": r.owner_id, "team": r.team, "tier": r.tier,
              "lifecycle": r.lifecycle, "health_score": r.score, "band": r.band,
              "revenue_12m": r.revenue_12m or Decimal(0), "risk": float(domain.risk_of(r.score)),
              "value_at_stake": r.stake if r.stake is not None else domain.value_at_stake(r.revenue_12m, r.score),
              "rules": [a["rule"] for a in by_customer[r.customer_id]], "alerts": by_customer[r.customer_id]}
             for r in page]
    next_cursor = encode_cursor({"s": str(page[-1].rank), "id": page[-1].customer_id}) if len(rows) > limit else None
    customers, at_stake = queue_totals(uow, actor, params)
    return {"items": items, "next_cursor": next_cursor, "customers": customers, "value_at_stake": at_stake}


QUEUE_RANK = func.coalesce(health_rows.c.stake, -1)  # not scored yet: last


def _queue_filters(actor: Principal, params: dict) -> list:
    unresolved = [alerts.c.customer_id == customer_signals.c.customer_id, alerts.c.open_key.isnot(None)]
    if "rule" in params:
        unresolved.append(alerts.c.rule == params["rule"])
    filters = [*_scope_filters(actor, customer_signals), select(alerts.c.alert_id).where(*unresolved).exists()]
    for name, column in (("team", "team"), ("rep", "owner_id"), ("tier", "tier")):
        if name in params:
            filters.append(customer_signals.c[column] == params[name])
    return filters


def queue_totals(uow, actor: Principal, params: dict | None = None) -> tuple[int, Decimal]:
    """How many customers the queue holds and the value they put at stake, in scope."""
    count, total = uow.session.execute(
        select(func.count(), func.coalesce(func.sum(health_rows.c.stake), 0))
        .select_from(customer_signals.join(health_rows, health_rows.c.customer_id == customer_signals.c.customer_id))
        .where(*_queue_filters(actor, params or {}))).one()
    return count, Decimal(str(total)).quantize(Decimal("0.01"))


def _queue_key(key: dict) -> tuple[Decimal, str]:
    stake = Decimal(key["s"])
    if not stake.is_finite():
        raise ValueError("not a number")
    return stake, str(key["id"])


def summary(uow, actor: Principal) -> dict:
    """Alert counts by rule and status, and customers by health band (as of their last evaluation), in scope."""
    rows = uow.session.execute(select(alerts.c.rule, alerts.c.status, func.count())
                               .where(*_scope_filters(actor, alerts)).group_by(alerts.c.rule, alerts.c.status)).all()
    by_rule = {rule: {status: 0 for status in STATUSES} for rule in domain.RULE_NAMES}
    for rule, status, count in rows:
        by_rule.setdefault(rule, {s: 0 for s in STATUSES})[status] = count
    # judged is the health row's copy of "known and not archived"; the signals rows are joined only for a scope
    bands = select(health_rows.c.band, func.count()).where(health_rows.c.judged.is_(True),
                                                           health_rows.c.band.isnot(None))
    scope = _scope_filters(actor, customer_signals)
    if scope:
        bands = bands.join(customer_signals, customer_signals.c.customer_id == health_rows.c.customer_id).where(*scope)
    bands = uow.session.execute(bands.group_by(health_rows.c.band)).all()
    by_status = {status: sum(counts[status] for counts in by_rule.values()) for status in STATUSES}
    return {"by_rule": by_rule, "by_status": by_status,
            "health_bands": {band: dict(bands).get(band, 0) for band in (domain.HEALTHY, domain.WATCH, domain.AT_RISK)}}


def _signal_summary(k: domain.Known, cfg: domain.AlertsConfig) -> dict:
    s = k.signals
    count, total = k.rolling_12m
    return {
        "days_since_last_purchase": k.days_since_last_purchase,
        "days_without_contact": k.days_without_contact,
        "last_contact_at": s.last_contact_at,
        "usual_purchase_interval_days": k.usual_interval,
        "purchases_12m": count, "value_12m": total,
        "unanswered_in_a_row": s.consecutive_unanswered,
        "open_complaints": k.open_complaint_ages,
        "latest_satisfaction": k.scores[-1] if k.scores else None,
        "satisfaction_drop": k.satisfaction_drop(cfg.rules.low_satisfaction.window),
        "missed_tasks_recent": k.missed_tasks_within(cfg.health.missed_task_window_days),
    }


def customer_health(uow, actor: Principal, customer_id: str, settings: domain.AlertsSettings, now: datetime,
                    as_of: datetime | None = None, history_limit: int = 50) -> dict:
    """The score with its breakdown as of ``as_of`` (default now: the sweep only writes it down on the days it
    can change band, so it is worked out here), the signals behind it, open alerts and the recorded history."""
    row = uow.session.execute(select(customer_signals)
                              .where(customer_signals.c.customer_id == customer_id)).first()
    if row is None or not row.known or not actor.can_see(row.owner_id, row.team):
        raise NotFound(f"customer {customer_id} not found")
    cfg = rules_store.current_config(uow, settings)
    at = as_of or now
    known = domain.Known(domain.signals_from_dict(row.signals), at)
    b = domain.health_breakdown(known.signals, at, cfg.health, cfg.rules, known)
    history = uow.session.execute(select(health_history).where(health_history.c.customer_id == customer_id)
                                  .order_by(health_history.c.id.desc()).limit(history_limit)).all()
    open_alerts = uow.session.execute(select(alerts).where(alerts.c.customer_id == customer_id,
                                                           alerts.c.open_key.isnot(None))
                                      .order_by(alerts.c.raised_at, alerts.c.alert_id)).all()
    return {
        "customer_id": customer_id, "owner_id": row.owner_id, "team": row.team, "tier": row.tier,
        "lifecycle": row.lifecycle, "archived": row.archived,
        "score": b.score, "band": domain.band(b.score, cfg.health.bands), "as_of": at,
        "breakdown": customer_store.breakdown_dict(b),
        "weights": domain.config_to_dict(cfg.health.weights),
        "signals": _signal_summary(known, cfg),
        "open_alerts": [alert_store.alert_view(a) for a in open_alerts],
        "history": [{"as_of": utc(h.as_of), "score": h.score, "band": h.band, "cause": h.cause,
                     "breakdown": {"recency": h.recency, "frequency": h.frequency, "monetary": h.monetary,
                                   "engagement": h.engagement}} for h in history],
    }


def get_rules(uow, settings: domain.AlertsSettings) -> dict:
    row = rules_store.stored(uow, rules_store.OVERRIDES)
    return {
        "config": domain.config_to_dict(rules_store.current_config(uow, settings)),
        "overrides": row.value if row else {},
        "environment": dict(settings.config_overrides),
        "version": row.version if row else 0,
        "updated_at": utc(row.updated_at) if row else None,
        "updated_by": row.updated_by if row else None,
        "rules": list(domain.RULE_NAMES),
    }
