"""The event pipeline on RabbitMQ + PostgreSQL next to the broker's own floor, in one run (issue 9 item 7).

    python bench/bench_pipeline.py [--events 50000] [--customers 2000] [--services customers,reports]
                                   [--skip-floor|--skip-relay|--skip-services|--skip-latency] [--json PATH]

On CRM_AMQP_URI and <SERVICE>_DATABASE_URL if set (a fresh broker, empty databases), else on a private
RabbitMQ + PostgreSQL (scripts/infra.sh). Measures the broker floor (plain py-amqp, persistent 429-byte
messages: pipelined confirms; prefetch 500, multiple-ack), the outbox relay (relay_batch draining N events),
each service as its own process fed the MIX on crm.events (consumed events / first publish to last applied),
and commit-to-applied latency customers -> reports at a fixed load. bench/README.md has the targets.
"""
import argparse
import inspect
import json
import os
import random
import sys
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # imported with the service classes

from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from bench.benchlib import (  # noqa: E402
    PROCESSED, applied, bind_queue, broker, consume_all, consumed_events, create_customers, migrate, private_infra,
    publish_confirmed, queue_depth, start_service, stop_service, unbind_service, wait_applied, write_json)
from crm_common import outbox as relay  # noqa: E402
from crm_common.config import DEV_SECRET, SERVICES, database_url, env  # noqa: E402
from crm_common.db import UnitOfWork, make_engine, utc  # noqa: E402
from crm_common.events import SEQUENCE_HEADER, SUBJECT_HEADER, definition, make_event, to_envelope  # noqa: E402

TARGETS = {"relay_vs_floor_publish": 0.6, "service_vs_floor_consume": 0.25, "latency_p95_ms": 250,
           "latency_rate": 500}
BODY_BYTES, PREFETCH, ACK_EVERY = 429, 500, 250
PROBE = "bench-probe-"
# The event mix: events per customer of each type (rep.registered: one rep per 50 customers). Every service
# gets all of it and is measured on the events of the types it consumes.
MIX = {"rep.registered": 0.02, "customer.created": 1, "customer.updated": 1.0, "purchase.recorded": 2.5,
       "customer.tier_changed": 0.3, "customer.lifecycle_changed": 0.5, "customer.stage_changed": 0.3,
       "customer.owner_changed": 0.05, "interaction.logged": 4.0, "task.scheduled": 2.0, "task.due": 1.0,
       "task.overdue": 0.3, "task.completed": 1.2, "task.missed": 0.3, "task.skipped": 0.2, "task.rescheduled": 0.2,
       "task.reassigned": 0.1, "alert.raised": 0.2, "alert.acknowledged": 0.1, "alert.escalated": 0.05,
       "alert.resolved": 0.1, "health.score_changed": 0.5}


def envelope_of(event) -> tuple[str, bytes, dict]:
    """(routing key, body, properties) as the relay publishes an event."""
    return event.routing_key, json.dumps(to_envelope(event)).encode(), {
        "message_id": event.id, "application_headers": {SUBJECT_HEADER: event.subject,
                                                        SEQUENCE_HEADER: str(event.sequence)}}


# ------------------------------------------------------------------ floor

def bench_floor(uri: str, count: int, window: int) -> dict:
    event = make_event("customer.archived", "cus-000001", {"customer_id": "cus-000001",
                       "archived_at": datetime.now(timezone.utc)}, source="crm/customers")
    envelope = {**to_envelope(replace(event, sequence=1)), "pad": ""}
    envelope["pad"] = "x" * max(0, BODY_BYTES - len(json.dumps(envelope)))
    body = json.dumps(envelope).encode()
    connection = broker(uri)
    channel = bind_queue(connection, "bench.floor", "bench.floor")
    publish = publish_confirmed(connection, (("bench.floor", body, {}) for _ in range(count)), window)
    consume = consume_all(connection, "bench.floor", count, PREFETCH, ACK_EVERY)
    channel.queue_delete("bench.floor")
    connection.close()
    return {"messages": count, "body_bytes": len(body), "window": window, "prefetch": PREFETCH,
            "ack_every": ACK_EVERY, "publish_per_s": round(count / publish), "consume_per_s": round(count / consume)}


