"""The sign-in rules (services/customers/domain/signin.py) at their boundaries, computed by hand."""
from datetime import datetime, timedelta, timezone

import pytest

from crm_common.errors import CrmError
from services.customers.domain.signin import Attempts, after_failure, check_new_password, seconds_locked

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize("password,problem", [
    ("123456789", "at least 10"), ("1234567890", None), ("x" * 256 + "", "fewer than 4"), ("abcd" * 64, None),
    ("abcd" * 64 + "e", "at most 256"), ("Rep-North1", "not be the user id"), ("aaaaabbbbbccc", "fewer than 4"),
    ("aaaabbbbccccd", None),
])
def test_new_password_rules(password, problem):
    if problem is None:
        check_new_password(password, "rep-north1")
    else:
        with pytest.raises(CrmError, match=problem) as refused:
            check_new_password(password, "rep-north1")
        assert refused.value.field == "password"


def test_the_fifth_failure_within_the_window_locks_the_account_for_15_minutes():
    attempts = None
    for minute in range(4):
        attempts = after_failure(attempts, "user", T0 + minute * MINUTE)
        assert seconds_locked(attempts, T0 + minute * MINUTE) == 0
    assert attempts.failures == 4
    attempts = after_failure(attempts, "user", T0 + 14 * MINUTE)
    assert attempts.locked_until == T0 + 29 * MINUTE
    assert seconds_locked(attempts, T0 + 14 * MINUTE) == 900
    assert seconds_locked(attempts, T0 + 29 * MINUTE - timedelta(seconds=0.5)) == 1  # rounded up, never 0
    assert seconds_locked(attempts, T0 + 29 * MINUTE) == 0


def test_failures_spread_over_more_than_the_window_never_lock():
    attempts = None
    for step in range(20):  # one every 4 minutes: at most 4 within any 15-minute window that starts with one
        attempts = after_failure(attempts, "user", T0 + 4 * step * MINUTE)
        assert attempts.locked_until is None, step
    assert attempts.failures <= 4


def test_an_address_has_a_larger_allowance_than_an_account():
    attempts = None
    for _ in range(49):
        attempts = after_failure(attempts, "address", T0)
    assert attempts.locked_until is None
    assert after_failure(attempts, "address", T0).locked_until == T0 + 15 * MINUTE


def test_nothing_recorded_is_not_locked():
    assert seconds_locked(None, T0) == 0
    assert seconds_locked(Attempts(3, T0), T0) == 0
