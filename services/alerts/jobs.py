"""The alerts service's periodic work: the sweep (every rule and the score, as of a moment) and escalation.

The sweep judges customers a page at a time: one query for a page of customers with their health, one for
their alerts, the pure domain functions for each, and one statement per table for what changed (health rows,
history, alerts). A customer's verdict changes with time alone only on days the domain can name
(domain/judgement.py: thresholds, window expiries, the score sliding to a band edge, cooldowns ending), so
each judgement stores the next of them, next_check_at, and the daily sweep judges only the customers due
(a new fact makes a customer due at once). It judges everyone when the rules changed since the last sweep,
or when sweeping as of an earlier moment than the last one.
"""
from __future__ import annotations

import gc
import json
import time
from contextlib import contextmanager
from datetime import datetime

import eventlet

from sqlalchemy import select, update

from crm_common import metrics
from crm_common.auth import Principal
from services.alerts import alert_store, customer_store, domain, queries, rules_store
from services.alerts.models import alerts, reps

SERVICE = "alerts"
SWEEP_WORKERS = 2


def run_sweep(store, settings: domain.AlertsSettings, as_of: datetime, now: datetime,
              only_due: bool | None = None) -> dict:
    """Judge every customer due by ``as_of`` (all of them with ``only_due=False``), then escalate."""
    started = time.perf_counter()
    with store() as uow:
        cfg = rules_store.current_config(uow, settings)
        if only_due is None:
            only_due = rules_store.only_due_customers(uow, cfg, as_of)
        if not only_due:  # a read model written straight into customer_signals is swept from the next full sweep on
            customer_store.add_missing_health_rows(uow)
        pages = customer_store.page_bounds(uow, as_of, only_due, settings.sweep_batch_size)
        uow.commit()
    stats = {"customers": 0, "alerts_raised": 0, "scores_changed": 0}
    # two pages at a time: one is worked out in Python while the other waits on the database
    pool = eventlet.GreenPool(SWEEP_WORKERS)
    try:
        for _ in pool.imap(lambda page: store.run(sweep_page, *page, as_of, cfg, only_due, stats), pages):
            pass
    finally:
        pool.waitall()
    store.run(rules_store.record_sweep, cfg, as_of, now)
    stats["escalated"] = run_escalation(store, settings, as_of, cfg)
    seconds = time.perf_counter() - started
    metrics.JOB_DURATION.labels(SERVICE, "alerts-sweep").observe(seconds)
    return {"as_of": as_of, "batches": len(pages), **stats, "seconds": round(seconds, 3)}


def sweep_page(uow, after: str | None, up_to: str | None, as_of: datetime, cfg: domain.AlertsConfig,
               only_due: bool, stats: dict) -> None:
    """Judge the customers of one page (ids in (after, up_to]) as of ``as_of``. Deterministic: the same
    signals and alerts as of the same day give the same result."""
    rows = customer_store.lock_page(uow, after, up_to, as_of, only_due)
    if not rows:
        return
    open_rules, resolved = alert_store.alert_state(uow, as_of - cfg.realert_cooldown,
                                                   ids=[r.customer_id for r in rows])
    health_rows, history, band_moves, candidates = [], [], [], []
    with _no_cycle_collection():
        for row in rows:
            cid = row.customer_id
            signals = domain.signals_from_dict(json.loads(row.signals))
            verdict = domain.judge(signals, as_of, cfg, open_rules.get(cid, ()), resolved.get(cid), schedule=True)
            b = verdict.breakdown
            health = customer_store.scored({"customer_id": cid, "judged": True, "recorded_score": row.recorded_score,
                                            "next_check_at": verdict.next_check_at}, b, verdict.band, as_of)
            history_row, band_move = customer_store.score_change(signals, row.recorded_score, b, cfg, as_of, "sweep")
            if history_row is not None:
                history.append(history_row)
                health["recorded_score"] = b.score
                if band_move is not None:
                    band_moves.append(band_move)
            if verdict.to_raise:
                candidates += alert_store.new_alerts(signals, verdict.to_raise, as_of, b.score, "sweep")
            health_rows.append(health)
    customer_store.update_health(uow, health_rows)
    customer_store.record_scores(uow, history, band_moves, as_of)
    raised = alert_store.insert_alerts(uow, candidates, cfg)
    stats["customers"] += len(rows)
    stats["scores_changed"] += len(history)
    stats["alerts_raised"] += len(raised)