# ------------------------------------------------------------------ relay

def bench_relay(uri: str, count: int, relay_kwargs: dict) -> dict:
    from services.customers import models
    gaps, engine = migrate("customers", database_url("customers")), make_engine(database_url("customers"))
    session_factory = sessionmaker(bind=engine, expire_on_commit=False)
    connection, queue = broker(uri), f"bench.relay.{uuid.uuid4().hex[:8]}"
    channel = bind_queue(connection, queue, "#")
    now, started = datetime.now(timezone.utc), time.perf_counter()
    for offset in range(0, count, 5000):
        with UnitOfWork(session_factory, models.infrastructure, "customers") as uow:
            for n in range(offset, min(count, offset + 5000)):
                cid = f"cus-{n % 2000:06d}"
                uow.emit("purchase.recorded", cid, {"customer_id": cid, "purchase_id": f"relay-{n}", "amount": "99.00",
                                                    "currency": "USD", "amount_base": "99.00", "base_currency": "USD",
                                                    "purchased_at": now})
            uow.commit()
    emit_seconds = time.perf_counter() - started
    kwargs = {k: v for k, v in relay_kwargs.items() if k in inspect.signature(relay.relay_batch).parameters}
    if kwargs != relay_kwargs:
        print(f"  NOTE relay_batch takes no {sorted(set(relay_kwargs) - set(kwargs))}: ignored")
    publisher, relayed, started = relay.BrokerPublisher(uri), 0, time.perf_counter()
    while batch := relay.relay_batch(session_factory, models.infrastructure["outbox"], publisher, "customers",
                                     **kwargs):
        relayed += batch
    seconds = time.perf_counter() - started
    arrived = queue_depth(connection, queue)
    channel.queue_delete(queue)
    publisher.close()
    connection.close()
    engine.dispose()
    if arrived != relayed or relayed < count:
        print(f"  WARNING relayed {relayed:,}, {arrived:,} arrived, {count:,} emitted")
    return {"events": count, "relayed": relayed, "arrived": arrived, "seconds": round(seconds, 3),
            "publish_per_s": round(relayed / seconds), "emit_per_s": round(count / emit_seconds),
            "relay_kwargs": kwargs, "schema_gaps": gaps}


# ------------------------------------------------------------------ the event mix

def mix_events(customer_ids: list, seed: int, rep_prefix: str = "rep-") -> list:
    """One story per customer (created first, then the MIX in random order over 90 days; tasks and alerts
    closed only once opened), the stories interleaved in time order, numbered per (source, subject)."""
    rng, now = random.Random(seed), datetime.now(timezone.utc)
    reps = [f"{rep_prefix}{k:03d}" for k in range(max(1, round(MIX["rep.registered"] * len(customer_ids))))]
    items = [(now - timedelta(days=91), "rep.registered", rep, {"rep_id": rep, "name": rep, "team": f"team-{k % 4}",
                                                                "role": "rep", "active": True})
             for k, rep in enumerate(reps)]
    for n, cid in enumerate(customer_ids):
        names = [name for name, rate in MIX.items() if name not in ("rep.registered", "customer.created")
                 for _ in range(int(rate) + (rng.random() < rate % 1))]
        rng.shuffle(names)
        when = now - timedelta(days=90) + timedelta(minutes=rng.randrange(60 * 24 * 30))
        step = (now - when) / (len(names) + 2)
        story = {"rep": reps[n % len(reps)], "team": f"team-{n % len(reps) % 4}", "created": when, "tasks": [],
                 "alerts": []}
        for name in ["customer.created"] + names:
            items.append((when, *story_event(name, cid, when, story, rng)))
            when += step * rng.uniform(0.5, 1.5)
    items.sort(key=lambda item: item[0])
    sequences, events = {}, []
    for when, name, subject, data in items:
        event = make_event(name, subject, data, source=f"crm/{definition(name).producer}", time=when)
        sequences[event.stream] = sequences.get(event.stream, 0) + 1
        events.append(replace(event, sequence=sequences[event.stream]))
    return events


