"""Periodic work: the reminder sweep, care tasks from important dates, and a changed cadence policy
applied to open tasks. Each runs in batches, one transaction per batch; the ``run_*`` functions loop
over the batches and answer what was done (timers and ``POST /v1/sweeps/<job>`` call them)."""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import date, datetime

from prometheus_client import Counter as PromCounter
from sqlalchemy import select, update

from crm_common import metrics
from crm_common.errors import DomainError
from services.followups import cadence, domain, read_model, task_store
from services.followups.domain.cadence import CadencePolicy
from services.followups.domain.settings import FollowupsSettings
from services.followups.models import customer_view, tasks

SERVICE = "followups"
REMINDERS = PromCounter("crm_followups_reminders_total", "Task reminders emitted by the sweep", ["event"])
REMINDER_STEPS = ("due", "overdue", "missed")


# ------------------------------------------------------------------ reminders

def _sweep_steps(now: datetime, settings: FollowupsSettings):
    """(reminder state, condition on due_at that makes its next step due): each a range scan of ix_tasks_sweep;
    the domain (advance_reminders) decides, this only narrows the rows to look at."""
    return (("none", tasks.c.due_at <= now + settings.due_soon_window),
            ("due_notified", tasks.c.due_at < now),
            ("overdue_notified", tasks.c.due_at < now - settings.grace_period))


def reminder_batch(uow, now: datetime, settings: FollowupsSettings, batch_size: int | None = None) -> Counter:
    """One batch of the reminder sweep: emits task.due / task.overdue / task.missed, advancing each task's
    reminder_state in the same transaction. Rows are claimed FOR UPDATE SKIP LOCKED, so replicas running
    the sweep at once share the work and no task gets a reminder twice. Returns events emitted by kind
    (empty when there is nothing left to do)."""
    batch_size = batch_size or settings.sweep_batch_size
    emitted: Counter = Counter()
    for state, due_condition in _sweep_steps(now, settings):
        rows = uow.session.execute(
            select(tasks).where(tasks.c.status == "open", tasks.c.reminder_state == state, due_condition)
            .order_by(tasks.c.due_at).limit(batch_size).with_for_update(skip_locked=True)).all()
        if not rows:
            continue
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for row in rows:
            task = task_store.domain_task(row)
            steps = domain.advance_reminders(task, now, settings.due_soon_window, settings.grace_period)
            fields = {"task_id": row.id, "customer_id": row.customer_id, "assignee_id": row.assignee_id,
                      "team": row.team, "kind": row.kind, "purpose": row.purpose, "due_at": task.due_at}
            for step in steps:
                payload = {**fields, "missed_at": now} if step == "missed" else fields
                uow.emit(f"task.{step}", row.customer_id, payload, time=now)
                emitted[step] += 1
            groups[(task.reminder_state, task.status)].append(row.id)
        for (reminder_state, status), ids in groups.items():
            values = {"reminder_state": reminder_state, "status": status}
            if status == "missed":
                values["closed_at"] = now
            for start in range(0, len(ids), 500):
                uow.session.execute(update(tasks).where(tasks.c.id.in_(ids[start:start + 500])).values(**values))
    return emitted


def run_reminders(store, now: datetime, settings: FollowupsSettings) -> dict:
    started = time.perf_counter()
    emitted: Counter = Counter()
    batches = 0
    while batch := store.run(reminder_batch, now, settings):
        batches += 1
        emitted.update(batch)
    for step, count in emitted.items():
        REMINDERS.labels(step).inc(count)
    seconds = time.perf_counter() - started
    metrics.JOB_DURATION.labels(SERVICE, "reminder-sweep").observe(seconds)
    return {"job": "reminders", "as_of": now, "batches": batches,
            "emitted": {step: emitted.get(step, 0) for step in REMINDER_STEPS}, "seconds": round(seconds, 3)}


# ------------------------------------------------------------------ care tasks

def care_batch(uow, after_id: str | None, as_of: datetime, settings: FollowupsSettings,
               batch_size: int = 1000) -> tuple[str | None, int]:
    """Care tasks for the next batch of customers by id: (last id or None when done, tasks created)."""
    query = (select(customer_view).where(customer_view.c.archived.is_(False))
             .order_by(customer_view.c.customer_id).limit(batch_size))
    if after_id is not None:
        query = query.where(customer_view.c.customer_id > after_id)
    rows = uow.session.execute(query).all()
    if not rows:
        return None, 0
    by_id = {r.customer_id: r for r in rows}
    dates = []
    for row in rows:
        for item in row.important_dates or []:
            try:
                dates.append(domain.ImportantDate(row.customer_id, item["kind"], date.fromisoformat(item["date"]),
                                                  item.get("label") or ""))
            except (DomainError, KeyError, ValueError):
                continue  # a date we cannot read never blocks the others
    planned = domain.care_tasks_due(dates, as_of.astimezone(settings.timezone), settings.care_lead_days,
                                    settings.care_horizon_days, kinds=settings.care_kinds,
                                    due_time=settings.care_due_time)
    keys = [p.dedupe_key for p in planned]
    existing = set()
    for start in range(0, len(keys), 500):
        existing |= set(uow.session.execute(select(tasks.c.dedupe_key).where(
            tasks.c.dedupe_key.in_(keys[start:start + 500]))).scalars())
    created = 0
    for plan in planned:
        if plan.dedupe_key in existing:
            continue
        customer = read_model.customer_row(uow, plan.customer_id)
        if task_store.create_planned(uow, customer or by_id[plan.customer_id], plan, as_of, anchor_at=plan.due_at):
            created += 1
    return rows[-1].customer_id, created


def run_care(store, as_of: datetime, settings: FollowupsSettings) -> dict:
    started = time.perf_counter()
    last_id, created, batches = None, 0, 0
    while True:
        last_id, count = store.run(care_batch, last_id, as_of, settings, settings.sweep_batch_size)
        created += count
        if last_id is None:
            break
        batches += 1
    seconds = time.perf_counter() - started
    metrics.JOB_DURATION.labels(SERVICE, "care-sweep").observe(seconds)
    return {"job": "care", "as_of": as_of, "batches": batches, "created": created, "seconds": round(seconds, 3)}


# ------------------------------------------------------------------ a changed cadence policy

def reconcile_cadence_batch(uow, after_id: str | None, now: datetime, policy: CadencePolicy,
                            batch_size: int = 500) -> str | None:
    """Apply the cadence policy to the next batch of customers; returns the last id or None when done."""
    query = (select(customer_view).where(customer_view.c.archived.is_(False))
             .order_by(customer_view.c.customer_id).limit(batch_size))
    if after_id is not None:
        query = query.where(customer_view.c.customer_id > after_id)
    rows = uow.session.execute(query.with_for_update()).all()
    for row in rows:
        cadence.sync_cadence(uow, read_model.as_namespace(row), now, policy)
    return rows[-1].customer_id if rows else None


def run_cadence(store, now: datetime, settings: FollowupsSettings) -> dict:
    started = time.perf_counter()
    last_id, batches = None, 0

    def batch(uow, after_id):
        return reconcile_cadence_batch(uow, after_id, now, cadence.current_policy(uow, settings)[0])

    while (last_id := store.run(batch, last_id)) is not None:
        batches += 1
    seconds = time.perf_counter() - started
    metrics.JOB_DURATION.labels(SERVICE, "cadence-reconcile").observe(seconds)
    return {"job": "cadence", "as_of": now, "batches": batches, "seconds": round(seconds, 3)}
