"""Per-customer read model folded from customers/followups events, and the values derived from it.

Folding is pure (each ``apply_*`` returns a new CustomerSignals), idempotent for facts that carry an id
(purchase_id, interaction_id, task_id) and order-independent for backdated facts: purchases and scores
are kept sorted by time, and contact state is kept in a form whose final value does not depend on the
order interactions arrived in.
"""
from __future__ import annotations

import statistics
from operator import attrgetter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable, Mapping

from services.alerts.domain.common import days_between, require_aware, utc_day

# Outcomes where the rep reached the customer or the customer reached out (a complaint opens as "open").
CONTACT_OUTCOMES = frozenset({"reached", "positive", "negative", "neutral", "resolved", "open"})
UNANSWERED_OUTCOMES = frozenset({"no_answer", "declined"})
MIN_PURCHASE_DAYS_FOR_CYCLE = 3  # 2 gaps: one gap alone is an anecdote, not a habit
ROLLING_YEAR = 365


@dataclass(frozen=True, order=True)
class Purchase:
    purchased_at: datetime
    purchase_id: str
    amount_base: Decimal


@dataclass(frozen=True, order=True)
class UnansweredAttempt:
    occurred_at: datetime
    interaction_id: str


@dataclass(frozen=True, order=True)
class SatisfactionScore:
    rated_at: datetime
    interaction_id: str
    score: int


@dataclass(frozen=True)
class CustomerSignals:
    customer_id: str
    tier: str | None = None
    lifecycle: str | None = None
    owner_id: str | None = None
    team: str | None = None
    archived: bool = False
    created_at: datetime | None = None
    purchases: tuple[Purchase, ...] = ()                       # sorted by date, unique ids
    last_contact_at: datetime | None = None
    unanswered: tuple[UnansweredAttempt, ...] = ()             # only attempts after last_contact_at
    open_complaints: Mapping[str, datetime] = field(default_factory=dict)   # complaint id -> opened_at
    resolved_complaint_ids: frozenset[str] = frozenset()       # so a late-arriving opening stays closed
    satisfaction: tuple[SatisfactionScore, ...] = ()           # sorted by time, scores 1..5
    missed_tasks: Mapping[str, datetime] = field(default_factory=dict)      # task id -> missed_at

    @property
    def consecutive_unanswered(self) -> int:
        return len(self.unanswered)


# --- folding facts ----------------------------------------------------------------------------------

def apply_profile(signals: CustomerSignals, *, tier: str | None = None, lifecycle: str | None = None,
                  owner_id: str | None = None, team: str | None = None, archived: bool = False,
                  created_at: datetime | None = None) -> CustomerSignals:
    """customer.created / customer.updated carry a full snapshot: the latest one wins."""
    return replace(signals, tier=tier, lifecycle=lifecycle, owner_id=owner_id, team=team,
                   archived=archived, created_at=created_at or signals.created_at)


def apply_archived(signals: CustomerSignals) -> CustomerSignals:
    return replace(signals, archived=True)


def apply_tier_changed(signals: CustomerSignals, new_tier: str) -> CustomerSignals:
    return replace(signals, tier=new_tier)


def apply_lifecycle_changed(signals: CustomerSignals, new_lifecycle: str) -> CustomerSignals:
    return replace(signals, lifecycle=new_lifecycle)


def apply_owner_changed(signals: CustomerSignals, new_owner_id: str, new_team: str | None) -> CustomerSignals:
    return replace(signals, owner_id=new_owner_id, team=new_team)


def apply_purchase(signals: CustomerSignals, purchase_id: str, purchased_at: datetime,
                   amount_base: Decimal) -> CustomerSignals:
    if any(p.purchase_id == purchase_id for p in signals.purchases):
        return signals
    purchase = Purchase(require_aware(purchased_at, "purchased_at"), purchase_id, Decimal(amount_base))
    return replace(signals, purchases=tuple(sorted((*signals.purchases, purchase))))


