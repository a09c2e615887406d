"""Tables of the reports service (its own database; nobody else reads them).

Read models built from events only (docs/reports.md):

- ``counters``: the maintained aggregates every figure is read from, one row per
  (slice, period bucket, metric); see docs/reports-definitions.md for the keys.
- ``customer_state``: one row per customer known from events, its current
  dimensions; the row every event about the customer locks while it is applied.
- ``customer_changes``: the customer's timeline of attribute changes, each with
  the state pair it was counted as and its event's (producer, sequence).
- ``customer_records``: every counted fact (purchase, interaction, task outcome,
  stage move, alert event) with the context it was counted under.
- ``distinct_marks``: per counted item of a distinct figure (buyers, churned, ...), the entity, day and
  dimensions it counts under: custom date ranges count distinct figures exactly from it (domain/ranges.py).
- ``rep_directory``: reps from rep.registered / rep.updated (who is in which team).
- ``dimension_values``: every team, rep and industry value met, for breakdowns.
"""
from sqlalchemy import (
    JSON, BigInteger, Boolean, Column, Date, DateTime, Index, Integer, MetaData, SmallInteger, String, Table,
)

from crm_common.db import add_infrastructure_tables

metadata = MetaData()
infrastructure = add_infrastructure_tables(metadata)

Timestamp = DateTime(timezone=True)

counters = Table(
    "counters", metadata,
    # slice first: a dashboard reads every metric of a few (slice, bucket) pairs with one range scan,
    # and a stock a range of buckets of one slice
    Column("dimension", String(40), primary_key=True),
    Column("dimension_value", String(300), primary_key=True),
    Column("period_kind", String(8), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("metric", String(64), primary_key=True),
    # integers only: revenue is kept in cents (hundredths of the base currency)
    Column("value", BigInteger, nullable=False),
    sqlite_with_rowid=False,  # SQLite: stored in key order, so range scans read neighbouring pages
)

customer_state = Table(
    "customer_state", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("known", Boolean, nullable=False, default=False),  # customer.created applied
    Column("archived", Boolean, nullable=False, default=False),
    Column("team", String(64), nullable=True),
    Column("owner_id", String(64), nullable=True),
    Column("tier", String(8), nullable=True),
    Column("lifecycle", String(16), nullable=True),
    Column("industry", String(100), nullable=True),
    Column("health_score", Integer, nullable=True),
    Column("first_seen_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

customer_changes = Table(
    "customer_changes", metadata,
    Column("event_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("rank", SmallInteger, nullable=False),
    Column("sets", JSON, nullable=False),
    Column("applied", JSON, nullable=True),
    # the event's producer and its sequence: changes of the same instant fold in the producer's order
    Column("source", String(64), nullable=True),
    Column("sequence", BigInteger, nullable=True),
)
Index("ix_customer_changes_customer_at", customer_changes.c.customer_id, customer_changes.c.at)

customer_records = Table(
    "customer_records", metadata,
    Column("record_id", String(80), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", Timestamp, nullable=True),  # null: an alert event whose raise is not known yet
    Column("entity_id", String(64), nullable=True),
    Column("data", JSON, nullable=False),
    Column("applied", JSON, nullable=True),
    Column("source", String(64), nullable=True),  # as in customer_changes: orders records of the same instant
    Column("sequence", BigInteger, nullable=True),
)
Index("ix_customer_records_customer_at", customer_records.c.customer_id, customer_records.c.at)
Index("ix_customer_records_customer_kind_entity", customer_records.c.customer_id, customer_records.c.kind,
      customer_records.c.entity_id)

distinct_marks = Table(
    "distinct_marks", metadata,
    Column("item_id", String(80), primary_key=True),  # the record's record_id, or the change's event_id
    Column("metric", String(64), primary_key=True),
    Column("entity", String(64), nullable=False),     # the customer, or the alert
    Column("day", Date, nullable=False),              # the day bucket it counts in
    Column("team", String(64), nullable=False),       # dimensions it was counted under ("(none)" if missing)
    Column("rep", String(64), nullable=False),
    Column("tier", String(8), nullable=False),
    Column("lifecycle", String(16), nullable=False),
    Column("industry", String(100), nullable=False),
)
# a range of everyone reads (day, metric, entity) from the index alone; a team's or a rep's from their own
Index("ix_distinct_marks_day", distinct_marks.c.day, distinct_marks.c.metric, distinct_marks.c.entity)
Index("ix_distinct_marks_team_day", distinct_marks.c.team, distinct_marks.c.day)
Index("ix_distinct_marks_rep_day", distinct_marks.c.rep, distinct_marks.c.day)

rep_directory = Table(
    "rep_directory", metadata,
    Column("rep_id", String(64), primary_key=True),
    Column("name", String(200), nullable=True),
    Column("team", String(64), nullable=True),
    Column("role", String(16), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("updated_at", Timestamp, nullable=False),
    Column("tokens_valid_after", Timestamp, nullable=True),
)
Index("ix_rep_directory_team", rep_directory.c.team, rep_directory.c.rep_id)

dimension_values = Table(
    "dimension_values", metadata,
    Column("dimension", String(16), primary_key=True),
    Column("value", String(100), primary_key=True),
)

READ_MODELS = (counters, customer_state, customer_changes, customer_records, distinct_marks, rep_directory,
               dimension_values)
