"""Tables of the customers service (its own database; nobody else reads them)."""
from sqlalchemy import (
    JSON, Boolean, Column, Date, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, Numeric, String, Table,
    Text, func,
)

from crm_common.db import BigId, add_infrastructure_tables

metadata = MetaData()
infrastructure = add_infrastructure_tables(metadata)

Money = Numeric(16, 2)
Timestamp = DateTime(timezone=True)

reps = Table(
    "reps", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(200), nullable=True),
    Column("team", String(64), nullable=True, index=True),
    Column("role", String(16), nullable=False),
    Column("manager_id", String(64), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Timestamp, nullable=False),
    Column("tokens_valid_after", Timestamp, nullable=True),  # tokens issued before it are refused
)

# the built-in sign-in (POST /v1/auth/login): argon2id hashes, never the password
credentials = Table(
    "credentials", metadata,
    Column("rep_id", String(64), ForeignKey("reps.id"), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("changed_at", Timestamp, nullable=False),
    Column("changed_by", String(64), nullable=False),
)

# failed sign-ins per account and per client address, shared by every replica (rate limit and lockout)
login_attempts = Table(
    "login_attempts", metadata,
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_started_at", Timestamp, nullable=False),
    Column("locked_until", Timestamp, nullable=True),
)

# what an admin stored over the environment's classification policy (one row; PUT /v1/classification/settings)
classification_settings = Table(
    "classification_settings", metadata,
    Column("id", Integer, primary_key=True),
    Column("overrides", JSON, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("updated_by", String(64), nullable=False),
)

# where each team's round-robin stopped, so hand-overs keep spreading evenly
team_cursors = Table(
    "team_cursors", metadata,
    Column("team", String(64), primary_key=True),
    Column("last_rep_id", String(64), nullable=True),
)

customers = Table(
    "customers", metadata,
    Column("id", String(64), primary_key=True),
    Column("company", String(300), nullable=False),
    Column("company_key", String(300), nullable=False),  # lower-cased, for search and sorting
    Column("industry", String(100), nullable=True),
    Column("source_channel", String(50), nullable=True),
    Column("owner_id", String(64), nullable=True),
    Column("team", String(64), nullable=True),
    Column("notes", Text, nullable=False, default=""),
    Column("important_dates", JSON, nullable=False, default=list),
    Column("tier", String(1), nullable=False),
    Column("lifecycle", String(16), nullable=False),
    Column("pipeline_stage", String(20), nullable=True),
    Column("flagged_at_risk", Boolean, nullable=False, default=False),
    Column("rolling_12m_total", Money, nullable=False, default=0),
    Column("purchase_count", Integer, nullable=False, default=0),
    Column("first_purchase_at", Timestamp, nullable=True),
    Column("last_purchase_at", Timestamp, nullable=True),
    Column("last_interaction_at", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("archived_at", Timestamp, nullable=True),
    Column("external_id", String(100), nullable=True),  # the id in the system it came from (imports)
    # the class history is exact up to here; the sweep revisits the customer at its next change point
    # (NULL: time alone changes nothing any more, e.g. churned with no fact left to age)
    Column("classified_until", Timestamp, nullable=True),
    Column("next_review_at", Timestamp, nullable=True),
)
Index("ux_customers_external_id", customers.c.external_id, unique=True)
# keyset pagination: every filter column is indexed together with the id tiebreaker
for column in ("owner_id", "team", "tier", "lifecycle", "pipeline_stage", "industry"):
    Index(f"ix_customers_{column}_id", customers.c[column], customers.c.id)
Index("ix_customers_company_key_id", customers.c.company_key, customers.c.id)
Index("ix_customers_created_at_id", customers.c.created_at, customers.c.id)
Index("ix_customers_total_id", customers.c.rolling_12m_total, customers.c.id)
Index("ix_customers_last_purchase_id", customers.c.last_purchase_at, customers.c.id)
Index("ix_customers_next_review_at", customers.c.next_review_at)

customer_tags = Table(
    "customer_tags", metadata,
    Column("customer_id", String(64), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(64), primary_key=True),
)
Index("ix_customer_tags_tag", customer_tags.c.tag, customer_tags.c.customer_id)

contacts = Table(
    "contacts", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", String(64), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("role", String(100), nullable=True),
    Column("phone", String(50), nullable=True),
    Column("email", String(200), nullable=True),
    Column("is_decision_maker", Boolean, nullable=False, default=False),
    Column("birthday", Date, nullable=True),
)

purchases = Table(
    "purchases", metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_base", Money, nullable=False),
    Column("purchased_at", Timestamp, nullable=False),
    Column("external_ref", String(100), nullable=True),
    Column("recorded_by", String(64), nullable=False),
    Column("recorded_at", Timestamp, nullable=False),
)
Index("ix_purchases_customer_at", purchases.c.customer_id, purchases.c.purchased_at)
Index("ux_purchases_customer_ref", purchases.c.customer_id, purchases.c.external_ref, unique=True)

stage_history = Table(
    "stage_history", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False, index=True),
    Column("from_stage", String(20), nullable=True),
    Column("to_stage", String(20), nullable=False),
    Column("changed_at", Timestamp, nullable=False),
    Column("changed_by", String(64), nullable=False),
)

ownership_history = Table(
    "ownership_history", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False, index=True),
    Column("transfer_id", String(64), nullable=False),
    Column("from_owner_id", String(64), nullable=True),
    Column("from_team", String(64), nullable=True),
    Column("to_owner_id", String(64), nullable=False),
    Column("to_team", String(64), nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("changed_at", Timestamp, nullable=False),
    Column("changed_by", String(64), nullable=False),
)

classification_history = Table(
    "classification_history", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False, index=True),
    Column("attribute", String(16), nullable=False),  # tier | lifecycle
    Column("old_value", String(16), nullable=True),
    Column("new_value", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("as_of", Timestamp, nullable=False),
    Column("recorded_at", Timestamp, nullable=False, server_default=func.now()),
)

# the dated facts from other services that classification reads (domain/history.py)
interaction_times = Table(
    "interaction_times", metadata,
    Column("customer_id", String(64), ForeignKey("customers.id"), primary_key=True),
    Column("interaction_id", String(64), primary_key=True),
    Column("occurred_at", Timestamp, nullable=False),
)

# the at-risk flag's dated facts: a flagging alert's raise, or a resolution that lifts the flag. The flag's
# periods follow from them (domain/history.py flag_periods), so they may arrive in any order.
risk_flags = Table(
    "risk_flags", metadata,
    Column("customer_id", String(64), ForeignKey("customers.id"), primary_key=True),
    Column("event_key", String(80), primary_key=True),  # the alert id (a raise) or "lift:" + the alert id
    Column("at", Timestamp, nullable=False),
    Column("lifts", Boolean, nullable=False),
)


# ---------------------------------------------------------------- bulk imports (issue 11)

import_jobs = Table(
    "import_jobs", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=True),          # customers | purchases | interactions, once known
    Column("filename", String(300), nullable=False),
    Column("status", String(16), nullable=False),       # awaiting_file | queued | running | done | failed
    Column("dry_run", Boolean, nullable=False),
    Column("options", JSON, nullable=False),            # mapping, time zone
    Column("actor_id", String(64), nullable=False),
    Column("actor_role", String(16), nullable=False),
    Column("actor_team", String(64), nullable=True),
    Column("size_bytes", BigId, nullable=False, default=0),
    Column("sha256", String(64), nullable=True),
    Column("rows_total", Integer, nullable=True),
    Column("rows_done", Integer, nullable=False, default=0),  # the last row number applied: where a resume starts
    Column("imported", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    Column("ignored_columns", JSON, nullable=False, default=list),
    Column("error", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Timestamp, nullable=True),
)
Index("ix_import_jobs_status", import_jobs.c.status, import_jobs.c.lease_until)
Index("ix_import_jobs_actor", import_jobs.c.actor_id, import_jobs.c.created_at)

import_chunks = Table(  # the uploaded file, in pieces, so any replica can run or resume the job
    "import_chunks", metadata,
    Column("job_id", String(64), ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

import_rejections = Table(
    "import_rejections", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(64), ForeignKey("import_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("row", Integer, nullable=False),
    Column("column", String(300), nullable=False),
    Column("value", Text, nullable=False),
    Column("reason", Text, nullable=False),
)
Index("ix_import_rejections_job_row", import_rejections.c.job_id, import_rejections.c.row)

import_keys = Table(  # what a job has seen, by key: a duplicate within the file is told from a re-run
    "import_keys", metadata,
    Column("job_id", String(64), ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("row", Integer, nullable=False),
)
