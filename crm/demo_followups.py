"""Demo data and tour for the followups service, through its public HTTP API like any client.

``load`` logs 18 months of backdated touches for the demo customers (calls, emails, visits,
meetings, complaints, satisfaction surveys), leaves some follow-ups unanswered and some complaints
open, then runs the reminder and care sweeps so that work lists, overdue and missed tasks exist.
``tour`` shows a rep's work list and the overdue and missed follow-ups per team.
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta

import eventlet
from eventlet.greenpool import GreenPool

from crm.demo import Api

DAY = timedelta(days=1)
CONCURRENCY = 8  # requests in flight; the services interleave them (SQLite still writes one at a time)

KINDS = (("call", 34), ("email", 22), ("message", 10), ("visit", 10), ("meeting", 10), ("survey", 8),
         ("complaint", 6))
SUMMARIES = {
    "call": ("checked on stock levels", "discussed the next order", "walked through the new price list",
             "asked about delivery times", "introduced the spring range"),
    "email": ("sent the catalogue", "followed up on the offer", "shared the service schedule",
              "answered a billing question"),
    "message": ("confirmed the meeting", "sent a quick update", "shared tracking details"),
    "visit": ("on-site visit with the buyer", "checked the installation", "training for new staff"),
    "meeting": ("quarterly review", "needs analysis workshop", "negotiated the framework contract"),
    "survey": ("post-delivery satisfaction survey", "annual satisfaction survey"),
    "complaint": ("delivery arrived damaged", "invoice did not match the order", "support took too long",
                  "wrong item shipped"),
}
NEXT_STEPS = ("send the quote discussed", "call back with delivery dates", "book a demo with the team",
              "send the revised contract", "check back after the trial")
# by lifecycle: how far back (days) a customer's touches go, and the range the last touch falls in
RECENCY = {"potential": (120, 0.5, 9), "new": (80, 0.5, 9), "active": (540, 0.5, 35), "at_risk": (540, 2, 12),
           "dormant": (540, 30, 120), "churned": (540, 200, 500)}


def _weighted(rng: random.Random, pairs) -> str:
    roll, acc = rng.random() * sum(w for _, w in pairs), 0.0
    for value, weight in pairs:
        acc += weight
        if roll < acc:
            return value
    return pairs[-1][0]


def _outcome(rng: random.Random, kind: str, lifecycle: str) -> tuple[str, int | None]:
    """(outcome, satisfaction): quiet customers answer less; surveys and some visits carry a score."""
    if kind == "complaint":
        return "open", rng.choice((1, 2, 2, 3))
    if kind == "survey":
        score = rng.choice((2, 3, 4, 4, 5, 5)) if lifecycle in ("active", "new") else rng.choice((1, 2, 3, 3, 4))
        return ("positive" if score >= 4 else "neutral" if score == 3 else "negative"), score
    unanswered = {"active": 0.15, "new": 0.15, "potential": 0.35, "at_risk": 0.4, "dormant": 0.55,
                  "churned": 0.7}.get(lifecycle, 0.3)
    if kind in ("call", "message", "email") and rng.random() < unanswered:
        return "no_answer", None
    if kind in ("visit", "meeting"):
        return rng.choice(("positive", "positive", "reached", "neutral")), rng.choice((None, None, 4, 5))
    return rng.choice(("reached", "reached", "positive", "neutral", "declined")), None


def _lifecycles(admin: Api) -> dict[str, str]:
    """Each demo customer's lifecycle, read from the customers API (a few pages of 500)."""
    found, cursor = {}, None
    while True:
        path = "/v1/customers?limit=500" + (f"&cursor={cursor}" if cursor else "")
        status, page = admin.call("GET", path)
        if status != 200:
            raise RuntimeError(f"listing customers failed: {status} {page}")
        found.update({item["id"]: item["lifecycle"] for item in page["items"]})
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def _plan(rng: random.Random, customer_id: str, owner_id: str, lifecycle: str, now: datetime,
          diligence: float = 0.0) -> dict:
    """At most three touches, oldest first, and perhaps a manual follow-up (done, unanswered or due today).
    With the owner's ``diligence`` (the share of cadence tasks the rep keeps) the last touch is recent and
    answered, as a rep working the cadence leaves it; otherwise it falls where the lifecycle's recency says."""
    oldest, newest_lo, newest_hi = RECENCY.get(lifecycle, (540, 1, 30))
    count = rng.choice((1, 1, 2, 2, 3)) if lifecycle != "churned" else rng.choice((1, 1, 2))
    on_cadence = lifecycle != "churned" and rng.random() < diligence
    last = rng.uniform(0.5, min(newest_hi, 18)) if on_cadence else rng.uniform(newest_lo, newest_hi)
    days = sorted((rng.uniform(last, oldest) for _ in range(count - 1)), reverse=True) + [last]
    touches, open_complaint = [], None
    for i, days_ago in enumerate(days):
        kind = _weighted(rng, KINDS)
        if lifecycle == "potential" and kind == "survey":
            kind = "call"
        outcome, satisfaction = _outcome(rng, kind, lifecycle)
        if on_cadence and i == len(days) - 1 and kind not in ("complaint", "survey"):
            outcome = rng.choice(("reached", "reached", "positive"))  # the cadence call got through
        touch = {"customer_id": customer_id, "kind": kind, "outcome": outcome, "satisfaction": satisfaction,
                 "occurred_at": (now - timedelta(days=days_ago)).isoformat(),
                 "summary": rng.choice(SUMMARIES[kind])}
        if lifecycle == "potential":
            touch["phase"] = "pre_sale"
        if kind == "complaint":
            open_complaint = len(touches)
        elif open_complaint is not None and rng.random() < 0.7:  # most complaints get resolved later
            touch.update(outcome="resolved", resolves=open_complaint, satisfaction=rng.choice((3, 4, 4, 5)))
            open_complaint = None
        if i == len(days) - 1 and outcome in ("reached", "positive") and rng.random() < 0.5:
            touch["next_step"] = rng.choice(NEXT_STEPS)
        touches.append(touch)
    follow_up, answer = None, None
    roll = rng.random()
    purpose = touches[-1].get("next_step") or rng.choice(NEXT_STEPS)
    if roll < 0.10:  # a promised follow-up nobody did: overdue within the grace period, or missed
        due = now - timedelta(hours=rng.choice((3, 20, 30, 40))) if roll < 0.05 else \
            now - timedelta(days=rng.uniform(3, 30))
        follow_up = {"customer_id": customer_id, "kind": "follow_up", "due_at": due.isoformat(), "purpose": purpose}
    elif roll < 0.30:  # a follow-up that was done, mostly on time
        # due within the 2-day grace period: the reminder timer cannot call it missed before it is done
        due = now - timedelta(hours=rng.uniform(1, 40))
        follow_up = {"customer_id": customer_id, "kind": "follow_up", "due_at": due.isoformat(), "purpose": purpose}
        done_at = due + timedelta(hours=rng.choice((-30, -5, -2, 4, 28)))
        answer = {"customer_id": customer_id, "kind": rng.choice(("call", "email", "visit")),
                  "outcome": rng.choice(("reached", "positive")), "summary": f"done: {purpose}",
                  "occurred_at": min(done_at, now).isoformat()}
    elif roll < 0.40:  # due later today
        follow_up = {"customer_id": customer_id, "kind": "follow_up", "purpose": rng.choice(NEXT_STEPS),
                     "due_at": (now + timedelta(hours=rng.uniform(0.5, 6))).isoformat()}
    return {"owner_id": owner_id, "touches": touches, "follow_up": follow_up, "answer": answer}


