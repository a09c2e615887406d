"""The console's first screen per role against a million customers (issue 13 item 6: under 1 s).

    python bench/bench_console.py [--customers 1000000] [--reps N] [--teams N] [--runs 20] [--json PATH]

Seeds each service's own PostgreSQL database (schema by its migrations) with one book, by COPY into the tables
its models declare; restarts PostgreSQL, starts the four services (``python -m crm serve``), signs in as a rep,
a manager and an admin and loads each one's home screen the way console/js does (its requests together, at
most 6 at a time): once cold, then --runs warm; and the static files once. bench/README.md has the details.
Without CRM_AMQP_URI it starts a private RabbitMQ + PostgreSQL (scripts/infra.sh) and stops it at the end.
"""
import argparse
import http.client
import io
import itertools
import json
import os
import random
import re
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlencode, urlsplit

from sqlalchemy import text

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.benchlib import migrate, private_infra, start_service, stop_service, write_json  # noqa: E402
from crm_common.db import make_engine  # noqa: E402
from services.alerts import models as am  # noqa: E402
from services.alerts.domain import value_at_stake  # noqa: E402
from services.customers import models as cm  # noqa: E402
from services.customers.commands.signin import HASHER  # noqa: E402
from services.followups import models as fm  # noqa: E402
from services.reports import domain as rd, models as rm  # noqa: E402

UTC = timezone.utc
NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
SERVICES = ("customers", "followups", "alerts", "reports")
PASSWORD = "bench-console-pass-1"
TARGET_MS = 1000.0
ECHARTS = "/vendor/echarts-6.1.0/echarts.min.js"
INDUSTRIES = ("manufacturing", "retail", "healthcare", "logistics", "software", "construction", "food", "energy",
              "finance", "education", "hospitality", "agriculture")
LIFECYCLES = {"potential": 0.15, "new": 0.1, "active": 0.45, "dormant": 0.1, "at_risk": 0.12, "churned": 0.08}
TIERS = {"A": 0.1, "B": 0.3, "C": 0.6}
CADENCE_DAYS = {"A": 14, "B": 30, "C": 60}
USERS = {"rep": "rep-0000", "manager": "mgr-000", "admin": "admin"}  # who signs in (PASSWORD)
RULES = ("silence", "no_repurchase", "interval_lengthening", "unanswered_followups", "open_complaint",
         "low_satisfaction")


# ================================================================ the book, and COPY

def book(customers, reps, teams, seed=13):
    """(directory, customers), dicts keyed by the column names the services' tables share."""
    rng, everyone = random.Random(seed), {"active": True, "known": True, "archived": False, "updated_at": NOW}
    people = [{"id": "admin", "name": "Bench Admin", "team": None, "role": "admin"}]
    people += [{"id": f"mgr-{t:03d}", "name": f"Manager {t}", "team": f"team-{t:03d}", "role": "manager"}
               for t in range(teams)]
    people += [{"id": f"rep-{r:04d}", "name": f"Rep {r}", "team": f"team-{r * teams // reps:03d}", "role": "rep",
                "manager_id": f"mgr-{r * teams // reps:03d}"} for r in range(reps)]
    people = [{**everyone, **p, "rep_id": p["id"], "as_of": NOW - 400 * DAY, "created_at": NOW - 400 * DAY}
              for p in people]
    rows = []
    for i in range(customers):
        owner = people[1 + teams + rng.randrange(reps)]  # uneven books, as in life
        tier = rng.choices(list(TIERS), list(TIERS.values()))[0]
        lifecycle = rng.choices(list(LIFECYCLES), list(LIFECYCLES.values()))[0]
        created, bought = NOW - rng.uniform(20, 1500) * DAY, lifecycle != "potential" and rng.random() < 0.9
        total = rng.randint(*{"A": (150_000, 900_000), "B": (30_000, 150_000), "C": (0, 30_000)}[tier]) if bought else 0
        touch = NOW - rng.uniform(0, CADENCE_DAYS[tier]) * DAY - timedelta(hours=rng.uniform(0, 9))
        rows.append({**everyone, "id": f"cus_{i:08d}", "customer_id": f"cus_{i:08d}", "company": f"Company {i:07d}",
                     "owner_id": owner["id"], "team": owner["team"], "tier": tier, "lifecycle": lifecycle,
                     "industry": rng.choice(INDUSTRIES), "created_at": created, "first_seen_at": created,
                     "pipeline_stage": "won" if bought else rng.choice(("first_contact", "needs_analysis", "proposal")),
                     "last_purchase_at": max(created, NOW - rng.expovariate(1 / 120) * DAY) if bought else None,
                     "rolling_12m_total": Decimal(total), "purchase_count": rng.randint(1, 40) if bought else 0,
                     "health_score": max(5, min(98, int(rng.gauss({"at_risk": 35, "dormant": 45, "churned": 20}
                                                                  .get(lifecycle, 72), 12)))),
                     "last_touch_at": touch, "last_interaction_at": touch, "last_fact_at": touch,
                     "due_at": NOW + rng.uniform(-1.9, CADENCE_DAYS[tier]) * DAY})
    return people, rows


