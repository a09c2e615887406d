"""Facts from other services that the followups service applies: its one table of consumed events.

Handlers run in the batch's one transaction (``Transactions.apply_batch``), after repeated and stale
events were dropped and each stream put in its sequence order. An event reads what the events before
it in the batch wrote (its open tasks and a team's round-robin cursor in the database, the customer's
row in ``ctx.rows``: read for the whole batch at once, written back once), so a batch applies exactly
as the same events one by one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select, update

from crm_common.consumer import Consumes
from services.followups import cadence, domain, read_model, task_store
from services.followups.domain.cadence import CadencePolicy
from services.followups.domain.settings import FollowupsSettings
from services.followups.models import rep_view, tasks


@dataclass
class Context:
    """One batch's moment and settings; the cadence policy is read once, in the batch's transaction, and
    each customer's row once (written back once, at the end)."""
    now: datetime
    settings: FollowupsSettings
    _policy: CadencePolicy | None = field(default=None, repr=False)
    rows: read_model.CustomerRows = field(init=False)

    def __post_init__(self):
        self.rows = read_model.CustomerRows(self.now, deferred=True)

    def policy(self, uow) -> CadencePolicy:
        if self._policy is None:
            self._policy = cadence.current_policy(uow, self.settings)[0]
        return self._policy


def lock_customers(uow, events, ctx: Context) -> None:
    """The rows of every customer the batch speaks of, locked and read in one query."""
    ctx.rows.load(uow, [e.data["customer_id"] for e in events if isinstance(e.data.get("customer_id"), str)])


def write_customers(uow, ctx: Context) -> None:
    ctx.rows.write(uow)


def in_order(event) -> bool:
    """Numbered in its producer's sequence: its facts supersede what that stream said before
    (domain/facts.py), whatever date they carry."""
    return event.sequence is not None


# ------------------------------------------------------------------ customers

def on_customer_created(uow, event, ctx: Context) -> None:
    read_model.apply_snapshot(uow, event.data, event.data["created_at"], ctx.now, ctx.policy(uow),
                              in_stream_order=in_order(event), rows=ctx.rows)


def on_customer_updated(uow, event, ctx: Context) -> None:
    read_model.apply_snapshot(uow, event.data, event.time, ctx.now, ctx.policy(uow), in_stream_order=in_order(event),
                              rows=ctx.rows)


def on_customer_archived(uow, event, ctx: Context) -> None:
    d = event.data
    read_model.archive_customer(uow, d["customer_id"], ctx.now, d.get("owner_id"), d.get("team"), rows=ctx.rows)


def on_tier_changed(uow, event, ctx: Context) -> None:
    _apply_class(uow, event, "tier", event.data["new_tier"], ctx)


def on_lifecycle_changed(uow, event, ctx: Context) -> None:
    _apply_class(uow, event, "lifecycle", event.data["new_lifecycle"], ctx)


def _apply_class(uow, event, attribute: str, value: str, ctx: Context) -> None:
    """The class moves, and the open cadence task follows it: due time, kind and text, per the policy."""
    d = event.data
    row = ctx.rows.ensure(uow, d["customer_id"], d.get("owner_id"), d.get("team"))
    change = domain.class_change(row, attribute, value, d["as_of"], in_stream_order=in_order(event))
    row = ctx.rows.set(uow, row, change)
    cadence.sync_cadence(uow, row, ctx.now, ctx.policy(uow))


def on_stage_changed(uow, event, ctx: Context) -> None:
    """Remember the stage; a key moment gets its task (once per change), unless it is long past."""
    d = event.data
    row = ctx.rows.ensure(uow, d["customer_id"], d.get("owner_id"), d.get("team"))
    changed_at = d["changed_at"]
    change = domain.stage_change(row, d["new_stage"], changed_at, in_stream_order=in_order(event))
    row = ctx.rows.set(uow, row, change)
    if row.archived or domain.is_past_moment(changed_at, ctx.now, ctx.settings.key_moment_max_age):
        return
    for plan in domain.key_moment_tasks(row.customer_id, d.get("old_stage"), d["new_stage"], changed_at, ctx.now,
                                        rules=ctx.settings.key_moments,
                                        last_productive_touch_at=row.last_productive_touch_at):
        task_store.create_planned(uow, row, plan, ctx.now, anchor_at=changed_at)


