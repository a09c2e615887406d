"""The README's first command: start everything embedded, load demo data, show what it does."""
from __future__ import annotations

import os
import random
import shutil
import time
from datetime import datetime, timezone

import eventlet
from tqdm import tqdm

from crm import demo, demo_alerts, demo_followups, demo_reports, runner
from crm_common import metrics
from crm_common.config import DEV_SECRET, env
from crm_common.consumer import EventConsumer


def _samples(metric, **labels):
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and all(sample.labels.get(k) in v for k, v in labels.items()):
                yield sample


def _consumption(service_runner) -> tuple[int, int]:
    """(events applied so far, events published that some service consumes), over every consumer:
    the read models have settled when the two are equal and no outbox holds anything."""
    applied = expected = 0
    for container in service_runner.containers:
        for entrypoint in container.entrypoints:
            if isinstance(entrypoint, EventConsumer):
                keys = set(entrypoint.table.routing_keys)
                expected += sum(s.value for s in _samples(metrics.EVENTS_PUBLISHED, routing_key=keys))
                applied += sum(s.value for s in _samples(metrics.EVENTS_CONSUMED, service={container.service_name},
                                                         outcome={"applied", "duplicate", "failed"}))
    return int(applied), int(expected)


def settle(service_runner, what: str, timeout: float = 900) -> None:
    """A progress bar of events applied by every consumer until all published ones are in."""
    backlog = lambda: sum(s.value for m in metrics.OUTBOX_BACKLOG.collect() for s in m.samples)  # noqa: E731
    with tqdm(desc=what, unit="ev", dynamic_ncols=True) as bar:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            applied, expected = _consumption(service_runner)
            bar.total = max(expected, applied)
            bar.update(applied - bar.n)
            if applied >= expected and backlog() == 0:
                eventlet.sleep(0.3)  # a relay may be between its commit and the gauge
                if _consumption(service_runner) == (applied, expected) and backlog() == 0:
                    return
            eventlet.sleep(0.2)


def _published() -> int:
    return int(sum(s.value for s in _samples(metrics.EVENTS_PUBLISHED)))


def run(args) -> None:
    shutil.rmtree(args.data_dir, ignore_errors=True)
    secret = env("CRM_AUTH_SECRET", DEV_SECRET)
    base_url = f"http://127.0.0.1:{args.port}"
    service_runner = runner.embedded(args.data_dir, args.port)
    service_runner.start()
    print(f"CRM embedded: four services in one process, in-memory bus, SQLite in {args.data_dir}/")
    folder = os.path.join(args.data_dir, "import")
    print(f"Loading {args.customers} customers with 18 months of purchases through {base_url}: spreadsheet files "
          f"written to {folder}/ go through the bulk importer (python -m crm import does the same) ...")
    started = time.monotonic()
    data = eventlet.spawn(demo.load, base_url, secret, args.customers, folder).wait()
    settle(service_runner, "read models settling")
    print(f"Loaded {args.customers} customers and {data['purchases']} purchases "
          f"in {time.monotonic() - started:.1f}s.")
    with tqdm(total=len(data["customer_ids"]), desc="interactions", unit="cust", dynamic_ncols=True) as bar:
        touches = eventlet.spawn(demo_followups.load, base_url, data["tokens"], data["customer_ids"],
                                 data["people"], random.Random(11), datetime.now(timezone.utc),
                                 progress=bar.update).wait()
    settle(service_runner, "read models settling")
    print(f"Logged {touches['interactions']} interactions (18 months, backdated) and "
          f"{touches['manual_follow_ups']} manual follow-ups; {_published()} events published and applied in "
          f"{time.monotonic() - started:.1f}s.")
    kept = sorted(touches["diligence"].values())
    print(f"Reps keep {kept[0]:.0%} to {kept[-1]:.0%} of their cadence (each rep their own share).")
    tour(base_url, data)
    demo_followups.tour(base_url, data["tokens"])
    demo_alerts.tour(base_url, data["tokens"], settle=lambda: settle(service_runner, "alert events settling"))
    settle(service_runner, "read models settling")
    demo_reports.tour(base_url, data["tokens"], os.path.join(args.data_dir, "reports"))
    print(f"Demo done in {time.monotonic() - started:.1f}s.")
    if args.no_serve:
        service_runner.stop()
        return
    print(f"\nServing on {base_url} (OpenAPI at {base_url}/openapi.json). Ctrl-C stops it.")
    print(f"Sign in at {base_url}/ with password {demo.DEMO_PASSWORD} as "
          + ", ".join(f"{user} ({role})" for role, user in demo.DEMO_LOGINS.items()) + ".")
    service_runner.wait()