def _cell(value):  # COPY's text format
    if value is None or value is True or value is False:
        return {None: r"\N", True: "t", False: "f"}[value]
    if isinstance(value, (dict, list)):
        value = json.dumps(value, separators=(",", ":"), default=str)
    return (value.isoformat() if isinstance(value, datetime) else str(value)).replace("\\", "\\\\")


def copy(engine, table, rows, chunk=200_000) -> int:
    """COPY dict rows into a model's table (its columns; a key not given is NULL, others are ignored). Its
    indexes other than constraints are dropped first and built again after: a bulk build beats row by row."""
    columns = [c.name for c in table.columns]
    quoted = ", ".join(f'"{c}"' for c in columns)
    with engine.begin() as conn:
        indexes = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t AND indexname "
                                    "NOT IN (SELECT conname FROM pg_constraint)"), {"t": table.name}).all()
        for name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
    count, raw, batch = 0, engine.raw_connection(), []
    try:
        cursor = raw.cursor()
        for row in itertools.chain(rows, [None]):
            if row is not None:
                batch.append("\t".join(_cell(row.get(c)) for c in columns))
            if batch and (row is None or len(batch) >= chunk):
                cursor.copy_expert(f"COPY {table.name} ({quoted}) FROM STDIN", io.StringIO("\n".join(batch) + "\n"))
                count, batch = count + len(batch), []
        raw.commit()
    finally:
        raw.close()
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
            for _, definition in indexes:
                conn.exec_driver_sql(definition)
    return count


def job_runs(metadata, job):
    """The service's daily job as done, yesterday to the day after tomorrow: no sweep starts mid-timing."""
    return metadata.tables["job_runs"], [{"job": job, "period": (NOW + n * DAY).date().isoformat(), "started_at": NOW,
                                          "detail": {"bench": "seeded"}} for n in (-1, 0, 1, 2)]


# ================================================================ each service's tables

def customers_tables(people, rows, rng):
    yield cm.reps, ({**p, "email": f"{p['id']}@bench.example"} for p in people)
    yield cm.credentials, [{"rep_id": user, "password_hash": HASHER.hash(PASSWORD), "changed_at": NOW,
                            "changed_by": "bench"} for user in USERS.values()]
    yield cm.customers, ({**c, "company_key": c["company"].lower(), "source_channel": "referral", "notes": "",
                          "important_dates": [], "flagged_at_risk": False,
                          "first_purchase_at": c["last_purchase_at"] and c["created_at"] + DAY} for c in rows)
    yield job_runs(cm.metadata, "classification-sweep")


