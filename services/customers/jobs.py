"""The classification sweep: time passing moves customers' lifecycles (and tiers, as purchases
leave the rolling 12-month window) without any new fact arriving. It visits only the customers
whose next change point has come (``next_review_at``), and dates each change when it happened."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from crm_common import metrics
from services.customers import classifier
from services.customers.domain import ClassificationPolicy
from services.customers.models import customers

SWEEP_JOB = "classification-sweep"


def sweep_batch(uow, after_id: str | None, as_of: datetime, policy: ClassificationPolicy,
                batch_size: int = 1000, review_all: bool = False) -> tuple[str | None, int]:
    """Reclassify the next batch of live customers due for review, by id; returns the last id (None when
    done) and how many it reviewed."""
    query = select(customers).where(customers.c.archived_at.is_(None), customers.c.created_at <= as_of) \
        .order_by(customers.c.id).limit(batch_size)
    if not review_all:
        query = query.where(customers.c.next_review_at <= as_of)  # NULL: time alone changes nothing
    if after_id is not None:
        query = query.where(customers.c.id > after_id)
    rows = uow.session.execute(query.with_for_update(skip_locked=False)).all()
    if not rows:
        return None, 0
    classifier.reclassify_rows(uow, rows, as_of, policy, reason="sweep")
    return rows[-1].id, len(rows)


def sweep(store, as_of: datetime, policy: ClassificationPolicy, review_all: bool = False) -> dict:
    """Every live customer as of as_of, a transaction per batch (locks stay short); figures of the run."""
    started = datetime.now()
    last_id, batches, reviewed = None, 0, 0
    while True:
        with store() as uow:
            last_id, count = sweep_batch(uow, last_id, as_of, policy, review_all=review_all)
            uow.commit()
        if last_id is None:
            break
        batches, reviewed = batches + 1, reviewed + count
    seconds = (datetime.now() - started).total_seconds()
    metrics.JOB_DURATION.labels("customers", SWEEP_JOB).observe(seconds)
    return {"as_of": as_of, "customers": reviewed, "batches": batches, "seconds": round(seconds, 3)}
