"""One injectable source of time, so backdated histories replay deterministically."""
from datetime import datetime, timedelta, timezone


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that only moves when told to (tests, replays)."""

    def __init__(self, at: datetime):
        self.at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta) -> None:
        self.at += timedelta(**delta)


def clock_from_config(value: str | None):
    """CRM_FROZEN_TIME=2026-06-30T00:00:00Z freezes time for a whole deployment (demos, replays)."""
    if not value:
        return SystemClock()
    return FixedClock(datetime.fromisoformat(value.replace("Z", "+00:00")))