def followups_tables(people, rows, rng):
    def task(c, due, **more):  # open, in the reminder state the sweep leaves (none / due / overdue notified)
        state = "none" if due > NOW + timedelta(hours=1) else "due_notified" if due >= NOW else "overdue_notified"
        return {"id": f"t-{c['id']}", "customer_id": c["id"], "assignee_id": c["owner_id"], "team": c["team"],
                "kind": "follow_up", "purpose": f"{c['tier']} cadence", "reason": "cadence", "due_at": due,
                "status": "open", "reminder_state": state, "anchor_at": c["last_touch_at"],
                "created_at": c["last_touch_at"], "created_by": "system", **more}

    def tasks():
        for n, c in enumerate(rows):
            yield task(c, c["due_at"])
            if n % 33 == 0:  # key moments, care dates, recalls, complaints: one customer in 33 has one open
                reason = ("key_moment", "care", "recall", "complaint")[n % 4]
                yield task(c, NOW + rng.uniform(-1.9, 20) * DAY, id=f"x-{c['id']}", reason=reason, purpose=reason,
                           dedupe_key=f"{reason}:{c['id']}")
            for k in range(2):  # the last year's closed tasks
                closed = NOW - rng.uniform(3, 365) * DAY
                status = rng.choices(("done", "missed", "skipped"), (85, 10, 5))[0]
                yield task(c, closed - DAY, id=f"h{k}-{c['id']}", status=status, closed_at=closed,
                           skip_reason="not reachable" if status == "skipped" else None)

    yield fm.rep_view, people
    yield fm.customer_view, ({**c, "owner_as_of": c["created_at"], "tier_as_of": NOW, "lifecycle_as_of": NOW,
                              "stage_as_of": c["created_at"], "important_dates": [], "snapshot_at": NOW,
                              "has_purchased": c["last_purchase_at"] is not None,
                              "last_productive_touch_at": c["last_touch_at"]} for c in rows)
    yield fm.tasks, tasks()
    yield job_runs(fm.metadata, "care-sweep")


def alerts_tables(people, rows, rng):
    def signals(c):  # services.alerts.domain.signals_to_dict's shape
        bought = [[f"p-{c['id']}", c["last_purchase_at"].isoformat(), str(c["rolling_12m_total"])]] \
            if c["last_purchase_at"] else []
        return {**{k: c[k] for k in ("customer_id", "tier", "lifecycle", "owner_id", "team", "archived")},
                "created_at": c["created_at"].isoformat(), "last_contact_at": c["last_touch_at"].isoformat(),
                "purchases": bought, "unanswered": [], "open_complaints": {}, "resolved_complaint_ids": [],
                "satisfaction": [], "missed_tasks": {}}

    def alerts():
        for c in rows:
            risky = c["health_score"] < 40 or c["lifecycle"] in ("at_risk", "dormant")
            for rule in rng.sample(RULES, rng.choice((1, 1, 2))) if rng.random() < (0.25 if risky else 0.01) else ():
                raised = NOW - timedelta(hours=rng.uniform(1, 24 * 30))  # unacknowledged for 48 h: escalated
                late = raised < NOW - 2 * DAY
                status = rng.choice(("acknowledged", "escalated") if late else ("open", "acknowledged"))
                yield {**c, "alert_id": f"a-{c['id']}-{rule}", "rule": rule, "status": status, "trigger": "sweep",
                       "open_key": f"{c['id']}:{rule}", "signals": {"rule": rule}, "raised_at": raised, "note": "",
                       **{"acknowledged": {"acknowledged_at": raised + DAY / 8, "acknowledged_by": c["owner_id"]},
                          "escalated": {"escalated_at": raised + 2 * DAY, "escalated_to": "mgr-" + c["team"][5:]}
                          }.get(status, {})}
            if rng.random() < 0.05:  # handled before
                raised = NOW - rng.uniform(10, 300) * DAY
                yield {**c, "alert_id": f"r-{c['id']}", "rule": "silence", "status": "resolved", "trigger": "sweep",
                       "signals": {"rule": "silence"}, "raised_at": raised, "resolved_at": raised + 5 * DAY,
                       "resolved_by": c["owner_id"], "outcome": "recovered", "note": ""}

    yield am.reps, people
    yield am.customer_signals, ({**c, "signals": signals(c), "profile_versions": {}} for c in rows)
    yield am.customer_health, ({"customer_id": c["id"], "judged": True, "score": c["health_score"],
                                "band": "healthy" if c["health_score"] >= 70 else
                                "watch" if c["health_score"] >= 40 else "at_risk",
                                "breakdown": {"recency": 0.7, "frequency": 0.6, "monetary": 0.5, "engagement": 0.6},
                                "scored_at": NOW - timedelta(hours=3), "recorded_score": c["health_score"],
                                "next_check_at": NOW + rng.uniform(1, 7) * DAY, "revenue_12m": c["rolling_12m_total"],
                                "stake": value_at_stake(c["rolling_12m_total"], c["health_score"])} for c in rows)
    yield am.alerts, alerts()
    yield job_runs(am.metadata, "alerts-sweep")


