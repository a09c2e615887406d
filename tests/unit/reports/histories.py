"""Histories the reports tests feed to the service, and how they feed and read it.

``Events`` builds events as their producers publish them (envelope in, contract-validated);
``numbered=True`` also numbers each (producer, customer) stream in the order events are added, as
the producers' outboxes do, so the consumer's ordering guarantees apply to them.
"""
import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from nameko.testing.services import worker_factory
from sqlalchemy import select, text
from sqlalchemy.orm import sessionmaker

from crm_common.clock import FixedClock
from crm_common.db import make_engine, utc
from crm_common.events import from_envelope, make_event, to_envelope
from crm_common.migrations import upgrade
from crm_common.testing import InMemoryStore
from services.reports import models
from services.reports.domain import ReportSettings
from services.reports.service import ReportsService

UTC = timezone.utc
NOW = datetime(2026, 8, 10, 12, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Events:
    """A history as published events, in the order their producers emitted them."""

    def __init__(self, numbered: bool = False):
        self.items = []
        self.raised = {}
        self.seq = 0
        self.numbered = numbered
        self.last: dict[tuple, int] = {}  # (source, subject) -> last sequence given

    def add(self, name, data, time=None, source="crm/customers"):
        subject = data.get("customer_id") or data.get("rep_id")
        event = make_event(name, subject, data, source=source, time=time)
        if self.numbered:
            self.last[event.stream] = self.last.get(event.stream, 0) + 1
            event = replace(event, sequence=self.last[event.stream])
        self.items.append(from_envelope(to_envelope(event)))

    def rep(self, rep_id, team, role="rep"):
        self.add("rep.registered", {"rep_id": rep_id, "name": rep_id.upper(), "team": team, "role": role,
                                    "active": True}, time=at("2026-05-01"))

    def create(self, customer, when, *, team, rep, tier, lifecycle, industry, score=None):
        self.add("customer.created", {"customer_id": customer, "company": customer.upper(), "industry": industry,
                                      "owner_id": rep, "team": team, "tier": tier, "lifecycle": lifecycle,
                                      "pipeline_stage": None, "created_at": at(when)}, time=at(when))
        if score is not None:
            self.score(customer, when, score)

    def score(self, customer, when, score):
        self.add("health.score_changed", {"customer_id": customer, "new_score": score, "new_band": "watch",
                                          "as_of": at(when)}, time=at(when), source="crm/alerts")

    def tier(self, customer, when, old, new):
        self.add("customer.tier_changed", {"customer_id": customer, "old_tier": old, "new_tier": new,
                                           "rolling_12m_total": "0", "as_of": at(when)}, time=at(when))

    def lifecycle(self, customer, when, old, new):
        self.add("customer.lifecycle_changed", {"customer_id": customer, "old_lifecycle": old, "new_lifecycle": new,
                                                "reason": "test", "as_of": at(when)}, time=at(when))

    def owner(self, customer, when, old, new, team):
        self.add("customer.owner_changed", {"customer_id": customer, "old_owner_id": old, "old_team": team,
                                            "new_owner_id": new, "new_team": team, "transfer_id": "t-" + customer,
                                            "changed_by": "m-east"}, time=at(when))

    def archive(self, customer, when):
        self.add("customer.archived", {"customer_id": customer, "archived_at": at(when)}, time=at(when))

    def purchase(self, customer, when, amount):
        self.seq += 1
        self.add("purchase.recorded", {"customer_id": customer, "purchase_id": f"p{self.seq}", "amount": amount,
                                       "currency": "USD", "amount_base": amount, "base_currency": "USD",
                                       "purchased_at": at(when)}, time=at(when))

    def interaction(self, customer, when, rep, team, phase, kind="call", satisfaction=None):
        self.seq += 1
        self.add("interaction.logged", {"interaction_id": f"i{self.seq}", "customer_id": customer, "rep_id": rep,
                                        "team": team, "kind": kind, "phase": phase, "occurred_at": at(when),
                                        "outcome": "reached", "satisfaction": satisfaction},
                 time=at(when), source="crm/followups")

    def task(self, task, customer, due, event, assignee, team, on_time=False, when=None):
        data = {"task_id": task, "customer_id": customer, "assignee_id": assignee, "team": team, "kind": "follow_up",
                "due_at": at(due)}
        happened = at(when or due)
        data.update({"completed": {"completed_at": happened, "on_time": on_time}, "skipped": {
            "skipped_at": happened, "reason": "no need"}, "missed": {"missed_at": happened},
            "scheduled": {"reason": "cadence"}}.get(event, {}))
        self.add(f"task.{event}", data, time=happened, source="crm/followups")

    def stage(self, customer, old, new, when):
        self.add("customer.stage_changed", {"customer_id": customer, "old_stage": old, "new_stage": new,
                                            "changed_at": at(when)}, time=at(when))

    def alert(self, alert, customer, event, when, outcome=None):
        self.raised.setdefault(alert, at(when))
        data = {"alert_id": alert, "customer_id": customer, "rule": "quiet"}
        if event == "raised":
            data.update(signals=[{"name": "days_since_purchase", "value": 200}], raised_at=at(when))
        elif event == "acknowledged":
            data.update(acknowledged_by="m-east", acknowledged_at=at(when))
        elif event == "escalated":
            data.update(escalated_at=at(when))
        else:
            data.update(outcome=outcome, resolved_by="m-east", resolved_at=at(when), raised_at=self.raised[alert])
        self.add(f"alert.{event}", data, time=at(when), source="crm/alerts")


def history(numbered: bool = False) -> list:
    """June and July 2026 (the history of test_domain.py): teams east and west, reps r1 r2 in east, r3 in west."""
    h = Events(numbered)
    for rep_id, team, role in (("m-east", "east", "manager"), ("m-west", "west", "manager"), ("r1", "east", "rep"),
                               ("r2", "east", "rep"), ("r3", "west", "rep")):
        h.rep(rep_id, team, role)
    # --- June: the book when July starts
    h.create("c1", "2026-06-01", team="east", rep="r1", tier="A", lifecycle="active", industry="retail", score=80)
    h.create("c2", "2026-06-02", team="east", rep="r1", tier="B", lifecycle="active", industry="retail", score=60)
    h.create("c3", "2026-06-03", team="east", rep="r2", tier="B", lifecycle="dormant", industry="food", score=30)
    h.create("c4", "2026-06-04", team="west", rep="r3", tier="C", lifecycle="potential", industry="manufacturing")
    h.create("c5", "2026-06-05", team="west", rep="r3", tier="C", lifecycle="at_risk", industry="manufacturing",
             score=20)
    h.create("c7", "2026-06-06", team="west", rep="r3", tier="C", lifecycle="potential", industry="manufacturing")
    h.purchase("c1", "2026-06-10", "100.00")
    h.alert("a5", "c5", "raised", "2026-06-30T23:00")
    # --- July, in the order events arrive
    h.alert("a5", "c5", "acknowledged", "2026-07-01T01:00")              # 2h: in time, June cohort
    h.stage("c4", None, "first_contact", "2026-07-01T09:00")
    h.alert("a1", "c5", "raised", "2026-07-01T10:00")
    h.stage("c4", "first_contact", "needs_analysis", "2026-07-02")
    h.interaction("c1", "2026-07-02", "r1", "east", "post_sale", satisfaction=4)
    h.task("t1", "c1", "2026-07-02", "completed", "r1", "east", on_time=True)
    h.alert("a1", "c5", "acknowledged", "2026-07-02T09:00")              # 23h: in time
    h.alert("a1", "c5", "acknowledged", "2026-07-02T10:00")              # a second hand: still one alert
    h.purchase("c1", "2026-07-03", "250.50")                             # repeat (first was 06-10), tier A
    h.interaction("c2", "2026-07-03", "r1", "east", "post_sale", kind="visit", satisfaction=5)
    h.alert("a2", "c3", "raised", "2026-07-03T08:00")
    h.purchase("c2", "2026-07-04", "99.99")                              # c2's first
    h.tier("c1", "2026-07-05", "A", "B")                                 # tier move A > B
    h.stage("c7", None, "first_contact", "2026-07-05")
    h.alert("a2", "c3", "escalated", "2026-07-05T08:00")
    h.purchase("c5", "2026-07-06", "40.00")                              # c5's first, so far
    h.purchase("c5", "2026-06-20", "60.00")                              # backdated: 07-06 becomes a repeat
    h.alert("a2", "c3", "acknowledged", "2026-07-06T08:00")              # 72h: late
    h.owner("c2", "2026-07-08", "r1", "r2", "east")                      # hand-over r1 > r2, same team
    h.stage("c7", "first_contact", "needs_analysis", "2026-07-08")
    h.stage("c7", "needs_analysis", "first_contact", "2026-07-09")       # back and forth: each stage
    h.interaction("c3", "2026-07-09", "r2", "east", "post_sale", kind="complaint", satisfaction=2)
    h.task("t2", "c2", "2026-07-09", "overdue", "r1", "east", when="2026-07-10")   # r1 keeps c2's tasks
    h.create("c6", "2026-07-10", team="east", rep="r2", tier="C", lifecycle="new", industry="retail", score=70)
    h.stage("c6", None, "first_contact", "2026-07-10")
    h.stage("c4", "needs_analysis", "proposal", "2026-07-10")
    h.interaction("c4", "2026-07-10", "r3", "west", "pre_sale")
    h.alert("a3", "c1", "raised", "2026-07-10")
    h.stage("c7", "first_contact", "needs_analysis", "2026-07-11")       #   counts once a month
    h.interaction("c4", "2026-07-11", "r3", "west", "pre_sale", kind="meeting")
    h.alert("a3", "c1", "resolved", "2026-07-11", outcome="false_alarm")  # 24h, resolved without an ack
    h.score("c1", "2026-07-12", 90)
    h.purchase("c6", "2026-07-12", "500.00")
    h.stage("c6", "first_contact", "proposal", "2026-07-12")
    h.interaction("c6", "2026-07-13", "r2", "east", "pre_sale", kind="email")
    h.score("c4", "2026-07-14", 50)                                      # first score
    h.lifecycle("c3", "2026-07-15T12:00", "dormant", "churned")
    h.alert("a2", "c3", "resolved", "2026-07-15T09:00", outcome="lost")
    h.task("t3", "c2", "2026-07-16", "completed", "r1", "east", on_time=False, when="2026-07-17")
    h.stage("c7", "needs_analysis", "lost", "2026-07-18")
    h.task("t2", "c2", "2026-07-09", "missed", "r1", "east", when="2026-07-18")
    h.lifecycle("c5", "2026-07-20", "at_risk", "churned")
    h.alert("a1", "c5", "resolved", "2026-07-20T10:00", outcome="lost")
    h.purchase("c2", "2026-07-20", "10.01")                              # repeat, now owned by r2
    h.task("t4", "c3", "2026-07-20", "skipped", "r2", "east")
    h.task("t5", "c5", "2026-07-22", "overdue", "r3", "west", when="2026-07-23")
    h.stage("c4", "proposal", "won", "2026-07-24T09:00")                 # 23 days after 07-01 09:00
    h.lifecycle("c5", "2026-07-25", "churned", "active")                 # won back...
    h.task("t5", "c5", "2026-07-22", "missed", "r3", "west", when="2026-07-27")
    h.alert("a4", "c2", "raised", "2026-07-28")
    h.lifecycle("c5", "2026-07-28", "active", "churned")                 # ...and lost again
    h.task("t6", "c4", "2026-07-30", "completed", "r3", "west", on_time=True)
    h.alert("a4", "c2", "acknowledged", "2026-07-30")                    # exactly 48h: in time
    h.stage("c6", "proposal", "won", "2026-07-31T12:00")                 # 21.5 days after 07-10 00:00
    h.archive("c6", "2026-07-31T18:00")
    # --- August
    h.task("t7", "c1", "2026-08-03", "completed", "r1", "east", on_time=True)
    h.alert("a4", "c2", "resolved", "2026-08-05", outcome="recovered")   # counted with its July raise
    return h.items


HISTORY = history()

def random_history(seed: int, customers: int = 8, numbered: bool = False) -> list:
    """Random but valid histories: attribute changes, backdated purchases, stage moves, tasks and alerts
    interleaved over a quarter, several facts per customer sharing days, weeks and months."""
    rng = random.Random(seed)
    h = Events(numbered)
    for rep_id, team in (("r1", "east"), ("r2", "east"), ("r3", "west")):
        h.rep(rep_id, team)
    start = datetime(2026, 6, 20, tzinfo=UTC)

    def moment():
        return (start + (datetime(2026, 9, 10, tzinfo=UTC) - start) * rng.random()).replace(microsecond=0)

    for n in range(customers):
        cid, rep = f"x{n}", rng.choice(["r1", "r2", "r3"])
        team = "west" if rep == "r3" else "east"
        created = start + (moment() - start) / 3
        h.create(cid, created.isoformat()[:19], team=team, rep=rep, tier=rng.choice("ABC"),
                 lifecycle=rng.choice(["potential", "new", "active"]), industry=rng.choice(["food", "retail", None]),
                 score=rng.choice([None, 55]))
        tier, lifecycle, stage, last_stage_at = None, None, None, created
        for _ in range(rng.randint(4, 10)):
            when, roll = max(moment(), created), rng.random()
            stamp = when.isoformat()[:19]
            if roll < 0.15:
                new = rng.choice("ABC")
                h.tier(cid, stamp, tier, new)
                tier = new
            elif roll < 0.3:
                new = rng.choice(["new", "active", "at_risk", "dormant", "churned"])
                h.lifecycle(cid, stamp, lifecycle, new)
                lifecycle = new
            elif roll < 0.5:
                h.purchase(cid, rng.choice([stamp, (created + (when - created) / 2).isoformat()[:19],
                                            (created - timedelta(days=rng.randint(1, 40))).isoformat()[:19]]),
                           f"{rng.randint(1, 900)}.{rng.randint(0, 99):02d}")
            elif roll < 0.6:
                h.interaction(cid, stamp, rep, team, rng.choice(["pre_sale", "post_sale"]),
                              kind=rng.choice(["call", "complaint"]), satisfaction=rng.choice([None, 3, 5]))
            elif roll < 0.72:
                task = f"{cid}-t{h.seq}"
                h.seq += 1
                outcome = rng.choice(["completed", "missed", "skipped"])
                if outcome == "missed":
                    h.task(task, cid, stamp, "overdue", rep, team)
                h.task(task, cid, stamp, outcome, rep, team, on_time=rng.random() < 0.5)
            elif roll < 0.82 and stage != "won":
                last_stage_at = max(when, last_stage_at)
                new = rng.choice(["first_contact", "needs_analysis", "proposal", "won", "lost"])
                h.stage(cid, stage, new, last_stage_at.isoformat()[:19])
                stage = new
            elif roll < 0.92:
                alert = f"{cid}-a{h.seq}"
                h.seq += 1
                h.alert(alert, cid, "raised", stamp)
                for hours in sorted(rng.sample([2, 30, 50, 70], rng.randint(0, 2))):
                    h.alert(alert, cid, rng.choice(["acknowledged", "escalated"]),
                            (when + timedelta(hours=hours)).isoformat()[:19])
                if rng.random() < 0.6:
                    h.alert(alert, cid, "resolved", (when + timedelta(hours=80)).isoformat()[:19],
                            outcome=rng.choice(["recovered", "lost", "false_alarm"]))
            elif rng.random() < 0.5:
                if team == "east":
                    h.owner(cid, stamp, rep, rng.choice(["r1", "r2"]), "east")
                else:
                    h.score(cid, stamp, 40)
            else:
                h.score(cid, stamp, rng.randint(0, 100))
        if rng.random() < 0.2:
            h.archive(cid, datetime(2026, 9, 11, tzinfo=UTC).isoformat()[:19])
    return h.items



class PostgresStore(InMemoryStore):
    """The same service on PostgreSQL (schema migrated, emptied first): REPORTS_TEST_DATABASE_URL."""

    def __init__(self, url: str):
        upgrade("reports", url)
        self.engine = make_engine(url)
        with self.engine.begin() as connection:
            connection.execute(text("TRUNCATE " + ", ".join(t.name for t in models.metadata.sorted_tables)))
        self.tables = models.infrastructure
        self.service = "reports"
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)


