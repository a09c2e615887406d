"""What the alerts tests feed the service and how they read it back: events built as their producers publish
them (contract-checked, through the envelope and back), delivered through the consumer entrypoint."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from nameko.testing.services import worker_factory
from sqlalchemy import select

import crm_common.contracts  # noqa: F401 - registers every contract
from crm_common.auth import Principal
from crm_common.clock import FixedClock
from crm_common.events import from_envelope, make_event, to_envelope
from crm_common.testing import InMemoryStore
from services.alerts import models
from services.alerts.domain import AlertsSettings
from services.alerts.service import AlertsService

UTC = timezone.utc
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
ADMIN = Principal("admin", "admin")
MGR_NORTH = Principal("mgr-north", "manager", "north")
REP_N1 = Principal("rep-n1", "rep", "north")
REP_S1 = Principal("rep-s1", "rep", "south")


def ago(days: float, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


def event(name, subject, data, time):
    """Exactly what a subscriber receives: contract-checked, through the envelope and back."""
    return from_envelope(to_envelope(make_event(name, subject, data, source="crm/test", time=time)))


# ---------------------------------------------------------------- event builders (producer payloads)

def created(cid, days_ago=400, owner="rep-n1", team="north", tier="B", lifecycle="active"):
    at = ago(days_ago)
    return event("customer.created", cid, {"customer_id": cid, "company": f"Co {cid}", "owner_id": owner,
                                           "team": team, "tier": tier, "lifecycle": lifecycle, "created_at": at}, at)


def purchase(cid, days_ago, amount="3000", pid=None, owner="rep-n1", team="north"):
    at = ago(days_ago)
    return event("purchase.recorded", cid, {
        "customer_id": cid, "purchase_id": pid or f"{cid}-p{days_ago}", "amount": Decimal(amount), "currency": "USD",
        "amount_base": Decimal(amount), "base_currency": "USD", "purchased_at": at, "owner_id": owner,
        "team": team}, at)


def interaction(cid, days_ago, outcome="reached", iid=None, kind="call", satisfaction=None, resolves=None,
                hours=0):
    at = ago(days_ago, hours)
    return event("interaction.logged", cid, {
        "interaction_id": iid or f"{cid}-i{days_ago}-{hours}-{outcome}", "customer_id": cid, "rep_id": "rep-n1",
        "team": "north", "kind": kind, "phase": "post_sale", "occurred_at": at, "outcome": outcome,
        "satisfaction": satisfaction, "resolves_complaint_id": resolves}, at)


def tier_changed(cid, old, new, at=NOW):
    return event("customer.tier_changed", cid, {"customer_id": cid, "old_tier": old, "new_tier": new,
                                                "rolling_12m_total": Decimal("25000"), "as_of": at}, at)


def lifecycle_changed(cid, old, new, at=NOW):
    return event("customer.lifecycle_changed", cid, {"customer_id": cid, "old_lifecycle": old, "new_lifecycle": new,
                                                     "reason": "test", "as_of": at}, at)


def rep(rep_id, role="rep", team="north", manager_id=None, name=None, at=NOW, kind="rep.registered"):
    return event(kind, rep_id, {"rep_id": rep_id, "name": name or rep_id, "team": team, "role": role,
                                "manager_id": manager_id, "active": True}, at)


def task_missed(cid, days_ago, task_id):
    at = ago(days_ago)
    return event("task.missed", cid, {"task_id": task_id, "customer_id": cid, "kind": "follow_up",
                                      "due_at": at - timedelta(days=2), "missed_at": at}, at)


def regular_history(cid, **kw):
    """A B-tier customer buying every 30 days up to 10 days ago, contacted 5 days ago: healthy, no alert."""
    return [created(cid, **kw)] + [purchase(cid, d) for d in (310, 280, 250, 220, 190, 160, 130, 100, 70, 40, 10)] \
        + [interaction(cid, 5)]


def deliver(service, *events):
    """Each event in a batch of its own, as if delivered one by one; True for each that was new."""
    return [bool(service.apply_events([e])) for e in events]


def make_service(path, clock=None, settings=None):
    store = InMemoryStore(models.metadata, models.infrastructure, "alerts", str(path))
    svc = worker_factory(AlertsService, store=store, clock=clock or FixedClock(NOW),
                         settings=settings or AlertsSettings())
    return svc, store


def rows(store, table, *where):
    with store.session_factory() as session:
        return session.execute(select(table).where(*where)).all()


def open_alerts(store, cid=None):
    t = models.alerts
    return rows(store, t, t.c.open_key.isnot(None), *([t.c.customer_id == cid] if cid else []))


def alert_rules(store, cid):
    return sorted(r.rule for r in open_alerts(store, cid))