def reports_tables(people, rows, rng):
    yield rm.rep_directory, people
    teams = sorted({p["team"] for p in people} - {None})
    yield rm.dimension_values, [{"dimension": "team", "value": t} for t in teams] \
        + [{"dimension": "industry", "value": i} for i in INDUSTRIES] \
        + [{"dimension": "rep", "value": p["id"]} for p in people if p["role"] == "rep"]
    yield rm.customer_state, rows
    yield rm.counters, lambda engine: report_counters(engine, people, len(rows))


# flows per customer per day (a stock's daily net move), as in bench_reports.py: ~10 interactions a customer
# over two years, a purchase every 100 days, and so on; a counter row wherever ~one event is expected
RATES = {"interactions": 0.0137, "interactions:pre_sale": 0.004, "interactions:post_sale": 0.0096,
         "satisfaction.count": 0.0027, "satisfaction.sum": 0.011, "complaints": 0.0003, "purchases": 0.01,
         "revenue": 5000.0, "buyers": 0.009, "repeat_buyers": 0.007, "tasks.came_due": 0.005, "tasks.completed": 0.004,
         "tasks.completed_on_time": 0.003, "tasks.skipped": 0.0003, "tasks.missed": 0.0007, "tasks.overdue": 0.001,
         "followup.customers_due": 0.0045, "followup.customers_touched": 0.0038, "won.cycle_seconds": 691.0,
         "won.with_cycle": 0.0002, "churned": 0.0003, "alerts.raised": 0.0005, "alerts.handled": 0.00045,
         "alerts.handled_in_time": 0.0004, "alerts.escalated": 0.00005, "alerts.resolved:recovered": 0.0002,
         "alerts.resolved:lost": 0.0001, "alerts.resolved:false_alarm": 0.0001, "health.sum": 0.02,
         "health.scored": 0.0002, **{f"stage.entered:{s}": 0.0005 for s in rd.PIPELINE_STAGES},
         **{f"customers:{lc}": 0.0005 for lc in rd.LIFECYCLES}}


def report_counters(engine, people, customers) -> int:
    """The counters a two-year history leaves (weeks, months, quarters; days of the last 120), by INSERT ...
    SELECT over slice x bucket x metric wherever ~one event is expected, and the opening stocks. Slices:
    everyone, each team, each rep; everyone and teams also by tier, lifecycle and industry."""
    teams, reps = sorted({p["team"] for p in people if p["team"]}), [p["id"] for p in people if p["role"] == "rep"]
    shares = {"tier": TIERS, "lifecycle": LIFECYCLES, "industry": {i: 1 / len(INDUSTRIES) for i in INDUSTRIES}}
    slices = []
    for scope, weight in [(rd.Slice(), 1.0)] + [(rd.Slice(team=t), 1 / len(teams)) for t in teams] + \
            [(rd.Slice(rep=r), 1 / len(reps)) for r in reps]:
        slices.append({"d": scope.dimension, "v": scope.value, "w": weight, "lc": None})
        for dim, values in shares.items() if scope.rep is None else ():
            slices += [{"d": (s := scope.with_value(dim, v)).dimension, "v": s.value, "w": weight * share,
                        "lc": v if dim == "lifecycle" else None} for v, share in values.items()]
    buckets = [{"k": kind.value, "s": p.start, "n": (p.end - p.start).days} for kind in rd.PERIOD_KINDS
               for p in rd.periods_between(kind, NOW.date() - (120 if kind is rd.PeriodKind.DAY else 730) * DAY,
                                           NOW.date())]
    opening = rd.Period.containing("quarter", min(b["s"] for b in buckets) - DAY).start
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE s (d text, v text, w float8, lc text); CREATE TEMP TABLE b "
                          "(k text, s date, n int); CREATE TEMP TABLE m (metric text, rate float8, lc text)"))
        conn.execute(text("INSERT INTO s VALUES (:d, :v, :w, :lc)"), sorted(slices, key=lambda x: (x["d"], x["v"])))
        conn.execute(text("INSERT INTO b VALUES (:k, :s, :n)"), sorted(buckets, key=lambda x: (x["k"], x["s"])))
        conn.execute(text("INSERT INTO m VALUES (:m, :r, :lc)"), [
            {"m": m, "r": r, "lc": m[10:] if m.startswith("customers:") else None} for m, r in sorted(RATES.items())])
        conn.execute(text(
            "INSERT INTO counters SELECT s.d, s.v, b.k, b.s, m.metric, (:n * s.w * b.n * m.rate * (0.8 + "
            "abs(hashtext(s.v || b.s || m.metric)) % 41 / 100.0) + 0.5)::bigint FROM s, b, m "
            "WHERE :n * s.w * b.n * m.rate >= 0.7 AND (m.lc IS NULL OR s.lc IS NULL OR m.lc = s.lc) "
            "UNION ALL SELECT s.d, s.v, 'quarter', :opening, 'customers:' || l.lc, "  # the opening stocks
            "round(:n * s.w * CASE WHEN s.lc IS NULL THEN l.share ELSE 1 END)::bigint FROM s, (VALUES "
            + ", ".join(f"('{lc}', {share})" for lc, share in LIFECYCLES.items()) + ") AS l (lc, share) "
            "WHERE (s.lc IS NULL OR s.lc = l.lc) AND round(:n * s.w) >= 1 "
            "UNION ALL SELECT s.d, s.v, 'quarter', :opening, h.metric, round(:n * s.w * 0.8 * h.k)::bigint "
            "FROM s, (VALUES ('health.scored', 1), ('health.sum', 62)) AS h (metric, k) WHERE round(:n * s.w) >= 2"),
            {"n": customers, "opening": opening})
        return conn.execute(text("SELECT count(*) FROM counters")).scalar()