def apply_interaction(signals: CustomerSignals, interaction_id: str, occurred_at: datetime, outcome: str,
                      kind: str = "call", satisfaction: int | None = None,
                      resolves_complaint_id: str | None = None) -> CustomerSignals:
    require_aware(occurred_at, "occurred_at")
    last_contact, unanswered = signals.last_contact_at, signals.unanswered
    if outcome in CONTACT_OUTCOMES and (last_contact is None or occurred_at > last_contact):
        last_contact = occurred_at
        unanswered = tuple(a for a in unanswered if a.occurred_at > last_contact)  # a contact resets the streak
    elif (outcome in UNANSWERED_OUTCOMES and (last_contact is None or occurred_at > last_contact)
          and all(a.interaction_id != interaction_id for a in unanswered)):
        unanswered = tuple(sorted((*unanswered, UnansweredAttempt(occurred_at, interaction_id))))

    open_complaints, resolved = dict(signals.open_complaints), signals.resolved_complaint_ids
    if kind == "complaint":
        if outcome == "resolved":  # logged already settled: it never was open
            resolved = resolved | {interaction_id}
        elif interaction_id not in resolved:
            open_complaints.setdefault(interaction_id, occurred_at)
    if resolves_complaint_id:
        open_complaints.pop(resolves_complaint_id, None)
        resolved = resolved | {resolves_complaint_id}
    for complaint_id in resolved:
        open_complaints.pop(complaint_id, None)

    scores = signals.satisfaction
    if satisfaction is not None and all(s.interaction_id != interaction_id for s in scores):
        scores = tuple(sorted((*scores, SatisfactionScore(occurred_at, interaction_id, int(satisfaction)))))

    return replace(signals, last_contact_at=last_contact, unanswered=unanswered, open_complaints=open_complaints,
                   resolved_complaint_ids=frozenset(resolved), satisfaction=scores)


def apply_task_missed(signals: CustomerSignals, task_id: str, missed_at: datetime) -> CustomerSignals:
    if task_id in signals.missed_tasks:
        return signals
    return replace(signals, missed_tasks={**signals.missed_tasks, task_id: require_aware(missed_at, "missed_at")})


def apply_task_completed(signals: CustomerSignals, task_id: str) -> CustomerSignals:
    """A task done late after all no longer counts as missed."""
    if task_id not in signals.missed_tasks:
        return signals
    return replace(signals, missed_tasks={k: v for k, v in signals.missed_tasks.items() if k != task_id})


def _profile(s: CustomerSignals, p: Mapping[str, Any]) -> CustomerSignals:
    return apply_profile(s, tier=p.get("tier"), lifecycle=p.get("lifecycle"), owner_id=p.get("owner_id"),
                         team=p.get("team"), archived=bool(p.get("archived", False)),
                         created_at=_dt(p["created_at"]) if p.get("created_at") else None)


_EVENT_APPLIERS: dict[str, Callable[[CustomerSignals, Mapping[str, Any]], CustomerSignals]] = {
    "customer.created": _profile,
    "customer.updated": _profile,
    "customer.archived": lambda s, p: apply_archived(s),
    "customer.tier_changed": lambda s, p: apply_tier_changed(s, p["new_tier"]),
    "customer.lifecycle_changed": lambda s, p: apply_lifecycle_changed(s, p["new_lifecycle"]),
    "customer.owner_changed": lambda s, p: apply_owner_changed(s, p["new_owner_id"], p.get("new_team")),
    "purchase.recorded": lambda s, p: apply_purchase(s, p["purchase_id"], _dt(p["purchased_at"]),
                                                     Decimal(str(p["amount_base"]))),
    "interaction.logged": lambda s, p: apply_interaction(
        s, p["interaction_id"], _dt(p["occurred_at"]), p["outcome"], kind=p.get("kind", "call"),
        satisfaction=p.get("satisfaction"), resolves_complaint_id=p.get("resolves_complaint_id")),
    "task.missed": lambda s, p: apply_task_missed(s, p["task_id"], _dt(p["missed_at"])),
    "task.completed": lambda s, p: apply_task_completed(s, p["task_id"]),
}
CONSUMED_EVENTS = tuple(_EVENT_APPLIERS)


def apply_event(signals: CustomerSignals, event_name: str, payload: Mapping[str, Any]) -> CustomerSignals:
    """Fold one contract payload (as loaded by its marshmallow schema); events the model ignores change nothing."""
    applier = _EVENT_APPLIERS.get(event_name.removeprefix("crm."))
    return applier(signals, payload) if applier else signals