def _bar(counter, order) -> str:
    total = sum(counter.values()) or 1
    return "\n".join(f"  {key:<10} {counter.get(key, 0):>6}  {'#' * round(40 * counter.get(key, 0) / total)}"
                     for key in order)


def tour(base_url: str, data: dict) -> None:
    tokens = data["tokens"]
    admin = demo.Api(base_url, tokens["admin"])
    print("\nValue tier (rolling 12-month purchases):")
    print(_bar(data["tiers"], ("A", "B", "C")))
    print("Lifecycle stage (from purchase and interaction recency):")
    print(_bar(data["lifecycles"], ("potential", "new", "active", "at_risk", "dormant", "churned")))

    rep_id = "rep-north-1"
    rep = demo.Api(base_url, tokens[rep_id])
    _, page = rep.call("GET", "/v1/customers?sort=-rolling_12m_total&limit=3")
    print(f"\n{rep_id}'s top customers (a rep sees only their own):")
    for item in page["items"]:
        print(f"  {item['company']:<40} tier {item['tier']}  {item['lifecycle']:<9} "
              f"12m total {item['rolling_12m_total']}")
    other = next(cid for cid, owner in data["customer_ids"] if owner != rep_id)
    status, _ = rep.call("GET", f"/v1/customers/{other}")
    print(f"  ...and asking for another rep's customer answers HTTP {status}.")

    _, at_risk = admin.call("GET", "/v1/customers?lifecycle=at_risk&team=south&limit=3")
    print("\nGoing quiet in team south (lifecycle at_risk):")
    for item in at_risk["items"]:
        print(f"  {item['company']:<40} owner {item['owner_id']}  last purchase {item['last_purchase_at'][:10]}")

    status, handover = admin.call("POST", "/v1/reps/rep-east-5/handover",
                                  {"to_team": "east", "reason": "rep-east-5 left the company"})
    print(f"\nrep-east-5 leaves: {handover['moved']} customers spread round-robin over team east "
          f"{handover['by_new_owner']} (HTTP {status}).")
    moved = next(cid for cid, owner in data["customer_ids"] if owner == "rep-east-5")
    _, history = admin.call("GET", f"/v1/customers/{moved}/history")
    last_move = history["ownership"][-1]
    print(f"  history kept on {moved}: {last_move['from_owner_id']} -> {last_move['to_owner_id']} "
          f"({last_move['reason']}), {len(history['audit'])} audit entries.")

    status, error = admin.call("POST", "/v1/customers", {"company": "", "source_channel": "carrier pigeon"})
    print(f"\nBad input answers HTTP {status} naming the fields: {sorted(error['fields'])}")
    print("\nTry it yourself: sign in, then send the access token (a JWT valid for an hour):")
    print(f"  curl -X POST {base_url}/v1/auth/login -H 'Content-Type: application/json' "
          f"-d '{{\"user\": \"mgr-north\", \"password\": \"{demo.DEMO_PASSWORD}\"}}'")
    print(f"  curl -H 'Authorization: Bearer {tokens['mgr-north']}' '{base_url}/v1/customers?tier=A&limit=5'")
