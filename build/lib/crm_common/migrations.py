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
