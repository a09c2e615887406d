"""Customers service use cases through its entrypoints (nameko worker_factory, real SQLite)."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from marshmallow import ValidationError
from nameko.testing.services import worker_factory

from crm_common.auth import Principal
from crm_common.clock import FixedClock
from crm_common.errors import CrmError, DomainError, Forbidden, NotFound
from crm_common.events import from_envelope, make_event, to_envelope
from crm_common.testing import InMemoryStore, api_request as request
from services.customers import models
from services.customers.domain import ClassificationPolicy
from services.customers.service import CustomersService

NOW = datetime(2026, 6, 30, 12, tzinfo=timezone.utc)
ADMIN = Principal("admin", "admin")
MANAGER_NORTH = Principal("mgr-north", "manager", "north")
REP_N1 = Principal("rep-n1", "rep", "north")
REP_N2 = Principal("rep-n2", "rep", "north")


@pytest.fixture
def store(tmp_path):
    return InMemoryStore(models.metadata, models.infrastructure, "customers", str(tmp_path / "customers.db"))


@pytest.fixture
def clock():
    return FixedClock(NOW)


@pytest.fixture
def service(store, clock):
    svc = worker_factory(CustomersService, store=store, clock=clock, policy=ClassificationPolicy())
    for rep in ({"id": "mgr-north", "name": "M N", "team": "north", "role": "manager"},
                {"id": "rep-n1", "name": "N1", "team": "north", "manager_id": "mgr-north"},
                {"id": "rep-n2", "name": "N2", "team": "north", "manager_id": "mgr-north"},
                {"id": "rep-n3", "name": "N3", "team": "north", "manager_id": "mgr-north"},
                {"id": "rep-s1", "name": "S1", "team": "south"}):
        svc.register_rep(request(ADMIN, "POST", rep))
    return svc


def create(service, principal=REP_N1, **fields):
    status, body = service.create_customer(request(principal, "POST", {"company": "Acme Ltd", **fields}))
    assert status == 201
    return body


def test_create_customer_records_event_and_audit(service, store):
    body = create(service, industry="retail", source_channel="exhibition", tags=["VIP", "export"],
                  contacts=[{"name": "Li Wei", "role": "CEO", "email": "li@acme.test", "is_decision_maker": True}],
                  important_dates=[{"kind": "birthday", "date": "1970-02-28", "label": "Li Wei"}])
    assert (body["owner_id"], body["team"], body["tier"], body["lifecycle"]) == ("rep-n1", "north", "C", "potential")
    assert body["tags"] == ["export", "vip"]
    assert body["pipeline_stage"] == "first_contact"
    [event] = store.events("customer.created")
    assert event.subject == body["id"]
    assert event.data["owner_id"] == "rep-n1" and event.data["important_dates"][0]["kind"] == "birthday"
    history = service.customer_history(request(REP_N1), body["id"])
    assert history["audit"][0]["action"] == "customer.created"
    assert history["audit"][0]["actor_id"] == "rep-n1"


def test_invalid_customer_names_the_fields(service):
    with pytest.raises(ValidationError) as err:
        service.create_customer(request(ADMIN, "POST", {"company": "", "source_channel": "pigeon",
                                                        "contacts": [{"email": "nope"}], "colour": "red"}))
    assert {"company", "source_channel", "contacts", "colour"} <= set(err.value.messages)


def test_unknown_owner_is_refused(service):
    with pytest.raises(CrmError) as err:
        create(service, principal=ADMIN, owner_id="ghost")
    assert err.value.field == "owner_id"
    with pytest.raises(Forbidden):
        create(service, principal=REP_N1, owner_id="rep-n2")


def test_scope_rules(service):
    mine = create(service, principal=REP_N1)
    south = create(service, principal=ADMIN, owner_id="rep-s1")
    assert service.get_customer(request(MANAGER_NORTH), mine["id"])["id"] == mine["id"]
    for principal, customer in ((REP_N2, mine), (MANAGER_NORTH, south)):
        with pytest.raises(NotFound):
            service.get_customer(request(principal), customer["id"])
    listed = service.list_customers(request(REP_N2))
    assert listed["items"] == []
    assert [c["id"] for c in service.list_customers(request(MANAGER_NORTH))["items"]] == [mine["id"]]


def test_purchases_drive_tier_and_lifecycle(service, store, clock):
    customer = create(service)
    for days, amount in ((300, "60000"), (200, "30000"), (20, "15000")):
        service.record_purchase(request(REP_N1, "POST", {
            "amount": amount, "currency": "USD", "purchased_at": (NOW - timedelta(days=days)).isoformat()}),
            customer["id"])
    body = service.get_customer(request(REP_N1), customer["id"])
    assert body["tier"] == "A" and Decimal(body["rolling_12m_total"]) == Decimal("105000.00")
    assert body["lifecycle"] == "active" and body["purchase_count"] == 3
    # each purchase reclassifies as of now: 60k in the window is B, 90k still B, 105k is A
    tiers = [(e.data["old_tier"], e.data["new_tier"]) for e in store.events("customer.tier_changed")]
    assert tiers == [("C", "B"), ("B", "A")]
    # last purchase 300 days ago: dormant; 200 days: going quiet; 20 days (first one 300 days ago): active
    lifecycles = [(e.data["old_lifecycle"], e.data["new_lifecycle"])
                  for e in store.events("customer.lifecycle_changed")]
    assert lifecycles == [("potential", "dormant"), ("dormant", "at_risk"), ("at_risk", "active")]
    assert len(store.events("purchase.recorded")) == 3


def test_purchase_in_foreign_currency_is_converted(service, store):
    customer = create(service)
    purchase = service.record_purchase(request(REP_N1, "POST", {
        "amount": "100.00", "currency": "EUR", "purchased_at": NOW.isoformat()}), customer["id"])[1]
    assert purchase["amount_base"] == Decimal("108.00")
    assert store.events("purchase.recorded")[0].data["amount_base"] == Decimal("108.00")


@pytest.mark.parametrize("payload,field", [
    ({"amount": "10", "currency": "USD", "purchased_at": "2030-01-01T00:00:00Z"}, "purchased_at"),
    ({"amount": "10", "currency": "XYZ", "purchased_at": "2026-01-01T00:00:00Z"}, "currency"),
])
def test_bad_purchases_change_nothing(service, store, payload, field):
    customer = create(service)
    with pytest.raises(CrmError) as err:
        service.record_purchase(request(REP_N1, "POST", payload), customer["id"])
    assert err.value.field == field
    assert store.events("purchase.recorded") == []
    assert service.list_purchases(request(REP_N1), customer["id"])["items"] == []


def test_duplicate_external_ref_is_a_conflict(service):
    customer = create(service)
    payload = {"amount": "10", "currency": "USD", "purchased_at": NOW.isoformat(), "external_ref": "inv-1"}
    service.record_purchase(request(REP_N1, "POST", payload), customer["id"])
    with pytest.raises(CrmError) as err:
        service.record_purchase(request(REP_N1, "POST", payload), customer["id"])
    assert err.value.status == 409


def test_pipeline_moves_keep_their_times(service, store):
    t0 = NOW - timedelta(days=30)
    customer = create(service, created_at=t0.isoformat())
    t1, t2 = NOW - timedelta(days=10), NOW - timedelta(days=3)
    service.move_stage(request(REP_N1, "POST", {"stage": "needs_analysis", "changed_at": t1.isoformat()}),
                       customer["id"])
    service.move_stage(request(REP_N1, "POST", {"stage": "won", "changed_at": t2.isoformat()}), customer["id"])
    with pytest.raises(DomainError):
        service.move_stage(request(REP_N1, "POST", {"stage": "proposal"}), customer["id"])
    with pytest.raises(CrmError) as err:  # history cannot be rewritten before its last entry
        service.move_stage(request(REP_N1, "POST", {"stage": "lost", "changed_at": t1.isoformat()}), customer["id"])
    assert err.value.field == "changed_at"
    timeline = service.customer_history(request(REP_N1), customer["id"])["stages"]
    assert [(s["from_stage"], s["to_stage"], s["changed_at"]) for s in timeline] == [
        (None, "first_contact", t0), ("first_contact", "needs_analysis", t1), ("needs_analysis", "won", t2)]
    assert [e.data["new_stage"] for e in store.events("customer.stage_changed")] == ["needs_analysis", "won"]


def test_transfer_keeps_history(service, store):
    customer = create(service)
    with pytest.raises(Forbidden):
        service.transfer_customer(request(REP_N1, "POST", {"to_owner_id": "rep-n2"}), customer["id"])
    with pytest.raises(Forbidden):
        service.transfer_customer(request(MANAGER_NORTH, "POST", {"to_owner_id": "rep-s1"}), customer["id"])
    body = service.transfer_customer(request(MANAGER_NORTH, "POST", {"to_owner_id": "rep-n2", "reason": "focus"}),
                                     customer["id"])
    assert body["owner_id"] == "rep-n2"
    [event] = store.events("customer.owner_changed")
    assert (event.data["old_owner_id"], event.data["new_owner_id"]) == ("rep-n1", "rep-n2")
    with pytest.raises(NotFound):
        service.get_customer(request(REP_N1), customer["id"])
    assert service.customer_history(request(REP_N2), customer["id"])["ownership"][0]["reason"] == "focus"


def test_handover_spreads_round_robin_and_deactivates(service, store):
    ids = [create(service)["id"] for _ in range(5)]
    result = service.handover(request(MANAGER_NORTH, "POST", {"to_team": "north", "reason": "left"}), "rep-n1")
    assert result["moved"] == 5
    assert result["by_new_owner"] == {"rep-n2": 3, "rep-n3": 2}
    assert len({e.data["transfer_id"] for e in store.events("customer.owner_changed")}) == 1
    assert {e.subject for e in store.events("customer.owner_changed")} == set(ids)
    [rep_event] = [e for e in store.events("rep.updated") if e.subject == "rep-n1"]
    assert rep_event.data["active"] is False
    with pytest.raises(CrmError):  # an inactive rep cannot take customers any more
        create(service, principal=ADMIN, owner_id="rep-n1")
    # a second hand-over out of the team: the leaving rep takes no share
    more = [create(service, principal=ADMIN, owner_id="rep-n2")["id"] for _ in range(2)]
    service.register_rep(request(ADMIN, "POST", {"id": "rep-n4", "name": "N4", "team": "north"}))
    result = service.handover(request(ADMIN, "POST", {"to_team": "north"}), "rep-n2")
    # rep-n2's 3 handed-over + 2 new customers over rep-n3 and rep-n4 (rep-n1 inactive, rep-n2 leaving)
    assert result["moved"] == 5 and result["by_new_owner"] == {"rep-n3": 3, "rep-n4": 2}
    assert set(more) <= {e.subject for e in store.events("customer.owner_changed")}


def test_a_handover_dry_run_names_who_gets_what_and_changes_nothing(service, store):
    ids = sorted(create(service)["id"] for _ in range(5))
    service.handover(request(ADMIN, "POST", {"to_team": "north", "deactivate": False}),  # moves the cursor on
                     "rep-n1")
    service.handover(request(ADMIN, "POST", {"to_owner_id": "rep-n1", "deactivate": False}), "rep-n2")
    service.handover(request(ADMIN, "POST", {"to_owner_id": "rep-n1", "deactivate": False}), "rep-n3")
    events_before = len(store.events())
    plan = service.handover(request(MANAGER_NORTH, "POST", {"to_team": "north", "dry_run": True}), "rep-n1")
    assert (plan["dry_run"], plan["moved"], plan["deactivate"]) == (True, 5, True)
    assert [(c["customer_id"], c["to_owner_id"]) for c in plan["customers"]] == list(zip(ids, [
        "rep-n3", "rep-n2", "rep-n3", "rep-n2", "rep-n3"]))  # the rotation continues where the last one ended
    assert plan["by_new_owner"] == {"rep-n3": 3, "rep-n2": 2}
    assert len(store.events()) == events_before  # nothing published
    assert {service.get_customer(request(ADMIN), cid)["owner_id"] for cid in ids} == {"rep-n1"}
    done = service.handover(request(MANAGER_NORTH, "POST", {"to_team": "north"}), "rep-n1")
    assert done["by_new_owner"] == plan["by_new_owner"]  # the preview did not move the rotation on
    assert [service.get_customer(request(ADMIN), c["customer_id"])["owner_id"] for c in plan["customers"]] == \
        [c["to_owner_id"] for c in plan["customers"]]


def test_consecutive_handovers_continue_the_team_rotation(service):
    """Each hand-over into a team starts after the rep the last one ended on, not at the first rep again."""
    for rep in ("rep-s2", "rep-s3"):
        service.register_rep(request(ADMIN, "POST", {"id": rep, "name": rep, "team": "south"}))

    def owners_after_handover(from_rep, count):
        ids = sorted(create(service, principal=ADMIN, owner_id=from_rep)["id"] for _ in range(count))
        service.handover(request(ADMIN, "POST", {"to_team": "north"}), from_rep)  # customers go in id order
        return [service.get_customer(request(ADMIN), cid)["owner_id"] for cid in ids]

    # north's reps are rep-n1, rep-n2, rep-n3 (its manager takes no share)
    assert owners_after_handover("rep-s1", 1) == ["rep-n1"]
    assert owners_after_handover("rep-s2", 1) == ["rep-n2"]  # restarting would pick rep-n1 again
    assert owners_after_handover("rep-s3", 2) == ["rep-n3", "rep-n1"]  # and it wraps around


def test_handover_validation(service):
    with pytest.raises(ValidationError):
        service.handover(request(ADMIN, "POST", {"to_team": "north", "to_owner_id": "rep-n2"}), "rep-n1")
    with pytest.raises(CrmError) as err:
        service.handover(request(ADMIN, "POST", {"to_owner_id": "ghost"}), "rep-n1")
    assert err.value.field == "to_owner_id"
    with pytest.raises(Forbidden):
        service.handover(request(REP_N1, "POST", {"to_owner_id": "rep-n2"}), "rep-n1")


def sweep(service, as_of):
    result = service.sweep_now(request(ADMIN, "POST", {"as_of": as_of.isoformat()}))
    assert result["as_of"] == as_of
    return result


def test_sweep_moves_lifecycle_as_time_passes(service, store, clock):
    customer = create(service)
    service.record_purchase(request(REP_N1, "POST", {
        "amount": "500", "currency": "USD", "purchased_at": (NOW - timedelta(days=100)).isoformat()}), customer["id"])
    assert service.get_customer(request(REP_N1), customer["id"])["lifecycle"] == "active"
    before = len(store.events("customer.lifecycle_changed"))
    sweep(service, NOW + timedelta(days=100))
    assert service.get_customer(request(REP_N1), customer["id"])["lifecycle"] == "at_risk"
    sweep(service, NOW + timedelta(days=100))  # same day again: nothing new
    assert len(store.events("customer.lifecycle_changed")) == before + 1
    sweep(service, NOW + timedelta(days=500))
    assert service.get_customer(request(REP_N1), customer["id"])["lifecycle"] == "churned"


def event_of(name, subject, data, when=NOW):
    return from_envelope(to_envelope(make_event(name, subject, data, source="crm/test", time=when)))


def test_interaction_event_applied_once_and_keeps_customer_from_churning(service, store):
    customer = create(service)
    service.record_purchase(request(REP_N1, "POST", {
        "amount": "500", "currency": "USD", "purchased_at": (NOW - timedelta(days=600)).isoformat()}), customer["id"])
    assert service.get_customer(request(REP_N1), customer["id"])["lifecycle"] == "churned"
    event = event_of("interaction.logged", customer["id"], {
        "interaction_id": "i1", "customer_id": customer["id"], "rep_id": "rep-n1", "kind": "call",
        "phase": "post_sale", "occurred_at": NOW - timedelta(days=1), "outcome": "reached"})
    assert service.apply_events([event]) == [event]
    assert service.apply_events([event]) == []  # redelivered: skipped
    body = service.get_customer(request(REP_N1), customer["id"])
    assert body["lifecycle"] == "dormant"
    assert body["last_interaction_at"] == NOW - timedelta(days=1)


def test_alert_flags_and_recovery_unflags(service):
    customer = create(service)
    service.record_purchase(request(REP_N1, "POST", {
        "amount": "500", "currency": "USD", "purchased_at": (NOW - timedelta(days=120)).isoformat()}), customer["id"])
    raised = event_of("alert.raised", customer["id"], {
        "alert_id": "a1", "customer_id": customer["id"], "rule": "silence", "raised_at": NOW,
        "signals": [{"name": "days_without_contact", "value": 40, "threshold": 30}]})
    service.apply_events([raised])
    assert service.get_customer(request(REP_N1), customer["id"])["lifecycle"] == "at_risk"
    service.apply_events([event_of("alert.resolved", customer["id"], {
        "alert_id": "a1", "customer_id": customer["id"], "rule": "silence", "outcome": "recovered",
        "resolved_by": "rep-n1", "resolved_at": NOW, "raised_at": NOW})])
    assert service.get_customer(request(REP_N1), customer["id"])["lifecycle"] == "active"


def test_a_flagged_new_customer_is_at_risk_until_the_alert_is_resolved(service, store):
    """The open-alert flag is checked before "new": a churn warning on a fresh customer is not hidden."""
    customer = create(service)
    service.record_purchase(request(REP_N1, "POST", {
        "amount": "500", "currency": "USD", "purchased_at": (NOW - timedelta(days=10)).isoformat()}), customer["id"])
    assert service.get_customer(request(REP_N1), customer["id"])["lifecycle"] == "new"
    service.apply_events([event_of("alert.raised", customer["id"], {
        "alert_id": "a1", "customer_id": customer["id"], "rule": "complaint", "raised_at": NOW,
        "signals": [{"name": "open_complaints", "value": 1, "threshold": 1}]})])
    body = service.get_customer(request(REP_N1), customer["id"])
    assert (body["lifecycle"], body["flagged_at_risk"]) == ("at_risk", True)
    service.apply_events([event_of("alert.resolved", customer["id"], {
        "alert_id": "a1", "customer_id": customer["id"], "rule": "complaint", "outcome": "false_alarm",
        "clears_at_risk": True, "resolved_by": "rep-n1", "resolved_at": NOW, "raised_at": NOW})])
    body = service.get_customer(request(REP_N1), customer["id"])
    assert (body["lifecycle"], body["flagged_at_risk"]) == ("new", False)
    history = service.customer_history(request(REP_N1), customer["id"])["classification"]
    assert [(c["old_value"], c["new_value"], c["reason"]) for c in history if c["attribute"] == "lifecycle"] == [
        ("potential", "new", "purchase recorded: first purchase 10 days ago"),
        ("new", "at_risk", "alert complaint raised: open churn alert"),
        ("at_risk", "new", "alert resolved as false_alarm: first purchase 10 days ago")]


def test_list_filters_and_cursor_walk(service):
    ids = []
    for i in range(23):
        body = create(service, principal=ADMIN, owner_id="rep-n1" if i % 2 else "rep-s1",
                      company=f"Company {i:02d}", industry="retail" if i % 3 == 0 else "energy",
                      tags=["vip"] if i % 5 == 0 else [])
        ids.append(body["id"])
    seen, cursor = [], None
    while True:
        query = {"limit": "5", "sort": "company"} | ({"cursor": cursor} if cursor else {})
        page = service.list_customers(request(ADMIN, query=query))
        seen += [item["company"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == 23
    desc = service.list_customers(request(ADMIN, query={"sort": "-company", "limit": "3"}))
    assert [i["company"] for i in desc["items"]] == ["Company 22", "Company 21", "Company 20"]
    assert len(service.list_customers(request(ADMIN, query={"tag": "VIP"}))["items"]) == 5
    assert len(service.list_customers(request(ADMIN, query={"industry": "retail", "team": "south"}))["items"]) == 4
    assert [i["company"] for i in service.list_customers(request(ADMIN, query={"q": "ny 1", "sort": "company"}))["items"]] == [
        f"Company {i}" for i in range(10, 20)]
    with pytest.raises(CrmError) as err:
        service.list_customers(request(ADMIN, query={"sort": "company", "cursor": "garbage"}))
    assert err.value.field == "cursor"
    with pytest.raises(ValidationError):
        service.list_customers(request(ADMIN, query={"tier": "Z", "limit": "0"}))


def test_archive(service, store):
    customer = create(service)
    with pytest.raises(Forbidden):
        service.archive_customer(request(REP_N1, "POST"), customer["id"])
    service.archive_customer(request(MANAGER_NORTH, "POST"), customer["id"])
    assert store.events("customer.archived")[0].subject == customer["id"]
    assert service.list_customers(request(ADMIN))["items"] == []
    assert len(service.list_customers(request(ADMIN, query={"include_archived": "true"}))["items"]) == 1
    with pytest.raises(DomainError):
        service.update_customer(request(ADMIN, "PATCH", {"notes": "x"}), customer["id"])


def test_update_emits_changed_fields(service, store):
    customer = create(service)
    service.update_customer(request(REP_N1, "PATCH", {"industry": "food", "tags": ["new"]}), customer["id"])
    [event] = store.events("customer.updated")
    assert event.data["changed_fields"] == ["industry", "tags"]
    with pytest.raises(CrmError) as err:
        service.update_customer(request(REP_N1, "PATCH", {"owner_id": "rep-n2"}), customer["id"])
    assert err.value.field == "owner_id"
    with pytest.raises(ValidationError):
        service.update_customer(request(REP_N1, "PATCH", {}), customer["id"])


def test_a_rep_update_with_nothing_to_change_is_refused(service, store):
    """PATCH /v1/reps/{id} with {} was an UPDATE with no SET clause: a SQL error answered 503 (found by
    tests/component/test_fuzz.py). Now a 400 naming the body, and nothing emitted."""
    with pytest.raises(ValidationError) as err:
        service.update_rep(request(ADMIN, "PATCH", {}), "rep-n2")
    assert err.value.messages == {"body": ["nothing to update"]}
    assert store.events("rep.updated") == []


def test_a_signed_out_reps_cutoff_reads_back_as_utc(service, store):
    """tokens_valid_after came back from SQLite without its offset ("2026-12-04T18:42:04"), not the date-time
    the document promises, in GET /v1/reps and in rep.updated (found by tests/component/test_fuzz.py)."""
    service.sign_out_everywhere(request(ADMIN, "POST"), "rep-n2")
    [rep] = [r for r in service.list_reps(request(ADMIN))["items"] if r["id"] == "rep-n2"]
    assert rep["tokens_valid_after"].utcoffset() == timedelta(0)
    [event] = store.events("rep.updated")
    assert datetime.fromisoformat(str(event.data["tokens_valid_after"])).utcoffset() == timedelta(0)


def dated(store, name, attribute):
    return [(e.data[f"old_{attribute}"], e.data[f"new_{attribute}"], e.data["as_of"]) for e in store.events(name)]


def day(text):
    return datetime.fromisoformat(text + "T00:00:00+00:00")


def test_import_records_the_history_its_facts_make_once(service, store):
    status, body = service.import_customer(request(ADMIN, "POST", {
        "customer": {"company": "Imported", "owner_id": "rep-n1", "created_at": "2025-01-01T00:00:00Z"},
        "stages": [{"stage": "won", "changed_at": "2025-02-01T00:00:00Z"}],
        "purchases": [{"amount": "30000", "currency": "USD", "purchased_at": f"2026-0{m}-01T00:00:00Z"}
                      for m in range(1, 6)]}))
    assert status == 201 and body["tier"] == "A" and body["purchase_count"] == 5
    # 30k in the window from January: B; 120k from April: A
    assert dated(store, "customer.tier_changed", "tier") == [("C", "B", day("2026-01-01")),
                                                              ("B", "A", day("2026-04-01"))]
    # new from the first purchase for 90 whole days, active from the 91st
    assert dated(store, "customer.lifecycle_changed", "lifecycle") == [("potential", "new", day("2026-01-01")),
                                                                        ("new", "active", day("2026-04-02"))]


def test_an_imported_history_is_dated_by_its_facts_and_the_sweep_only_moves_time_on(service, store):
    status, body = service.import_customer(request(ADMIN, "POST", {
        "customer": {"company": "Dated", "owner_id": "rep-n1", "created_at": "2025-01-01T00:00:00Z"},
        "purchases": [{"amount": "30000", "currency": "USD", "purchased_at": f"2025-0{m}-15T00:00:00Z"}
                      for m in (2, 4, 6)]}))
    assert (body["tier"], body["lifecycle"]) == ("C", "dormant")  # as of NOW, 2026-06-30
    # last purchase 2025-06-15: active to day 180, at_risk from day 181, dormant from day 271
    assert dated(store, "customer.lifecycle_changed", "lifecycle") == [
        ("potential", "new", day("2025-02-15")), ("new", "active", day("2025-05-17")),
        ("active", "at_risk", day("2025-12-13")), ("at_risk", "dormant", day("2026-03-13"))]
    # 30k, 60k, 90k in the window: B; each leaves it a year after its day; none from 2026-06-15: C
    assert dated(store, "customer.tier_changed", "tier") == [("C", "B", day("2025-02-15")),
                                                              ("B", "C", day("2026-06-15"))]
    assert sweep(service, NOW + timedelta(days=100))["customers"] == 0  # nothing changes before day 541
    result = sweep(service, NOW + timedelta(days=200))
    assert result["customers"] == 1
    assert dated(store, "customer.lifecycle_changed", "lifecycle")[-1] == ("dormant", "churned", day("2026-12-08"))
    assert sweep(service, NOW + timedelta(days=300))["customers"] == 0  # nothing is left to change


def folded_history(store, customer_id):
    """(at, attribute, value) of the class history as a consumer folds the published changes (time order,
    the last of one instant winning, changes to the same value dropped)."""
    last = {}
    for e in store.events():
        if e.subject == customer_id and e.name in ("customer.tier_changed", "customer.lifecycle_changed"):
            attribute = e.name.split(".")[1].removesuffix("_changed")
            last[e.data["as_of"], attribute] = e.data[f"new_{attribute}"]
    history, current = [], {}
    for (at, attribute), value in sorted(last.items()):
        if current.get(attribute) != value:
            history.append((at, attribute, value))
            current[attribute] = value
    return history


def test_purchases_recorded_one_by_one_out_of_order_make_the_history_an_import_makes(service, store):
    purchases = [{"amount": amount, "currency": "USD", "purchased_at": at} for amount, at in (
        ("30000", "2025-02-15T00:00:00Z"), ("90000", "2025-09-01T00:00:00Z"), ("5000", "2025-04-15T00:00:00Z"),
        ("1000", "2026-05-01T00:00:00Z"))]
    _, imported = service.import_customer(request(ADMIN, "POST", {
        "customer": {"company": "At once", "owner_id": "rep-n1", "created_at": "2025-01-01T00:00:00Z"},
        "purchases": purchases}))
    one_by_one = create(service, ADMIN, owner_id="rep-n1", created_at="2025-01-01T00:00:00Z")
    sweep(service, NOW)  # classified up to now before the history arrives, as a live customer would be
    for purchase in purchases:
        service.record_purchase(request(REP_N1, "POST", purchase), one_by_one["id"])
    expected = folded_history(store, imported["id"])
    assert folded_history(store, one_by_one["id"]) == expected
    assert expected[:3] == [(day("2025-02-15"), "lifecycle", "new"), (day("2025-02-15"), "tier", "B"),
                            (day("2025-05-17"), "lifecycle", "active")]
    view = service.get_customer(request(ADMIN), one_by_one["id"])
    assert (view["tier"], view["lifecycle"]) == (imported["tier"], imported["lifecycle"]) == ("B", "active")


def test_a_fact_after_days_without_a_sweep_dates_what_time_did_meanwhile(service, store, clock):
    customer = create(service, ADMIN, owner_id="rep-n1", created_at=(NOW - timedelta(days=30)).isoformat())
    bought = NOW - timedelta(days=10)
    service.record_purchase(request(REP_N1, "POST", {"amount": "500", "currency": "USD",
                                                     "purchased_at": bought.isoformat()}), customer["id"])
    clock.advance(days=200)  # no sweep ran meanwhile
    service.record_purchase(request(REP_N1, "POST", {"amount": "500", "currency": "USD",
                                                     "purchased_at": clock.now().isoformat()}), customer["id"])
    assert [(at, value) for at, attribute, value in folded_history(store, customer["id"])
            if attribute == "lifecycle"] == [(bought, "new"), (bought + timedelta(days=91), "active"),
                                            (bought + timedelta(days=181), "at_risk"), (clock.now(), "active")]
