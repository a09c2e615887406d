"""A customer's class over time, from its dated facts.

Tier and lifecycle are functions of the facts and the moment (classification.classify). Between
two facts the class changes only when time crosses one of the rules' day counts, so the class
history from `since` to `until` is the class at `since` and at each of these change points:

    a purchase p           p, p + 365 days (it leaves the rolling 12-month window),
                           p + (new_days + 1), + (active_days + 1), + (at_risk_days + 1),
                           + (churned_days + 1) days
    an interaction i       i, i + (churn_contact_days + 1) days
    an at-risk flag        when its alert was raised and when it was resolved

(a rule "more than N days" holds from N + 1 whole days on). A backdated fact therefore makes the
same history as a fact recorded on its day, and the daily sweep only has to visit customers whose
next change point has come (``next_change``).

``corrections`` compares that history with the one already recorded (and published) and returns
the changes that make the recorded one equal to it, each dated when it happened: applied after
what was recorded at the same instant, they leave every consumer that folds changes in time order
(reports' timeline, the cadence class of followups, the alerts read model) with the true history.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Iterable

from .classification import ClassificationPolicy, CustomerFacts, lifecycle_for, tier_for

ATTRIBUTES = ("tier", "lifecycle")  # in the order their changes of one instant are published
WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class FactHistory:
    """Everything classification reads, each fact with its own date."""
    purchases: tuple[tuple[datetime, Decimal], ...] = ()   # (purchased_at, amount in base currency)
    interactions: tuple[datetime, ...] = ()
    flags: tuple[tuple[datetime, datetime | None], ...] = ()  # (raised, resolved or None) of flagging alerts

    @classmethod
    def of(cls, purchases: Iterable[tuple[datetime, Decimal]] = (), interactions: Iterable[datetime] = (),
           flags: Iterable[tuple[datetime, datetime | None]] = ()) -> FactHistory:
        return cls(tuple(sorted(purchases)), tuple(sorted(interactions)), tuple(flags))

    def __post_init__(self):
        object.__setattr__(self, "_times", [at for at, _ in self.purchases])
        object.__setattr__(self, "_sums", [Decimal(0), *accumulate(amount for _, amount in self.purchases)])

    def facts_at(self, moment: datetime) -> CustomerFacts:
        """The facts as they stood at `moment`: later ones had not happened yet."""
        bought = bisect.bisect_right(self._times, moment)
        window_start = bisect.bisect_right(self._times, moment - WINDOW)  # the window is (moment - 365 d, moment]
        talked = bisect.bisect_right(self.interactions, moment)
        return CustomerFacts(
            rolling_12m_total=self._sums[bought] - self._sums[min(window_start, bought)],
            first_purchase_at=self._times[0] if bought else None,
            last_purchase_at=self._times[bought - 1] if bought else None,
            last_interaction_at=self.interactions[talked - 1] if talked else None,
            flagged_at_risk=any(raised <= moment and (resolved is None or moment < resolved)
                                for raised, resolved in self.flags))

    def change_points(self, policy: ClassificationPolicy) -> list[datetime]:
        """Every moment at which the class may change, sorted."""
        silences = [timedelta(days=days + 1) for days in (policy.active_days, policy.at_risk_days,
                                                          policy.churned_days)]
        points = {at + offset for at in self._times for offset in (timedelta(0), WINDOW)}
        if self._times:
            points.add(self._times[0] + timedelta(days=policy.new_days + 1))
        points |= _while_last(self._times, silences)  # a silence counts from the last purchase
        points |= set(self.interactions) | _while_last(self.interactions, [timedelta(days=policy.churn_contact_days + 1)])
        points |= {moment for flag in self.flags for moment in flag if moment is not None}
        return sorted(points)


def _while_last(times: list[datetime] | tuple[datetime, ...], offsets: list[timedelta]) -> set[datetime]:
    """Each time + offset that comes before the next time (while that time is still the latest)."""
    return {at + offset for at, later in zip(times, [*times[1:], None]) for offset in offsets
            if later is None or at + offset < later}


def flag_periods(events: Iterable[tuple[datetime, bool]]) -> list[tuple[datetime, datetime | None]]:
    """(at, lifts) facts of the at-risk flag -> the periods it was up: each raise until the first lift at or
    after it (None: still up). A function of the set of facts, so their arrival order does not matter."""
    events = sorted(events)
    lifts = [at for at, lifting in events if lifting]
    periods = []
    for at, lifting in events:
        if not lifting:
            index = bisect.bisect_left(lifts, at)
            periods.append((at, lifts[index] if index < len(lifts) else None))
    return periods


@dataclass(frozen=True)
class ClassStep:
    """The class from `at` on (until the next step)."""
    at: datetime
    tier: str
    lifecycle: str
    reason: str
    rolling_12m_total: Decimal

    def value(self, attribute: str) -> str:
        return getattr(self, attribute)


def class_at(facts: FactHistory, moment: datetime, policy: ClassificationPolicy) -> ClassStep:
    known = facts.facts_at(moment)
    lifecycle, reason = lifecycle_for(known, moment, policy)
    return ClassStep(moment, tier_for(known.rolling_12m_total, policy), lifecycle, reason, known.rolling_12m_total)


def class_history(facts: FactHistory, since: datetime, until: datetime, policy: ClassificationPolicy) -> list[ClassStep]:
    """The class at `since`, then a step at each later moment up to `until` where tier or lifecycle changes."""
    steps = [class_at(facts, since, policy)]
    for moment in facts.change_points(policy):
        if since < moment <= until:
            step = class_at(facts, moment, policy)
            if (step.tier, step.lifecycle) != (steps[-1].tier, steps[-1].lifecycle):
                steps.append(step)
    return steps


def next_change(facts: FactHistory, after: datetime, policy: ClassificationPolicy) -> datetime | None:
    """The first moment after `after` at which time alone may change the class (None: never)."""
    points = facts.change_points(policy)
    index = bisect.bisect_right(points, after)
    return points[index] if index < len(points) else None


@dataclass(frozen=True)
class Recorded:
    """One change already recorded: `attribute` became `value` at `at`."""
    at: datetime
    attribute: str
    value: str


@dataclass(frozen=True)
class Correction:
    at: datetime
    attribute: str
    old: str
    new: str
    step: ClassStep  # the class it belongs to (its reason and rolling total)


def corrections(initial: dict[str, str], recorded: list[Recorded], steps: list[ClassStep]) -> list[Correction]:
    """The changes that turn the recorded history (`initial` values, then `recorded` in the order they were
    recorded) into `steps` from `steps[0].at` on, in time order; nothing when they agree already."""
    recorded = sorted(recorded, key=lambda change: change.at)  # stable: same-instant changes keep their order
    since = steps[0].at
    folded = dict(initial)
    for change in recorded:
        if change.at < since:
            folded[change.attribute] = change.value
    moments = sorted({step.at for step in steps} | {change.at for change in recorded if change.at >= since})
    step_times = [step.at for step in steps]
    pending = [change for change in recorded if change.at >= since]
    out, next_recorded = [], 0
    for moment in moments:
        while next_recorded < len(pending) and pending[next_recorded].at <= moment:
            folded[pending[next_recorded].attribute] = pending[next_recorded].value
            next_recorded += 1
        step = steps[bisect.bisect_right(step_times, moment) - 1]
        for attribute in ATTRIBUTES:
            if folded[attribute] != step.value(attribute):
                out.append(Correction(moment, attribute, folded[attribute], step.value(attribute), step))
                folded[attribute] = step.value(attribute)
    return out
