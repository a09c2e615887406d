"""A customer's read model as the events build it, and what one batch of a customer's events asks for.

Evaluation policy (docs/alerts.md, "When rules are evaluated"): every fact folds into the signals; a *live*
fact (one of EVENT_RULES' events dated within the live window of now) also records the score in the history
and raises, as of now, the rules such a fact can set off. Everything else (time-based rules, backfilled
history, profile changes) is judged by the sweep: the events of one customer arrive on several queues, so a
partial history must never raise an alert.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Mapping

from services.alerts.domain.signals import (
    CustomerSignals, apply_archived, apply_event, apply_lifecycle_changed, apply_owner_changed, apply_tier_changed,
)

SNAPSHOT_EVENTS = frozenset({"customer.created", "customer.updated"})
# live facts of these kinds raise, at once, the rules they can set off; the sweep raises everything else
EVENT_RULES: Mapping[str, frozenset[str]] = {
    "interaction.logged": frozenset({"unanswered_followups", "low_satisfaction"}),
    "purchase.recorded": frozenset({"interval_lengthening"}),
    "task.missed": frozenset(),
    "task.completed": frozenset(),
}


@dataclass(frozen=True)
class ReadModel:
    """One customer as the alerts service knows it."""
    signals: CustomerSignals
    versions: Mapping[str, str] = field(default_factory=dict)  # profile part -> ISO time of the fact that set it
    known: bool = False                                         # a customer.created/updated snapshot was seen
    last_fact_at: datetime | None = None                        # effective time of the newest fact folded in

    @property
    def judged(self) -> bool:
        """Scored and judged by the rules: known (a snapshot arrived) and not archived."""
        return self.known and not self.signals.archived


def is_live(fact_time: datetime, now: datetime, live_window_hours: int) -> bool:
    return fact_time >= now - timedelta(hours=live_window_hours)


def fold(model: ReadModel, name: str, data: Mapping[str, Any], at: datetime) -> ReadModel:
    """Fold one event (name, contract payload, time). Profile parts (tier, lifecycle, owner) keep the time of the
    fact that set them, so an older snapshot arriving late (another queue) never overwrites a newer change.
    Raises KeyError/TypeError/ValueError (or DomainError) on a payload that cannot be folded."""
    signals, versions = model.signals, dict(model.versions)

    def take(part: str) -> bool:
        seen = versions.get(part)
        if seen is None or at >= datetime.fromisoformat(seen):
            versions[part] = at.isoformat()
            return True
        return False

    if name in SNAPSHOT_EVENTS:
        changes = {"archived": signals.archived or bool(data.get("archived")),
                   "created_at": data.get("created_at") or signals.created_at}
        if take("tier"):
            changes["tier"] = data["tier"]
        if take("lifecycle"):
            changes["lifecycle"] = data["lifecycle"]
        if take("owner"):
            changes.update(owner_id=data.get("owner_id"), team=data.get("team"))
        signals = replace(signals, **changes)
    elif name == "customer.archived":
        signals = apply_archived(signals)
    elif name == "customer.tier_changed":
        signals = apply_tier_changed(signals, data["new_tier"]) if take("tier") else signals
    elif name == "customer.lifecycle_changed":
        signals = apply_lifecycle_changed(signals, data["new_lifecycle"]) if take("lifecycle") else signals
    elif name == "customer.owner_changed":
        signals = (apply_owner_changed(signals, data["new_owner_id"], data.get("new_team")) if take("owner")
                   else signals)
    else:
        signals = apply_event(signals, name, data)
        if name == "purchase.recorded" and "owner" not in versions and data.get("owner_id"):
            signals = replace(signals, owner_id=data["owner_id"], team=data.get("team"))  # until a snapshot says
    last = model.last_fact_at
    return ReadModel(signals, versions, model.known or name in SNAPSHOT_EVENTS,
                     at if last is None or at > last else last)


@dataclass
class BatchFold:
    """A customer's events of one batch folded in order, and what applying them one by one would have asked for.

    One by one, every event rescores the customer (as of now) while it is judged, and a live fact also records
    the score and raises the rules it can set off. Here the score is worked out once, of ``scored`` (the newest
    signals while judged), and the rules once, as of the end of the batch, limited to ``live_rules``."""
    before: ReadModel
    after: ReadModel = None                                    # type: ignore[assignment]
    scored: CustomerSignals | None = None                      # None: no event left the customer judged
    live_cause: str | None = None                              # the last live fact: the history row's cause
    live_rules: dict[str, str] = field(default_factory=dict)   # rule -> the live fact that can set it off

    def __post_init__(self) -> None:
        if self.after is None:
            self.after = self.before

    def add(self, name: str, data: Mapping[str, Any], at: datetime, live: bool) -> None:
        self.after = fold(self.after, name, data, at)
        if not self.after.judged:
            return
        self.scored = self.after.signals
        if live and name in EVENT_RULES:
            self.live_cause = name
            self.live_rules.update(dict.fromkeys(EVENT_RULES[name], name))

    @property
    def owner_moved(self) -> bool:
        b, a = self.before.signals, self.after.signals
        return (a.owner_id, a.team) != (b.owner_id, b.team)

    @property
    def archived_now(self) -> bool:
        return self.after.signals.archived and not self.before.signals.archived

    @property
    def rules_to_judge(self) -> frozenset[str]:
        """The rules to evaluate as of now: those the batch's live facts can set off, while still judged."""
        return frozenset(self.live_rules) if self.after.judged else frozenset()
