"""Settings of the reports service, from REPORTS_* environment variables (docs/reports.md)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .counters import DEFAULT_ACK_SLA


@dataclass(frozen=True)
class ReportSettings:
    ack_sla: timedelta = DEFAULT_ACK_SLA       # an alert handled within this of its raise is "in time"
    default_periods: int = 12                  # periods in a table or chart when `from` is not given
    max_periods: int = 400                     # most periods one table or chart may span
    max_range_days: int = 366                  # longest custom date range (from..to, both days included)
    rebuild_wait_seconds: float = 30.0         # how long POST /v1/reports/rebuild waits for the replays

    def __post_init__(self):
        if self.ack_sla <= timedelta(0):
            raise ValueError("REPORTS_ACK_SLA_HOURS must be positive")
        if not 1 <= self.default_periods <= self.max_periods:
            raise ValueError("need 1 <= REPORTS_DEFAULT_PERIODS <= REPORTS_MAX_PERIODS")
        if self.max_range_days < 1:
            raise ValueError("REPORTS_MAX_RANGE_DAYS must be at least 1")
        if self.rebuild_wait_seconds < 0:
            raise ValueError("REPORTS_REBUILD_WAIT_SECONDS cannot be negative")

    @classmethod
    def from_settings(cls, settings: dict) -> "ReportSettings":
        """REPORTS_ACK_SLA_HOURS=48, REPORTS_DEFAULT_PERIODS=12, REPORTS_MAX_PERIODS=400,
        REPORTS_MAX_RANGE_DAYS=366, REPORTS_REBUILD_WAIT_SECONDS=30; other REPORTS_* keys (database URL, address)
        are not ours."""
        kwargs: dict = {}
        if settings.get("REPORTS_ACK_SLA_HOURS"):
            kwargs["ack_sla"] = timedelta(hours=float(settings["REPORTS_ACK_SLA_HOURS"]))
        for name in ("default_periods", "max_periods", "max_range_days"):
            if settings.get(f"REPORTS_{name.upper()}"):
                kwargs[name] = int(settings[f"REPORTS_{name.upper()}"])
        if settings.get("REPORTS_REBUILD_WAIT_SECONDS"):
            kwargs["rebuild_wait_seconds"] = float(settings["REPORTS_REBUILD_WAIT_SECONDS"])
        return cls(**kwargs)