def on_owner_changed(uow, event, ctx: Context) -> None:
    """Ownership moved: the customer's open tasks held by the old owner (or unassigned) move too."""
    d = event.data
    row = ctx.rows.ensure(uow, d["customer_id"])
    change = domain.owner_change(row, d["new_owner_id"], d.get("new_team"), event.time,
                                 in_stream_order=in_order(event))
    ctx.rows.set(uow, row, change)
    open_rows = uow.session.execute(select(tasks).where(tasks.c.customer_id == row.customer_id,
                                                        tasks.c.status == "open").with_for_update()).all()
    by_id = {r.id: r for r in open_rows}
    moving = domain.tasks_to_reassign([task_store.domain_task(r) for r in open_rows], row.customer_id,
                                      d.get("old_owner_id"))
    new_rep = task_store.rep_row(uow, d["new_owner_id"])
    team = new_rep.team if new_rep is not None else d.get("new_team")
    for task in moving:
        task_store.reassign(uow, dict(by_id[task.task_id]._mapping), d["new_owner_id"], team, "ownership change",
                            ctx.now)


def on_purchase_recorded(uow, event, ctx: Context) -> None:
    d = event.data
    row = ctx.rows.ensure(uow, d["customer_id"], d.get("owner_id"), d.get("team"))
    ctx.rows.set(uow, row, domain.purchase_change(row, d["purchased_at"]))


# ------------------------------------------------------------------ reps

def on_rep_changed(uow, event, ctx: Context) -> None:
    """rep.registered / rep.updated: upsert the directory entry; a rep who left hands over open tasks."""
    d = event.data
    values = {"name": d.get("name"), "team": d.get("team"), "role": d["role"], "active": d["active"],
              "updated_at": ctx.now, "tokens_valid_after": d.get("tokens_valid_after")}
    before = uow.session.execute(select(rep_view).where(rep_view.c.rep_id == d["rep_id"]).with_for_update()).first()
    if before is None:
        uow.session.execute(insert(rep_view).values(rep_id=d["rep_id"], **values))
    else:
        uow.session.execute(update(rep_view).where(rep_view.c.rep_id == d["rep_id"]).values(**values))
    task_store.forget_rep(uow, d["rep_id"])
    if not d["active"]:
        _hand_over_tasks_of_departed_rep(uow, d["rep_id"], ctx)


def _hand_over_tasks_of_departed_rep(uow, rep_id: str, ctx: Context) -> None:
    """Open tasks still held by a deactivated rep go to the customer's owner, else the team in turn.

    A proper hand-over moves customers first (customer.owner_changed), which moves their tasks;
    this catches what is left, e.g. a rep deactivated without a hand-over.
    """
    rows = uow.session.execute(select(tasks).where(tasks.c.assignee_id == rep_id, tasks.c.status == "open")
                               .order_by(tasks.c.due_at, tasks.c.id).with_for_update()).all()
    for row in rows:
        customer = ctx.rows.get(uow, row.customer_id)
        assignee, team = task_store.choose_assignee(uow, customer, exclude=rep_id) if customer else (None, row.team)
        task_store.reassign(uow, dict(row._mapping), assignee, team, "assignee left", ctx.now)


# ------------------------------------------------------------------ alerts

def on_alert_raised(uow, event, ctx: Context) -> None:
    """A recall task for the owner (once per alert), when the alert asks for one."""
    d = event.data
    if not d["recall"]:
        return
    row = ctx.rows.ensure(uow, d["customer_id"], d.get("owner_id"), d.get("team"))
    plan = domain.recall_task(row.customer_id, d["alert_id"], d["rule"], d["raised_at"], ctx.now,
                              recall_due=ctx.settings.recall_due, recall_due_at=d.get("recall_due_at"))
    task_store.create_planned(uow, row, plan, ctx.now, anchor_at=d["raised_at"])


CONSUMES = Consumes({
    "customer.created": on_customer_created,
    "customer.updated": on_customer_updated,
    "customer.archived": on_customer_archived,
    "customer.tier_changed": on_tier_changed,
    "customer.lifecycle_changed": on_lifecycle_changed,
    "customer.stage_changed": on_stage_changed,
    "customer.owner_changed": on_owner_changed,
    "purchase.recorded": on_purchase_recorded,
    "rep.registered": on_rep_changed,
    "rep.updated": on_rep_changed,
    "alert.raised": on_alert_raised,
}, prepare=lock_customers, flush=write_customers)