def story_event(name: str, cid: str, when: datetime, s: dict, rng) -> tuple[str, str, dict]:
    """The next event of a customer's story. The payload holds every field any contract names (the contract's
    schema keeps its own) plus what differs per type."""
    if name.startswith("task.") and name != "task.scheduled" and not s["tasks"]:
        name = "task.scheduled"
    if name.startswith("alert.") and name != "alert.raised" and not s["alerts"]:
        name = "alert.raised"
    if name in ("task.scheduled", "alert.raised"):
        s["tasks" if name.startswith("task") else "alerts"].append((f"{name[0]}-{cid}-{rng.randrange(10**9)}", when))
    (task_id, scheduled), (alert_id, raised) = (s["tasks"] or [(None, None)])[-1], (s["alerts"] or [(None, None)])[-1]
    key = f"{cid}-{rng.randrange(10**9)}"
    data = {"customer_id": cid, "owner_id": s["rep"], "team": s["team"], "assignee_id": s["rep"], "rep_id": s["rep"],
            "company": f"Company {cid}", "industry": "retail", "tier": "B", "lifecycle": "active",
            "created_at": s["created"], "task_id": task_id, "due_at": scheduled and scheduled + timedelta(days=3),
            "kind": "follow_up", "alert_id": alert_id, "rule": "silence", "raised_at": raised, "reason": "bench",
            "as_of": when, **{
                "customer.updated": {"tags": ["bench"], "changed_fields": ["tags"]},
                "purchase.recorded": {"purchase_id": f"p-{key}", "amount": "1200.00", "currency": "USD",
                                      "amount_base": "1200.00", "base_currency": "USD", "purchased_at": when},
                "customer.tier_changed": {"old_tier": "C", "new_tier": "B", "rolling_12m_total": "15000.00"},
                "customer.lifecycle_changed": {"old_lifecycle": "new", "new_lifecycle": "active"},
                "customer.stage_changed": {"new_stage": "needs_analysis", "changed_at": when},
                "customer.owner_changed": {"new_owner_id": s["rep"], "transfer_id": f"tr-{key}", "changed_by": "admin"},
                "interaction.logged": {"interaction_id": f"i-{key}", "kind": rng.choice(("call", "email", "visit")),
                                       "phase": "post_sale", "occurred_at": when,
                                       "outcome": rng.choice(("reached", "no_answer", "positive")),
                                       "satisfaction": rng.choice((None, 3, 4, 5))},
                "task.rescheduled": {"old_due_at": scheduled and scheduled + timedelta(days=2)},
                "task.completed": {"completed_at": when, "on_time": True},
                "task.missed": {"missed_at": when}, "task.skipped": {"skipped_at": when},
                "alert.raised": {"signals": [{"name": "days_silent", "value": 40}], "health_score": 35},
                "alert.acknowledged": {"acknowledged_by": s["rep"], "acknowledged_at": when},
                "alert.escalated": {"escalated_to": "manager-1", "escalated_at": when},
                "alert.resolved": {"outcome": "recovered", "resolved_by": s["rep"], "resolved_at": when,
                                   "clears_at_risk": True, "open_alerts": 0},
                "health.score_changed": {"old_score": 75, "new_score": 55, "old_band": "healthy", "new_band": "watch"},
            }.get(name, {})}
    if name in ("task.completed", "task.missed", "task.skipped", "alert.resolved"):
        s["tasks" if name.startswith("task") else "alerts"].pop()
    return name, cid, data


