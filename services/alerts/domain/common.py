"""Shared bits of the alerts domain: its error type and calendar-day arithmetic."""
from __future__ import annotations

from datetime import date, datetime, timezone
from functools import lru_cache

TIERS = ("A", "B", "C")


class DomainError(ValueError):
    """A rule of the domain was broken; ``field`` names the offending setting when there is one."""

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


def require_aware(moment: datetime, name: str = "as_of") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise DomainError("must be a timezone-aware datetime", name)
    return moment


@lru_cache(maxsize=1 << 16)  # pure and hot: the sweep asks for the same few dates over and over
def utc_day(moment: datetime) -> date:
    """Calendar day in UTC: every rule counts whole days so that any hour of one day gives the same answer."""
    return require_aware(moment, "datetime").astimezone(timezone.utc).date()


def days_between(earlier: datetime, as_of: datetime) -> int:
    """Whole UTC days from ``earlier`` to ``as_of``; facts dated after ``as_of`` count as 0 days old."""
    return max(0, (utc_day(as_of) - utc_day(earlier)).days)
