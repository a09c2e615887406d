"""The classification sweep: time passing moves customers' lifecycles (and tiers, as purchases
leave the rolling 12-month window) without any new fact arriving."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from crm_common import metrics
from services.customers import classifier
from services.customers.domain import ClassificationPolicy
from services.customers.models import customers

SWEEP_JOB = "classification-sweep"


def sweep_batch(uow, after_id: str | None, as_of: datetime, policy: ClassificationPolicy,
                batch_size: int = 1000) -> str | None:
    """Reclassify the next batch of live customers by id; returns the last id or None when done."""
    query = select(customers).where(customers.c.archived_at.is_(None), customers.c.created_at <= as_of) \
        .order_by(customers.c.id).limit(batch_size)
    if after_id is not None:
        query = query.where(customers.c.id > after_id)
    rows = uow.session.execute(query.with_for_update(skip_locked=False)).all()
    if not rows:
        return None
    classifier.reclassify_rows(uow, rows, as_of, policy, reason="sweep")
    return rows[-1].id


def sweep(store, as_of: datetime, policy: ClassificationPolicy) -> dict:
    """Every live customer as of as_of, a transaction per batch (locks stay short); figures of the run."""
    started = datetime.now()
    last_id, batches = None, 0
    while True:
        with store() as uow:
            last_id = sweep_batch(uow, last_id, as_of, policy)
            uow.commit()
        if last_id is None:
            break
        batches += 1
    seconds = (datetime.now() - started).total_seconds()
    metrics.JOB_DURATION.labels("customers", SWEEP_JOB).observe(seconds)
    return {"as_of": as_of, "batches": batches, "seconds": round(seconds, 3)}
