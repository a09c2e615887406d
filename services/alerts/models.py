"""Tables of the alerts service (its own database; nobody else reads them).

The read model is one row per customer: the domain's CustomerSignals as JSON plus the columns the sweep,
the listings and the scope checks filter on; its health (score, band, when the sweep must look again) is a
narrow row of its own beside it, so the daily sweep rewrites a few small columns, never the wide signals.

Alerts carry an ``open_key`` ("<customer>:<rule>") that is unique while the alert is unresolved and NULL
once resolved, so a second open alert for the same customer and rule cannot exist, whichever replica,
event or sweep tries to raise it (NULLs never collide, on SQLite and PostgreSQL alike).
"""
from sqlalchemy import (
    JSON, Boolean, Column, DateTime, Float, Index, Integer, MetaData, Numeric, String, Table, Text, func,
)

from crm_common.db import BigId, add_infrastructure_tables

metadata = MetaData()
infrastructure = add_infrastructure_tables(metadata)

Timestamp = DateTime(timezone=True)

customer_signals = Table(
    "customer_signals", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("signals", JSON, nullable=False),               # services.alerts.domain.signals_to_dict
    Column("profile_versions", JSON, nullable=False),      # profile part -> time of the fact that set it
    Column("known", Boolean, nullable=False),              # a customer.created/updated snapshot was seen
    Column("owner_id", String(64), nullable=True),
    Column("team", String(64), nullable=True),
    Column("tier", String(1), nullable=True),
    Column("lifecycle", String(16), nullable=True),
    Column("archived", Boolean, nullable=False),
    Column("last_fact_at", Timestamp, nullable=True),      # effective time of the newest fact folded in
    Column("updated_at", Timestamp, nullable=False),
)
# a rep's or a team's customers; the columns the alert queue and the health bands read ride along (PostgreSQL
# INCLUDE), so a scope is an index-only scan, not thousands of scattered signals rows (migration 0007)
_SCOPE = ["known", "archived", "tier", "lifecycle"]
Index("ix_customer_signals_owner", customer_signals.c.owner_id, customer_signals.c.customer_id,
      postgresql_include=["team", *_SCOPE])
Index("ix_customer_signals_team", customer_signals.c.team, customer_signals.c.customer_id,
      postgresql_include=["owner_id", *_SCOPE])

# one per customer_signals row (a missing one is created by the next sweep)
customer_health = Table(
    "customer_health", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("judged", Boolean, nullable=False),             # known and not archived: scored and swept
    Column("score", Integer, nullable=True),               # health score as of scored_at (the last evaluation)
    Column("band", String(16), nullable=True),
    Column("breakdown", JSON, nullable=True),              # sub-scores behind that score
    Column("scored_at", Timestamp, nullable=True),
    Column("recorded_score", Integer, nullable=True),      # score of the latest health_history row
    Column("next_check_at", Timestamp, nullable=True),     # the sweep judges the customer again from then; NULL: now
    Column("revenue_12m", Numeric(16, 2), nullable=True),  # rolling 12-month revenue as of scored_at
    Column("stake", Numeric(16, 2), nullable=True),        # domain.value_at_stake: what the alert queue ranks by
)
# the sweep's look-up of who is due; judged customers only
Index("ix_customer_health_due", customer_health.c.next_check_at, postgresql_where=customer_health.c.judged.is_(True),
      sqlite_where=customer_health.c.judged.is_(True))
# the alert queue's and the health bands' look-up per customer, and the whole queue in its order (an admin's:
# walked until a page of customers with open alerts is found), index-only (migration 0007)
Index("ix_customer_health_queue", customer_health.c.customer_id,
      postgresql_include=["judged", "score", "band", "revenue_12m", "stake"])
Index("ix_customer_health_rank", func.coalesce(customer_health.c.stake, -1).desc(), customer_health.c.customer_id,
      postgresql_include=["score", "band", "revenue_12m", "stake"])

alerts = Table(
    "alerts", metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("status", String(16), nullable=False),          # open | acknowledged | escalated | resolved
    Column("open_key", String(128), nullable=True, unique=True),  # "<customer_id>:<rule>" until resolved
    Column("signals", JSON, nullable=False),
    Column("health_score", Integer, nullable=True),
    Column("owner_id", String(64), nullable=True),
    Column("team", String(64), nullable=True),
    Column("trigger", String(64), nullable=False),         # "sweep" or the event name that raised it
    Column("raised_at", Timestamp, nullable=False),
    Column("acknowledged_at", Timestamp, nullable=True),
    Column("acknowledged_by", String(64), nullable=True),
    Column("escalated_at", Timestamp, nullable=True),
    Column("escalated_to", String(64), nullable=True),
    Column("resolved_at", Timestamp, nullable=True),
    Column("resolved_by", String(64), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("note", Text, nullable=False, default=""),
    Column("updated_at", Timestamp, nullable=False),
)
Index("ix_alerts_raised", alerts.c.raised_at, alerts.c.alert_id)
Index("ix_alerts_owner_raised", alerts.c.owner_id, alerts.c.raised_at, alerts.c.alert_id)
Index("ix_alerts_team_raised", alerts.c.team, alerts.c.raised_at, alerts.c.alert_id)
Index("ix_alerts_customer_rule", alerts.c.customer_id, alerts.c.rule, alerts.c.resolved_at)
Index("ix_alerts_status_raised", alerts.c.status, alerts.c.raised_at)
# which customers have an unresolved alert (the alert queue's EXISTS)
Index("ix_alerts_open_customer", alerts.c.customer_id, postgresql_where=alerts.c.open_key.isnot(None),
      sqlite_where=alerts.c.open_key.isnot(None))

health_history = Table(
    "health_history", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", String(64), nullable=False),
    Column("as_of", Timestamp, nullable=False),
    Column("score", Integer, nullable=False),
    Column("band", String(16), nullable=False),
    Column("recency", Float, nullable=False),
    Column("frequency", Float, nullable=False),
    Column("monetary", Float, nullable=False),
    Column("engagement", Float, nullable=False),
    Column("cause", String(64), nullable=False),           # "sweep" or the event name
    Column("recorded_at", Timestamp, nullable=False),
)
Index("ix_health_history_customer", health_history.c.customer_id, health_history.c.id)

# who manages whom, from rep.registered / rep.updated: escalations go to the owner's manager
reps = Table(
    "reps", metadata,
    Column("rep_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("team", String(64), nullable=True),
    Column("role", String(16), nullable=False),
    Column("manager_id", String(64), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("as_of", Timestamp, nullable=False),
    Column("tokens_valid_after", Timestamp, nullable=True),            # time of the event that wrote this version
)
Index("ix_reps_team_role", reps.c.team, reps.c.role)

# rules and score settings changed at runtime (PUT /v1/alert-rules), merged over the ALERTS_* environment
alert_settings = Table(
    "alert_settings", metadata,
    Column("key", String(32), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("updated_by", String(64), nullable=False),
)
