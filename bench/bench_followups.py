"""Followups at scale: the reminder sweep over many open tasks, and interactions logged per second.

    python bench/bench_followups.py                        # 1,000,000 open tasks on SQLite + HTTP
    python bench/bench_followups.py --tasks 100000 --interactions 500
    FOLLOWUPS_DATABASE_URL=postgresql://... python bench/bench_followups.py --skip-http

Part 1 bulk-loads open tasks straight into the followups schema (a SQLite file, or PostgreSQL when
FOLLOWUPS_DATABASE_URL is set), with due times spread over the past weeks and the next months,
then times the sweep code the service's timer runs (``jobs.reminder_batch`` in batches until
nothing is left): a first sweep that has reminders to emit, then a steady-state sweep that has
none. Part 2 starts the embedded system (four services, memory bus, SQLite) and logs backdated
interactions through ``POST /v1/interactions`` with a few clients in parallel.

Prints figures; asserts nothing.
"""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

from sqlalchemy import func, insert, select, text  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

import crm_common.contracts  # noqa: E402,F401
from crm_common.db import UnitOfWork, make_engine  # noqa: E402
from crm_common.migrations import upgrade  # noqa: E402
from services.followups import jobs, models  # noqa: E402
from services.followups.domain.settings import FollowupsSettings  # noqa: E402

TEAMS = [f"team{t}" for t in range(40)]
REPS = [f"rep{r}" for r in range(2000)]
CHUNK = 20000


def load_tasks(engine, count: int, now: datetime, overdue_share: float) -> float:
    """Open tasks: ``overdue_share`` spread over the last 30 days, the rest over the next 180 days."""
    rng = random.Random(1)
    started = time.perf_counter()
    with engine.begin() as connection:
        for offset in range(0, count, CHUNK):
            rows = []
            for i in range(offset, min(offset + CHUNK, count)):
                rep = REPS[i % len(REPS)]
                if rng.random() < overdue_share:
                    due = now - timedelta(minutes=rng.randint(1, 30 * 24 * 60))
                else:
                    due = now + timedelta(minutes=rng.randint(120, 180 * 24 * 60))
                rows.append({"id": f"tsk_{i:012d}", "customer_id": f"cus_{i:012d}", "assignee_id": rep,
                             "team": TEAMS[i % len(TEAMS)], "kind": "maintenance", "purpose": "touch every 30 days",
                             "reason": "cadence", "due_at": due, "status": "open", "reminder_state": "none",
                             "anchor_at": due - timedelta(days=30), "dedupe_key": None, "created_at": now,
                             "created_by": "bench", "closed_at": None, "interaction_id": None, "skip_reason": None})
            connection.execute(insert(models.tasks), rows)
    return time.perf_counter() - started


def sweep(session_factory, now: datetime, settings: FollowupsSettings) -> tuple[float, Counter, int]:
    """The service's run_reminders loop without nameko: one transaction per batch until nothing is left."""
    started = time.perf_counter()
    emitted, batches = Counter(), 0
    while True:
        with UnitOfWork(session_factory, models.infrastructure, "followups") as uow:
            batch = jobs.reminder_batch(uow, now, settings)
            uow.commit()
        if not batch:
            break
        emitted.update(batch)
        batches += 1
    return time.perf_counter() - started, emitted, batches