def _dt(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


# --- derived values (facts dated after as_of are not yet known, or count as 0 days old) ------------

_UNSET = object()


class Known:
    """What is known of one customer as of one UTC day, each value worked out once: the score and the six
    rules ask for the same few (purchase gaps, the 12-month window, scores) over and over, and the sweep asks
    for a million customers."""

    __slots__ = ("signals", "as_of", "day", "_purchases", "_days", "_gaps", "_interval", "_window", "_scores",
                 "_drops")

    def __init__(self, signals: CustomerSignals, as_of: datetime):
        self.signals = signals
        self.as_of = as_of
        self.day = utc_day(as_of)
        self._purchases = self._days = self._gaps = self._window = self._scores = None
        self._interval = _UNSET
        self._drops: dict = {}

    @property
    def purchases(self) -> tuple[Purchase, ...]:
        """Purchases known by then: a prefix, as they are sorted by time (usually all of them)."""
        if self._purchases is None:
            day, purchases = self.day, self.signals.purchases
            if purchases and utc_day(purchases[-1].purchased_at) > day:
                purchases = tuple(p for p in purchases if utc_day(p.purchased_at) <= day)
            self._purchases = purchases
        return self._purchases

    @property
    def purchase_days(self) -> list:
        """Distinct purchase days, oldest first (several orders on one day are one visit)."""
        if self._days is None:
            self._days = sorted({utc_day(p.purchased_at) for p in self.purchases})
        return self._days

    @property
    def gaps(self) -> list[int]:
        if self._gaps is None:
            days = self.purchase_days
            self._gaps = [(later - earlier).days for earlier, later in zip(days, days[1:])]
        return self._gaps

    @property
    def usual_interval(self) -> float | None:
        """Median gap in days; None until there are MIN_PURCHASE_DAYS_FOR_CYCLE distinct purchase days."""
        if self._interval is _UNSET:
            gaps = self.gaps
            self._interval = (float(statistics.median(gaps)) if len(gaps) >= MIN_PURCHASE_DAYS_FOR_CYCLE - 1
                              else None)
        return self._interval

    @property
    def days_since_last_purchase(self) -> int | None:
        purchases = self.purchases
        return days_between(purchases[-1].purchased_at, self.as_of) if purchases else None

    @property
    def days_without_contact(self) -> int | None:
        """Days since the last contact, or since the customer was created if never contacted (None if neither)."""
        since = self.signals.last_contact_at or self.signals.created_at
        return days_between(since, self.as_of) if since else None

    @property
    def rolling_12m(self) -> tuple[int, Decimal]:
        """(number of purchases, total base-currency value) in the 365 days ending on as_of's day."""
        if self._window is None:
            first_day = self.day - timedelta(days=ROLLING_YEAR - 1)
            inside = [p for p in self.purchases if utc_day(p.purchased_at) >= first_day]
            self._window = len(inside), sum((p.amount_base for p in inside), Decimal(0))
        return self._window

    @property
    def scores(self) -> list[int]:
        if self._scores is None:
            day, rated = self.day, self.signals.satisfaction
            if rated and utc_day(rated[-1].rated_at) > day:
                rated = [s for s in rated if utc_day(s.rated_at) <= day]
            self._scores = [s.score for s in rated]
        return self._scores

    def satisfaction_drop(self, window: int = 3) -> float | None:
        """Mean of the window before the last ``window`` scores minus the mean of the last ones (positive = falling)."""
        if window not in self._drops:
            scores = self.scores
            self._drops[window] = (None if len(scores) < 2 * window else
                                   statistics.fmean(scores[-2 * window:-window]) - statistics.fmean(scores[-window:]))
        return self._drops[window]

    def interval_trend(self, recent_gaps: int = 2, min_earlier_gaps: int = 2) -> tuple[float, float] | None:
        """(mean of the last ``recent_gaps`` gaps, median of the gaps before them), or None without enough history."""
        gaps = self.gaps
        if len(gaps) < recent_gaps + min_earlier_gaps:
            return None
        return statistics.fmean(gaps[-recent_gaps:]), float(statistics.median(gaps[:-recent_gaps]))

    @property
    def open_complaint_ages(self) -> dict[str, int]:
        """Complaint id -> whole days open, oldest first."""
        ordered = sorted(self.signals.open_complaints.items(), key=lambda item: (item[1], item[0]))
        return {cid: days_between(opened_at, self.as_of) for cid, opened_at in ordered}

    def missed_tasks_within(self, window_days: int) -> int:
        day = self.day
        return sum(1 for missed_at in self.signals.missed_tasks.values()
                   if utc_day(missed_at) <= day and days_between(missed_at, self.as_of) < window_days)


def purchase_gaps(signals: CustomerSignals, as_of: datetime) -> list[int]:
    """Days between consecutive distinct purchase days (several orders on one day are one visit)."""
    return Known(signals, as_of).gaps


def usual_purchase_interval(signals: CustomerSignals, as_of: datetime) -> float | None:
    return Known(signals, as_of).usual_interval


def interval_trend(signals: CustomerSignals, as_of: datetime, recent_gaps: int = 2,
                   min_earlier_gaps: int = 2) -> tuple[float, float] | None:
    return Known(signals, as_of).interval_trend(recent_gaps, min_earlier_gaps)


def days_since_last_purchase(signals: CustomerSignals, as_of: datetime) -> int | None:
    return Known(signals, as_of).days_since_last_purchase


def days_since_last_contact(signals: CustomerSignals, as_of: datetime) -> int | None:
    return days_between(signals.last_contact_at, as_of) if signals.last_contact_at else None


def days_without_contact(signals: CustomerSignals, as_of: datetime) -> int | None:
    return Known(signals, as_of).days_without_contact


def rolling_12m(signals: CustomerSignals, as_of: datetime) -> tuple[int, Decimal]:
    return Known(signals, as_of).rolling_12m


def scores_until(signals: CustomerSignals, as_of: datetime) -> list[int]:
    return Known(signals, as_of).scores


def satisfaction_drop(signals: CustomerSignals, as_of: datetime, window: int = 3) -> float | None:
    return Known(signals, as_of).satisfaction_drop(window)


def open_complaint_ages(signals: CustomerSignals, as_of: datetime) -> dict[str, int]:
    return Known(signals, as_of).open_complaint_ages


def missed_tasks_within(signals: CustomerSignals, as_of: datetime, window_days: int) -> int:
    return Known(signals, as_of).missed_tasks_within(window_days)


# --- storage form (JSON-friendly) -------------------------------------------------------------------

def signals_to_dict(signals: CustomerSignals) -> dict[str, Any]:
    return {
        "customer_id": signals.customer_id, "tier": signals.tier, "lifecycle": signals.lifecycle,
        "owner_id": signals.owner_id, "team": signals.team, "archived": signals.archived,
        "created_at": _iso(signals.created_at), "last_contact_at": _iso(signals.last_contact_at),
        "purchases": [[p.purchase_id, p.purchased_at.isoformat(), str(p.amount_base)] for p in signals.purchases],
        "unanswered": [[a.interaction_id, a.occurred_at.isoformat()] for a in signals.unanswered],
        "open_complaints": {k: v.isoformat() for k, v in sorted(signals.open_complaints.items())},
        "resolved_complaint_ids": sorted(signals.resolved_complaint_ids),
        "satisfaction": [[s.interaction_id, s.rated_at.isoformat(), s.score] for s in signals.satisfaction],
        "missed_tasks": {k: v.isoformat() for k, v in sorted(signals.missed_tasks.items())},
    }


def signals_from_dict(data: Mapping[str, Any]) -> CustomerSignals:
    """Read back what signals_to_dict wrote (the sweep reads a million of these: keep it lean)."""
    when = datetime.fromisoformat
    opt = lambda v: _dt(v) if v else None  # noqa: E731
    return CustomerSignals(
        customer_id=data["customer_id"], tier=data.get("tier"), lifecycle=data.get("lifecycle"),
        owner_id=data.get("owner_id"), team=data.get("team"), archived=bool(data.get("archived", False)),
        created_at=opt(data.get("created_at")), last_contact_at=opt(data.get("last_contact_at")),
        purchases=tuple(sorted((Purchase(when(at), pid, Decimal(amount))
                                for pid, at, amount in data.get("purchases", ())), key=_PURCHASE_ORDER)),
        unanswered=tuple(sorted((UnansweredAttempt(when(at), iid) for iid, at in data.get("unanswered", ())),
                                key=_ATTEMPT_ORDER)),
        open_complaints={k: when(v) for k, v in data.get("open_complaints", {}).items()},
        resolved_complaint_ids=frozenset(data.get("resolved_complaint_ids", ())),
        satisfaction=tuple(sorted((SatisfactionScore(when(at), iid, int(score))
                                   for iid, at, score in data.get("satisfaction", ())), key=_SCORE_ORDER)),
        missed_tasks={k: when(v) for k, v in data.get("missed_tasks", {}).items()},
    )


# the dataclasses' own order (time, then id; ids are unique), without their slow generated __lt__
_PURCHASE_ORDER = attrgetter("purchased_at", "purchase_id")
_ATTEMPT_ORDER = attrgetter("occurred_at", "interaction_id")
_SCORE_ORDER = attrgetter("rated_at", "interaction_id")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
