"""Issue 12 item 1, the directory part: every request's principal is checked against the reps directory of the
service that answers it (each keeps its own copy from rep.* events). Who left is locked out within seconds on
every service, a manager moved to another team sees the new team with the same token, a token for someone never
registered opens nothing, and the role in a token cannot raise what the directory says."""
import time

import pytest
import requests

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET

A, B = "dir-a", "dir-b"
# one route of each service, that any active rep or manager may read
ROUTES = ["/v1/customers", "/v1/worklist", "/v1/alerts", "/v1/reports/summary"]


def call(base, user, role, team, path, method="GET", **kwargs):
    token = issue_token(DEV_SECRET, user, role, team)
    return requests.request(method, base + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs)


def admin(base, method, path, body=None):
    answer = call(base, "admin", "admin", None, path, method, json=body)
    assert answer.status_code < 300, answer.text
    return answer.json()


def statuses(base, user, role, team):
    return [call(base, user, role, team, path).status_code for path in ROUTES]


def within(seconds, check, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {seconds}s")


@pytest.fixture(scope="module")
def base(embedded_system):
    url = embedded_system.base_url
    for rep in ({"id": "dir-mgr", "name": "Manager", "team": A, "role": "manager"},
                {"id": "dir-rep", "name": "Leaving Rep", "team": A, "manager_id": "dir-mgr"},
                {"id": "dir-stays", "name": "Staying Rep", "team": A, "manager_id": "dir-mgr"},
                {"id": "dir-b-rep", "name": "B Rep", "team": B}):
        admin(url, "POST", "/v1/reps", rep)
    admin(url, "POST", "/v1/customers", {"company": "Dir A Ltd", "owner_id": "dir-rep"})
    admin(url, "POST", "/v1/customers", {"company": "Dir B Ltd", "owner_id": "dir-b-rep"})
    within(10, lambda: statuses(url, "dir-rep", "rep", A) == [200] * 4, "every service to know the reps")
    return url


def test_a_departed_reps_token_stops_working_on_every_service(base):
    assert statuses(base, "dir-rep", "rep", A) == [200, 200, 200, 200]
    admin(base, "POST", "/v1/reps/dir-rep/handover", {"to_owner_id": "dir-stays", "deactivate": True})
    within(5, lambda: statuses(base, "dir-rep", "rep", A) == [401] * 4, "the departed rep refused everywhere")
    answer = call(base, "dir-rep", "rep", A, "/v1/customers")
    assert "deactivated" in answer.json()["message"]
    assert statuses(base, "dir-stays", "rep", A) == [200] * 4  # the others go on


def test_a_manager_moved_to_another_team_sees_the_new_team_with_the_old_token(base):
    def companies():
        return {c["company"] for c in call(base, "dir-mgr", "manager", A, "/v1/customers").json()["items"]}
    assert companies() == {"Dir A Ltd"}
    admin(base, "PATCH", "/v1/reps/dir-mgr", {"team": B})
    within(5, lambda: companies() == {"Dir B Ltd"}, "the moved manager to see team B")


def test_a_token_for_someone_never_registered_opens_nothing(base):
    assert statuses(base, "dir-nobody", "manager", A) == [401] * 4
    answer = call(base, "dir-nobody", "manager", A, "/v1/customers")
    assert "not in the reps directory" in answer.json()["message"]


def test_the_directory_role_wins_over_the_tokens(base):
    forged_role = call(base, "dir-b-rep", "admin", None, "/v1/reps", "POST", json={"id": "dir-x", "name": "X"})
    assert forged_role.status_code == 403
    assert {c["company"] for c in call(base, "dir-b-rep", "admin", None, "/v1/customers").json()["items"]} == \
        {"Dir B Ltd"}
