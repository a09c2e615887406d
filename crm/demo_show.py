"""The README's first command: start everything embedded, load demo data, show what it does."""
from __future__ import annotations

import shutil
import time

import eventlet

import random
from datetime import datetime, timezone

import os

from crm import demo, demo_alerts, demo_followups, demo_reports, runner
from crm_common import metrics
from crm_common.config import DEV_SECRET, env


def _wait_for_outbox(timeout: float = 120) -> None:
    """Until every service's outbox is drained (events delivered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        backlog = sum(sample.value for metric in metrics.OUTBOX_BACKLOG.collect() for sample in metric.samples)
        if backlog == 0:
            return
        eventlet.sleep(0.5)


def _published() -> int:
    return int(sum(s.value for m in metrics.EVENTS_PUBLISHED.collect() for s in m.samples if s.name.endswith("_total")))


def run(args) -> None:
    shutil.rmtree(args.data_dir, ignore_errors=True)
    secret = env("CRM_AUTH_SECRET", DEV_SECRET)
    base_url = f"http://127.0.0.1:{args.port}"
    service_runner = runner.embedded(args.data_dir, args.port)
    service_runner.start()
    print(f"CRM embedded: four services in one process, in-memory bus, SQLite in {args.data_dir}/")
    print(f"Loading {args.customers} customers with 18 months of purchases through {base_url} ...")
    started = time.monotonic()
    data = eventlet.spawn(demo.load, base_url, secret, args.customers).wait()
    _wait_for_outbox()
    print(f"Loaded {args.customers} customers and {data['purchases']} purchases "
          f"in {time.monotonic() - started:.1f}s.")
    touches = eventlet.spawn(demo_followups.load, base_url, data["tokens"], data["customer_ids"], data["people"],
                             random.Random(11), datetime.now(timezone.utc)).wait()
    _wait_for_outbox()
    print(f"Logged {touches['interactions']} interactions (18 months, backdated) and "
          f"{touches['manual_follow_ups']} manual follow-ups; {_published()} events published in "
          f"{time.monotonic() - started:.1f}s.")
    tour(base_url, data)
    demo_followups.tour(base_url, data["tokens"])
    demo_alerts.tour(base_url, data["tokens"])
    _wait_for_outbox()
    demo_reports.tour(base_url, data["tokens"], os.path.join(args.data_dir, "reports"))
    if args.no_serve:
        service_runner.stop()
        return
    print(f"\nServing on {base_url} (OpenAPI at {base_url}/openapi.json). Ctrl-C stops it.")
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
    print("\nTry it yourself (tokens are signed with CRM_AUTH_SECRET):")
    print(f"  curl -H 'Authorization: Bearer {tokens['mgr-north']}' '{base_url}/v1/customers?tier=A&limit=5'")
