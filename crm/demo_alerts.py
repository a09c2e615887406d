"""The alerts part of the demo tour: what the demo history raised, with signals and health scores.

Called by crm/demo_show.py once the demo data is loaded: ``tour(base_url, tokens)``. It runs the sweep as of
now first (POST /v1/alerts/sweep), so the time-based rules have looked at every customer.
"""
from __future__ import annotations

from crm.demo import Api, listed

RULE_ORDER = ("silence", "no_repurchase", "interval_lengthening", "unanswered_followups", "open_complaint",
              "low_satisfaction")


def _company(api: Api, customer_id: str) -> str:
    status, body = api.call("GET", f"/v1/customers/{customer_id}")
    return body["company"] if status == 200 else customer_id


def _customers(api: Api, listing: str, key: str = "id") -> set[str]:
    return {item[key] for item in listed(api, listing)}


def _signals(alert: dict) -> str:
    return "; ".join(f"{s['name']}={s['value']} (limit {s['threshold']})" for s in alert["signals"])


def tour(base_url: str, tokens: dict, settle=lambda: None) -> None:
    """settle(): waits until the sweep's events reached their consumers (customers flags at-risk ones)."""
    admin = Api(base_url, tokens["admin"])
    print("\nChurn early warning (alerts service):")
    buying = _customers(admin, "/v1/customers?lifecycle=new") | _customers(admin, "/v1/customers?lifecycle=active")
    status, sweep = admin.call("POST", "/v1/alerts/sweep", {})
    if status != 200:
        print(f"  sweep failed: HTTP {status} {sweep}")
        return
    print(f"  sweep as of {sweep['as_of'][:10]}: {sweep['customers']} customers scored, "
          f"{sweep['alerts_raised']} alerts raised in {sweep['seconds']:.1f}s")
    settle()

    _, summary = admin.call("GET", "/v1/alerts/summary")
    print("  Open alerts by rule (unresolved):")
    for rule in RULE_ORDER:
        counts = summary["by_rule"].get(rule, {})
        unresolved = sum(v for k, v in counts.items() if k != "resolved")
        print(f"    {rule:<22} {unresolved:>6}")
    bands = summary["health_bands"]
    print(f"  Health score bands: healthy {bands['healthy']}, watch {bands['watch']}, at_risk {bands['at_risk']}")

    print("  Examples (signals that fired, health score 0-100 with its breakdown):")
    for rule in RULE_ORDER:
        _, page = admin.call("GET", f"/v1/alerts?rule={rule}&status=unresolved&limit=1")
        if not page or not page.get("items"):
            continue
        alert = page["items"][0]
        _, health = admin.call("GET", f"/v1/customers/{alert['customer_id']}/health?history_limit=3")
        parts = health["breakdown"]
        print(f"    [{rule}] {_company(admin, alert['customer_id'])} (owner {alert['owner_id']})")
        print(f"      signals: {_signals(alert)}")
        print(f"      health {health['score']} ({health['band']}): recency {parts['recency']:.2f}, "
              f"frequency {parts['frequency']:.2f}, monetary {parts['monetary']:.2f}, "
              f"engagement {parts['engagement']:.2f}")

    _, at_risk = admin.call("GET", "/v1/customers?lifecycle=at_risk&limit=5")
    print("  At-risk customers (flagged through the customers service on alert.raised):")
    for item in (at_risk or {}).get("items", []):
        _, health = admin.call("GET", f"/v1/customers/{item['id']}/health?history_limit=0")
        score = f"health {health['score']} ({health['band']})" if health and "score" in health else ""
        print(f"    {item['company']:<40} owner {item['owner_id']:<12} {score}")

    manager = next((k for k in tokens if k.startswith("mgr-")), None)
    if manager:
        _, queue = Api(base_url, tokens[manager]).call("GET", "/v1/alert-queue?limit=5")
        queued = _customers(admin, "/v1/alert-queue", key="customer_id")
        print(f"  Open alerts on {len(queued & buying)} of the {len(buying)} customers buying on their cycle before "
              f"the sweep (new or active, {len(queued & buying) / max(len(buying), 1):.0%}); on {len(queued)} "
              f"customers in all, most of the rest no_repurchase on those who stopped buying")
        print(f"  {manager}'s alert queue ({queue['customers']} customers), most value at stake first "
              f"(12-month revenue x (100 - health) / 100):")
        for entry in (queue or {}).get("items", []):
            print(f"    {_company(admin, entry['customer_id']):<36} {entry['owner_id'] or '-':<12} "
                  f"tier {entry['tier']} {entry['lifecycle'] or '-':<9} health {entry['health_score']!s:>3}  "
                  f"at stake {float(entry['value_at_stake']):>10,.0f}  {', '.join(entry['rules'])}")
    rep_id = next((k for k in tokens if k.startswith("rep-")), None)
    if rep_id:
        rep = Api(base_url, tokens[rep_id])
        _, mine = rep.call("GET", "/v1/alerts?status=unresolved&limit=500")
        owners = {a["owner_id"] for a in mine.get("items", [])}
        print(f"  {rep_id} sees {len(mine.get('items', []))} open alerts, all on their own customers "
              f"(owners: {sorted(owners) or '-'}).")
        if mine.get("items"):
            alert = mine["items"][0]
            status, acked = rep.call("POST", f"/v1/alerts/{alert['id']}/acknowledge", {"note": "calling them"})
            print(f"  {rep_id} acknowledges one (HTTP {status}, now {acked.get('status')}); unacknowledged "
                  f"alerts escalate to the manager after 48 h.")
    print(f"  Try: curl -H 'Authorization: Bearer {tokens.get('mgr-north', tokens['admin'])}' "
          f"'{base_url}/v1/alerts?status=unresolved&limit=5'")
