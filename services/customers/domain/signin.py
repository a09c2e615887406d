"""Rules of the built-in sign-in: what a password must be, and when failed attempts lock an account or an address.

Counted per account (a guessed password of one user) and per client address (one address trying many users);
either past its limit within the window locks that key for LOCK_MINUTES: the next attempts answer 429 with the
seconds to wait, the password not even checked. A success clears the account's count.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_common.errors import CrmError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
WINDOW = timedelta(minutes=15)
LOCK = timedelta(minutes=15)
MAX_FAILURES = {"user": 5, "address": 50}


def check_new_password(password: str, user_id: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CrmError(f"must be at least {MIN_PASSWORD_LENGTH} characters", field="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise CrmError(f"must be at most {MAX_PASSWORD_LENGTH} characters", field="password")
    if password.strip().lower() == user_id.strip().lower():
        raise CrmError("must not be the user id", field="password")
    if len(set(password)) < 4:
        raise CrmError("uses fewer than 4 different characters", field="password")


@dataclass(frozen=True)
class Attempts:
    failures: int
    window_started_at: datetime
    locked_until: datetime | None = None


def seconds_locked(attempts: Attempts | None, now: datetime) -> int:
    """How long this key must still wait (0: not locked), rounded up to whole seconds."""
    if attempts is None or attempts.locked_until is None or attempts.locked_until <= now:
        return 0
    return max(1, int((attempts.locked_until - now).total_seconds() + 0.999))


def after_failure(attempts: Attempts | None, kind: str, now: datetime) -> Attempts:
    """The count once one more attempt failed; the failure that reaches the limit locks the key."""
    if attempts is None or now - attempts.window_started_at >= WINDOW:
        attempts = Attempts(failures=0, window_started_at=now)
    failures = attempts.failures + 1
    locked_until = now + LOCK if failures >= MAX_FAILURES[kind] else attempts.locked_until
    return Attempts(failures=failures, window_started_at=attempts.window_started_at, locked_until=locked_until)
