"""The customers API over HTTP in embedded mode (all services in one process, memory bus, SQLite)."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests

NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def api(embedded_system):
    return embedded_system.base_url


@pytest.fixture
def headers(token):
    return lambda user="admin", role="admin", team=None: {"Authorization": f"Bearer {token(user, role, team)}"}


@pytest.fixture
def team(api, headers):
    name = f"t{uuid.uuid4().hex[:6]}"
    for rep, role in ((f"{name}-mgr", "manager"), (f"{name}-r1", "rep"), (f"{name}-r2", "rep")):
        response = requests.post(f"{api}/v1/reps", json={"id": rep, "name": rep, "team": name, "role": role},
                                 headers=headers())
        assert response.status_code == 201, response.text
    return name


def test_front_door_answers_json_for_everything(api, headers):
    assert requests.get(f"{api}/v1/customers").status_code == 401
    assert requests.get(f"{api}/v1/customers", headers={"Authorization": "Bearer nope"}).json()["error"] == \
        "unauthorized"
    missing = requests.get(f"{api}/v1/nothing-here", headers=headers())
    assert missing.status_code == 404 and missing.json()["error"] == "http_error"
    assert requests.delete(f"{api}/v1/customers", headers=headers()).status_code == 405
    bad_json = requests.post(f"{api}/v1/customers", data="{oops", headers=headers())
    assert bad_json.status_code == 400 and "body" in bad_json.json()["fields"]
    assert requests.get(f"{api}/health").json()["status"] == "ok"
    assert "/v1/customers/{customer_id}" in requests.get(f"{api}/openapi.json").json()["paths"]
    assert "crm_http_requests_total" in requests.get(f"{api}/metrics").text


def test_rep_manager_admin_scopes(api, headers, team):
    rep1, rep2, mgr = headers(f"{team}-r1", "rep", team), headers(f"{team}-r2", "rep", team), \
        headers(f"{team}-mgr", "manager", team)
    created = requests.post(f"{api}/v1/customers", json={"company": "Scoped Ltd"}, headers=rep1)
    assert created.status_code == 201 and created.json()["owner_id"] == f"{team}-r1"
    cid = created.json()["id"]
    assert requests.get(f"{api}/v1/customers/{cid}", headers=rep2).status_code == 404
    assert requests.get(f"{api}/v1/customers/{cid}/history", headers=rep2).status_code == 404
    assert requests.get(f"{api}/v1/customers/{cid}", headers=mgr).status_code == 200
    assert requests.post(f"{api}/v1/reps", json={"id": f"{team}-x-mgr", "name": "X", "team": f"{team}-other",
                                                 "role": "manager"}, headers=headers()).status_code == 201
    other_manager = headers(f"{team}-x-mgr", "manager", f"{team}-other")
    assert requests.get(f"{api}/v1/customers/{cid}", headers=other_manager).status_code == 404
    assert requests.post(f"{api}/v1/customers/{cid}/transfer", json={"to_owner_id": f"{team}-r2"},
                         headers=rep1).status_code == 403
    moved = requests.post(f"{api}/v1/customers/{cid}/transfer", json={"to_owner_id": f"{team}-r2"}, headers=mgr)
    assert moved.status_code == 200 and moved.json()["owner_id"] == f"{team}-r2"
    assert [c["id"] for c in requests.get(f"{api}/v1/customers", headers=rep2).json()["items"]] == [cid]


def test_purchase_history_classifies_and_validates(api, headers, team):
    admin = headers()
    cid = requests.post(f"{api}/v1/customers", json={"company": "Buyer Inc", "owner_id": f"{team}-r1"},
                        headers=admin).json()["id"]
    for days in (300, 240, 30):
        r = requests.post(f"{api}/v1/customers/{cid}/purchases", headers=admin, json={
            "amount": "40000", "currency": "USD", "purchased_at": (NOW - timedelta(days=days)).isoformat()})
        assert r.status_code == 201, r.text
    body = requests.get(f"{api}/v1/customers/{cid}", headers=admin).json()
    assert (body["tier"], body["lifecycle"], body["purchase_count"]) == ("A", "active", 3)
    bad = requests.post(f"{api}/v1/customers/{cid}/purchases", headers=admin, json={
        "amount": "ten", "currency": "dollars", "purchased_at": "soon", "colour": "red"})
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"amount", "currency", "purchased_at", "colour"}
    future = requests.post(f"{api}/v1/customers/{cid}/purchases", headers=admin, json={
        "amount": "1", "currency": "USD", "purchased_at": (NOW + timedelta(days=2)).isoformat()})
    assert future.status_code == 400 and list(future.json()["fields"]) == ["purchased_at"]
    assert len(requests.get(f"{api}/v1/customers/{cid}/purchases", headers=admin).json()["items"]) == 3
    stage = requests.post(f"{api}/v1/customers/{cid}/stage", json={"stage": "won"}, headers=admin)
    assert stage.status_code == 200
    again = requests.post(f"{api}/v1/customers/{cid}/stage", json={"stage": "proposal"}, headers=admin)
    assert again.status_code == 422 and "stage" in again.json()["fields"]


def test_handover_over_http(api, headers, team):
    admin = headers()
    ids = [requests.post(f"{api}/v1/customers", json={"company": f"H{i}", "owner_id": f"{team}-r1"},
                         headers=admin).json()["id"] for i in range(4)]
    result = requests.post(f"{api}/v1/reps/{team}-r1/handover", json={"to_team": team, "reason": "left"},
                           headers=headers(f"{team}-mgr", "manager", team)).json()
    assert result["moved"] == 4 and result["by_new_owner"] == {f"{team}-r2": 4}
    reps = requests.get(f"{api}/v1/reps", params={"team": team}, headers=admin).json()["items"]
    assert {r["id"]: r["active"] for r in reps}[f"{team}-r1"] is False
    history = requests.get(f"{api}/v1/customers/{ids[0]}/history", headers=admin).json()
    assert history["ownership"][0]["from_owner_id"] == f"{team}-r1"