def seed(args, urls) -> dict:
    """Every service's tables emptied, then written; VACUUM ANALYZE as autovacuum would have by now."""
    started = time.perf_counter()
    people, rows = book(args.customers, args.reps, args.teams)
    figures, rng = {"book_seconds": round(time.perf_counter() - started, 1), "tables": {}}, random.Random(5)
    print(f"book: {len(rows):,} customers, {args.reps:,} reps in {args.teams} teams ({figures['book_seconds']} s)")
    for service, models, tables in [("customers", cm, customers_tables), ("followups", fm, followups_tables),
                                    ("alerts", am, alerts_tables), ("reports", rm, reports_tables)]:
        engine = make_engine(urls[service], pool_size=1)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(models.metadata.tables)} CASCADE"))
        for table, table_rows in tables(people, rows, rng):
            t0 = time.perf_counter()
            count = table_rows(engine) if callable(table_rows) else copy(engine, table, table_rows)
            seconds = round(time.perf_counter() - t0, 1)
            figures["tables"][f"{service}.{table.name}"] = {"rows": count, "seconds": seconds}
            print(f"  {service + '.' + table.name:<28} {count:>12,} rows {seconds:7.1f} s", flush=True)
        t0 = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
        print(f"  {service}: VACUUM ANALYZE {time.perf_counter() - t0:.1f} s", flush=True)
        engine.dispose()
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(f"seeded in {figures['seconds']:.0f} s")
    return figures


# ================================================================ the screens, as console/js asks for them

def fetch(base, path, token=None, body=None):
    """(status, ms, body) of one request (POST when there is a body) on a fresh connection, read to its end."""
    url, payload = urlsplit(base), json.dumps(body).encode() if body is not None else None
    headers = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {}),
               **({"Content-Type": "application/json"} if payload else {})}
    started, conn = time.perf_counter(), http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    try:
        conn.request("POST" if payload else "GET", path, payload, headers)
        response = conn.getresponse()
        return response.status, (time.perf_counter() - started) * 1000, response.read()
    finally:
        conn.close()


def sign_in(base, user):
    """POST /v1/auth/login, then GET /v1/auth/me, as SignIn does: (token, me, ms of both)."""
    status, login_ms, data = fetch(base, "/v1/auth/login", body={"user": user, "password": PASSWORD})
    assert status == 200, f"sign-in of {user}: HTTP {status} {data[:300]!r}"
    status, me_ms, me = fetch(base, "/v1/auth/me", json.loads(data)["access_token"])
    return json.loads(data)["access_token"], json.loads(me), login_ms + me_ms


