"""One replica runs a periodic job per period; a run whose replica died is taken over later."""
from datetime import datetime, timedelta, timezone

from sqlalchemy import MetaData, update

from crm_common.db import add_infrastructure_tables
from crm_common.testing import InMemoryStore

metadata = MetaData()
tables = add_infrastructure_tables(metadata)


def claim(store, period="2026-06-30"):
    with store() as uow:
        won = uow.claim_job("sweep", period)
        uow.commit()
    return won


def test_one_claim_per_period_and_takeover_of_a_dead_run(tmp_path):
    store = InMemoryStore(metadata, tables, "probe", str(tmp_path / "jobs.db"))
    assert claim(store) is True
    assert claim(store) is False                 # another replica, same day
    assert claim(store, "2026-07-01") is True     # next day
    with store() as uow:                         # the first run's replica died two hours ago
        uow.session.execute(update(tables["job_runs"]).where(tables["job_runs"].c.period == "2026-06-30")
                            .values(started_at=datetime.now(timezone.utc) - timedelta(hours=3)))
        uow.commit()
    assert claim(store) is True                  # taken over once
    assert claim(store) is False
    with store() as uow:
        uow.finish_job("sweep", "2026-07-01", {"batches": 3})
        uow.session.execute(update(tables["job_runs"]).where(tables["job_runs"].c.period == "2026-07-01")
                            .values(started_at=datetime.now(timezone.utc) - timedelta(hours=3)))
        uow.commit()
    assert claim(store, "2026-07-01") is False   # finished runs are never redone


def test_run_job_runs_the_work_once_per_period(tmp_path):
    store = InMemoryStore(metadata, tables, "probe", str(tmp_path / "jobs.db"))
    calls = []
    work = lambda: calls.append(1) or {"done": len(calls)}  # noqa: E731
    assert store.run_job("sweep", "2026-06-30", work) == {"done": 1}
    assert store.run_job("sweep", "2026-06-30", work) is None
    assert calls == [1]
    with store() as uow:
        detail = uow.session.execute(tables["job_runs"].select()).one().detail
    assert detail == {"done": 1, "finished": True}


def test_lock_or_create_makes_one_row_and_keeps_it(tmp_path):
    store = InMemoryStore(metadata, tables, "probe", str(tmp_path / "jobs.db"))
    job_runs = tables["job_runs"]
    started = datetime(2026, 6, 30, tzinfo=timezone.utc)
    for _ in range(2):
        with store() as uow:
            row = uow.lock_or_create(job_runs, {"job": "cursor", "period": "north"}, {"started_at": started})
            uow.commit()
        assert (row.job, row.period) == ("cursor", "north")
    with store() as uow:
        assert len(uow.session.execute(job_runs.select()).all()) == 1