def bench_sweep(args) -> None:
    url = os.environ.get("FOLLOWUPS_DATABASE_URL")
    tmp = None
    if not url:
        tmp = tempfile.mkdtemp(prefix="bench-followups-")
        url = f"sqlite:///{tmp}/followups.db"
    upgrade("followups", url)
    engine = make_engine(url)
    with engine.begin() as connection:  # a rerun against PostgreSQL starts clean
        for table in ("tasks", "outbox"):
            connection.execute(text(f"DELETE FROM {table}"))
    session_factory = sessionmaker(bind=engine, expire_on_commit=False)
    settings = FollowupsSettings(sweep_batch_size=args.batch)
    now = datetime.now(timezone.utc)
    print(f"Reminder sweep on {engine.dialect.name}: loading {args.tasks:,} open tasks "
          f"({args.overdue_share:.1%} past due) ...")
    seconds = load_tasks(engine, args.tasks, now, args.overdue_share)
    print(f"  loaded in {seconds:.1f}s")
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE tasks"))
    seconds, emitted, batches = sweep(session_factory, now, settings)
    total = sum(emitted.values())
    print(f"  first sweep:   {seconds:8.2f}s  {batches} batches of <= {args.batch} per step, {total:,} reminders "
          f"(due {emitted['due']:,}, overdue {emitted['overdue']:,}, missed {emitted['missed']:,})"
          + (f", {total / seconds:,.0f} reminders/s" if seconds else ""))
    seconds, emitted, _ = sweep(session_factory, now, settings)
    print(f"  steady state:  {seconds * 1000:8.1f}ms  nothing new to remind ({sum(emitted.values())} events) "
          f"- the timer's cost every {settings.reminder_interval_seconds:.0f}s at this size")
    later = now + timedelta(hours=6)
    seconds, emitted, _ = sweep(session_factory, later, settings)
    print(f"  six hours on:  {seconds:8.2f}s  {sum(emitted.values()):,} reminders for tasks coming due since")
    with session_factory() as session:
        open_count = session.execute(select(func.count()).select_from(models.tasks)
                                     .where(models.tasks.c.status == "open")).scalar()
    print(f"  open tasks left: {open_count:,}")
    engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base, token, method, path, body=None):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None,
                                     method=method, headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def bench_http(args) -> None:
    from crm import runner
    from crm_common import memory_transport
    from crm_common.auth import issue_token
    from crm_common.config import DEV_SECRET

    memory_transport.install()
    port = free_port()
    system = runner.embedded(tempfile.mkdtemp(prefix="bench-followups-http-"), port)
    system.start()
    base = f"http://127.0.0.1:{port}"
    try:
        admin = issue_token(DEV_SECRET, "admin", "admin")
        reps = [f"bench-rep{i}" for i in range(8)]
        for rep in reps:
            call(base, admin, "POST", "/v1/reps", {"id": rep, "name": rep, "team": "bench"})
        now = datetime.now(timezone.utc)
        customers = []
        for i in range(args.customers):
            status, body = call(base, admin, "POST", "/v1/customers", {
                "company": f"Bench {i}", "owner_id": reps[i % len(reps)],
                "created_at": (now - timedelta(days=400)).isoformat()})
            assert status == 201, body
            customers.append((body["id"], reps[i % len(reps)]))
        tokens = {rep: issue_token(DEV_SECRET, rep, "rep", "bench") for rep in reps}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until followups knows them all (else the first calls ask by RPC)
            status, page = call(base, admin, "GET", "/v1/tasks?limit=500&status=open")
            if len(page["items"]) >= len(customers):
                break
            time.sleep(0.2)
        rng = random.Random(2)
        bodies = []
        for i in range(args.interactions):
            customer_id, owner = customers[i % len(customers)]
            occurred = now - timedelta(days=400) + timedelta(days=400 * i / args.interactions)
            bodies.append((tokens[owner], {"customer_id": customer_id, "occurred_at": occurred.isoformat(),
                                           "kind": rng.choice(("call", "email", "visit", "meeting")),
                                           "outcome": rng.choice(("reached", "positive", "no_answer")),
                                           "summary": "bench"}))
        print(f"\nInteractions through the HTTP API (embedded: four services, memory bus, SQLite), "
              f"{args.interactions:,} over {args.customers} customers, {args.clients} clients ...")
        pool = eventlet.GreenPool(args.clients)
        started = time.perf_counter()
        statuses = Counter(status for status, _ in pool.imap(
            lambda item: call(base, item[0], "POST", "/v1/interactions", item[1]), bodies))
        seconds = time.perf_counter() - started
        print(f"  {args.interactions / seconds:,.0f} interactions/s ({seconds:.1f}s; answers {dict(statuses)})")
        from crm_common import metrics
        total = count = 0.0
        for metric in metrics.HTTP_LATENCY.collect():
            for sample in metric.samples:
                if sample.labels.get("route") == "/v1/interactions" and sample.labels.get("method") == "POST":
                    if sample.name.endswith("_sum"):
                        total += sample.value
                    elif sample.name.endswith("_count"):
                        count += sample.value
        if count:
            print(f"  server time per request {1000 * total / count:.1f}ms on average; the rest of the process's "
                  f"time goes to the other services applying the events (one process, one core for all four)")
    finally:
        system.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="open tasks for the sweep (default 1,000,000)")
    parser.add_argument("--overdue-share", type=float, default=0.01,
                        help="share of open tasks already past due when the sweep first runs (default 0.01)")
    parser.add_argument("--batch", type=int, default=1000, help="sweep batch size (FOLLOWUPS_SWEEP_BATCH_SIZE)")
    parser.add_argument("--interactions", type=int, default=2000, help="interactions to log over HTTP")
    parser.add_argument("--customers", type=int, default=100, help="customers they are spread over")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    if not args.skip_sweep:
        bench_sweep(args)
    if not args.skip_http:
        bench_http(args)


if __name__ == "__main__":
    main()