def screens(tz="+08:00"):
    """Each role's home (app.js HOME) and what the page asks for at once: rep.js TodayPage (a rep gets no reps
    list), manager.js DashboardPage (the reps list and the figures' seven), admin.js RepsPage; and the manager's
    alert queue (AlertQueuePage), which asks for each entry's customer once the queue answered."""
    today = NOW.date().isoformat()
    followups = {"period_kind": "month", "from": today, "to": today, "breakdown": "rep"}
    pages = {"rep": {"page": "/today", "requests": [("followups", "/v1/worklist?" + urlencode({"tz": tz}))]},
             "manager": {"page": "/dashboard", "requests": [
                 ("customers", "/v1/reps"), ("reports", "/v1/reports/churn?period_kind=month"),
                 ("reports", "/v1/reports/repurchase?period_kind=month"), ("reports", "/v1/reports/dashboard"),
                 ("reports", "/v1/reports/followups?" + urlencode(followups)),
                 ("reports", "/v1/reports/distribution?dimension=tier"),
                 ("reports", "/v1/reports/distribution?dimension=lifecycle"), ("alerts", "/v1/alerts/summary")]},
             "admin": {"page": "/admin/reps", "requests": [("customers", "/v1/reps")]},
             "manager_alert_queue": {"page": "/alerts", "user": "manager", "then": "GET /v1/customers/{id} per entry",
                                     "requests": [("customers", "/v1/reps"), ("alerts", "/v1/alert-queue?limit=50")]}}
    # not homes: an admin's look at everyone, whose coverage chart is by team (manager.js coverageBy)
    by_team = urlencode({**followups, "breakdown": "team"})
    pages["admin_dashboard"] = {**pages["manager"], "user": "admin", "requests": [
        (service, f"/v1/reports/followups?{by_team}" if path.startswith("/v1/reports/followups") else path)
        for service, path in pages["manager"]["requests"]]}
    pages["admin_alert_queue"] = {**pages["manager_alert_queue"], "user": "admin"}
    return pages


def load_screen(bases, token, screen):
    """One load, its requests together, 6 at a time: (ms until the last answered, {request: ms})."""
    def one(item):
        status, ms, data = fetch(bases[item[0]], item[1], token)
        assert status == 200, f"GET {item[1]}: HTTP {status} {data[:300]!r}"
        return item[1], ms, data

    started = time.perf_counter()
    with ThreadPoolExecutor(6) as pool:
        done = list(pool.map(one, screen["requests"]))
        if "then" in screen:
            queue, then = json.loads(done[-1][2])["items"], time.perf_counter()
            list(pool.map(one, [("customers", f"/v1/customers/{e['customer_id']}") for e in queue]))
            ms = (time.perf_counter() - then) * 1000
            done.append((f"/v1/customers/{{id}} x {len(queue)}, after the queue", ms, 0))
    return (time.perf_counter() - started) * 1000, {path: ms for path, ms, _ in done}


def static_load(base) -> dict:
    """index.html, then level by level what it and the modules name (the import map resolved), 6 at a time;
    then ECharts, which the dashboard loads for its first chart."""
    names = {b"preact": b"/vendor/preact-11.2.0/preact.js", b"preact/hooks": b"/vendor/preact-11.2.0/hooks.js",
             b"htm": b"/vendor/htm-3.1.1/htm.js"}
    started, level, files = time.perf_counter(), ["/index.html"], {}
    while level:
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda path: (path, *fetch(base, path)[1:]), level))
        files.update({path: {"ms": round(ms, 1), "bytes": len(data)} for path, ms, data in got})
        level = sorted({os.path.normpath(os.path.join(os.path.dirname(path), names.get(ref, ref).decode()))
                        for path, _, data in got
                        for ref in re.findall(rb'(?:=|from )"([^"]+\.(?:css|js)|preact[/a-z]*|htm)"', data)}
                       - set(files))
    shell_ms, (_, ms, data) = (time.perf_counter() - started) * 1000, fetch(base, ECHARTS)
    return {"shell_ms": round(shell_ms, 1), "shell_files": len(files), "shell_bytes": sum(f["bytes"] for f in
            files.values()), "echarts_ms": round(ms, 1), "echarts_bytes": len(data), "files": files}