def make_postgres_service(url: str):
    return worker_factory(ReportsService, store=PostgresStore(url), clock=FixedClock(NOW), settings=ReportSettings())


def feed(service, events):
    """Each event alone through the consuming entrypoint; per event, the list of those that were new."""
    return [service.apply_events([e]) for e in events]


def make_service(tmp_path, name="reports"):
    store = InMemoryStore(models.metadata, models.infrastructure, "reports", str(tmp_path / f"{name}.db"))
    return worker_factory(ReportsService, store=store, clock=FixedClock(NOW), settings=ReportSettings())


def feed_batches(service, batches):
    """Each batch through the consuming entrypoint; the events that were new."""
    return [event for batch in batches for event in service.apply_events(list(batch))]


def counters_of(service) -> set:
    with service.store() as uow:
        rows = uow.session.execute(select(models.counters).where(models.counters.c.value != 0)).all()
    return {tuple(row) for row in rows}


def books_of(service) -> dict:
    """Every customer's current attributes and counted book: what must not depend on the batches.
    (Not dimension_values: it lists every value ever met, such as "(none)" for a fact that came
    before its customer, so it depends on what arrived before what.)"""
    def row(values):  # SQLite hands back naive UTC times, PostgreSQL aware ones
        return tuple(utc(v) if isinstance(v, datetime) else v for v in values)

    with service.store() as uow:
        session = uow.session
        return {
            "state": {row(r) for r in session.execute(select(models.customer_state))},
            "changes": {row((r.event_id, r.customer_id, r.at, r.rank, repr(r.applied)))
                        for r in session.execute(select(models.customer_changes))},
            "records": {row((r.record_id, r.customer_id, r.at, repr(r.applied)))
                        for r in session.execute(select(models.customer_records))},
            "reps": {row(r) for r in session.execute(select(models.rep_directory))},
            "marks": {tuple(r) for r in session.execute(select(models.distinct_marks))},
        }

