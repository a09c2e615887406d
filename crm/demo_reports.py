"""The reports part of the demo: headline figures by team, and the charts and CSVs a manager opens.

``tour(base_url, tokens, out_dir)`` reads everything over the public HTTP API, like any
client: it waits until the reports service has caught up with the events, prints the last
complete quarter and month by team, the customer base, one manager's team by rep, and writes
SVG charts and CSV tables into out_dir, printing their paths.
"""
from __future__ import annotations

import os
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta, timezone

from crm import demo

TEAMS = demo.TEAMS


def _get(base_url: str, token: str, path: str, **params) -> bytes:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    request = urllib.request.Request(f"{base_url.rstrip('/')}{path}{'?' + query if query else ''}",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def _json(base_url: str, token: str, path: str, **params):
    import json
    return json.loads(_get(base_url, token, path, **params))


def wait_until_caught_up(base_url: str, admin_token: str, timeout: float = 900.0, quiet: float = 3.0) -> int:
    """Until the number of events applied stops growing for `quiet` seconds (bounded by timeout)."""
    started = time.monotonic()
    deadline, last, since, told = started + timeout, -1, started, started
    while time.monotonic() < deadline:
        applied = _json(base_url, admin_token, "/v1/reports/status")["events_applied"]
        now = time.monotonic()
        if applied != last:
            last, since = applied, now
        elif now - since >= quiet:
            break
        if now - told >= 10:
            print(f"  reports service: {applied} events applied so far ...")
            told = now
        time.sleep(0.5)
    return last


def _pct(value) -> str:
    return "   n/a" if value is None else f"{value * 100:5.1f}%"


def _num(value, places: int = 1) -> str:
    return "  n/a" if value is None else f"{float(value):5.{places}f}"


def _previous(kind: str, today: date) -> str:
    from services.reports.domain import Period
    current = Period.containing(kind, today)
    return Period.containing(kind, current.start - timedelta(days=1)).label


def _headline(base_url: str, token: str, kind: str, label: str) -> None:
    table = _json(base_url, token, "/v1/reports/summary", period_kind=kind, **{"from": label}, to=label,
                  breakdown="team")
    print(f"\n{label} by team (GET /v1/reports/summary?period_kind={kind}&from={label}&to={label}&breakdown=team)")
    print("  team    churn  retain  repurch  revenue       coverage  missed  win rate  cycle d  alerts  "
          "in time  recovered  health  satisf.  complaints")
    for row in table["rows"]:
        print(f"  {row['team']:<7}{_pct(row['churn_rate'])} {_pct(row['retention_rate'])}  "
              f"{_pct(row['repurchase_rate'])}  {float(row['revenue']):12,.2f}  {_pct(row['followup_coverage'])}   "
              f"{_pct(row['missed_followup_rate'])}  {_pct(row['win_rate'])}   {_num(row['average_cycle_days'])}   "
              f"{row['alerts_raised']:5d}  {_pct(row['handled_in_time_rate'])}    {_pct(row['recovery_rate'])}   "
              f"{_num(row['average_health_score_at_end'])}   {_num(row['average_satisfaction'], 2)}   "
              f"{row['complaints']:5d}")


def tour(base_url: str, tokens: dict, out_dir: str) -> dict:
    """Print the headline figures and write charts (SVG) and tables (CSV) into out_dir; returns the paths."""
    admin = tokens["admin"]
    os.makedirs(out_dir, exist_ok=True)
    applied = wait_until_caught_up(base_url, admin)
    today = datetime.now(timezone.utc).date()
    quarter, month = _previous("quarter", today), _previous("month", today)
    print(f"\nReports (read models built from {applied} events; every figure defined in docs/reports-definitions.md)")
    _headline(base_url, admin, "quarter", quarter)
    _headline(base_url, admin, "month", month)

    board = _json(base_url, admin, "/v1/reports/dashboard")
    base = board["base"]
    print(f"\nCustomer base at the end of {board['as_of']}: active base {base['active_base']}, "
          f"average health score {_num(base['average_health_score'])}")
    print("  by tier:      " + "  ".join(f"{k} {v}" for k, v in base["by_tier"].items()))
    print("  by lifecycle: " + "  ".join(f"{k} {v}" for k, v in base["by_lifecycle"].items()))
    industries = _json(base_url, admin, "/v1/reports/distribution", dimension="industry")
    print("  by industry:  " + "  ".join(f"{v['value']} {v['customers']}" for v in industries["values"]))
    funnel = board["funnel"]
    print(f"  this quarter so far ({board['period']['label']}): funnel "
          + " -> ".join(f"{s['stage']} {s['entered']}" for s in funnel)
          + f"; win rate {_pct(board['figures']['win_rate']).strip()}, "
          f"moves {sum(m['moves'] for m in board['movements']['lifecycle'])} between lifecycle stages")

    team = TEAMS[0]
    manager = tokens[f"mgr-{team}"]
    reps = _json(base_url, manager, "/v1/reports/followups", **{"from": month}, to=month, breakdown="rep")
    print(f"\nmgr-{team} sees team {team} by rep, {month} (a manager's scope; a rep sees only themselves):")
    for row in reps["rows"]:
        print(f"  {row['rep']:<14} due {row['customers_due']:4d}  touched {row['customers_touched']:4d}  "
              f"coverage {_pct(row['followup_coverage'])}  tasks missed {row['tasks_missed']:3d} "
              f"of {row['tasks_came_due']:3d} ({_pct(row['missed_followup_rate']).strip()})")

    first_month = _previous("month", today - timedelta(days=330))
    files = {
        "churn-by-team.svg": ("/v1/reports/charts/churn.svg", admin, {"breakdown": "team", "from": first_month}),
        "repurchase-by-team.svg": ("/v1/reports/charts/repurchase.svg", admin,
                                   {"breakdown": "team", "from": first_month}),
        f"funnel-{quarter}.svg": ("/v1/reports/charts/funnel.svg", admin, {"period": quarter}),
        **{f"coverage-{t}-{month}.svg": ("/v1/reports/charts/coverage.svg", admin, {"team": t, "period": month})
           for t in TEAMS},
        "summary-by-team-monthly.csv": ("/v1/reports/summary", admin,
                                        {"breakdown": "team", "from": first_month, "format": "csv"}),
        f"followups-by-rep-{team}.csv": ("/v1/reports/followups", manager,
                                         {"breakdown": "rep", "from": first_month, "format": "csv"}),
        "repurchase-by-tier-quarterly.csv": ("/v1/reports/repurchase", admin,
                                             {"period_kind": "quarter", "breakdown": "tier", "format": "csv",
                                              "from": _previous("quarter", today - timedelta(days=365))}),
        "funnel-by-team-quarterly.csv": ("/v1/reports/funnel", admin,
                                         {"period_kind": "quarter", "breakdown": "team", "format": "csv",
                                          "from": _previous("quarter", today - timedelta(days=365))}),
        "distribution-lifecycle.csv": ("/v1/reports/distribution", admin, {"dimension": "lifecycle", "format": "csv"}),
        "distribution-industry.csv": ("/v1/reports/distribution", admin, {"dimension": "industry", "format": "csv"}),
    }
    written = {}
    for name, (path, token, params) in files.items():
        try:
            body = _get(base_url, token, path, **params)
        except urllib.error.HTTPError as exc:
            print(f"  {name}: HTTP {exc.code}")
            continue
        target = os.path.join(out_dir, name)
        with open(target, "wb") as handle:
            handle.write(body)
        written[name] = os.path.abspath(target)
    print(f"\nCharts and tables for a manager to open ({len(written)} files in {os.path.abspath(out_dir)}/):")
    for name, target in written.items():
        print(f"  {target}")
    print(f"  e.g. curl -H 'Authorization: Bearer <token>' '{base_url}/v1/reports/churn?breakdown=team&format=csv'")
    return written
