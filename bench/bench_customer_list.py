"""Customer list/search latency at scale: first page, a deep page by cursor, filters and sorts.

    python bench/bench_customer_list.py [--customers 1000000]

Bulk-loads customers straight into the customers schema (SQLite file, or PostgreSQL when
CUSTOMERS_DATABASE_URL is set), then times the same query code the API runs.
"""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import insert  # noqa: E402
from sqlalchemy.orm import sessionmaker

from crm import runner
from crm_common.auth import Principal
from crm_common.db import UnitOfWork, make_engine
from services.customers import models, queries

TEAMS = [f"team{t}" for t in range(40)]
REPS = [f"rep{r}" for r in range(2000)]  # thousands of reps, 50 per team


def load(engine, count):
    rng = random.Random(1)
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    with engine.begin() as connection:
        for offset in range(0, count, 20000):
            rows, tags = [], []
            for i in range(offset, min(offset + 20000, count)):
                rep = REPS[i % len(REPS)]
                last = now - timedelta(days=rng.randint(0, 700)) if rng.random() < 0.85 else None
                rows.append({
                    "id": f"cus_{i:012d}", "company": f"Company {rng.randint(0, 10**9)}",
                    "company_key": f"company {rng.randint(0, 10**9)}", "industry": rng.choice(("retail", "energy",
                                                                                              "software", "food")),
                    "source_channel": "online", "owner_id": rep, "team": TEAMS[int(rep[3:]) % len(TEAMS)],
                    "notes": "", "important_dates": [], "tier": rng.choice("ABCCC"),
                    "lifecycle": rng.choice(("potential", "new", "active", "active", "dormant", "at_risk", "churned")),
                    "pipeline_stage": "won", "flagged_at_risk": False,
                    "rolling_12m_total": Decimal(rng.randint(0, 300000)), "purchase_count": rng.randint(0, 30),
                    "first_purchase_at": last, "last_purchase_at": last, "last_interaction_at": None,
                    "created_at": now - timedelta(days=rng.randint(0, 1000)), "updated_at": now, "archived_at": None})
                if i % 10 == 0:
                    tags.append({"customer_id": f"cus_{i:012d}", "tag": "vip"})
            connection.execute(insert(models.customers), rows)
            connection.execute(insert(models.customer_tags), tags)
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")  # fresh planner statistics, as autovacuum would give
    return time.perf_counter() - started


def timed(session_factory, principal, params, repeat=5):
    samples, result = [], None
    for _ in range(repeat):
        uow = UnitOfWork(session_factory, models.infrastructure, "customers")
        with uow:
            started = time.perf_counter()
            result = queries.list_customers(uow, principal, params)
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    url = os.environ.get("CUSTOMERS_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp()}/customers.db"
    runner.migrate("customers", url)
    engine = make_engine(url)
    print(f"loading {args.customers} customers into {url.split('@')[-1]} ...")
    print(f"  loaded in {load(engine, args.customers):.0f}s")
    session_factory = sessionmaker(bind=engine)
    admin, manager, rep = Principal("a", "admin"), Principal("m", "manager", "team7"), Principal("rep7", "rep", "team7")
    cases = [
        ("admin, newest first", admin, {"sort": "-created_at", "limit": 50}),
        ("admin, tier A by 12m total", admin, {"tier": "A", "sort": "-rolling_12m_total", "limit": 50}),
        ("manager, team at_risk", manager, {"lifecycle": "at_risk", "limit": 50}),
        ("rep, own customers by company", rep, {"sort": "company", "limit": 50}),
        ("admin, tag vip", admin, {"tag": "vip", "limit": 50}),
        ("admin, last purchase, oldest first", admin, {"sort": "last_purchase_at", "limit": 50}),
    ]
    print(f"{'query':<40} {'first page':>11} {'page 200 (cursor)':>18}")
    for name, principal, params in cases:
        first_ms, page = timed(session_factory, principal, params)
        cursor = page["next_cursor"]
        for _ in range(198):  # walk to page 200 the way a client would
            if cursor is None:
                break
            _, page = timed(session_factory, principal, {**params, "cursor": cursor}, repeat=1)
            cursor = page["next_cursor"]
        deep = f"{timed(session_factory, principal, {**params, 'cursor': cursor})[0]:16.1f}ms" if cursor else \
            f"{'(< 200 pages)':>18}"
        print(f"{name:<40} {first_ms:9.1f}ms {deep}")
    text_ms, _ = timed(session_factory, admin, {"q": "company 12345", "limit": 50}, repeat=3)
    print(f"{'admin, text search (substring)':<40} {text_ms:9.1f}ms {'':>16}")


if __name__ == "__main__":
    main()
