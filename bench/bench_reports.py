"""Reports: dashboard query latency over maintained aggregates at scale, and the event apply rate.

    python bench/bench_reports.py [--customers 1000000] [--interactions 10000000] [--db PATH] [--keep]
                                  [--runs 15] [--events 3000] [--skip-queries] [--skip-apply]

1. Counters. Writes, straight into a reports database (a SQLite file by default, or --url for
   PostgreSQL with the schema migrated), the counter rows a two-year history of that many customers
   and interactions leaves: every slice (all, team, rep, tier, lifecycle, industry and the team/rep
   crossings) x week/month/quarter/half/year bucket (and day bucket of the last 120 days) x metric whose expected
   count is at least one, with
   values scaled to the history (the stocks add up to --customers, the interaction counters to
   --interactions). They are generated in bulk with one INSERT ... SELECT per part, not by applying
   events: the point is that queries read aggregates, whatever the number of facts. Prints the
   generation time and the row count separately, then times dashboards, tables, a distribution and
   a chart through the same handlers the HTTP API calls: the first run (the pages it needs may not be
   cached yet), then median / 95th percentile / max of the other runs. Custom date ranges count distinct
   figures from the distinct_marks table: the generator also writes a year of marks (one per counted
   item of a distinct figure: ~10 per customer), and year-long ranges are timed over them.
2. Apply rate. Feeds --events events (a realistic mix, mostly interactions) through the batch consumer
   methods of the service (envelope validation, customer lock, book reconcile, counter upsert, one
   transaction each) into a fresh SQLite file, in time order and shuffled (as a rebuild delivers
   them). The broker is not in the path: see bench_customers.py for the outbox -> broker rate.
"""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from datetime import date, datetime, timedelta, timezone  # noqa: E402
from decimal import Decimal  # noqa: E402

from sqlalchemy import create_engine, event, insert, text  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

import crm_common.contracts  # noqa: E402,F401
from crm_common.auth import Principal  # noqa: E402
from crm_common.db import make_engine  # noqa: E402
from crm_common.events import from_envelope, make_event, to_envelope  # noqa: E402
from services.reports import domain as d, models, queries  # noqa: E402

UTC = timezone.utc
TODAY = date(2026, 9, 16)  # mid-quarter, mid-month: stocks read quarters, months and days
HISTORY_DAYS = 730
DAY_WINDOW = 120  # day buckets written for the last 120 days only (see the printout)
INDUSTRIES = ("manufacturing", "retail", "healthcare", "logistics", "software", "construction", "food", "energy",
              "finance", "education", "hospitality", "agriculture")
TIER_SHARES = {"A": 0.1, "B": 0.3, "C": 0.6}
LIFECYCLE_SHARES = {"potential": 0.15, "new": 0.1, "active": 0.45, "dormant": 0.1, "at_risk": 0.12, "churned": 0.08}


# ================================================================ part 1: counters in bulk

def flow_rates(customers: int, interactions: int) -> dict[str, float]:
    """Expected count per customer per day of every flow metric (stock metrics: their daily net moves)."""
    talk = interactions / customers / HISTORY_DAYS
    rates = {
        "interactions": talk, "interactions:pre_sale": 0.3 * talk, "interactions:post_sale": 0.7 * talk,
        "satisfaction.count": 0.2 * talk, "satisfaction.sum": 0.8 * talk, "complaints": 0.02 * talk,
        "purchases": 0.01, "revenue": 0.01 * 500_000, "buyers": 0.009, "repeat_buyers": 0.007,
        "tasks.came_due": 0.005, "tasks.completed": 0.004, "tasks.completed_on_time": 0.003,
        "tasks.skipped": 0.0003, "tasks.missed": 0.0007, "tasks.overdue": 0.001,
        "followup.customers_due": 0.0045, "followup.customers_touched": 0.0038,
        "won.cycle_seconds": 0.0002 * 40 * 86400, "won.with_cycle": 0.0002, "churned": 0.0003,
        "alerts.raised": 0.0005, "alerts.handled": 0.00045, "alerts.handled_in_time": 0.0004,
        "alerts.escalated": 0.00005, "alerts.resolved:recovered": 0.0002, "alerts.resolved:lost": 0.0001,
        "alerts.resolved:false_alarm": 0.0001, "moved.tier:A>B": 0.0001, "moved.tier:B>C": 0.0002,
        "moved.tier:C>B": 0.0002, "moved.lifecycle:active>at_risk": 0.0003, "moved.lifecycle:at_risk>churned": 0.0002,
        "moved.lifecycle:new>active": 0.0003, "health.sum": 0.02, "health.scored": 0.0002,
    }
    rates.update({f"stage.entered:{s}": 0.0005 for s in d.PIPELINE_STAGES})
    rates.update({f"customers:{lc}": 0.0005 for lc in d.LIFECYCLES})
    return rates