# ------------------------------------------------------------------ services as processes

NOT_PROBE = ~PROCESSED.c.event_id.like(PROBE + "%")


def wait_consuming(name: str, uri: str, engine, process, consumed: set, timeout: float = 90) -> None:
    """Probe events (a new subject each) until the service applied one: its queues are bound and consumed."""
    kind = next(n for n in ("rep.registered", "interaction.logged", *MIX) if n in consumed)
    connection, deadline = broker(uri), time.monotonic() + timeout
    while not applied(engine, ~NOT_PROBE)[0]:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} applied no probe event in {timeout:.0f}s")
        subject = f"{PROBE}{uuid.uuid4().hex[:8]}"
        probe = next(e for e in mix_events([subject], 1, f"{subject}-rep-") if e.name == kind)
        publish_confirmed(connection, [envelope_of(replace(probe, id=PROBE + uuid.uuid4().hex))], 1)
        time.sleep(1)
    connection.close()


def first_applied(engine, baseline: int) -> datetime:
    """When the first event of the mix was applied: the start of the timed stretch (startup excluded)."""
    with engine.connect() as conn:
        moment = conn.execute(select(PROCESSED.c.processed_at).where(NOT_PROBE).order_by(PROCESSED.c.processed_at)
                              .offset(baseline).limit(1)).scalar_one()
    return utc(moment)


def bench_service(name: str, uri: str, customers: int, window: int, run_dir: str, seed: int) -> dict:
    url = database_url(name)
    figures, consumed = {"schema_gaps": migrate(name, url)}, consumed_events(name)
    engine, connection = make_engine(url, pool_size=2), broker(uri)
    dead_before = queue_depth(connection, f"{name}.dead-letter") or 0
    process, base = start_service(name, run_dir)
    try:
        wait_consuming(name, uri, engine, process, consumed)
        ids = (create_customers(base, customers, env("CRM_AUTH_SECRET", DEV_SECRET)) if name == "customers"
               else [f"cus-{n:06d}" for n in range(customers)])
        events = mix_events(ids, seed)
        messages, expected = [envelope_of(e) for e in events], sum(e.name in consumed for e in events)
        # like the floor's consume, the service starts on a full backlog: stopped, its queues keep what comes
        stop_service(process)
        baseline = applied(engine, NOT_PROBE)[0]
        publish_seconds = publish_confirmed(connection, messages, window)
        process, _ = start_service(name, run_dir)
        done, last = wait_applied(engine, expected, NOT_PROBE, baseline)
        first = first_applied(engine, baseline)
        seconds = ((last if done >= expected else datetime.now(timezone.utc)) - first).total_seconds()
    finally:
        stop_service(process)
        unbind_service(uri, name, consumed)
    figures.update(published=len(events), consumed=expected, applied=done, seconds=round(seconds, 3),
                   per_s=round(done / seconds), publish_per_s=round(len(events) / publish_seconds),
                   dead_lettered=(queue_depth(connection, f"{name}.dead-letter") or 0) - dead_before,
                   complete=done >= expected, types=sorted(consumed & set(MIX)))
    connection.close()
    engine.dispose()
    return figures