@contextmanager
def _no_cycle_collection():
    """No cyclic garbage collection while a page is worked out: the loop makes no cycles (reference counting
    frees everything) yet allocates enough to trigger collections that walk every object of the process,
    which took half of the loop's time. Pure computation: no other green thread runs meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------- escalation

def run_escalation(store, settings: domain.AlertsSettings, as_of: datetime,
                   cfg: domain.AlertsConfig | None = None) -> int:
    if cfg is None:
        with store() as uow:
            cfg = rules_store.current_config(uow, settings)
    total = 0
    while count := store.run(escalate_due, as_of, cfg):
        total += count
    return total


def escalate_due(uow, as_of: datetime, cfg: domain.AlertsConfig, batch_size: int = 500) -> int:
    """Escalate the next batch of alerts still open escalate_after after they were raised; how many.
    The managers come from one look-up per batch, and the rows change with one statement per manager."""
    rows = uow.session.execute(
        select(alerts).where(alerts.c.status == domain.OPEN, alerts.c.raised_at <= as_of - cfg.escalate_after)
        .order_by(alerts.c.raised_at, alerts.c.alert_id).limit(batch_size).with_for_update(skip_locked=True)).all()
    managers = alert_store.managers_for(uow, {(row.owner_id, row.team) for row in rows})
    by_manager: dict = {}
    for row in rows:
        to = managers.get((row.owner_id, row.team))
        done = domain.escalate(alert_store.as_alert(row), as_of, cfg.escalate_after, to=to)
        by_manager.setdefault(to, []).append(row.alert_id)
        uow.emit("alert.escalated", done.customer_id, {
            **alert_store.event_fields(done), "escalated_to": to, "escalated_at": as_of,
            "raised_at": done.raised_at}, time=as_of)
    for to, ids in by_manager.items():
        uow.session.execute(update(alerts).where(alerts.c.alert_id.in_(ids)).values(
            status=domain.ESCALATED, escalated_at=as_of, escalated_to=to, updated_at=as_of))
    return len(rows)


# ---------------------------------------------------------------- the daily digest

DIGEST_TOP = 10


def send_digests(store, as_of: datetime, top: int = DIGEST_TOP) -> dict:
    """alert.digest for every active rep who owns an entry of the alert queue and every active manager whose
    team has one: their top entries, most value at stake first. One short transaction per person."""
    with store() as uow:
        people = uow.session.execute(select(reps.c.rep_id, reps.c.role, reps.c.team).where(
            reps.c.active.is_(True), reps.c.role.in_(("rep", "manager"))).order_by(reps.c.rep_id)).all()
    sent = sum(store.run(send_digest, person, as_of, top) for person in people
               if person.role == "rep" or person.team is not None)
    return {"digests": sent}


def send_digest(uow, person, as_of: datetime, top: int) -> int:
    actor = Principal(person.rep_id, person.role, person.team)
    page = queries.alert_queue(uow, actor, {"limit": top})
    if not page["items"]:
        return 0
    uow.emit("alert.digest", person.rep_id, {
        "recipient_id": person.rep_id, "role": person.role, "team": person.team, "as_of": as_of,
        "customers_in_queue": page["customers"], "value_at_stake": page["value_at_stake"],
        "entries": [{"customer_id": e["customer_id"], "owner_id": e["owner_id"], "tier": e["tier"],
                     "lifecycle": e["lifecycle"], "health_score": e["health_score"],
                     "value_at_stake": e["value_at_stake"], "rules": e["rules"],
                     "first_raised_at": min(a["raised_at"] for a in e["alerts"])} for e in page["items"]]}, time=as_of)
    return 1
