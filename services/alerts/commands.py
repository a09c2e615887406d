"""What people do through the HTTP API: take on and close alerts, change the rules. One transaction each,
events via the outbox; time comes in as an argument (the service clock), never from the system clock."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from crm_common.auth import Principal
from crm_common.errors import CrmError
from services.alerts import alert_store, customer_store, domain, queries, rules_store
from services.alerts.models import alerts


def acknowledge(uow, actor: Principal, alert_id: str, note: str | None, now: datetime) -> dict:
    row = alert_store.load_alert(uow, actor, alert_id, for_update=True)
    done = alert_store.transition(lambda: domain.acknowledge(alert_store.as_alert(row), actor.user_id, now))
    values = {"status": done.status, "acknowledged_at": now, "acknowledged_by": actor.user_id, "updated_at": now}
    if note:
        values["note"] = note
    uow.session.execute(update(alerts).where(alerts.c.alert_id == alert_id).values(**values))
    uow.emit("alert.acknowledged", done.customer_id, {
        **alert_store.event_fields(done), "acknowledged_by": actor.user_id, "acknowledged_at": now,
        "note": note or ""}, time=now)
    uow.audit(actor, "alert.acknowledged", "alert", alert_id, {"status": [row.status, done.status]})
    return alert_store.alert_view(alert_store.load_alert(uow, actor, alert_id))


def resolve(uow, actor: Principal, alert_id: str, outcome: str, note: str | None, now: datetime,
            settings: domain.AlertsSettings) -> dict:
    row = alert_store.load_alert(uow, actor, alert_id, for_update=True)
    done = alert_store.resolve_row(uow, row, outcome, actor.user_id, note or "", now)
    # the rule may be raised again once the re-alert cooldown is over: the sweep must look then
    cooldown = rules_store.current_config(uow, settings).realert_cooldown
    customer_store.due_by(uow, row.customer_id, done.resolved_at + cooldown)
    uow.audit(actor, "alert.resolved", "alert", alert_id, {"status": [row.status, "resolved"], "outcome": outcome})
    return alert_store.alert_view(alert_store.load_alert(uow, actor, alert_id))


def put_rules(uow, actor: Principal, overrides: dict, settings: domain.AlertsSettings, now: datetime) -> dict:
    """Replace the runtime overrides (merged over the environment); 400 naming the dotted field at fault.
    The next sweep sees other rules than the last one did and judges every customer."""
    actor.require("admin")
    try:
        settings.config(overrides)
    except domain.DomainError as err:
        raise CrmError(err.reason, field=err.field or "body") from None
    row = rules_store.stored(uow, rules_store.OVERRIDES, for_update=True)
    rules_store.write(uow, rules_store.OVERRIDES, overrides, now, actor.user_id, row)
    uow.audit(actor, "alert_rules.updated", "alert_rules", "overrides",
              {"before": row.value if row else {}, "after": overrides})
    return queries.get_rules(uow, settings)
