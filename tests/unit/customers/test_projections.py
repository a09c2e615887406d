"""Facts from other services applied in batches: one batch gives what one event at a time gives.

"Gives" is the customer as it ends and its class history as every consumer folds it (changes in
time order, the last of one instant winning): one event at a time may record a change and correct
it at the same instant (a flag raised and lifted at once), which a batch never records.
"""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from nameko.testing.services import worker_factory

from crm_common.auth import Principal
from crm_common.clock import FixedClock
from crm_common.events import from_envelope, make_event, to_envelope
from crm_common.testing import InMemoryStore, api_request as request
from services.customers import models
from services.customers.domain import ClassificationPolicy
from services.customers.service import CustomersService

NOW = datetime(2026, 6, 30, 12, tzinfo=timezone.utc)
ADMIN = Principal("admin", "admin")
# name -> days since the customer's one purchase (None: archived after buying 120 days ago)
CUSTOMERS = {"churned": 600, "active": 120, "new": 10, "archived": None}
RAISED = NOW - timedelta(hours=1)  # alerts of the scenario are raised then and resolved now


def build(tmp_path, name):
    """A customers service with the same customers as every other build (ids differ)."""
    store = InMemoryStore(models.metadata, models.infrastructure, "customers", str(tmp_path / f"{name}.db"))
    service = worker_factory(CustomersService, store=store, clock=FixedClock(NOW), policy=ClassificationPolicy())
    service.register_rep(request(ADMIN, "POST", {"id": "rep-1", "name": "R1", "team": "north"}))
    ids = {}
    for key, days in CUSTOMERS.items():
        _, body = service.create_customer(request(ADMIN, "POST", {
            "company": key, "owner_id": "rep-1", "created_at": (NOW - timedelta(days=700)).isoformat()}))
        service.record_purchase(request(ADMIN, "POST", {
            "amount": "500", "currency": "USD", "purchased_at": (NOW - timedelta(days=days or 120)).isoformat()}),
            body["id"])
        if days is None:
            service.archive_customer(request(ADMIN, "POST"), body["id"])
        ids[key] = body["id"]
    store.built = len(store.events())  # what the events applied later emit comes after these
    return service, store, ids


def scenario(ids):
    """Interleaved events for several customers, several each, numbered per (producer, subject)."""
    sequences = {}

    def event(name, key, data):
        source = "crm/followups" if name == "interaction.logged" else "crm/alerts"
        subject = ids.get(key, key)
        sequences[source, subject] = sequences.get((source, subject), 0) + 1
        evt = make_event(name, subject, {"customer_id": subject, **data}, source=source, time=NOW)
        return from_envelope(to_envelope(replace(evt, sequence=sequences[source, subject])))

    def touch(key, days_ago, n):
        return event("interaction.logged", key, {"interaction_id": f"i{n}", "rep_id": "rep-1", "kind": "call",
                                                 "phase": "post_sale", "occurred_at": NOW - timedelta(days=days_ago),
                                                 "outcome": "reached"})

    def raised(key):
        return event("alert.raised", key, {"alert_id": f"a-{key}", "rule": "silence", "raised_at": RAISED,
                                           "signals": [{"name": "days_without_contact", "value": 40, "threshold": 30}]})

    def resolved(key, outcome, clears):
        return event("alert.resolved", key, {"alert_id": f"a-{key}", "rule": "silence", "outcome": outcome,
                                             "clears_at_risk": clears, "resolved_by": "rep-1", "resolved_at": NOW,
                                             "raised_at": RAISED})

    return [
        touch("churned", 1, 1), raised("active"), raised("churned"),
        touch("churned", 5, 2),                        # older than the one before: changes nothing
        raised("new"), resolved("active", "lost", False),  # another alert still holds it: stays flagged
        resolved("churned", "recovered", None),        # a producer that predates clears_at_risk
        resolved("new", "false_alarm", True), raised("archived"), touch("nobody", 1, 3),
        touch("active", 2, 4), resolved("active", "recovered", True),
    ]


def folded(changes):
    """(at, attribute, value) in the order recorded -> the history a consumer ends with: per attribute,
    the last value of each instant, without changes to the value it had."""
    last_of_instant = {}
    for at, attribute, value in sorted(changes, key=lambda change: change[0]):
        last_of_instant[attribute, at] = value
    history, current = [], {}
    for (attribute, at), value in sorted(last_of_instant.items(), key=lambda item: (item[0][1], item[0][0])):
        if current.get(attribute) != value:
            history.append((at, attribute, value))
            current[attribute] = value
    return history


