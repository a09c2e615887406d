"""Facts from other services that the customers service applies: its one table of consumed events."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm_common.consumer import Consumes
from services.customers import handlers
from services.customers.domain import ClassificationPolicy


@dataclass(frozen=True)
class Context:
    now: datetime
    policy: ClassificationPolicy


def on_interaction_logged(uow, event, ctx: Context) -> None:
    handlers.note_interaction(uow, event.data["customer_id"], event.data["occurred_at"], ctx.now, ctx.policy)


def on_alert_raised(uow, event, ctx: Context) -> None:
    handlers.set_risk_flag(uow, event.data["customer_id"], True, ctx.now, ctx.policy,
                           reason=f"alert {event.data['rule']} raised")


def on_alert_resolved(uow, event, ctx: Context) -> None:
    handlers.note_alert_resolved(uow, event.data, ctx.now, ctx.policy)


CONSUMES = Consumes({
    "interaction.logged": on_interaction_logged,
    "alert.raised": on_alert_raised,
    "alert.resolved": on_alert_resolved,
})