def slices(teams: int, reps_per_team: int) -> list[tuple[d.Slice, float, str | None]]:
    """(slice, share of the customers in it, its lifecycle if it has one)."""
    total = sum(range(1, len(INDUSTRIES) + 1))
    industry_share = {name: (len(INDUSTRIES) - i) / total for i, name in enumerate(INDUSTRIES)}
    scopes = [(d.Slice(), 1.0)]
    for t in range(teams):
        team = f"team-{t:02d}"
        scopes.append((d.Slice(team=team), 1 / teams))
        scopes += [(d.Slice(rep=f"rep-{t:02d}-{r:02d}"), 1 / teams / reps_per_team) for r in range(reps_per_team)]
    result = []
    for scope, share in scopes:
        result.append((scope, share, None))
        result += [(scope.with_value("tier", v), share * s, None) for v, s in TIER_SHARES.items()]
        result += [(scope.with_value("lifecycle", v), share * s, v) for v, s in LIFECYCLE_SHARES.items()]
        result += [(scope.with_value("industry", v), share * s, None) for v, s in industry_share.items()]
    return sorted(result, key=lambda item: (item[0].dimension, item[0].value))


def buckets(day_window: int | None = DAY_WINDOW) -> list[tuple[str, date, int]]:
    """Every week, month, quarter, half and year of the history; days of the last `day_window` days (None: all)."""
    first = TODAY - timedelta(days=HISTORY_DAYS)
    found = []
    for kind in d.PERIOD_KINDS:
        since = TODAY - timedelta(days=day_window) if kind is d.PeriodKind.DAY and day_window else first
        for period in d.periods_between(kind, since, TODAY):
            found.append((kind.value, period.start, (period.end - period.start).days))
    return sorted(found)


