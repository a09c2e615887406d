"""Cadence: how often each class of customer (tier x lifecycle) should be touched.

A policy maps (tier or "*", lifecycle or "*") to an interval in days, or None for "no cadence".
Lookup precedence: (tier, lifecycle) > (*, lifecycle) > (tier, *) > (*, *); no match = no cadence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from services.followups.domain.base import (
    LIFECYCLES, TIERS, DomainError, require_aware, require_choice, require_days,
)
from services.followups.domain.tasks import Task

ANY = "*"
NO_CADENCE_WORDS = ("none", "off")

DEFAULT_CADENCE_DAYS: dict[tuple[str, str], int | None] = {
    (ANY, "potential"): 7,
    (ANY, "new"): 7,
    (ANY, "active"): 30,
    (ANY, "dormant"): 90,
    (ANY, "at_risk"): 7,
    (ANY, "churned"): None,  # win-back is a deliberate campaign, not a routine cadence
    ("A", "active"): 14,
    (ANY, ANY): 30,
}


def format_key(tier: str, lifecycle: str) -> str:
    """("*", "*") -> "*", ("*", "active") -> "active", ("A", "*") -> "A", ("A", "active") -> "A/active"."""
    if tier == ANY:
        return lifecycle
    return tier if lifecycle == ANY else f"{tier}/{lifecycle}"


def parse_key(text: str) -> tuple[str, str]:
    """Inverse of format_key; a single word is a tier or a lifecycle (the two never share a name)."""
    name = text.strip() if isinstance(text, str) else text
    if not isinstance(name, str) or not name:
        raise DomainError("empty cadence key", field=str(text))
    if "/" in name:
        tier, _, lifecycle = (part.strip() for part in name.partition("/"))
    elif name == ANY:
        tier, lifecycle = ANY, ANY
    elif name in TIERS:
        tier, lifecycle = name, ANY
    elif name in LIFECYCLES:
        tier, lifecycle = ANY, name
    else:
        raise DomainError(f"unknown cadence key {name!r}: use a lifecycle, a tier, tier/lifecycle or *", field=name)
    _check_key(tier, lifecycle, name)
    return tier, lifecycle


def _check_key(tier: Any, lifecycle: Any, name: str) -> None:
    if tier != ANY and tier not in TIERS:
        raise DomainError(f"unknown tier {tier!r} (tiers are {', '.join(TIERS)} or *)", field=name)
    if lifecycle != ANY and lifecycle not in LIFECYCLES:
        raise DomainError(f"unknown lifecycle {lifecycle!r} (lifecycles are {', '.join(LIFECYCLES)} or *)",
                          field=name)


@dataclass(frozen=True)
class CadencePolicy:
    intervals: Mapping[tuple[str, str], int | None] = field(default_factory=lambda: dict(DEFAULT_CADENCE_DAYS))

    def __post_init__(self) -> None:
        for key, days in self.intervals.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise DomainError("cadence keys are (tier, lifecycle) pairs", field=str(key))
            name = format_key(*key) if all(isinstance(part, str) for part in key) else str(key)
            _check_key(*key, name)
            if days is not None:
                require_days(days, name)
        object.__setattr__(self, "intervals", dict(self.intervals))  # private copy: callers can't mutate it

    def interval_for(self, tier: str, lifecycle: str) -> int | None:
        """Days between touches for this class, or None when it has no cadence."""
        require_choice(tier, TIERS, "tier")
        require_choice(lifecycle, LIFECYCLES, "lifecycle")
        for key in ((tier, lifecycle), (ANY, lifecycle), (tier, ANY), (ANY, ANY)):
            if key in self.intervals:
                return self.intervals[key]
        return None

    @classmethod
    def from_dict(cls, entries: Mapping[str, Any], *, keep_defaults: bool = True) -> CadencePolicy:
        """{"active": 30, "A/active": 14, "churned": None, "*": 30}, e.g. an HTTP body.

        Values are positive integers or None (no cadence). With keep_defaults the entries
        override the default table; without, they are the whole table.
        """
        if not isinstance(entries, Mapping):
            raise DomainError("cadence policy must be an object of key: days", field="cadence")
        intervals = dict(DEFAULT_CADENCE_DAYS) if keep_defaults else {}
        seen: dict[tuple[str, str], str] = {}
        for name, days in entries.items():
            key = parse_key(name)
            if key in seen:  # e.g. "active" and "*/active" are the same entry
                raise DomainError(f"duplicate cadence key (same as {seen[key]!r})", field=name)
            seen[key] = name
            if days is not None:
                require_days(days, name)
            intervals[key] = days
        return cls(intervals)

    @classmethod
    def from_config(cls, text: str, *, keep_defaults: bool = True) -> CadencePolicy:
        """"potential=7,new=7,active=30,dormant=90,at_risk=7,churned=none,A/active=14,*=30" (env/CLI)."""
        entries: dict[str, int | None] = {}
        for item in (text or "").split(","):
            if not item.strip():
                continue  # tolerate trailing commas and blank config
            name, sep, value = (part.strip() for part in item.partition("="))
            if not sep:
                raise DomainError(f"expected key=days, got {item.strip()!r}", field=name or item.strip())
            if name in entries:
                raise DomainError("duplicate cadence key", field=name)
            entries[name] = _parse_days(value, name)
        return cls.from_dict(entries, keep_defaults=keep_defaults)

    def to_dict(self) -> dict[str, int | None]:
        return {format_key(*key): days for key, days in sorted(self.intervals.items())}

    def to_config(self) -> str:
        return ",".join(f"{name}={'none' if days is None else days}" for name, days in self.to_dict().items())


def _parse_days(value: str, name: str) -> int | None:
    if value.lower() in NO_CADENCE_WORDS:
        return None
    if not re.fullmatch(r"\d+", value):
        raise DomainError(f"must be a positive whole number of days or 'none', got {value!r}", field=name)
    return require_days(int(value), name)


DEFAULT_CADENCE_POLICY = CadencePolicy()


def cadence_task_kind(lifecycle: str) -> str:
    """Prospects get follow-ups, customers maintenance; a churned cadence (if configured) is a recall."""
    require_choice(lifecycle, LIFECYCLES, "lifecycle")
    if lifecycle == "potential":
        return "follow_up"
    return "recall" if lifecycle == "churned" else "maintenance"


def next_cadence_due(policy: CadencePolicy, tier: str, lifecycle: str, last_touch_at: datetime) -> datetime | None:
    """Last touch + the class interval; None when the class has no cadence."""
    require_aware(last_touch_at, "last_touch_at")
    days = policy.interval_for(tier, lifecycle)
    return None if days is None else last_touch_at + timedelta(days=days)


def cadence_purpose(policy: CadencePolicy, tier: str, lifecycle: str, kind: str) -> str:
    """The task's text names the class and interval it follows, so a class change must retitle it."""
    days = policy.interval_for(tier, lifecycle)
    return f"{kind.replace('_', ' ')}: touch every {days} days (tier {tier}, {lifecycle})"


