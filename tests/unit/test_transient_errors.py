"""What counts as "the database is away or busy, try again" (crm_common.db.is_transient): the 503 with
Retry-After and the consumer's back-off rest on it; a mistake in a statement must not be retried forever."""
import sqlite3
from datetime import datetime, timezone

import psycopg2
import pytest
from sqlalchemy import create_engine, exc as sa_exc, text

from crm_common.db import EventFailed, is_transient
from crm_common.events import make_event


def sqlite_error(statement: str) -> sa_exc.DBAPIError:
    engine = create_engine("sqlite://")
    with pytest.raises(sa_exc.DBAPIError) as raised, engine.connect() as connection:
        connection.execute(text(statement))
    return raised.value


def test_a_statement_sqlite_cannot_run_is_not_transient():
    for statement in ("SELEKT 1", "SELECT * FROM no_such_table", "UPDATE t SET WHERE"):
        assert not is_transient(sqlite_error(statement)), statement


@pytest.mark.parametrize("message", ["database is locked", "database table is locked", "disk I/O error",
                                     "unable to open database file"])
def test_sqlite_busy_or_away_is_transient(message):
    error = sa_exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))
    event = make_event("customer.archived", "c1", {"customer_id": "c1", "archived_at": datetime.now(timezone.utc)},
                       source="crm/test")
    assert is_transient(error) and is_transient(EventFailed(event, error))


def test_postgresql_connection_trouble_is_transient():
    error = sa_exc.OperationalError("SELECT 1", {}, psycopg2.OperationalError("server closed the connection"))
    assert is_transient(error)
    assert not is_transient(sa_exc.ProgrammingError("SELEKT", {}, psycopg2.ProgrammingError("syntax error")))
    assert not is_transient(ValueError("not a database error"))