def full_history_rows(customers: int, interactions: int) -> int:
    """How many rows the generator would write with a day bucket for every day of the two years."""
    teams = max(2, customers // 25_000)
    reps_per_team = max(1, customers // 1_000 // teams)
    rates = flow_rates(customers, interactions)
    stock_lifecycle = {f"customers:{lc}": lc for lc in d.LIFECYCLES}
    groups: dict[tuple, int] = defaultdict(int)
    for _, weight, lifecycle in slices(teams, reps_per_team):
        groups[(round(weight, 12), lifecycle)] += 1
    lengths: dict[int, int] = defaultdict(int)
    for _, _, days in buckets(None):
        lengths[days] += 1
    total = 0
    for (weight, lifecycle), n_slices in groups.items():
        for days, n_buckets in lengths.items():
            for metric, rate in rates.items():
                wanted = stock_lifecycle.get(metric)
                if customers * weight * days * rate >= 0.7 and (wanted is None or lifecycle in (None, wanted)):
                    total += n_slices * n_buckets
    return total


def generate(engine, customers: int, interactions: int) -> tuple[int, float]:
    """Fill the counters table; returns (rows, seconds)."""
    started = time.perf_counter()
    teams = max(2, customers // 25_000)
    reps_per_team = max(1, customers // 1_000 // teams)
    rates = flow_rates(customers, interactions)
    stock_lifecycle = {f"customers:{lc}": lc for lc in d.LIFECYCLES}
    all_slices = slices(teams, reps_per_team)
    with engine.begin() as conn:
        for table in ("bench_slices", "bench_buckets", "bench_metrics"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(text("CREATE TABLE bench_slices (id INTEGER PRIMARY KEY, dimension VARCHAR(40), "
                          "value VARCHAR(300), weight FLOAT, lifecycle VARCHAR(16))"))
        conn.execute(text("CREATE TABLE bench_buckets (id INTEGER PRIMARY KEY, kind VARCHAR(8), start DATE, "
                          "days INTEGER)"))
        conn.execute(text("CREATE TABLE bench_metrics (id INTEGER PRIMARY KEY, metric VARCHAR(64), rate FLOAT, "
                          "lifecycle VARCHAR(16))"))
        conn.execute(text("INSERT INTO bench_slices VALUES (:id, :dimension, :value, :weight, :lifecycle)"),
                     [{"id": i + 1, "dimension": s.dimension, "value": s.value, "weight": w, "lifecycle": lc}
                      for i, (s, w, lc) in enumerate(all_slices)])
        conn.execute(text("INSERT INTO bench_buckets VALUES (:id, :kind, :start, :days)"),
                     [{"id": i + 1, "kind": k, "start": s, "days": n} for i, (k, s, n) in enumerate(buckets())])
        conn.execute(text("INSERT INTO bench_metrics VALUES (:id, :metric, :rate, :lifecycle)"),
                     [{"id": i + 1, "metric": m, "rate": rates[m], "lifecycle": stock_lifecycle.get(m)}
                      for i, m in enumerate(sorted(rates))])
        # flows (and the daily net moves of stocks): a row wherever at least ~one event is expected;
        # CROSS JOIN keeps SQLite's loop order, so rows arrive in primary-key order
        conn.execute(text(
            "INSERT INTO counters (dimension, dimension_value, period_kind, period_start, metric, value) "
            "SELECT s.dimension, s.value, b.kind, b.start, m.metric, "
            "CAST(:n * s.weight * b.days * m.rate * (0.8 + ((s.id * 7919 + b.id * 104729 + m.id * 15485863) % 41) "
            "/ 100.0) + 0.5 AS BIGINT) "
            "FROM bench_slices s CROSS JOIN bench_buckets b CROSS JOIN bench_metrics m "
            "WHERE :n * s.weight * b.days * m.rate >= 0.7 "
            "AND (m.lifecycle IS NULL OR s.lifecycle IS NULL OR m.lifecycle = s.lifecycle)"), {"n": customers})
        # the book when the history starts: one quarter bucket before it holds the opening stocks
        opening = d.Period.containing("quarter", TODAY - timedelta(days=HISTORY_DAYS)).start
        opening = d.Period.containing("quarter", opening - timedelta(days=1)).start
        rows = []
        for s, weight, lifecycle in all_slices:
            count = customers * weight
            for lc, share in LIFECYCLE_SHARES.items():
                value = round(count * (1 if lifecycle else share)) if lifecycle in (None, lc) else 0
                if value:
                    rows.append((s, f"customers:{lc}", value))
            scored = round(count * 0.8)
            if scored:
                rows += [(s, "health.scored", scored), (s, "health.sum", scored * 62)]
        conn.execute(insert(models.counters), [
            {"dimension": s.dimension, "dimension_value": s.value, "period_kind": "quarter", "period_start": opening,
             "metric": metric, "value": value} for s, metric, value in rows])
        conn.execute(insert(models.rep_directory), [
            {"rep_id": f"rep-{t:02d}-{r:02d}", "name": f"Rep {t}-{r}", "team": f"team-{t:02d}", "role": "rep",
             "active": True, "updated_at": datetime.now(UTC)} for t in range(teams) for r in range(reps_per_team)])
        conn.execute(insert(models.dimension_values), [
            {"dimension": dim, "value": value} for dim, value in
            [("team", f"team-{t:02d}") for t in range(teams)] + [("industry", i) for i in INDUSTRIES]])
        for table in ("bench_slices", "bench_buckets", "bench_metrics"):
            conn.execute(text(f"DROP TABLE {table}"))
        total = conn.execute(text("SELECT count(*) FROM counters")).scalar()
    marks = generate_marks(engine, customers, teams, reps_per_team, rates)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE counters"))
            conn.execute(text("ANALYZE distinct_marks"))
    return total, marks, time.perf_counter() - started


def generate_marks(engine, customers: int, teams: int, reps_per_team: int, rates: dict[str, float]) -> int:
    """A year of distinct marks (domain/ranges.py) up to TODAY: per customer, as many as the distinct metrics'
    rates say (~10 a year), on days spread over the year, under the customer's team, rep, tier and industry."""
    metrics = [(m, rates[m]) for m in sorted(rates) if d.is_distinct(m)]
    per_customer = sum(rate for _, rate in metrics) * 365
    count = int(customers * per_customer)
    cumulative, acc = [], 0.0
    for metric, rate in metrics:
        acc += rate
        cumulative.append((acc / (per_customer / 365), metric))
    tiers = [t for t, share in TIER_SHARES.items() for _ in range(int(share * 10))]
    first = TODAY - timedelta(days=364)
    rng = random.Random(7)
    with engine.begin() as conn:
        for offset in range(0, count, 50_000):
            rows = []
            for i in range(offset, min(count, offset + 50_000)):
                c = rng.randrange(customers)
                team = c % teams
                roll = rng.random()
                metric = next(m for bound, m in cumulative if roll <= bound) if roll < cumulative[-1][0] \
                    else cumulative[-1][1]
                rows.append({"item_id": f"m{i}", "metric": metric,
                             "entity": f"a{i}" if metric.startswith("alerts.") else f"c{c}",
                             "day": first + timedelta(days=rng.randrange(365)), "team": f"team-{team:02d}",
                             "rep": f"rep-{team:02d}-{(c // teams) % reps_per_team:02d}", "tier": tiers[c % 10],
                             "lifecycle": "active", "industry": INDUSTRIES[c % len(INDUSTRIES)]})
            conn.execute(insert(models.distinct_marks), rows)
        return conn.execute(text("SELECT count(*) FROM distinct_marks")).scalar()


def time_queries(engine, runs: int, customers: int) -> list[tuple[str, list[float]]]:
    teams = max(2, customers // 25_000)
    factory = sessionmaker(bind=engine)
    settings = d.ReportSettings()
    admin, manager, rep = Principal("admin", "admin"), Principal("m", "manager", "team-01"), \
        Principal("rep-01-03", "rep", "team-01")
    month = {"period_kind": "month"}
    year_range = {"from": (TODAY - timedelta(days=364)).isoformat(), "to": TODAY.isoformat()}
    cases = [
        ("dashboard, the year 2025 (year buckets)", queries.dashboard, (admin, {"period": "2025"}, TODAY)),
        (f"repurchase, 4 halves x {teams} teams", queries.figure_table,
         (admin, "repurchase", {"period_kind": "half", "from": "2025-H1", "breakdown": "team"}, TODAY, settings)),
        ("dashboard, a year-long custom range, everyone", queries.dashboard, (admin, year_range, TODAY)),
        ("dashboard, a year-long custom range, a team", queries.dashboard, (manager, year_range, TODAY)),
        ("dashboard, a year-long custom range, a rep", queries.dashboard, (rep, year_range, TODAY)),
        (f"repurchase, a year-long range x {teams} teams", queries.figure_table,
         (admin, "repurchase", {"period_kind": "range", **year_range, "breakdown": "team"}, TODAY, settings)),
        ("followups, a year-long range x 25 reps of a team", queries.figure_table,
         (manager, "followups", {"period_kind": "range", **year_range, "breakdown": "rep"}, TODAY, settings)),
        ("dashboard, everyone (admin)", queries.dashboard, (admin, {}, TODAY)),
        ("dashboard, one team (manager)", queries.dashboard, (manager, {}, TODAY)),
        ("dashboard, one rep (rep)", queries.dashboard, (rep, {}, TODAY)),
        ("dashboard as of a past day", queries.dashboard, (admin, {"as_of": TODAY - timedelta(days=80)}, TODAY)),
        ("churn, 12 months x 25 reps of a team", queries.figure_table,
         (manager, "churn", {**month, "breakdown": "rep"}, TODAY, settings)),
        (f"repurchase, 12 months x {teams} teams", queries.figure_table,
         (admin, "repurchase", {**month, "breakdown": "team"}, TODAY, settings)),
        ("summary (every figure), 12 months, a rep", queries.figure_table,
         (rep, "summary", month, TODAY, settings)),
        ("followups, 26 weeks x 6 lifecycles, a team", queries.figure_table,
         (manager, "followups", {"period_kind": "week", "from": (TODAY - timedelta(weeks=25)).isoformat(),
                                 "breakdown": "lifecycle"}, TODAY, settings)),
        ("distribution by industry, everyone", queries.distribution,
         (admin, {"dimension": "industry"}, TODAY)),
        ("chart: churn by rep of a team, 12 months (SVG)", queries.chart,
         (manager, "churn", {**month, "breakdown": "rep"}, TODAY, settings)),
    ]
    results = []
    for name, use_case, args in cases:
        times = []
        for _ in range(runs):
            with factory() as session:
                started = time.perf_counter()
                use_case(_Uow(session), *args)  # what the service passes: a unit of work's session
                times.append(time.perf_counter() - started)
        results.append((name, times))
    return results


def print_latency(engine, runs: int, customers: int) -> None:
    print(f"   query latency (ms), first run then {runs - 1} more:  first   median      p95      max")
    for name, times in time_queries(engine, runs, customers):
        warm = sorted(times[1:]) or times
        p95 = warm[min(len(warm) - 1, int(round(0.95 * (len(warm) - 1))))]
        print(f"   {name:<47} {times[0] * 1000:8.1f} {statistics.median(warm) * 1000:8.1f} {p95 * 1000:8.1f} "
              f"{max(warm) * 1000:8.1f}", flush=True)
    engine.dispose()


class _Uow:
    """Read-only use cases only need the session of a unit of work."""

    def __init__(self, session):
        self.session = session


# ================================================================ part 2: apply rate

def event_stream(count: int, seed: int = 5) -> list:
    """A realistic mix over three months: customers first known, then mostly interactions."""
    rng = random.Random(seed)
    customers = max(20, count // 15)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    events = []

    def add(name, data, when, source="crm/customers"):
        events.append((when, to_envelope(make_event(name, data["customer_id"], data, source=source, time=when))))

    owners = {}
    for n in range(customers):
        cid, rep = f"c{n}", f"rep-{n % 40}"
        owners[cid] = rep
        add("customer.created", {"customer_id": cid, "company": cid, "industry": rng.choice(INDUSTRIES[:6]),
                                 "owner_id": rep, "team": f"team-{n % 4}", "tier": rng.choice("ABC"),
                                 "lifecycle": "active", "created_at": start}, start)
    seq = 0
    while len(events) < count:
        seq += 1
        cid = f"c{rng.randrange(customers)}"
        rep, team = owners[cid], f"team-{int(cid[1:]) % 4}"
        when = start + timedelta(minutes=rng.randrange(90 * 24 * 60))
        roll = rng.random()
        if roll < 0.70:
            add("interaction.logged", {"interaction_id": f"i{seq}", "customer_id": cid, "rep_id": rep, "team": team,
                                       "kind": rng.choice(("call", "email", "visit")),
                                       "phase": rng.choice(("pre_sale", "post_sale")), "occurred_at": when,
                                       "outcome": "reached", "satisfaction": rng.choice((None, 3, 4, 5))},
                when, "crm/followups")
        elif roll < 0.80:
            amount = Decimal(rng.randrange(100, 100000)) / 100
            add("purchase.recorded", {"customer_id": cid, "purchase_id": f"p{seq}", "amount": amount,
                                      "currency": "USD", "amount_base": amount, "base_currency": "USD",
                                      "purchased_at": when}, when)
        elif roll < 0.90:
            outcome = rng.choice(("completed", "completed", "missed", "skipped"))
            extra = {"completed": {"completed_at": when, "on_time": True}, "missed": {"missed_at": when},
                     "skipped": {"skipped_at": when, "reason": "n/a"}}[outcome]
            add(f"task.{outcome}", {"task_id": f"t{seq}", "customer_id": cid, "assignee_id": rep, "team": team,
                                    "kind": "follow_up", "due_at": when - timedelta(days=1), **extra},
                when, "crm/followups")
        elif roll < 0.95:
            add("customer.lifecycle_changed", {"customer_id": cid, "old_lifecycle": None,
                                               "new_lifecycle": rng.choice(d.LIFECYCLES[1:]), "reason": "sweep",
                                               "as_of": when}, when)
        elif roll < 0.98:
            add("alert.raised", {"alert_id": f"a{seq}", "customer_id": cid, "rule": "silence",
                                 "signals": [{"name": "days_silent", "value": 40}], "raised_at": when}, when,
                "crm/alerts")
        else:
            add("customer.stage_changed", {"customer_id": cid, "new_stage": "needs_analysis", "changed_at": when},
                when)
    events.sort(key=lambda item: item[0])
    return [body for _, body in events]


def apply_rate(bodies: list, directory: str, label: str, batch: int = 500) -> dict:
    """The consumer's code path: envelopes validated, then applied ``batch`` at a time in one transaction."""
    from nameko.testing.services import worker_factory

    from crm_common.clock import FixedClock
    from crm_common.testing import InMemoryStore
    from services.reports.service import ReportsService

    store = InMemoryStore(models.metadata, models.infrastructure, "reports", os.path.join(directory, f"{label}.db"))
    service = worker_factory(ReportsService, store=store, clock=FixedClock(datetime(2026, 9, 1, tzinfo=UTC)),
                             settings=d.ReportSettings())
    per_type: dict[str, list[float]] = defaultdict(list)
    started = time.perf_counter()
    for start in range(0, len(bodies), batch):
        begun = time.perf_counter()
        events = [from_envelope(body) for body in bodies[start:start + batch]]
        service.apply_events(events)
        share = (time.perf_counter() - begun) / max(len(events), 1)
        for event in events:
            per_type[event.name].append(share)
    seconds = time.perf_counter() - started
    return {"events": len(bodies), "seconds": seconds, "per_type": per_type}


# ================================================================ main

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--db", help="SQLite file for part 1 (default: a temporary file, removed after)")
    parser.add_argument("--url", help="a reports database URL instead (e.g. PostgreSQL, schema migrated; emptied)")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--skip-apply", action="store_true")
    parser.add_argument("--queries-only", action="store_true", help=argparse.SUPPRESS)  # time an existing --db/--url
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="bench-reports-")

    if args.queries_only:
        print_latency(make_engine(args.url or f"sqlite:///{args.db}"), args.runs, args.customers)
        return

    if not args.skip_queries:
        path = args.db or os.path.join(scratch, "reports.db")
        url = args.url or f"sqlite:///{path}"
        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
            # bulk load without a journal (not what is measured); queries then use the service's engine
            loader = create_engine(url)
            event.listen(loader, "connect", lambda conn, _: (conn.execute("PRAGMA journal_mode=OFF"),
                                                             conn.execute("PRAGMA synchronous=OFF")))
            models.metadata.create_all(loader)
        else:
            loader = make_engine(url)
            with loader.begin() as conn:
                conn.execute(text("TRUNCATE counters, distinct_marks, rep_directory, dimension_values"))
        print(f"1. Counters of a two-year history: {args.customers:,} customers, {args.interactions:,} interactions "
              f"({loader.dialect.name})")
        rows, marks, seconds = generate(loader, args.customers, args.interactions)
        loader.dispose()
        started = time.perf_counter()
        os.sync()  # write the bulk load out first, or the first query competes with the kernel's writeback
        seconds += time.perf_counter() - started
        size = f", {os.path.getsize(path) / 1e9:.2f} GB" if url.startswith("sqlite") else ""
        print(f"   data generation (bulk SQL, not timed below): {rows:,} counter rows and {marks:,} distinct marks "
              f"(a year) in {seconds:.1f}s{size}")
        print(f"   (weeks, months, quarters of two years, days of the last {DAY_WINDOW}; with every day of the two "
              f"years the table would hold ~{full_history_rows(args.customers, args.interactions):,} rows: "
              f"the same rows are read, through a B-tree about one level deeper)")
        # timed in a fresh process, as a service replica would answer (not the one that just wrote 8 GB)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--queries-only", "--runs", str(args.runs),
                        "--customers", str(args.customers),
                        *(["--url", args.url] if args.url else ["--db", path])], check=True)
        if args.keep:
            print(f"   kept {path if not args.url else args.url}")
        elif url.startswith("sqlite"):
            os.remove(path)

    if not args.skip_apply:
        bodies = event_stream(args.events)
        print(f"2. Event apply rate through the consumer code path (SQLite, batches of 500 per transaction), "
              f"{len(bodies):,} events")
        for label, order in (("time order (live)", bodies),
                             ("shuffled (a rebuild's arrival order)", random.Random(1).sample(bodies, len(bodies)))):
            result = apply_rate(order, scratch, label.split()[0])
            print(f"   {label:<40} {result['events'] / result['seconds']:8.0f} events/s "
                  f"({result['seconds']:.1f}s)")
            if label.startswith("time"):
                for name, times in sorted(result["per_type"].items(), key=lambda kv: -len(kv[1])):
                    print(f"      {name:<28} {len(times):6d} x {statistics.mean(times) * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