def emit_paced(session_factory, tables, rate: int, seconds: float, threads: int = 4) -> tuple[list, float]:
    """Transactions of customer.created + 4 purchase.recorded, spaced for `rate` events/s and spread over
    `threads` (a connection each); returns the events emitted and the seconds it took."""
    run, now, started = uuid.uuid4().hex[:6], datetime.now(timezone.utc), time.perf_counter()
    transactions = int(rate * seconds) // 5

    def emitter(first):
        emitted = []
        for n in range(first, transactions, threads):
            time.sleep(max(0.0, started + n * 5 / rate - time.perf_counter()))
            cid = f"lat-{run}-{n}"
            with UnitOfWork(session_factory, tables, "customers") as uow:
                emitted.append(uow.emit("customer.created", cid, {"customer_id": cid, "company": cid, "tier": "C",
                                                                  "lifecycle": "new", "created_at": now}))
                emitted += [uow.emit("purchase.recorded", cid, {
                    "customer_id": cid, "purchase_id": f"lp-{cid}-{k}", "amount": "50.00", "currency": "USD",
                    "amount_base": "50.00", "base_currency": "USD", "purchased_at": now}) for k in range(4)]
                uow.commit()
        return emitted

    with ThreadPoolExecutor(threads) as pool:
        events = [event for part in pool.map(emitter, range(threads)) for event in part]
    return events, time.perf_counter() - started


def bench_latency(uri: str, rate: int, seconds: float, run_dir: str) -> dict:
    """customers and reports running; events emitted into customers' outbox (its relay publishes them, reports
    applies them): reports' processed_at - customers' outbox created_at, per event."""
    from services.customers import models
    engines = {name: make_engine(database_url(name), pool_size=4) for name in ("customers", "reports")}
    consumed, processes = consumed_events("reports"), []
    try:
        for name in engines:
            migrate(name, database_url(name))
            processes.append(start_service(name, run_dir)[0])
        wait_consuming("reports", uri, engines["reports"], processes[1], consumed)
        events, elapsed = emit_paced(sessionmaker(bind=engines["customers"], expire_on_commit=False),
                                     models.infrastructure, rate, seconds)
        ids = [event.id for event in events if event.name in consumed]
        done = wait_applied(engines["reports"], len(ids), PROCESSED.c.event_id.in_(ids))[0]
    finally:
        for process in processes:
            stop_service(process)
        for name in engines:
            unbind_service(uri, name, consumed_events(name))
    times = {}
    for name, table, column in (("customers", models.infrastructure["outbox"], "created_at"),
                                ("reports", PROCESSED, "processed_at")):
        with engines[name].connect() as conn:
            times[name] = dict(conn.execute(select(table.c.event_id, table.c[column])
                                            .where(table.c.event_id.in_(ids))).all())
        engines[name].dispose()
    created, processed = times["customers"], times["reports"]
    ms = sorted((utc(processed[i]) - utc(created[i])).total_seconds() * 1000 for i in processed)
    pick = lambda q: round(ms[min(len(ms) - 1, int(q * len(ms)))], 1) if ms else None  # noqa: E731
    return {"target_rate": rate, "offered_per_s": round(len(events) / elapsed), "events": len(ids), "applied": done,
            "complete": done >= len(ids), "p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": pick(1.0)}


# ------------------------------------------------------------------ report and main

