"""Issue 12 items 1-3, the built-in issuer: sign in with a password stored as an argon2 hash, lockout after
repeated failures, passwords set by admins or changed by their owner, sign-out everywhere, and every route of
every service refusing a missing, malformed, expired, forged or revoked token, each refusal counted in the
metrics and written to the audit log. All over HTTP against the embedded system."""
import sqlite3
import time
from contextlib import closing

import jwt
import pytest
import requests

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET
from crm_common.ops import openapi_document

TEAM = "signin-team"
PASSWORD = "correct horse battery"
# one route of each service that any active rep may read
ROUTES = ["/v1/customers", "/v1/worklist", "/v1/alerts", "/v1/reports/summary"]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def admin(base, method, path, body=None):
    answer = requests.request(method, base + path, json=body, timeout=30,
                              headers=bearer(issue_token(DEV_SECRET, "admin", "admin")))
    assert answer.status_code < 300, answer.text
    return answer.json()


def login(base, user, password, **headers):
    return requests.post(base + "/v1/auth/login", json={"user": user, "password": password}, headers=headers,
                         timeout=30)


def statuses(base, token):
    return [requests.get(base + path, headers=bearer(token), timeout=30).status_code for path in ROUTES]


def within(seconds, check, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {seconds}s")


def audit_actions(system, service="customers"):
    container = next(c for c in system.containers if c.service_name == service)
    path = container.config["DATABASE_URL"].split("///", 1)[1]
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return [tuple(row) for row in db.execute("SELECT action, entity_id, changes FROM audit_log ORDER BY id")]


def metric(base, name, **labels):
    text = requests.get(base + "/metrics", timeout=10).text
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(label in line for label in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def base(embedded_system):
    url = embedded_system.base_url
    for rep in ({"id": "si-mgr", "name": "Sign-in Manager", "team": TEAM, "role": "manager",
                 "email": "mgr@signin.example"},
                {"id": "si-rep", "name": "Sign-in Rep", "team": TEAM, "manager_id": "si-mgr",
                 "email": "Rep@SignIn.example"},
                {"id": "si-other", "name": "Other Rep", "team": TEAM}):
        admin(url, "POST", "/v1/reps", rep)
    for rep_id in ("si-mgr", "si-rep", "si-other"):
        assert admin(url, "PUT", f"/v1/reps/{rep_id}/password", {"password": PASSWORD})["password_set"]
    admin(url, "POST", "/v1/customers", {"company": "Sign-in Ltd", "owner_id": "si-rep"})
    within(10, lambda: statuses(url, issue_token(DEV_SECRET, "si-rep", "rep", TEAM)) == [200] * 4,
           "every service to know the reps")
    return url


def test_sign_in_by_id_or_email_gives_a_short_lived_jwt_every_service_accepts(base):
    answer = login(base, "si-rep", PASSWORD)
    assert answer.status_code == 200, answer.text
    session = answer.json()
    assert session["token_type"] == "Bearer" and session["expires_in"] == 3600
    assert session["user"] == {"id": "si-rep", "name": "Sign-in Rep", "email": "Rep@SignIn.example",
                               "role": "rep", "team": TEAM}
    claims = jwt.decode(session["access_token"], DEV_SECRET, algorithms=["HS256"], audience="crm-api", issuer="crm")
    assert claims["sub"] == "si-rep" and 3599 <= claims["exp"] - claims["iat"] <= 3600
    assert statuses(base, session["access_token"]) == [200] * 4
    me = requests.get(base + "/v1/auth/me", headers=bearer(session["access_token"]), timeout=10)
    assert me.status_code == 200 and me.json()["id"] == "si-rep"
    by_email = login(base, "rep@signin.example", PASSWORD)  # emails match whatever their case
    assert by_email.status_code == 200 and by_email.json()["user"]["id"] == "si-rep"
    # what the rep may see is still the rep's scope, not more
    listing = requests.get(base + "/v1/customers", headers=bearer(session["access_token"]), timeout=10).json()
    assert {item["owner_id"] for item in listing["items"]} == {"si-rep"}


@pytest.mark.parametrize("user,password", [("si-rep", "wrong password!"), ("nobody-at-all", PASSWORD),
                                           ("si-rep", PASSWORD.upper())])
def test_a_wrong_user_or_password_is_one_answer_that_names_neither(base, user, password):
    answer = login(base, user, password, **{"X-Forwarded-For": f"10.9.0.{len(user)}"})
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_credentials" and answer.json()["message"] == "wrong user or password"


@pytest.mark.parametrize("body,field", [({"password": PASSWORD}, "user"), ({"user": "si-rep"}, "password"),
                                        ({"user": "", "password": PASSWORD}, "user"),
                                        ({"user": "si-rep", "password": PASSWORD, "role": "admin"}, "role")])
def test_a_malformed_sign_in_names_the_field(base, body, field):
    answer = requests.post(base + "/v1/auth/login", json=body, timeout=10)
    assert answer.status_code == 400 and field in answer.json()["fields"], answer.text


def test_repeated_failures_lock_the_account_and_are_counted_and_audited(base, embedded_system):
    admin(base, "POST", "/v1/reps", {"id": "si-locked", "name": "Locked Rep", "team": TEAM})
    admin(base, "PUT", "/v1/reps/si-locked/password", {"password": PASSWORD})
    failed_before, locked_before = metric(base, "crm_logins_total", outcome="failed"), \
        metric(base, "crm_logins_total", outcome="locked")
    for attempt in range(5):  # from different addresses: the account's own limit
        answer = login(base, "si-locked", f"guess number {attempt}", **{"X-Forwarded-For": f"10.1.1.{attempt}"})
        assert answer.status_code == 401
    locked = login(base, "si-locked", PASSWORD)  # even the right password waits now
    assert locked.status_code == 429 and 800 <= int(locked.headers["Retry-After"]) <= 900, locked.text
    assert metric(base, "crm_logins_total", outcome="failed") == failed_before + 5
    assert metric(base, "crm_logins_total", outcome="locked") == locked_before + 1
    failures = [entry for entry in audit_actions(embedded_system) if entry[:2] == ("auth.login_failed", "si-locked")]
    assert len(failures) == 6
    assert login(base, "si-other", PASSWORD).status_code == 200  # nobody else is locked out


def test_one_address_trying_many_users_is_locked_out(base):
    address = {"X-Forwarded-For": "203.0.113.7"}
    for attempt in range(50):
        assert login(base, f"spray-{attempt}", "Password123!", **address).status_code == 401
    assert login(base, "si-other", PASSWORD, **address).status_code == 429
    assert login(base, "si-other", PASSWORD, **{"X-Forwarded-For": "203.0.113.8"}).status_code == 200


def test_passwords_are_set_by_admins_or_changed_by_their_owner(base, embedded_system):
    admin(base, "POST", "/v1/reps", {"id": "si-changer", "name": "Changing Rep", "team": TEAM})
    admin(base, "PUT", "/v1/reps/si-changer/password", {"password": PASSWORD})
    rep_token = login(base, "si-changer", PASSWORD).json()["access_token"]
    put = lambda rep_id, body, token: requests.put(base + f"/v1/reps/{rep_id}/password", json=body,  # noqa: E731
                                                   headers=bearer(token), timeout=30)
    assert put("si-rep", {"password": "someone else's"}, rep_token).status_code == 403
    assert put("si-changer", {"password": "a new password"}, rep_token).status_code == 403  # no current_password
    assert put("si-changer", {"password": "a new password", "current_password": "not it at all"},
               rep_token).status_code == 403
    for bad, message in (("short", "at least 10"), ("si-changer", "not be the user id"), ("aaaaaaaaaaaa", "fewer than 4"),
                         ("x" * 257, "at most 256")):
        answer = put("si-changer", {"password": bad, "current_password": PASSWORD}, rep_token)
        assert answer.status_code == 400 and message in answer.json()["fields"]["password"][0], answer.text
    assert put("nobody-here", {"password": "a good password"},
               issue_token(DEV_SECRET, "admin", "admin")).status_code == 400
    changed = put("si-changer", {"password": "a brand new secret", "current_password": PASSWORD}, rep_token)
    assert changed.status_code == 200 and changed.json()["signed_out_everywhere"] is True
    # the old token is revoked on every service; the old password is gone; the new one signs in
    within(10, lambda: statuses(base, rep_token) == [401] * 4, "the token from before the change refused")
    assert requests.get(base + "/v1/customers", headers=bearer(rep_token), timeout=10).json()["message"].startswith(
        "token revoked")
    assert login(base, "si-changer", PASSWORD).status_code == 401
    fresh = login(base, "si-changer", "a brand new secret")
    assert fresh.status_code == 200 and statuses(base, fresh.json()["access_token"]) == [200] * 4
    entries = [entry for entry in audit_actions(embedded_system) if entry[1] == "si-changer"]
    assert ("rep.password_set", "si-changer") in [entry[:2] for entry in entries]
    assert all("a brand new secret" not in str(entry) for entry in audit_actions(embedded_system))


def test_sign_out_everywhere_revokes_older_tokens_only(base):
    old = login(base, "si-mgr", PASSWORD).json()["access_token"]
    assert requests.post(base + "/v1/reps/si-rep/sign-out", headers=bearer(old), timeout=10).status_code == 403
    assert requests.post(base + "/v1/reps/si-mgr/sign-out", headers=bearer(old), timeout=10).status_code == 200
    within(10, lambda: statuses(base, old) == [401] * 4, "the manager's older token refused everywhere")
    new = login(base, "si-mgr", PASSWORD).json()["access_token"]
    assert statuses(base, new) == [200] * 4


def test_a_deactivated_user_cannot_sign_in(base):
    admin(base, "POST", "/v1/reps", {"id": "si-gone", "name": "Gone Rep", "team": TEAM})
    admin(base, "PUT", "/v1/reps/si-gone/password", {"password": PASSWORD})
    assert login(base, "si-gone", PASSWORD).status_code == 200
    admin(base, "PATCH", "/v1/reps/si-gone", {"active": False})
    answer = login(base, "si-gone", PASSWORD)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_credentials"


def _secured_routes():
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete") and operation.get("security", [{}]) != []:
                yield method.upper(), path


def _bad_tokens(base):
    expired = issue_token(DEV_SECRET, "si-rep", "rep", TEAM, ttl_seconds=60, now=time.time() - 3600)
    forged = issue_token("not the secret of this system, only as long", "admin", "admin")
    header, payload, _ = issue_token(DEV_SECRET, "admin", "admin").split(".")
    unsigned = jwt.encode({"iss": "crm", "aud": "crm-api", "sub": "admin", "role": "admin", "iat": int(time.time()),
                           "exp": int(time.time()) + 600}, None, algorithm="none")
    admin(base, "POST", "/v1/reps", {"id": "si-revoked", "name": "Revoked", "team": TEAM, "role": "manager"})
    within(10, lambda: statuses(base, issue_token(DEV_SECRET, "si-revoked", "manager", TEAM)) == [200] * 4,
           "every service to know si-revoked")
    revoked = issue_token(DEV_SECRET, "si-revoked", "manager", TEAM, now=time.time() - 5)
    admin(base, "POST", "/v1/reps/si-revoked/sign-out")
    within(10, lambda: statuses(base, revoked) == [401] * 4, "the revoked token refused everywhere")
    return {"missing": None, "malformed": "crm1.abc.def", "expired": expired, "forged": forged,
            "tampered": f"{header}.{payload}.AAAA", "unsigned": unsigned, "revoked": revoked}


def test_every_route_refuses_a_missing_expired_forged_or_revoked_token(base, embedded_system):
    tokens = _bad_tokens(base)
    refused_before = metric(base, "crm_auth_refused_total")
    routes = list(_secured_routes())
    assert len(routes) > 40
    for method, path in routes:
        url = base + path.replace("{", "").replace("}", "")  # ids that may or may not exist: refused first
        for kind, token in tokens.items():
            answer = requests.request(method, url, headers=bearer(token) if token else {}, json={}, timeout=30)
            assert answer.status_code == 401, (kind, method, path, answer.status_code, answer.text)
            assert answer.json()["error"] == "unauthorized"
    assert metric(base, "crm_auth_refused_total") >= refused_before + len(routes) * len(tokens)
    for reason in ("missing", "malformed", "expired", "forged", "revoked"):
        assert metric(base, "crm_auth_refused_total", reason=reason) > 0, reason
    # audited in the service that refused, once a minute per reason and user
    for service in ("customers", "followups", "alerts", "reports"):
        refusals = [entry for entry in audit_actions(embedded_system, service) if entry[0] == "auth.refused"]
        reasons = {entry[2].split('"reason": "', 1)[1].split('"', 1)[0] for entry in refusals}
        assert {"missing", "expired", "forged", "revoked"} <= reasons, (service, reasons)
        assert len(refusals) < 40, (service, len(refusals))
