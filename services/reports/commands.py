"""HTTP use cases of the reports service that write: emptying the read models before a rebuild."""
from __future__ import annotations

from sqlalchemy import delete, func, select, text

from crm_common.auth import Principal
from services.reports.models import READ_MODELS, infrastructure

# what says which events were applied: forgotten with the read models (uow.forget_applied)
CLAIMS = (infrastructure["processed_events"], infrastructure["stream_positions"])


def wipe(uow, actor: Principal) -> dict[str, int]:
    """Empty every read model and forget which events were applied, so replayed history is applied afresh."""
    session = uow.session
    counts = {t.name: session.execute(select(func.count()).select_from(t)).scalar_one()
              for t in (*CLAIMS, *READ_MODELS)}
    if session.get_bind().dialect.name == "postgresql":
        # waits for batches in flight and keeps new ones out until commit: a batch claims its events
        # (processed_events, stream_positions) before touching any read model, so locking the claims
        # first cannot deadlock with it. A batch applied after the wipe starts from an empty book.
        names = ", ".join(t.name for t in (*CLAIMS, *READ_MODELS))
        session.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
        session.execute(text(f"TRUNCATE {', '.join(t.name for t in READ_MODELS)}"))
    else:
        for table in READ_MODELS:
            session.execute(delete(table))
    uow.forget_applied()
    uow.audit(actor, "reports.rebuilt", "reports", "read-models", {"wiped": counts})
    return counts
