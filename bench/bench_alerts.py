"""Alerts benchmark: the full sweep over N customers, and the per-event update rate.

    python bench/bench_alerts.py                       # 1,000,000 customers, SQLite in a temp dir
    python bench/bench_alerts.py --customers 100000    # smaller
    python bench/bench_alerts.py --url postgresql://crm:crm@localhost/alerts_bench   # an empty database

It prints (does not assert) figures:

* load: N customers' read models written straight into customer_signals (synthetic 18-month histories:
  regulars, slowing, dormant, lost, prospects; contacts, unanswered streaks, complaints, scores);
* sweep 1 (first ever): every customer scored for the first time (a history row and a health.score_changed
  each) and every rule evaluated, alerts raised — through the service's own sweep code path (batches of
  ALERTS_SWEEP_BATCH_SIZE, one transaction each);
* sweep 2 (the next day, steady state): rescoring everyone, raising only what is new;
* events: interaction.logged / purchase.recorded / task.missed envelopes, live and backfilled, applied through
  the service's own consumer code (envelope validation, claim, SELECT ... FOR UPDATE, fold, rescore, rule
  evaluation, outbox), one transaction each (``--batch N`` per transaction once the service consumes in
  batches) - see apply_events, the one place that knows how.

With ``--json PATH`` the figures are also written there.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402 - as in every process running nameko code

from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

import crm_common.contracts  # noqa: E402,F401
from bench.benchlib import batch_consumer, migrate, write_json  # noqa: E402
from crm_common.clock import FixedClock  # noqa: E402
from crm_common.db import Transactions, UnitOfWork, make_engine  # noqa: E402
from crm_common.events import from_envelope, make_event, to_envelope  # noqa: E402
from services.alerts import models  # noqa: E402
from services.alerts.domain import AlertsSettings  # noqa: E402

NOW = datetime(2026, 6, 30, 6, tzinfo=timezone.utc)
TEAMS = ("north", "south", "east", "west")


class BenchStore(Transactions):
    """The Store dependency without the relay: units of work on the bench database, and whatever a service
    does with its store (run, run_job, applying events) from crm_common.db.Transactions, as the real one."""

    def __init__(self, url: str):
        self.engine = make_engine(url, pool_size=2)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, models.infrastructure, "alerts")


def synthetic_signals(rng: random.Random, index: int) -> dict:
    cid = f"cus_{index:09d}"
    team = TEAMS[index % len(TEAMS)]
    created = NOW - timedelta(days=rng.randint(400, 560))
    profile = rng.choices(("prospect", "regular", "slowing", "dormant", "lost"), (15, 50, 15, 12, 8))[0]
    purchases = []
    if profile != "prospect":
        cycle = rng.randint(20, 80)
        stop = {"regular": 0, "slowing": rng.randint(150, 250), "dormant": rng.randint(300, 450),
                "lost": rng.randint(480, 520)}[profile]
        day = created + timedelta(days=rng.randint(10, 40))
        while day <= NOW - timedelta(days=stop) and len(purchases) < 40:
            purchases.append([f"p{index}-{len(purchases)}", day.isoformat(), f"{rng.uniform(500, 20000):.2f}"])
            day += timedelta(days=max(5, int(rng.gauss(cycle, cycle / 4))))
    last_contact = NOW - timedelta(days=rng.choices((2, 5, 9, 14, 19, 25, 35, 60, 120),
                                                    (15, 20, 20, 15, 10, 8, 5, 4, 3))[0])
    unanswered = [[f"u{index}-{k}", (last_contact + timedelta(days=k + 1)).isoformat()]
                  for k in range(rng.choices((0, 1, 2, 3), (80, 10, 6, 4))[0])]
    complaints = {f"k{index}": (NOW - timedelta(days=rng.randint(1, 20))).isoformat()} if rng.random() < 0.03 else {}
    satisfaction = [[f"s{index}-{k}", (NOW - timedelta(days=90 - 14 * k)).isoformat(),
                     rng.choices((1, 2, 3, 4, 5), (3, 5, 15, 40, 37))[0]]
                    for k in range(rng.choice((0, 1, 3, 6)))]
    tier = rng.choices(("A", "B", "C"), (10, 30, 60))[0] if purchases else "C"
    lifecycle = {"prospect": "potential", "regular": "active", "slowing": "at_risk", "dormant": "dormant",
                 "lost": "churned"}[profile]
    signals = {
        "customer_id": cid, "tier": tier, "lifecycle": lifecycle, "owner_id": f"rep-{team}-{index % 5 + 1}",
        "team": team, "archived": False, "created_at": created.isoformat(), "last_contact_at": last_contact.isoformat(),
        "purchases": purchases, "unanswered": unanswered, "open_complaints": complaints,
        "resolved_complaint_ids": [], "satisfaction": satisfaction, "missed_tasks": {},
    }
    return {"customer_id": cid, "signals": signals, "profile_versions": {}, "known": True, "owner_id":
            signals["owner_id"], "team": team, "tier": tier, "lifecycle": lifecycle, "archived": False,
            "updated_at": NOW}


def load(store: BenchStore, customers: int, seed: int) -> float:
    rng = random.Random(seed)
    started = time.perf_counter()
    chunk = 5000
    for start in range(0, customers, chunk):
        rows = [synthetic_signals(rng, i) for i in range(start, min(customers, start + chunk))]
        with store() as uow:
            uow.session.execute(insert(models.customer_signals), rows)
            uow.commit()
        if (start // chunk) % 40 == 39:
            print(f"    {start + chunk:>9,} loaded ({time.perf_counter() - started:.0f}s)", flush=True)
    return time.perf_counter() - started


def make_service(store: BenchStore, clock: FixedClock, batch_size: int):
    from nameko.testing.services import worker_factory

    from services.alerts.service import AlertsService
    return worker_factory(AlertsService, store=store, clock=clock,
                          settings=AlertsSettings(sweep_batch_size=batch_size))


def apply_events(service, bodies: list[dict], batch: int = 1) -> int:
    """Apply envelopes as the bus delivers them, through the service's batch entrypoint (@consume(CONSUMES),
    store.apply_batch): `batch` events per transaction. Returns events per transaction."""
    method, _ = batch_consumer(type(service))
    for start in range(0, len(bodies), batch):
        getattr(service, method)([from_envelope(body) for body in bodies[start:start + batch]])
    return batch


def count(store: BenchStore, table) -> int:
    with store.session_factory() as session:
        return session.execute(select(func.count()).select_from(table)).scalar_one()


def envelopes(customers: int, events: int, seed: int, now: datetime) -> list[dict]:
    """A realistic mix: live touches (reached / unanswered / complaint / rated), live purchases, missed tasks,
    and backfilled interactions, spread over random customers."""
    rng = random.Random(seed)
    out = []
    for n in range(events):
        cid = f"cus_{rng.randrange(customers):09d}"
        roll = rng.random()
        if roll < 0.55:
            live = roll < 0.45
            at = now - (timedelta(minutes=rng.randint(1, 600)) if live else timedelta(days=rng.randint(5, 400)))
            evt = make_event("interaction.logged", cid, {
                "interaction_id": f"bench-i{n}", "customer_id": cid, "rep_id": "rep-north-1", "kind": "call",
                "phase": "post_sale", "occurred_at": at, "outcome": rng.choice(("reached", "no_answer", "positive",
                                                                                 "declined", "neutral")),
                "satisfaction": rng.choice((None, None, 2, 4, 5))}, source="crm/followups", time=at)
        elif roll < 0.85:
            at = now - timedelta(minutes=rng.randint(1, 600))
            evt = make_event("purchase.recorded", cid, {
                "customer_id": cid, "purchase_id": f"bench-p{n}", "amount": "1200.00", "currency": "USD",
                "amount_base": "1200.00", "base_currency": "USD", "purchased_at": at}, source="crm/customers", time=at)
        else:
            at = now - timedelta(minutes=rng.randint(1, 600))
            evt = make_event("task.missed", cid, {
                "task_id": f"bench-t{n}", "customer_id": cid, "kind": "follow_up", "due_at": at - timedelta(days=3),
                "missed_at": at}, source="crm/followups", time=at)
        out.append(json.loads(json.dumps(to_envelope(evt))))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000, help="events for the per-event rate")
    parser.add_argument("--batch-size", type=int, default=1000, help="customers per sweep transaction")
    parser.add_argument("--url", help="an empty database (default: SQLite in a temp dir)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--batch", type=int, default=1,
                        help="events per transaction, once the service consumes in batches (@consume)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args(argv)

    tmp = None
    url = args.url
    if not url:
        tmp = tempfile.mkdtemp(prefix="bench-alerts-")
        url = f"sqlite:///{tmp}/alerts.db"
    gaps = migrate("alerts", url)
    store = BenchStore(url)
    backend = store.engine.dialect.name
    print(f"alerts bench: {args.customers:,} customers on {backend} ({url if args.url else tmp})")
    figures = {"backend": backend, "customers": args.customers, "schema_gaps": gaps}

    seconds = load(store, args.customers, args.seed)
    print(f"  load            {args.customers:>10,} read models in {seconds:8.1f}s")
    figures["load_seconds"] = round(seconds, 3)

    clock = FixedClock(NOW)
    service = make_service(store, clock, args.batch_size)
    for label in ("sweep 1 (first)", "sweep 2 (next day)"):
        outbox_before = count(store, models.infrastructure["outbox"])
        started = time.perf_counter()
        result = service.sweep(clock.now())
        seconds = time.perf_counter() - started
        events = count(store, models.infrastructure["outbox"]) - outbox_before
        print(f"  {label:<19}{result['customers']:>7,} customers in {seconds:8.1f}s = "
              f"{result['customers'] / seconds:>8,.0f} customers/s; {result['alerts_raised']:,} alerts raised, "
              f"{result['scores_changed']:,} scores changed, {events:,} events emitted", flush=True)
        figures["sweep_first" if label.startswith("sweep 1") else "sweep_next_day"] = {
            "customers": result["customers"], "seconds": round(seconds, 3),
            "customers_per_s": round(result["customers"] / seconds, 1), "alerts_raised": result["alerts_raised"],
            "scores_changed": result["scores_changed"], "events_emitted": events}
        clock.advance(days=1)

    bodies = envelopes(args.customers, args.events, args.seed, clock.now())
    raised_before = count(store, models.alerts)
    started = time.perf_counter()
    per_transaction = apply_events(service, bodies, args.batch)
    seconds = time.perf_counter() - started
    raised = count(store, models.alerts) - raised_before
    print(f"  events          {len(bodies):>10,} applied in {seconds:8.1f}s = {len(bodies) / seconds:>8,.0f} events/s "
          f"({seconds / len(bodies) * 1000:.2f} ms each, {per_transaction} per transaction); "
          f"{raised:,} alerts raised by them")
    figures["events"] = {"events": len(bodies), "seconds": round(seconds, 3),
                         "events_per_s": round(len(bodies) / seconds, 1), "alerts_raised": raised,
                         "events_per_transaction": per_transaction}
    duplicates = bodies[: min(len(bodies), 5000)]
    started = time.perf_counter()
    apply_events(service, duplicates, args.batch)  # redelivery: claimed already, nothing changes
    seconds = time.perf_counter() - started
    print(f"  redelivered     {len(duplicates):>10,} duplicates skipped at {len(duplicates) / seconds:,.0f} events/s")
    figures["redelivered"] = {"events": len(duplicates), "events_per_s": round(len(duplicates) / seconds, 1)}
    figures["totals"] = {"alerts": count(store, models.alerts), "health_history": count(store, models.health_history),
                         "outbox": count(store, models.infrastructure["outbox"])}
    print(f"  totals: {figures['totals']['alerts']:,} alerts, {figures['totals']['health_history']:,} "
          f"score history rows, {figures['totals']['outbox']:,} outbox events")
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