def touch_completes_cadence_task(task: Task, occurred_at: datetime) -> bool:
    """The newest touch completes the open cadence task, unless it happened before the task was scheduled
    (a backdated touch from then only moves it)."""
    require_aware(occurred_at, "occurred_at")
    return task.is_open and (task.created_at is None or occurred_at >= task.created_at)


@dataclass(frozen=True)
class CadenceDecision:
    """What to do with a customer's single open cadence task.

    action: "schedule" (none open, one is needed), "reschedule" (move, re-kind or retitle the open one),
    "keep", "cancel" (skip the open one with ``reason``) or "none" (nothing open, nothing needed).
    ``purpose`` is the text the task must carry for the customer's class.
    """
    action: str
    due_at: datetime | None = None
    kind: str | None = None
    reason: str = ""
    purpose: str = ""


def reconcile_cadence(policy: CadencePolicy, open_task: Task | None, tier: str, lifecycle: str,
                      last_touch_at: datetime, now: datetime) -> CadenceDecision:
    """Bring the open cadence task in line with the customer's (new) class and last touch.

    Call it when the tier or lifecycle changes (and when scheduling the first cadence task).
    The new interval counts from the last touch and the result is never before ``now``; an
    open task that is already due stays put rather than being moved to "now", which would
    only hide that it is late. A task whose due time and kind stay but whose text names
    another class (or interval) is rescheduled in place, to carry the new text.
    """
    require_aware(now, "now")
    due_at = next_cadence_due(policy, tier, lifecycle, last_touch_at)
    if due_at is None:
        if open_task is None:
            return CadenceDecision("none")
        return CadenceDecision("cancel", reason=f"no cadence for tier {tier} {lifecycle} customers")
    kind = cadence_task_kind(lifecycle)
    purpose = cadence_purpose(policy, tier, lifecycle, kind)
    if open_task is None:
        return CadenceDecision("schedule", max(due_at, now), kind, "cadence", purpose)
    if due_at <= now and open_task.due_at <= now:
        due_at = open_task.due_at  # already due under both classes: leave its lateness visible
    else:
        due_at = max(due_at, now)
    if due_at == open_task.due_at and kind == open_task.kind and purpose == open_task.purpose:
        return CadenceDecision("keep", due_at, kind, purpose=purpose)
    return CadenceDecision("reschedule", due_at, kind, "class_change", purpose)