def interaction_body(touch: dict, logged_ids: list) -> dict:
    """The POST /v1/interactions body of a planned touch (``resolves``: the index of the complaint it settles)."""
    body = {k: v for k, v in touch.items() if k != "resolves" and v is not None}
    if "resolves" in touch:
        body["resolves_complaint_id"] = logged_ids[touch["resolves"]]
    return body


def _run_plan(base_url: str, tokens: dict, plan: dict) -> Counter:
    api = Api(base_url, tokens[plan["owner_id"]])
    done, ids = Counter(), []
    for touch in plan["touches"]:
        status, result = api.call("POST", "/v1/interactions", interaction_body(touch, ids))
        if status != 201:
            raise RuntimeError(f"logging an interaction failed: {status} {result}")
        ids.append(result["id"])
        done[touch["kind"]] += 1
        done["resolved complaints"] += "resolves" in touch
    if plan["follow_up"]:
        status, task = api.call("POST", "/v1/tasks", plan["follow_up"])
        if status != 201:
            raise RuntimeError(f"scheduling a follow-up failed: {status} {task}")
        done["manual follow-ups"] += 1
        if plan["answer"]:
            status, result = api.call("POST", "/v1/interactions", {**plan["answer"], "completes_task_id": task["id"]})
            if status != 201:
                raise RuntimeError(f"completing a follow-up failed: {status} {result}")
            done[plan["answer"]["kind"]] += 1
            done["follow-ups done"] += 1
    return done