def outcome(service, store, ids):
    """Everything the events changed, per customer, without the ids that differ between builds."""
    result, emitted_by_events = {}, store.events()[store.built:]
    assert all(e.name.startswith("customer.") for e in emitted_by_events)
    for key, cid in ids.items():
        view = service.get_customer(request(ADMIN), cid)
        recorded = service.customer_history(request(ADMIN), cid)["classification"]
        published = [e for e in store.events() if e.subject == cid and e.name in (
            "customer.tier_changed", "customer.lifecycle_changed")]
        result[key] = ({k: v for k, v in view.items() if k not in ("id", "updated_at")},
                       folded((r["as_of"], r["attribute"], r["new_value"]) for r in recorded),
                       folded((e.data["as_of"], e.name.split(".")[1].split("_")[0], e.data.get("new_tier")
                               or e.data.get("new_lifecycle")) for e in published))
        assert result[key][1] == result[key][2]  # what is published is what is recorded
    return result


@pytest.fixture
def one_at_a_time(tmp_path):
    service, store, ids = build(tmp_path, "single")
    for event in scenario(ids):
        service.apply_events([event])
    return outcome(service, store, ids)


def test_one_batch_gives_what_one_event_at_a_time_gives(tmp_path, one_at_a_time):
    service, store, ids = build(tmp_path, "batch")
    events = scenario(ids)
    assert service.apply_events(events) == events
    assert service.apply_events(events) == []  # redelivered: nothing applied twice
    assert outcome(service, store, ids) == one_at_a_time


def test_what_the_scenario_does(tmp_path):
    """The expected effects, so the comparison above compares something."""
    service, store, ids = build(tmp_path, "batch")
    service.apply_events(scenario(ids))
    changes = [e for e in store.events()[store.built:] if e.name == "customer.lifecycle_changed"]
    moves = {key: [(e.data["old_lifecycle"], e.data["new_lifecycle"]) for e in changes if e.subject == cid]
             for key, cid in ids.items()}
    assert moves == {
        "churned": [("churned", "dormant")],  # back in touch: dormant, and an alert does not make it at_risk
        "active": [("active", "at_risk"), ("at_risk", "active")],
        "new": [("new", "at_risk"), ("at_risk", "new")],
        "archived": [],
    }
    views = {key: service.get_customer(request(ADMIN), cid) for key, cid in ids.items()}
    assert views["churned"]["last_interaction_at"] == NOW - timedelta(days=1)
    assert views["active"]["last_interaction_at"] == NOW - timedelta(days=2)
    assert (views["archived"]["flagged_at_risk"], views["archived"]["lifecycle"]) == (True, "active")
    assert [v["flagged_at_risk"] for k, v in views.items() if k != "archived"] == [False, False, False]


def test_a_stream_out_of_order_in_a_batch_is_applied_in_sequence(tmp_path, one_at_a_time):
    """Each (producer, subject) stream's events reversed in the slots it had: the batch sorts them back."""
    service, store, ids = build(tmp_path, "shuffled")
    events = scenario(ids)
    slots = {}
    for index, event in enumerate(events):
        slots.setdefault(event.stream, []).append(index)
    shuffled = list(events)
    for indexes in slots.values():
        for index, original in zip(indexes, reversed(indexes)):
            shuffled[index] = events[original]
    assert shuffled != events
    service.apply_events(shuffled)
    assert outcome(service, store, ids) == one_at_a_time


def test_the_flag_is_set_only_when_asked_and_never_on_a_prospect(tmp_path):
    service, store, ids = build(tmp_path, "flags")
    _, prospect = service.create_customer(request(ADMIN, "POST", {"company": "prospect", "owner_id": "rep-1"}))

    def raised(customer_id, n, flag):
        evt = make_event("alert.raised", customer_id, {
            "customer_id": customer_id, "alert_id": f"a{n}", "rule": "silence", "raised_at": NOW, "flag_at_risk": flag,
            "signals": [{"name": "days_without_contact", "value": 40, "threshold": 30}]}, source="crm/alerts", time=NOW)
        return from_envelope(to_envelope(replace(evt, sequence=1)))
    service.apply_events([raised(ids["active"], 1, False), raised(prospect["id"], 2, True)])
    active, lead = (service.get_customer(request(ADMIN), cid) for cid in (ids["active"], prospect["id"]))
    assert (active["flagged_at_risk"], active["lifecycle"]) == (False, "active")   # alerts did not ask
    assert (lead["flagged_at_risk"], lead["lifecycle"]) == (False, "potential")
    service.record_purchase(request(ADMIN, "POST", {"amount": "500", "currency": "USD",
                                                    "purchased_at": NOW.isoformat()}), prospect["id"])
    assert service.get_customer(request(ADMIN), prospect["id"])["lifecycle"] == "new"  # its first purchase: new


def test_a_stream_redelivered_behind_newer_events_ends_the_same(tmp_path, one_at_a_time):
    """Each event in a batch of its own, the scenario backwards (a resolution before its raise, an older touch
    after a newer one, as RabbitMQ hands messages back when faults overlap): the facts are kept by their dates,
    so nothing is skipped as stale and the customers end as in order."""
    service, store, ids = build(tmp_path, "backwards")
    for event in reversed(scenario(ids)):
        assert service.apply_events([event]) == [event]
    assert outcome(service, store, ids) == one_at_a_time