def stats(samples) -> dict:
    ordered = sorted(samples)
    return {"p50": round(ordered[len(ordered) // 2], 1), "p95": round(ordered[round(0.95 * (len(ordered) - 1))], 1),
            "max": round(ordered[-1], 1), "n": len(ordered)}


def measure(bases, runs) -> dict:
    """Per screen: sign in and the cold load, then `runs` times sign in and load (warm)."""
    results, row = {}, lambda f: " ".join(f"{f[k]:7.1f}" for k in ("cold_ms", "p50", "p95", "max"))
    for name, screen in screens().items():
        user = USERS[screen.get("user", name)]
        token, me, signin_cold = sign_in(bases["customers"], user)
        cold_ms, cold = load_screen(bases, token, screen)
        warm = [(sign_in(bases["customers"], user)[2], *load_screen(bases, token, screen)) for _ in range(runs)]
        met = max(cold_ms, *(w[1] for w in warm)) < TARGET_MS
        r = results[name] = {
            "user": {k: me.get(k) for k in ("id", "role", "team")}, "page": screen["page"], "then": screen.get("then"),
            "requests": [path for _, path in screen["requests"]],
            "sign_in": {"cold_ms": round(signin_cold, 1), **stats([w[0] for w in warm])},
            "screen": {"cold_ms": round(cold_ms, 1), **stats([w[1] for w in warm]), "target_ms": TARGET_MS, "met": met},
            "each": {path: {"cold_ms": round(ms, 1), **stats([w[2][path] for w in warm])} for path, ms in cold.items()}}
        print(f"\n{name}: {user} ({me['role']}, {me.get('team') or 'no team'}) on {r['page']}: {len(r['requests'])} "
              f"request(s) at once{'; then ' + r['then'] if r['then'] else ''}\n  sign-in (login + me): cold "
              f"{signin_cold:.0f} ms, warm p50 {r['sign_in']['p50']:.0f} ms\n  {'ms':<66} {'cold':>7} {'p50':>7} "
              f"{'p95':>7} {'max':>7}\n  {'whole screen (until the slowest answered)':<66} " + row(r["screen"])
              + f"  < {TARGET_MS:.0f}: {'met' if met else 'MISSED'}")
        for path, figures in r["each"].items():
            print(f"  {path:<66.66} " + row(figures))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, help="default: customers / 250 (4,000 at a million)")
    parser.add_argument("--teams", type=int, help="default: reps / 20 (200 at a million)")
    parser.add_argument("--runs", type=int, default=20, help="warm loads per screen (default 20)")
    parser.add_argument("--skip-seed", action="store_true", help="the databases hold a seeded book already")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    args.reps = args.reps or max(4, args.customers // 250)
    args.teams = args.teams or max(2, args.reps // 20)
    run_dir = os.environ.get("CRM_BENCH_RUN_DIR") or f"/tmp/bench-console-{os.getpid()}"
    os.makedirs(run_dir, exist_ok=True)
    figures = {"date": NOW.isoformat(), "cpus": os.cpu_count(), "target_ms": TARGET_MS, **vars(args)}
    with private_infra(run_dir):
        urls = {s: os.environ[f"{s.upper()}_DATABASE_URL"] for s in SERVICES}
        if not all(u.startswith("postgresql") for u in urls.values()):
            raise SystemExit("PostgreSQL is the target: set the <SERVICE>_DATABASE_URLs or unset CRM_AMQP_URI")
        figures["schema_gaps"] = {s: migrate(s, urls[s]) for s in SERVICES}  # the schema as the services have it
        if not args.skip_seed:
            figures["seed"] = seed(args, urls)
        # restart the private cluster (scripts/infra.sh's) so the cold loads find its buffers empty
        pg = os.path.join(os.environ.get("CRM_INFRA_RUN_DIR", "/none"), "postgres")
        figures["postgres_restarted"] = os.path.isdir(pg) and subprocess.run(
            ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D", f"{pg}/data", "-w", "-m",
             "fast", "-l", f"{pg}/postgresql.log", "restart"], cwd="/", stdout=subprocess.DEVNULL).returncode == 0
        processes, bases = [], {}
        try:
            for service in SERVICES:
                process, bases[service] = start_service(service, run_dir)
                processes.append(process)
            print(f"services up (logs in {run_dir}); PostgreSQL restarted first: {figures['postgres_restarted']}")
            st = figures["static"] = static_load(bases["customers"])
            print(f"static, cold: {st['shell_files']} files, {st['shell_bytes'] / 1024:.0f} KB in {st['shell_ms']} ms;"
                  f" ECharts {st['echarts_bytes'] / 1024:.0f} KB in {st['echarts_ms']:.1f} ms")
            figures["load_average_before"] = os.getloadavg()
            figures["screens"] = measure(bases, args.runs)
            figures["load_average_after"] = os.getloadavg()  # the machine is shared: others' work shows here
        finally:
            for process in processes:
                stop_service(process)
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
