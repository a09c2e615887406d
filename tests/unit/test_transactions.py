"""A transaction that lost a race to another is run again; a database that is away answers 503, not 500."""
import pytest
from sqlalchemy import MetaData
from sqlalchemy import exc as sa_exc

from crm_common.db import RUN_ATTEMPTS, add_infrastructure_tables
from crm_common.http import ApiEntrypoint
from crm_common.testing import InMemoryStore

metadata = MetaData()
tables = add_infrastructure_tables(metadata)


class DriverError(Exception):
    """What psycopg2 raises, reduced to the SQLSTATE the retry reads."""

    def __init__(self, pgcode):
        super().__init__(f"SQLSTATE {pgcode}")
        self.pgcode = pgcode


def failing(error_class, pgcode, times):
    calls = []

    def use_case(uow):
        calls.append(1)
        if len(calls) <= times:
            raise error_class("INSERT ...", {}, DriverError(pgcode))
        return "done"
    return use_case, calls


@pytest.fixture
def store(tmp_path):
    return InMemoryStore(metadata, tables, "probe", str(tmp_path / "race.db"))


@pytest.mark.parametrize("error_class,pgcode", [
    (sa_exc.OperationalError, "40P01"),   # deadlock detected
    (sa_exc.OperationalError, "40001"),   # serialization failure
    (sa_exc.IntegrityError, "23505"),     # the key another transaction just inserted
])
def test_a_transaction_that_lost_a_race_is_run_again(store, error_class, pgcode):
    use_case, calls = failing(error_class, pgcode, times=1)
    assert store.run(use_case) == "done"
    assert len(calls) == 2


def test_a_transaction_losing_every_time_gives_up(store):
    use_case, calls = failing(sa_exc.OperationalError, "40P01", times=RUN_ATTEMPTS)
    with pytest.raises(sa_exc.OperationalError):
        store.run(use_case)
    assert len(calls) == RUN_ATTEMPTS


@pytest.mark.parametrize("error_class,pgcode", [
    (sa_exc.IntegrityError, "23503"),     # a foreign key: a real fault, trying again changes nothing
    (sa_exc.ProgrammingError, "42P01"),   # no such table
    (sa_exc.OperationalError, None),      # SQLite's own errors carry no SQLSTATE
])
def test_other_errors_are_not_run_again(store, error_class, pgcode):
    use_case, calls = failing(error_class, pgcode, times=1)
    with pytest.raises(error_class):
        store.run(use_case)
    assert len(calls) == 1


class Route:
    method, url = "POST", "/v1/tasks"


def test_a_database_away_answers_503_with_retry_after():
    away = sa_exc.OperationalError("SELECT 1", {}, DriverError("57P01"))  # admin shutdown
    response = ApiEntrypoint.response_from_exception(Route(), away)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["error"] == "unavailable"
    assert ApiEntrypoint.response_from_exception(Route(), ValueError("bug")).status_code == 500
