import base64
import json
from datetime import datetime, timezone

import jwt
import pytest

import crm_common.contracts  # noqa: F401
from crm_common.auth import Principal, issue_token, principal_from_header, verify_token
from crm_common.errors import Forbidden, Unauthorized
from crm_common.events import InvalidEvent, from_envelope, make_event, to_envelope


def test_token_round_trip_and_tampering():
    token = issue_token("s3cret", "rep-1", "rep", "north", now=1000)
    assert verify_token("s3cret", token, now=2000) == Principal("rep-1", "rep", "north")
    assert verify_token("s3cret", token, now=2000).issued_at == 1000
    header, payload, signature = token.split(".")
    forged_claims = base64.urlsafe_b64encode(json.dumps(
        {**jwt.decode(token, options={"verify_signature": False}), "role": "admin"}).encode()).rstrip(b"=").decode()
    cases = {"forged": [f"{header}.{forged_claims}.{signature}", token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")],
             "malformed": ["a.b", "", "crm1.x.y", "not-a-jwt"]}
    for reason, tokens in cases.items():
        for bad in tokens:
            with pytest.raises(Unauthorized) as refused:
                verify_token("s3cret", bad, now=2000)
            assert refused.value.reason == reason, bad
    with pytest.raises(Unauthorized) as refused:
        verify_token("other-secret", token, now=2000)
    assert refused.value.reason == "forged"
    with pytest.raises(Unauthorized, match="expired"):
        verify_token("s3cret", token, now=1000 + 3600 + 1)
    with pytest.raises(Unauthorized, match="issuer or audience"):
        verify_token("s3cret", issue_token("s3cret", "rep-1", "rep", issuer="someone-else"))
    # "none" and asymmetric algorithms are never accepted under the shared secret
    unsigned = jwt.encode({"iss": "crm", "aud": "crm-api", "sub": "a", "role": "admin", "iat": 1, "exp": 2 ** 40},
                          None, algorithm="none")
    with pytest.raises(Unauthorized):
        verify_token("s3cret", unsigned)
    with pytest.raises(Unauthorized) as refused:
        principal_from_header("s3cret", "Basic abc")
    assert refused.value.reason == "malformed"
    with pytest.raises(Unauthorized) as refused:
        principal_from_header("s3cret", None)
    assert refused.value.reason == "missing"


def test_scope_rules():
    rep, manager, admin = Principal("r1", "rep", "n"), Principal("m", "manager", "n"), Principal("a", "admin")
    assert rep.can_see("r1", "n") and not rep.can_see("r2", "n")
    assert manager.can_see("r2", "n") and not manager.can_see("r3", "s")
    assert admin.can_see(None, None)
    assert (rep.scope(), manager.scope(), admin.scope()) == ({"owner_id": "r1"}, {"team": "n"}, {})
    with pytest.raises(Forbidden):
        rep.require("manager", "admin")


def test_envelope_has_cloudevents_attributes_and_round_trips():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    event = make_event("customer.stage_changed", "c1", {"customer_id": "c1", "new_stage": "won",
                                                         "changed_at": when}, source="crm/customers", time=when)
    envelope = to_envelope(event)
    assert {k: envelope[k] for k in ("specversion", "source", "type", "subject", "time", "dataschema",
                                     "dataversion", "datacontenttype")} == {
        "specversion": "1.0", "source": "crm/customers", "type": "crm.customer.stage_changed", "subject": "c1",
        "time": "2026-01-02T03:04:05+00:00", "dataschema": "urn:crm:event:customer.stage_changed:v1",
        "dataversion": 1, "datacontenttype": "application/json"}
    back = from_envelope(envelope)
    assert (back.id, back.name, back.data["changed_at"]) == (event.id, "customer.stage_changed", when)


def test_producer_cannot_emit_a_payload_breaking_its_contract():
    with pytest.raises(ValueError, match="breaks its contract"):
        make_event("customer.stage_changed", "c1", {"customer_id": "c1", "new_stage": "party",
                                                     "changed_at": datetime.now(timezone.utc)}, source="x")


@pytest.mark.parametrize("mutate,reason", [
    (lambda e: e.pop("id"), "invalid envelope"),
    (lambda e: e.update(type="crm.customer.exploded"), "unknown event"),
    (lambda e: e.update(dataversion=7), "unknown event"),
    (lambda e: e["data"].update(new_stage="party"), "invalid data"),
    (lambda e: e.update(time="yesterday"), "invalid envelope"),
])
def test_consumer_refuses_bad_envelopes(mutate, reason):
    envelope = to_envelope(make_event("customer.stage_changed", "c1", {
        "customer_id": "c1", "new_stage": "won", "changed_at": datetime.now(timezone.utc)}, source="x"))
    mutate(envelope)
    with pytest.raises(InvalidEvent, match=reason):
        from_envelope(envelope)


def test_event_docs_are_up_to_date():
    import os

    from crm import event_docs
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "events.md")) as handle:
        assert handle.read() == event_docs.render(), "run: python -m crm docs-events"
