"""What the API shows: one task, task listings, a rep's work list, a customer's timeline, the missed
measure and the cadence policy. Reads only (a timeline may seed an unknown customer, see read_model)."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, func, or_, select

from crm_common.auth import Principal
from crm_common.cursors import decode_cursor, encode_cursor
from crm_common.db import utc
from crm_common.errors import NotFound
from services.followups import cadence, domain, read_model, task_store
from services.followups.domain.cadence import CadencePolicy
from services.followups.domain.settings import FollowupsSettings, parse_utc_offset
from services.followups.models import customer_view, interactions, tasks

WORKLIST_SCAN_LIMIT = 5000


def interaction_view(row) -> dict:
    m = row._mapping if hasattr(row, "_mapping") else row
    return {"id": m["id"], "customer_id": m["customer_id"], "rep_id": m["rep_id"], "team": m["team"],
            "kind": m["kind"], "phase": m["phase"], "occurred_at": utc(m["occurred_at"]), "outcome": m["outcome"],
            "satisfaction": m["satisfaction"], "summary": m["summary"], "next_step": m["next_step"],
            "completes_task_id": m["completes_task_id"], "resolves_complaint_id": m["resolves_complaint_id"],
            "complaint_status": m["complaint_status"],
            "resolved_by_interaction_id": m["resolved_by_interaction_id"], "logged_at": utc(m["logged_at"])}


def get_task(uow, actor: Principal, task_id: str) -> dict:
    return task_store.task_view(task_store.visible_task(uow, actor, task_id))


def customer_timeline(uow, actor: Principal, customer_id: str, limit: int, now: datetime, fetch_brief,
                      policy: CadencePolicy) -> dict:
    read_model.visible_customer(uow, actor, customer_id, now, fetch_brief, policy)
    rows = uow.session.execute(select(interactions).where(interactions.c.customer_id == customer_id)
                               .order_by(interactions.c.occurred_at.desc(), interactions.c.id.desc())
                               .limit(limit)).all()
    open_tasks = uow.session.execute(select(tasks).where(tasks.c.customer_id == customer_id, tasks.c.status == "open")
                                     .order_by(tasks.c.due_at, tasks.c.id)).all()
    return {"customer_id": customer_id, "items": [interaction_view(r) for r in rows],
            "open_tasks": [task_store.task_view(r) for r in open_tasks]}


def _encode_cursor(due_at: datetime, task_id: str) -> str:
    return encode_cursor({"d": utc(due_at).isoformat(), "id": task_id})


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    return decode_cursor(cursor, lambda key: (datetime.fromisoformat(key["d"]).astimezone(timezone.utc),
                                              str(key["id"])))


def list_tasks(uow, actor: Principal, params: dict) -> dict:
    """Keyset pagination on (due_at, id), within the caller's scope."""
    filters = task_store.scope_filter(actor)
    for name in ("assignee_id", "status", "kind", "customer_id", "team"):
        if name in params:
            filters.append(tasks.c[name] == params[name])
    if "due_before" in params:
        filters.append(tasks.c.due_at < params["due_before"])
    if params.get("cursor"):
        due, last_id = _decode_cursor(params["cursor"])
        filters.append(or_(tasks.c.due_at > due, and_(tasks.c.due_at == due, tasks.c.id > last_id)))
    limit = params.get("limit", 100)
    rows = uow.session.execute(select(tasks).where(*filters).order_by(tasks.c.due_at, tasks.c.id)
                               .limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1].due_at, page[-1].id) if len(rows) > limit else None
    return {"items": [task_store.task_view(r) for r in page], "next_cursor": next_cursor}


