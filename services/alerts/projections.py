"""Facts from the customers and followups services: the alerts service's one table of consumed events.

A batch's events arrive here deduplicated and in each stream's order (``Transactions.apply_batch``). The
customer handlers only check an event and set it aside in the batch's Context; ``flush`` then folds each
customer's events of the batch together, in order, and rescores the customer and judges the rules its live
facts can set off once, as of now, reading and writing each table once for the whole batch
(docs/alerts.md, "Events in batches"). Rep events are few and applied as they come.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from crm_common.consumer import Consumes
from crm_common.db import EventFailed, utc
from crm_common.errors import EventRejected
from services.alerts import alert_store, customer_store, domain, rules_store
from services.alerts.models import reps


@dataclass
class Context:
    now: datetime
    settings: domain.AlertsSettings
    facts: dict[str, list] = field(default_factory=dict)   # customer id -> its events of the batch, in order


def on_customer_fact(uow, event, ctx: Context) -> None:
    customer_id = event.data.get("customer_id")
    if event.subject != customer_id:
        raise EventRejected(f"subject {event.subject!r} is not the payload's customer_id {customer_id!r}")
    ctx.facts.setdefault(customer_id, []).append(event)


def on_rep_event(uow, event, ctx: Context) -> None:
    """rep.registered / rep.updated: the directory escalations use (the newest version wins)."""
    data = event.data
    if event.subject != data["rep_id"]:
        raise EventRejected(f"subject {event.subject!r} is not the payload's rep_id {data['rep_id']!r}")
    values = {k: data.get(k) for k in ("name", "team", "role", "manager_id", "active", "tokens_valid_after")}
    mine = select(reps).where(reps.c.rep_id == data["rep_id"]).with_for_update()
    row = uow.session.execute(mine).first()
    if row is None:
        try:
            with uow.session.begin_nested():
                uow.session.execute(insert(reps).values(rep_id=data["rep_id"], as_of=event.time, **values))
            return
        except IntegrityError:  # another transaction registered it meanwhile
            row = uow.session.execute(mine).first()
    if event.time >= utc(row.as_of):  # else an older version arriving late
        uow.session.execute(update(reps).where(reps.c.rep_id == data["rep_id"]).values(as_of=event.time, **values))


def flush(uow, ctx: Context) -> None:
    """Each touched customer: fold, rescore, record, judge its live rules — one statement per table."""
    if not ctx.facts:
        return
    now, cfg = ctx.now, rules_store.current_config(uow, ctx.settings)
    ids = sorted(ctx.facts)  # every transaction locks customers in id order: no deadlock between batches
    rows = customer_store.lock_customers(uow, ids, now)
    folds = {cid: _fold(rows[cid], ctx.facts[cid], ctx) for cid in ids}

    judged = [cid for cid in ids if folds[cid].scored is not None]
    with_rules = [cid for cid in judged if folds[cid].rules_to_judge]
    open_rules, resolved = (alert_store.alert_state(uow, now - cfg.realert_cooldown, ids=with_rules)
                            if with_rules else ({}, {}))
    health_rows, history, band_moves, candidates = [], [], [], []
    for cid in ids:
        batch = folds[cid]
        health = {**customer_store.health_values(rows[cid]), "judged": batch.after.judged, "next_check_at": None}
        if batch.scored is not None:  # as each event would have, as of now; the sweep judges the rest
            verdict = domain.judge(batch.scored, now, cfg, open_rules.get(cid, ()), resolved.get(cid),
                                   only=batch.rules_to_judge)
            health = customer_store.scored(health, verdict.breakdown, verdict.band, now)
            if batch.live_cause is not None:
                row, payload = customer_store.score_change(batch.scored, rows[cid].recorded_score,
                                                           verdict.breakdown, cfg, now, batch.live_cause)
                if row is not None:
                    history.append(row)
                    health["recorded_score"] = verdict.breakdown.score
                    band_moves += [payload] if payload else []
            candidates += alert_store.new_alerts(batch.scored, verdict.to_raise, now, verdict.breakdown.score,
                                                 batch.live_rules)
        health_rows.append(health)

    customer_store.upsert_signals(uow, [customer_store.signals_values(cid, folds[cid].after, now) for cid in ids])
    customer_store.upsert_health(uow, health_rows)
    customer_store.record_scores(uow, history, band_moves, now)
    alert_store.move_open_alerts(uow, [{"cid": cid, "owner_id": folds[cid].after.signals.owner_id,
                                        "team": folds[cid].after.signals.team}
                                       for cid in ids if folds[cid].owner_moved], now)
    for cid in ids:
        if folds[cid].archived_now:
            alert_store.close_open_alerts(uow, cid, now, note="customer archived")
    alert_store.insert_alerts(uow, candidates, cfg)


def _fold(row, events: list, ctx: Context) -> domain.BatchFold:
    batch = domain.BatchFold(customer_store.model_of(row))
    for event in events:
        try:
            batch.add(event.name, event.data, event.time,
                      live=domain.is_live(event.time, ctx.now, ctx.settings.live_window_hours))
        except (domain.DomainError, KeyError, TypeError, ValueError) as err:
            raise EventFailed(event, EventRejected(f"cannot fold {event.name}: {err}")) from None
    return batch


CUSTOMER_FACTS = ("customer.created", "customer.updated", "customer.archived", "customer.tier_changed",
                  "customer.lifecycle_changed", "customer.owner_changed", "purchase.recorded",
                  "interaction.logged", "task.missed", "task.completed")
CONSUMES = Consumes({**dict.fromkeys(CUSTOMER_FACTS, on_customer_fact),
                     "rep.registered": on_rep_event, "rep.updated": on_rep_event}, flush=flush)