def report(figures: dict) -> dict:
    """Print the table (figure, ratio to the floor, target, PASS/MISS); returns the verdicts."""
    floor, rows, verdicts = figures.get("floor", {}), [], {}

    def row(key, label, result, field, base=None, minimum=None, maximum=None, unit="/s"):
        value = result.get(field)
        ratio = value / base if value and base else None
        failed = "error" in result or result.get("complete") is False
        label += " (FAILED)" if "error" in result else " (INCOMPLETE)" if failed else ""
        ok = False if failed else (ratio >= minimum if ratio else None) if minimum else \
            (value is not None and value <= maximum) if maximum else None
        if ok is not None:
            verdicts[key] = {"value": value, "ratio": ratio and round(ratio, 3), "pass": ok}
        rows.append((label, "-" if value is None else f"{value:,}{unit}", f"{ratio:.2f}" if ratio else "",
                     f">= {minimum} x floor" if minimum else f"<= {maximum}{unit}" if maximum else "",
                     {True: "PASS", False: "MISS", None: ""}[ok]))

    if "floor" in figures:
        row("floor_publish", f"floor publish ({floor.get('body_bytes')} B, pipelined confirms)", floor, "publish_per_s")
        row("floor_consume", f"floor consume (prefetch {PREFETCH}, multiple-ack)", floor, "consume_per_s")
    if "relay" in figures:
        row("relay", "outbox relay publish", figures["relay"], "publish_per_s", floor.get("publish_per_s"),
            TARGETS["relay_vs_floor_publish"])
    for name, result in figures.get("services", {}).items():
        row(name, f"{name} consume+apply", result, "per_s", floor.get("consume_per_s"),
            TARGETS["service_vs_floor_consume"])
    if "latency" in figures:
        lat = figures["latency"]
        offered = lat.get("offered_per_s") or 0
        short = f" (short of {TARGETS['latency_rate']})" if offered < 0.95 * TARGETS["latency_rate"] else ""
        row("latency", f"latency p95 at {offered}/s{short}; p50 {lat.get('p50_ms')}, max {lat.get('max_ms')} ms",
            lat, "p95_ms", maximum=TARGETS["latency_p95_ms"], unit=" ms")
    print(f"\n{'figure':<66}{'value':>12}{'ratio':>7}  {'target':<20}")
    for label, value, ratio, target, verdict in rows:
        print(f"{label:<66}{value:>12}{ratio:>7}  {target:<20}{verdict}")
    return verdicts


def stage(figures: dict, key: str, title: str, function, *args) -> None:
    print(title, flush=True)
    try:
        figures[key] = function(*args)
    except Exception as exc:  # a part failing leaves the others' figures
        figures[key] = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"  {figures[key]}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="messages for the floor and the relay")
    parser.add_argument("--customers", type=int, default=2000, help="customers in each service's event mix")
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated subset")
    parser.add_argument("--window", type=int, default=1000, help="unconfirmed publishes in flight (floor, mix)")
    parser.add_argument("--relay-arg", action="append", default=[], metavar="KEY=INT",
                        help="keyword argument for relay_batch, e.g. batch_size=1000 (repeatable)")
    parser.add_argument("--rate", type=int, default=TARGETS["latency_rate"], help="latency: events/s offered")
    parser.add_argument("--seconds", type=float, default=20, help="latency: for how long")
    parser.add_argument("--seed", type=int, default=9)
    for part in ("floor", "relay", "services", "latency"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    args = parser.parse_args()
    run_dir = os.environ.get("CRM_BENCH_RUN_DIR") or f"/tmp/bench-run-{os.getpid()}"
    os.makedirs(run_dir, exist_ok=True)
    figures = {}
    with private_infra(run_dir):
        uri = os.environ["CRM_AMQP_URI"]
        figures.update(broker=uri.split("@")[-1], targets=TARGETS, when=datetime.now(timezone.utc).isoformat(),
                       databases={name: database_url(name).split("@")[-1] for name in SERVICES}, logs=run_dir)
        try:
            if not args.skip_floor:
                stage(figures, "floor", f"floor: {args.events:,} messages", bench_floor, uri, args.events, args.window)
            if not args.skip_relay:
                kwargs = {k: int(v) for k, _, v in (arg.partition("=") for arg in args.relay_arg)}
                stage(figures, "relay", f"relay: {args.events:,} events from the customers outbox", bench_relay, uri,
                      args.events, kwargs)
            for name in [] if args.skip_services else [s for s in SERVICES if s in args.services.split(",")]:
                stage(figures.setdefault("services", {}), name, f"{name}: event mix of {args.customers:,} customers",
                      bench_service, name, uri, args.customers, args.window, run_dir, args.seed)
            if not args.skip_latency:
                stage(figures, "latency", f"latency: {args.rate}/s for {args.seconds:.0f}s, customers' outbox -> "
                      "reports", bench_latency, uri, args.rate, args.seconds, run_dir)
        finally:
            figures["verdicts"] = report(figures)
            write_json(args.json, figures)


if __name__ == "__main__":
    main()