def worklist(uow, actor: Principal, params: dict, now: datetime, settings: FollowupsSettings) -> dict:
    """A rep's open tasks due before their day ends (overdue included), most urgent first."""
    rep_id = params.get("rep_id") or actor.user_id
    if rep_id != actor.user_id:
        rep = task_store.rep_row(uow, rep_id)
        if not domain.may_view_worklist(actor.role, actor.user_id, actor.team, rep_id,
                                        rep.team if rep is not None else None, rep_known=rep is not None):
            raise NotFound(f"rep {rep_id} not found", field="rep_id")
    zone = parse_utc_offset(params["tz"], "tz") if params.get("tz") else settings.timezone
    day_ends = domain.end_of_day(now, zone).astimezone(timezone.utc)
    rows = uow.session.execute(select(tasks).where(tasks.c.assignee_id == rep_id, tasks.c.status == "open",
                                                   tasks.c.due_at < day_ends)
                               .order_by(tasks.c.due_at, tasks.c.id).limit(WORKLIST_SCAN_LIMIT)).all()
    customer_ids = sorted({r.customer_id for r in rows})
    info = {}
    for start in range(0, len(customer_ids), 500):
        for c in uow.session.execute(select(customer_view.c.customer_id, customer_view.c.company,
                                            customer_view.c.tier, customer_view.c.lifecycle)
                                     .where(customer_view.c.customer_id.in_(customer_ids[start:start + 500]))):
            info[c.customer_id] = c
    by_id = {r.id: r for r in rows}
    ordered = domain.prioritize([task_store.domain_task(r) for r in rows], now,
                                {cid: c.tier for cid, c in info.items() if c.tier})
    items = []
    overdue = 0
    for task in ordered:
        late = now - task.due_at
        is_overdue = late > timedelta(0)
        overdue += is_overdue
        customer = info.get(task.customer_id)
        if len(items) < params.get("limit", 200):
            items.append(task_store.task_view(by_id[task.task_id], {
                "company": customer.company if customer else None, "tier": customer.tier if customer else None,
                "lifecycle": customer.lifecycle if customer else None, "overdue": is_overdue,
                "days_late": late.days if is_overdue else 0}))
    return {"rep_id": rep_id, "as_of": now, "day_ends_at": day_ends,
            "counts": {"total": len(ordered), "overdue": overdue, "due_today": len(ordered) - overdue},
            "truncated": len(rows) >= WORKLIST_SCAN_LIMIT, "items": items}


def missed_stats(uow, actor: Principal, params: dict) -> dict:
    """Missed follow-ups among tasks closed in [period_start, period_end), per rep and per team in scope."""
    start, end = params["period_start"], params["period_end"]
    filters = [tasks.c.closed_at >= start, tasks.c.closed_at < end,
               tasks.c.status.in_(("done", "skipped", "missed")), *task_store.scope_filter(actor)]
    if "team" in params:
        filters.append(tasks.c.team == params["team"])
    rows = uow.session.execute(select(tasks.c.assignee_id, tasks.c.team, tasks.c.status, func.count())
                               .where(*filters).group_by(tasks.c.assignee_id, tasks.c.team, tasks.c.status)).all()
    reps: dict = defaultdict(Counter)
    teams: dict = defaultdict(Counter)
    total: Counter = Counter()
    for assignee, team, status, count in rows:
        for bucket in (reps[(assignee, team)], teams[team], total):
            bucket[status] += count

    def summary(counter: Counter) -> dict:
        measure = domain.MissedFollowUps(missed=counter["missed"], closed=sum(counter.values()))
        return {"missed": measure.missed, "done": counter["done"], "skipped": counter["skipped"],
                "closed": measure.closed, "missed_rate": None if measure.rate is None else round(measure.rate, 4)}

    return {"period_start": start, "period_end": end, "total": summary(total),
            "by_team": [{"team": team, **summary(c)} for team, c in sorted(teams.items(), key=lambda i: str(i[0]))],
            "by_rep": [{"rep_id": rep, "team": team, **summary(c)}
                       for (rep, team), c in sorted(reps.items(), key=lambda i: (str(i[0][1]), str(i[0][0])))]}


def get_policy(uow, settings: FollowupsSettings) -> dict:
    policy, meta = cadence.current_policy(uow, settings)
    return {"intervals": policy.to_dict(), **meta}
