"""Tables of the followups service (its own database; nobody else reads them).

``customer_view`` and ``rep_view`` are this service's read models of the customers service's
data, built only from its events (and, for a customer not known yet, from one synchronous
``get_customer_brief`` answer). Each customer attribute carries the moment of the fact it came
from (``*_as_of``) because events of different types travel on different queues and may arrive
in any order: an older fact never overwrites a newer one.
"""
from sqlalchemy import (
    JSON, Boolean, Column, DateTime, Index, Integer, MetaData, SmallInteger, String, Table, Text,
)

from crm_common.db import add_infrastructure_tables

metadata = MetaData()
infrastructure = add_infrastructure_tables(metadata)

Timestamp = DateTime(timezone=True)

customer_view = Table(
    "customer_view", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("company", String(300), nullable=True),
    Column("owner_id", String(64), nullable=True),
    Column("team", String(64), nullable=True),
    Column("owner_as_of", Timestamp, nullable=True),
    Column("tier", String(1), nullable=True),
    Column("tier_as_of", Timestamp, nullable=True),
    Column("lifecycle", String(16), nullable=True),
    Column("lifecycle_as_of", Timestamp, nullable=True),
    Column("pipeline_stage", String(20), nullable=True),
    Column("stage_as_of", Timestamp, nullable=True),
    Column("won_at", Timestamp, nullable=True),
    Column("important_dates", JSON, nullable=False, default=list),
    Column("archived", Boolean, nullable=False, default=False),
    Column("has_purchased", Boolean, nullable=False, default=False),
    Column("first_purchase_at", Timestamp, nullable=True),
    Column("last_purchase_at", Timestamp, nullable=True),
    Column("last_touch_at", Timestamp, nullable=True),
    Column("last_productive_touch_at", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=True),
    # when the full snapshot (customer.created/updated or the RPC brief) was last applied; NULL = stub
    Column("snapshot_at", Timestamp, nullable=True),
    Column("updated_at", Timestamp, nullable=False),
)
Index("ix_customer_view_owner", customer_view.c.owner_id)
Index("ix_customer_view_team", customer_view.c.team)

rep_view = Table(
    "rep_view", metadata,
    Column("rep_id", String(64), primary_key=True),
    Column("name", String(200), nullable=True),
    Column("team", String(64), nullable=True),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("tokens_valid_after", Timestamp, nullable=True),
)
Index("ix_rep_view_team", rep_view.c.team, rep_view.c.rep_id)

# where each team's round-robin stopped (index of the rep used last, in rep id order)
team_cursors = Table(
    "team_cursors", metadata,
    Column("team", String(64), primary_key=True),
    Column("cursor", Integer, nullable=False),
)

interactions = Table(
    "interactions", metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("rep_id", String(64), nullable=False),
    Column("team", String(64), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("occurred_at", Timestamp, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("satisfaction", SmallInteger, nullable=True),
    Column("summary", Text, nullable=False, default=""),
    Column("next_step", Text, nullable=True),
    Column("completes_task_id", String(64), nullable=True),
    Column("resolves_complaint_id", String(64), nullable=True),
    # complaints only: open until an interaction with resolves_complaint_id closes it
    Column("complaint_status", String(16), nullable=True),
    Column("resolved_by_interaction_id", String(64), nullable=True),
    Column("logged_at", Timestamp, nullable=False),
    Column("logged_by", String(64), nullable=False),
    Column("external_ref", String(200), nullable=True),  # set by an import: the same row imported again is found
)
Index("ux_interactions_customer_ref", interactions.c.customer_id, interactions.c.external_ref, unique=True)
Index("ix_interactions_customer_time", interactions.c.customer_id, interactions.c.occurred_at, interactions.c.id)

tasks = Table(
    "tasks", metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("assignee_id", String(64), nullable=True),
    Column("team", String(64), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("purpose", Text, nullable=False, default=""),
    # why it exists: cadence, key_moment, care, recall, complaint or manual
    Column("reason", String(16), nullable=False),
    Column("due_at", Timestamp, nullable=False),
    Column("status", String(8), nullable=False),  # open, done, skipped, missed
    Column("reminder_state", String(16), nullable=False),  # none, due_notified, overdue_notified
    # the fact the task was derived from (last touch, stage change, occurrence, alert, complaint)
    Column("anchor_at", Timestamp, nullable=True),
    # same key => same task (key moments, care occurrences, recalls, complaints): scheduled once
    Column("dedupe_key", String(200), nullable=True, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("closed_at", Timestamp, nullable=True),
    Column("interaction_id", String(64), nullable=True),
    Column("skip_reason", Text, nullable=True),
)
# the reminder sweep: open tasks of one reminder state by due time (stays a range scan at 1M open tasks)
Index("ix_tasks_sweep", tasks.c.status, tasks.c.reminder_state, tasks.c.due_at)
# work lists and task listings
Index("ix_tasks_assignee", tasks.c.assignee_id, tasks.c.status, tasks.c.due_at)
Index("ix_tasks_team", tasks.c.team, tasks.c.status, tasks.c.due_at)
Index("ix_tasks_customer", tasks.c.customer_id, tasks.c.status)
# missed follow-ups per period
Index("ix_tasks_closed", tasks.c.closed_at)
# a customer has at most one open cadence task, even if two writers raced
Index("ux_tasks_open_cadence", tasks.c.customer_id, unique=True,
      postgresql_where=(tasks.c.reason == "cadence") & (tasks.c.status == "open"),
      sqlite_where=(tasks.c.reason == "cadence") & (tasks.c.status == "open"))

# the cadence policy an admin stored (one row, id 1); absent = FOLLOWUPS_CADENCE or the defaults
cadence_policy = Table(
    "cadence_policy", metadata,
    Column("id", Integer, primary_key=True),
    Column("intervals", JSON, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("updated_by", String(64), nullable=False),
)