def load(base_url: str, tokens: dict, customer_ids: list, people: list, rng: random.Random,
         now: datetime, progress=None) -> dict:
    """Backdated interactions and follow-ups for the demo customers; returns what was logged.
    progress(n): called as customers are done."""
    admin = Api(base_url, tokens["admin"])
    lifecycles = _lifecycles(admin)
    # how much of their cadence each rep keeps: most of it, and reps differ, as real teams do
    diligence = {p["id"]: round(rng.uniform(0.70, 0.97), 2) for p in people if p["role"] == "rep"}
    plans = [_plan(rng, cid, owner, lifecycles.get(cid, "active"), now, diligence.get(owner, 0.85))
             for cid, owner in customer_ids]
    totals: Counter = Counter()
    pool = GreenPool(CONCURRENCY)
    for done in pool.imap(lambda plan: _run_plan(base_url, tokens, plan), plans):
        totals.update(done)
        if progress:
            progress(1)
    eventlet.sleep(0)
    sweeps = {}
    for job in ("care", "reminders"):
        status, result = admin.call("POST", f"/v1/sweeps/{job}")
        if status != 200:
            raise RuntimeError(f"{job} sweep failed: {status} {result}")
        sweeps[job] = result
    interactions = sum(totals[kind] for kind, _ in KINDS)
    return {"interactions": interactions, "by_kind": {kind: totals[kind] for kind, _ in KINDS}, "diligence": diligence,
            "resolved_complaints": totals["resolved complaints"], "manual_follow_ups": totals["manual follow-ups"],
            "follow_ups_done": totals["follow-ups done"],
            "reminders": sweeps["reminders"]["emitted"], "care_tasks": sweeps["care"]["created"]}


def _count_tasks(api: Api, query: str) -> int:
    count, cursor = 0, None
    while True:
        status, page = api.call("GET", f"/v1/tasks?limit=500&{query}" + (f"&cursor={cursor}" if cursor else ""))
        if status != 200:
            raise RuntimeError(f"listing tasks failed: {status} {page}")
        count += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return count


def tour(base_url: str, tokens: dict) -> None:
    """A rep's work list, then overdue and missed follow-ups per team."""
    from datetime import timezone
    now = datetime.now(timezone.utc)
    rep_id = "rep-north-1"
    rep = Api(base_url, tokens[rep_id])
    status, worklist = rep.call("GET", "/v1/worklist?limit=8")
    counts = worklist["counts"]
    print(f"\n{rep_id}'s work list today: {counts['total']} tasks, {counts['overdue']} overdue "
          f"(overdue first, most days late first, then tier A, B, C):")
    for item in worklist["items"]:
        when = f"{item['days_late']}d late" if item["overdue"] and item["days_late"] else \
            ("overdue" if item["overdue"] else f"due {item['due_at'][11:16]} UTC")
        print(f"  {when:<13} tier {item['tier'] or '?'}  {item['kind']:<11} {(item['company'] or '')[:34]:<34} "
              f"{item['purpose'][:48]}")

    admin = Api(base_url, tokens["admin"])
    since = (now - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    until = (now + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    _, missed = admin.call("GET", f"/v1/stats/missed?period_start={since}&period_end={until}")
    missed_by_team = {row["team"]: row for row in missed["by_team"]}
    stamp = now.isoformat().replace("+00:00", "Z")
    print("\nFollow-ups per team (missed = past due + 2 days grace without a touch, last 30 days):")
    print(f"  {'team':<8} {'open':>6} {'overdue':>8} {'missed':>7} {'missed rate':>12}")
    teams = sorted({p.split("-")[1] for p in tokens if p.startswith("mgr-")})
    for team in teams:
        manager = Api(base_url, tokens[f"mgr-{team}"])
        open_count = _count_tasks(manager, "status=open")
        overdue = _count_tasks(manager, f"status=open&due_before={stamp}")
        row = missed_by_team.get(team, {"missed": 0, "missed_rate": None})
        rate = "-" if row["missed_rate"] is None else f"{100 * row['missed_rate']:.0f}%"
        print(f"  {team:<8} {open_count:>6} {overdue:>8} {row['missed']:>7} {rate:>12}")

    status, error = rep.call("POST", "/v1/interactions", {
        "customer_id": "cus_unknown", "kind": "call", "outcome": "reached", "occurred_at": stamp})
    print(f"\nLogging a touch for an unknown customer answers HTTP {status} naming {sorted(error['fields'])}; "
          f"a touch dated in the future answers 422 naming occurred_at.")
    print(f"  curl -H 'Authorization: Bearer {tokens[rep_id]}' '{base_url}/v1/worklist'")
