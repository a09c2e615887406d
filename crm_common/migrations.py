"""Alembic, driven from code: each service keeps its revisions in services/<name>/migrations."""
from __future__ import annotations

import os

from alembic import command
from alembic.config import Config

from crm_common.db import make_engine

SERVICES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "services")


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", os.path.join(SERVICES_DIR, service, "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["service"] = service
    return config


def upgrade(service: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)


def run_env(context, target_metadata) -> None:
    """Body of every service's migrations/env.py (online mode only: we always have a database)."""
    url = context.config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=url.startswith("sqlite"), compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def add_event_order_tables(op) -> None:
    """The same revision in every service: per-subject sequences (producer side), stream positions and
    partition leases (consumer side), and the outbox's sequence column."""
    import sqlalchemy as sa

    op.create_table("subject_sequences",
                    sa.Column("subject", sa.String(64), primary_key=True),
                    sa.Column("last_sequence", sa.BigInteger(), nullable=False))
    op.create_table("stream_positions",
                    sa.Column("source", sa.String(64), primary_key=True),
                    sa.Column("subject", sa.String(64), primary_key=True),
                    sa.Column("sequence", sa.BigInteger(), nullable=False))
    op.create_table("consumer_members",
                    sa.Column("holder", sa.String(128), primary_key=True),
                    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False))
    op.create_table("partition_leases",
                    sa.Column("partition", sa.Integer(), primary_key=True, autoincrement=False),
                    sa.Column("holder", sa.String(128), nullable=True),
                    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("sequence", sa.BigInteger(), nullable=True))


def drop_event_order_tables(op) -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("sequence")
    op.drop_table("partition_leases")
    op.drop_table("consumer_members")
    op.drop_table("stream_positions")
    op.drop_table("subject_sequences")
