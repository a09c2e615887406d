"""The service's settings, parsed from FOLLOWUPS_* environment variables (no framework here).

Every value has a default that runs out of the box; a bad value raises DomainError naming the
variable, so a misconfigured replica refuses to start instead of running with a surprise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time, timedelta, timezone, tzinfo
from typing import Mapping

from services.followups.domain.base import IMPORTANT_DATE_KINDS, DomainError
from services.followups.domain.cadence import DEFAULT_CADENCE_POLICY, CadencePolicy
from services.followups.domain.care import DEFAULT_CARE_DATE_KINDS, DEFAULT_CARE_DUE_TIME
from services.followups.domain.interactions import DEFAULT_CLOCK_SKEW
from services.followups.domain.key_moments import KeyMomentRules
from services.followups.domain.responses import DEFAULT_COMPLAINT_DUE, DEFAULT_RECALL_DUE
from services.followups.domain.tasks import DEFAULT_DUE_SOON_WINDOW, DEFAULT_GRACE_PERIOD

PREFIX = "FOLLOWUPS_"
_OFFSET = re.compile(r"^(?:UTC|Z|([+-])(\d{2}):?(\d{2}))$")


def parse_utc_offset(text: str, name: str) -> tzinfo:
    """"UTC", "Z", "+08:00", "-0530" -> a fixed-offset timezone."""
    match = _OFFSET.match((text or "").strip().upper())
    if not match:
        raise DomainError(f"expected a UTC offset such as +08:00 or UTC, got {text!r}", field=name)
    if match.group(1) is None:
        return timezone.utc
    hours, minutes = int(match.group(2)), int(match.group(3))
    if hours > 14 or minutes > 59:
        raise DomainError(f"offset out of range: {text!r}", field=name)
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if match.group(1) == "-" else delta)


@dataclass(frozen=True)
class FollowupsSettings:
    cadence: CadencePolicy = DEFAULT_CADENCE_POLICY  # until an admin stores one with PUT /v1/cadence-policy
    key_moments: KeyMomentRules = field(default_factory=KeyMomentRules)
    # a stage change older than this when it reaches us is imported history: no key-moment task
    key_moment_max_age: timedelta = timedelta(days=60)
    due_soon_window: timedelta = DEFAULT_DUE_SOON_WINDOW
    grace_period: timedelta = DEFAULT_GRACE_PERIOD
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    recall_due: timedelta = DEFAULT_RECALL_DUE  # alert.raised -> recall task due this long after the alert
    complaint_due: timedelta = DEFAULT_COMPLAINT_DUE  # a logged complaint -> follow-up due this long after
    care_lead_days: int = 3
    care_horizon_days: int = 30
    care_kinds: tuple[str, ...] = DEFAULT_CARE_DATE_KINDS
    care_due_time: time = DEFAULT_CARE_DUE_TIME
    timezone: tzinfo = timezone.utc  # where the day of care tasks and work lists ends, unless asked otherwise
    reminder_interval_seconds: float = 60.0
    care_interval_seconds: float = 3600.0
    sweep_batch_size: int = 1000

    @classmethod
    def from_settings(cls, env: Mapping[str, str]) -> "FollowupsSettings":
        """Reads FOLLOWUPS_* variables (see docs/followups.md for the list)."""
        def get(name):
            value = env.get(PREFIX + name)
            return None if value is None or str(value).strip() == "" else str(value).strip()

        kwargs: dict = {}
        if get("CADENCE") is not None:
            try:
                kwargs["cadence"] = CadencePolicy.from_config(get("CADENCE"))
            except DomainError as exc:
                raise DomainError(f"{PREFIX}CADENCE: key {exc.field!r}: {exc.message}", field=PREFIX + "CADENCE")
        analysis = _int(get("NEEDS_ANALYSIS_FOLLOW_UP_DAYS"), "NEEDS_ANALYSIS_FOLLOW_UP_DAYS", 1)
        revisit = _int(get("WON_REVISIT_DAYS"), "WON_REVISIT_DAYS", 1)
        if analysis is not None or revisit is not None:
            defaults = KeyMomentRules()
            kwargs["key_moments"] = KeyMomentRules(
                needs_analysis_follow_up_days=analysis or defaults.needs_analysis_follow_up_days,
                won_revisit_days=revisit or defaults.won_revisit_days)
        for name, attr, unit, minimum in (
                ("KEY_MOMENT_MAX_AGE_DAYS", "key_moment_max_age", "days", 1),
                ("DUE_SOON_MINUTES", "due_soon_window", "minutes", 0),
                ("GRACE_HOURS", "grace_period", "hours", 0),
                ("CLOCK_SKEW_SECONDS", "clock_skew", "seconds", 0),
                ("RECALL_DUE_HOURS", "recall_due", "hours", 0),
                ("COMPLAINT_DUE_HOURS", "complaint_due", "hours", 0)):
            value = _int(get(name), name, minimum)
            if value is not None:
                kwargs[attr] = timedelta(**{unit: value})
        for name, attr, minimum in (("CARE_LEAD_DAYS", "care_lead_days", 0),
                                    ("CARE_HORIZON_DAYS", "care_horizon_days", 0),
                                    ("SWEEP_BATCH_SIZE", "sweep_batch_size", 1)):
            value = _int(get(name), name, minimum)
            if value is not None:
                kwargs[attr] = value
        for name, attr in (("REMINDER_INTERVAL_SECONDS", "reminder_interval_seconds"),
                           ("CARE_INTERVAL_SECONDS", "care_interval_seconds")):
            if get(name) is not None:
                try:
                    seconds = float(get(name))
                except ValueError:
                    seconds = -1
                if not seconds > 0:
                    raise DomainError(f"must be a positive number of seconds, got {get(name)!r}", field=PREFIX + name)
                kwargs[attr] = seconds
        if get("CARE_KINDS") is not None:
            kinds = tuple(k.strip() for k in get("CARE_KINDS").split(",") if k.strip())
            unknown = [k for k in kinds if k not in IMPORTANT_DATE_KINDS]
            if unknown:
                raise DomainError(f"unknown important date kind(s) {unknown}; known: {IMPORTANT_DATE_KINDS}",
                                  field=PREFIX + "CARE_KINDS")
            kwargs["care_kinds"] = kinds
        if get("CARE_DUE_TIME") is not None:
            try:
                kwargs["care_due_time"] = time.fromisoformat(get("CARE_DUE_TIME"))
            except ValueError:
                raise DomainError(f"expected HH:MM, got {get('CARE_DUE_TIME')!r}", field=PREFIX + "CARE_DUE_TIME")
        if get("TIMEZONE") is not None:
            kwargs["timezone"] = parse_utc_offset(get("TIMEZONE"), PREFIX + "TIMEZONE")
        return cls(**kwargs)


def _int(value: str | None, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if not re.fullmatch(r"-?\d+", value) or int(value) < minimum:
        raise DomainError(f"must be a whole number >= {minimum}, got {value!r}", field=PREFIX + name)
    return int(value)
