"""Alert lifecycle (open -> acknowledged/escalated -> resolved), de-duplication, and side effects as commands."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Iterable, Mapping, Sequence, Union

from crm_common.contracts.fields import AT_RISK_IS_NEWS
from services.alerts.domain.common import DomainError, require_aware
from services.alerts.domain.rules import FiredRule, Signal

OPEN, ACKNOWLEDGED, ESCALATED, RESOLVED = "open", "acknowledged", "escalated", "resolved"
OUTCOMES = ("recovered", "lost", "false_alarm")
DEFAULT_ESCALATE_AFTER = timedelta(hours=48)
DEFAULT_RECALL_DUE_IN = timedelta(hours=24)
# Unknown (None: the customer's events have not reached us) is left to customers, which knows the stage.
FLAGGABLE_LIFECYCLES = frozenset({None, *AT_RISK_IS_NEWS})
# A dormant customer's answer to an alert is its quarterly wake-up cadence, not an immediate recall.
NO_RECALL_LIFECYCLES = frozenset({"dormant"})


@dataclass(frozen=True)
class Alert:
    alert_id: str
    customer_id: str
    rule: str
    signals: tuple[Signal, ...]
    raised_at: datetime
    owner_id: str | None = None
    team: str | None = None
    status: str = OPEN
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    escalated_at: datetime | None = None
    escalated_to: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    outcome: str | None = None

    @property
    def is_open(self) -> bool:
        """Open in the de-duplication sense: anything not yet resolved."""
        return self.status != RESOLVED


def raise_alert(alert_id: str, customer_id: str, fired: FiredRule, raised_at: datetime,
                owner_id: str | None = None, team: str | None = None) -> Alert:
    if not fired.signals:
        raise DomainError("an alert needs at least one signal", "signals")
    return Alert(alert_id, customer_id, fired.rule, fired.signals, require_aware(raised_at, "raised_at"),
                 owner_id=owner_id, team=team)


def _check_time(alert: Alert, at: datetime, name: str) -> None:
    if require_aware(at, name) < alert.raised_at:
        raise DomainError(f"cannot be before the alert was raised ({alert.raised_at.isoformat()})", name)


def acknowledge(alert: Alert, by: str, at: datetime) -> Alert:
    if alert.status not in (OPEN, ESCALATED):
        raise DomainError(f"cannot acknowledge an alert that is {alert.status}", "status")
    _check_time(alert, at, "acknowledged_at")
    return replace(alert, status=ACKNOWLEDGED, acknowledged_at=at, acknowledged_by=by)


def needs_escalation(alert: Alert, as_of: datetime, escalate_after: timedelta = DEFAULT_ESCALATE_AFTER) -> bool:
    """Still open (nobody acknowledged it) once ``escalate_after`` has passed since it was raised."""
    return alert.status == OPEN and require_aware(as_of) >= alert.raised_at + escalate_after


def escalate(alert: Alert, at: datetime, escalate_after: timedelta = DEFAULT_ESCALATE_AFTER,
             to: str | None = None) -> Alert:
    if alert.status != OPEN:
        raise DomainError(f"cannot escalate an alert that is {alert.status}", "status")
    if not needs_escalation(alert, at, escalate_after):
        raise DomainError(f"not due before {(alert.raised_at + escalate_after).isoformat()}", "escalated_at")
    return replace(alert, status=ESCALATED, escalated_at=at, escalated_to=to)


def resolve(alert: Alert, outcome: str, by: str, at: datetime) -> Alert:
    if alert.status == RESOLVED:
        raise DomainError("the alert is already resolved", "status")
    if outcome not in OUTCOMES:
        raise DomainError(f"must be one of {', '.join(OUTCOMES)}, got {outcome!r}", "outcome")
    _check_time(alert, at, "resolved_at")
    return replace(alert, status=RESOLVED, outcome=outcome, resolved_by=by, resolved_at=at)


def alerts_to_raise(fired_rules: Sequence[FiredRule], open_alert_rules: Iterable[str], *,
                    resolved_at_by_rule: Mapping[str, datetime] | None = None, as_of: datetime | None = None,
                    cooldown: timedelta = timedelta(0)) -> list[FiredRule]:
    """One alert per customer per rule while one is open. Optionally, a rule resolved less than ``cooldown``
    before ``as_of`` waits too: old evidence (a past score, a finished gap) would otherwise re-raise it at once."""
    blocked = set(open_alert_rules)
    if resolved_at_by_rule and cooldown:
        if as_of is None:
            raise DomainError("is needed to apply the re-alert cooldown", "as_of")
        blocked |= {rule for rule, at in resolved_at_by_rule.items() if require_aware(as_of) < at + cooldown}
    return [fired for fired in fired_rules if fired.rule not in blocked]


# --- side effects, as data for the service layer to publish -------------------------------------------

@dataclass(frozen=True)
class RequestRecallTask:
    """Ask followups for a recall task for the owner (or the team's queue when unowned)."""
    customer_id: str
    alert_id: str
    rule: str
    owner_id: str | None
    team: str | None
    due_at: datetime
    purpose: str


@dataclass(frozen=True)
class FlagAtRisk:
    customer_id: str
    alert_id: str
    reason: str = "alert"


@dataclass(frozen=True)
class ClearAtRisk:
    customer_id: str
    alert_id: str
    reason: str = "alert_recovered"  # or alert_false_alarm


Command = Union[RequestRecallTask, FlagAtRisk, ClearAtRisk]


def commands_on_raise(alert: Alert, customer_lifecycle: str | None,
                      recall_due_in: timedelta = DEFAULT_RECALL_DUE_IN) -> list[Command]:
    """A recall task unless the customer is dormant; FlagAtRisk where at_risk is news (new, active)."""
    details = "; ".join(s.detail for s in alert.signals if s.detail)
    purpose = f"Churn alert ({alert.rule})" + (f": {details}" if details else "")
    commands: list[Command] = []
    if customer_lifecycle not in NO_RECALL_LIFECYCLES:
        commands.append(RequestRecallTask(alert.customer_id, alert.alert_id, alert.rule, alert.owner_id,
                                          alert.team, alert.raised_at + recall_due_in, purpose))
    if customer_lifecycle in FLAGGABLE_LIFECYCLES:
        commands.append(FlagAtRisk(alert.customer_id, alert.alert_id))
    return commands


def commands_on_resolve(alert: Alert, other_open_alerts: int = 0) -> list[Command]:
    """recovered / false_alarm lift at_risk unless another open alert still holds the customer there; lost
    changes nothing here: churn is the customers service's call. Alerts' copy of the customer's lifecycle
    may lag behind customers, so it is not consulted: lifting a flag that is already down changes nothing."""
    if alert.status != RESOLVED:
        raise DomainError("only a resolved alert has resolution effects", "status")
    if alert.outcome in ("recovered", "false_alarm") and other_open_alerts == 0:
        return [ClearAtRisk(alert.customer_id, alert.alert_id, reason=f"alert_{alert.outcome}")]
    return []
