"""Access and CSV rules pinned where mutation testing (bench/mutation.py, docs/testing.md) found mutants the other
unit tests let live: each denial's message (what the API's 403 body says), the slice every role starts from, and
how a boolean cell is written."""
from __future__ import annotations

import pytest

from services.reports.domain import ReportAccessDenied, Slice, check_access, default_slice, format_cell, scope_for


@pytest.mark.parametrize("call, args, message", [
    (scope_for, ("manager", "m1", None), "a manager without a team has no reports to see"),
    (scope_for, ("guest", "g1", "east"), "unknown role 'guest'"),
    (check_access, ("manager", "m1", "east", Slice(team="east"), "team"), "only an admin may compare teams"),
    (check_access, ("rep", "r1", "east", Slice(rep="r1"), "rep"), "a rep may not compare reps"),
    (check_access, ("rep", "r1", "east", Slice(team="east")), "a rep sees only their own figures"),
    (check_access, ("manager", "m1", "east", Slice(team="west")), "a manager sees only their own team"),
])
def test_each_denial_says_why(call, args, message):
    with pytest.raises(ReportAccessDenied) as denied:
        call(*args)
    assert (denied.value.message, denied.value.status) == (message, 403)


def test_every_role_starts_from_its_own_scope():
    assert [default_slice("rep", "r1", "east"), default_slice("manager", "m1", "east"),
            default_slice("admin", "a1", None)] == [Slice(rep="r1"), Slice(team="east"), Slice()]


def test_booleans_are_written_true_and_false():
    assert (format_cell(True), format_cell(False)) == ("true", "false")
