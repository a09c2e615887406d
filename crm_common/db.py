"""Engines, the tables every service keeps, and the unit of work.

Every service's database holds, beside its own tables:
- ``outbox``: events written in the same transaction as the change they report;
- ``processed_events``: ids of events this service has applied (idempotent consumer);
- ``subject_sequences``: the last sequence number this service gave each subject's events;
- ``stream_positions``: per (producer, subject), the sequence of the last event applied here;
- ``audit_log``: who changed what and when;
- ``job_runs``: one row per periodic job and period, so only one replica runs it.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from sqlalchemy import (
    JSON, BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text,
    and_, create_engine, event, func, insert, select, text, update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

import crm_common.contracts  # noqa: F401 - emitting needs every contract registered
from crm_common.errors import DomainError, EventRejected
from crm_common.events import Event, make_event, to_envelope

# BigInteger ids that stay plain INTEGER on SQLite so they autoincrement there too.
BigId = BigInteger().with_variant(Integer(), "sqlite")

log = logging.getLogger(__name__)


def utc(value: datetime | None) -> datetime | None:
    """Make a datetime read back from any backend aware and in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def add_infrastructure_tables(metadata: MetaData) -> dict[str, Table]:
    outbox = Table(
        "outbox", metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("routing_key", String(128), nullable=False),
        Column("subject", String(64), nullable=False),
        Column("sequence", BigInteger, nullable=True),
        Column("body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
    )
    Index("ix_outbox_unpublished", outbox.c.id,
          postgresql_where=outbox.c.published_at.is_(None),
          sqlite_where=outbox.c.published_at.is_(None))
    processed = Table(
        "processed_events", metadata,
        Column("event_id", String(64), primary_key=True),
        Column("event_type", String(128), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    audit = Table(
        "audit_log", metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("actor_id", String(64), nullable=False),
        Column("actor_role", String(16), nullable=False),
        Column("action", String(64), nullable=False),
        Column("entity", String(32), nullable=False),
        Column("entity_id", String(64), nullable=False),
        Column("changes", JSON, nullable=False),
    )
    Index("ix_audit_entity", audit.c.entity, audit.c.entity_id, audit.c.id)
    job_runs = Table(
        "job_runs", metadata,
        Column("job", String(64), primary_key=True),
        Column("period", String(32), primary_key=True),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("detail", JSON, nullable=True),
    )
    sequences = Table(
        "subject_sequences", metadata,
        Column("subject", String(64), primary_key=True),
        Column("last_sequence", BigInteger, nullable=False),
    )
    positions = Table(
        "stream_positions", metadata,
        Column("source", String(64), primary_key=True),
        Column("subject", String(64), primary_key=True),
        Column("sequence", BigInteger, nullable=False),
    )
    members = Table(
        "consumer_members", metadata,
        Column("holder", String(128), primary_key=True),
        Column("seen_at", DateTime(timezone=True), nullable=False),
    )
    leases = Table(
        "partition_leases", metadata,
        Column("partition", Integer, primary_key=True, autoincrement=False),
        Column("holder", String(128), nullable=True),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    )
    return {"outbox": outbox, "processed_events": processed, "audit_log": audit, "job_runs": job_runs,
            "subject_sequences": sequences, "stream_positions": positions,
            "consumer_members": members, "partition_leases": leases}


def make_engine(url: str, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # SQLite allows one writer: a single pooled connection per database avoids
        # "database is locked" and serialises transactions among green threads.
        engine = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=60,
                               connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # executemany statements that SQLAlchemy does not render as one multi-row INSERT (UPDATEs by key,
    # INSERT ... ON CONFLICT without RETURNING) go in pages (psycopg2's execute_batch), not one round trip a row
    options = {"executemany_mode": "values_plus_batch"} if url.startswith("postgresql+psycopg2") else {}
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **options)


class UnitOfWork:
    """One database transaction plus the events and audit entries it produces.

    Use as ``with uow: ...; uow.commit()``; leaving the block without commit
    rolls everything back, events included, so a half-done change never escapes.
    """

    def __init__(self, session_factory: sessionmaker, tables: dict[str, Table], source: str,
                 on_commit=None):
        self._session_factory = session_factory
        self._tables = tables
        self.source = source
        self._on_commit = on_commit
        self.session: Session | None = None
        self.events: list[Event] = []
        self.audits: list[dict] = []

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        self.events, self.audits = [], []
        return self

    def __exit__(self, *exc_info):
        try:
            self.session.rollback()
        finally:
            self.session.close()
            self.session = None

    def commit(self) -> None:
        if self.audits:
            self.session.execute(insert(self._tables["audit_log"]), self.audits)
        if self.events:
            self._write_outbox()
            if _dialect(self.session) == "postgresql":
                # delivered at commit to every replica's relay (LISTEN), so none waits for its poll
                self.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": outbox_channel(self.source)})
        self.session.commit()
        if self.events and self._on_commit:
            self._on_commit()
        self.events, self.audits = [], []

    @contextmanager
    def savepoint(self, keep: bool = True):
        """A part of the transaction that is undone alone when it raises (or always, with keep=False: a dry
        run), its events and audit entries included; the rest of the transaction goes on."""
        marks = len(self.events), len(self.audits)
        nested = self.session.begin_nested()
        try:
            yield
        except BaseException:
            nested.rollback()
            del self.events[marks[0]:], self.audits[marks[1]:]
            raise
        if keep:
            nested.commit()
        else:
            nested.rollback()
            del self.events[marks[0]:], self.audits[marks[1]:]

    def emit(self, name: str, subject, data: dict, time: datetime | None = None) -> Event:
        """Record an event for this transaction (validated now); at commit it goes to the outbox, numbered
        in its subject's sequence. Its ``sequence`` is set then, in ``events``, not on the one returned."""
        evt = make_event(name, subject, data, source=f"crm/{self.source}", time=time)
        self.events.append(evt)
        return evt

    def _write_outbox(self) -> None:
        """Every event of the transaction numbered and written in two statements, whatever their count."""
        counts = Counter(evt.subject for evt in self.events)
        numbers = {subject: last - counts[subject] for subject, last in self._take_sequences(counts).items()}
        now, numbered = datetime.now(timezone.utc), []
        for evt in self.events:
            numbers[evt.subject] += 1
            numbered.append(replace(evt, sequence=numbers[evt.subject]))
        self.session.execute(insert(self._tables["outbox"]), [
            {"event_id": evt.id, "routing_key": evt.routing_key, "subject": evt.subject, "sequence": evt.sequence,
             "body": json.dumps(to_envelope(evt)), "created_at": now} for evt in numbered])
        self.events = numbered

    def _take_sequences(self, counts: Counter) -> dict[str, int]:
        """Each subject's sequence moved on by its count; the last number taken, per subject. The rows stay
        locked until commit, so two transactions emitting for one subject take turns: numbers follow
        commit order, and so does the outbox id. Subjects in sorted order, so two such never deadlock."""
        rows = self.session.execute(_bump_sequences(self.session, self._tables["subject_sequences"]),
                                    [{"subject": subject, "last_sequence": counts[subject]}
                                     for subject in sorted(counts)])
        return {row.subject: row.last_sequence for row in rows}

    def audit(self, actor, action: str, entity: str, entity_id, changes: dict) -> None:
        """An audit entry for this transaction, written at commit with the others in one statement."""
        self.audits.append({"at": datetime.now(timezone.utc), "actor_id": actor.user_id, "actor_role": actor.role,
                            "action": action, "entity": entity, "entity_id": str(entity_id),
                            "changes": _jsonable(changes)})

    def lock_or_create(self, table: Table, key: dict, defaults: dict | None = None):
        """The row with this key, locked until commit; inserted first when missing. Two
        transactions racing to create it both end up holding the same single row."""
        match = and_(*(table.c[name] == value for name, value in key.items()))
        row = self.session.execute(select(table).where(match).with_for_update()).first()
        if row is None:
            try:
                with self.session.begin_nested():
                    self.session.execute(insert(table).values(**key, **(defaults or {})))
            except IntegrityError:
                pass  # the other transaction created it; lock theirs
            row = self.session.execute(select(table).where(match).with_for_update()).first()
        return row

    def claim(self, evt: Event) -> bool:
        """Record that this event is being applied; False if it already was.

        The id is written in the same transaction as the event's effects, so a
        redelivered event is skipped and a failed one can be tried again.
        """
        processed = self._tables["processed_events"]
        seen = self.session.execute(
            select(processed.c.event_id).where(processed.c.event_id == evt.id)).first()
        if seen:
            return False
        self.session.execute(insert(processed).values(
            event_id=evt.id, event_type=evt.name, processed_at=datetime.now(timezone.utc)))
        return True

    def claim_batch(self, events: list[Event], any_order: bool = False) -> list[Event]:
        """The events of a batch still to apply, each stream (producer, subject) in sequence order;
        records them as applied in this transaction. One query each for applied ids and positions.

        An event older than what its stream already applied (redelivered behind newer ones, as a broker may do
        when faults overlap) is skipped where the newest state wins; a read model built to take events in any
        order (``any_order``: dated books) applies it, since skipping a fact there would lose it."""
        processed, positions = self._tables["processed_events"], self._tables["stream_positions"]
        ids = {evt.id for evt in events}
        seen = set(self.session.execute(
            select(processed.c.event_id).where(processed.c.event_id.in_(ids))).scalars()) if ids else set()
        subjects = {evt.subject for evt in events if evt.sequence is not None}
        stored = {(row.source, row.subject): row.sequence for row in self.session.execute(
            select(positions).where(positions.c.subject.in_(subjects)))} if subjects else {}
        position = dict(stored)
        fresh = []
        for evt in in_stream_order(events):
            if evt.id in seen:
                continue
            seen.add(evt.id)
            if evt.sequence is not None:
                if evt.sequence <= position.get(evt.stream, 0) and not any_order:
                    if not evt.replayed:
                        log.warning("%s skips %s %s #%s: its stream already applied #%s", self.source, evt.name,
                                    evt.subject, evt.sequence, position.get(evt.stream, 0))
                        continue  # stale: this stream already went past it, so applying it would undo newer facts
                    # a rebuild's replay may trail live events that arrived after the wipe: apply it (once, by id)
                position[evt.stream] = max(evt.sequence, position.get(evt.stream, 0))
            fresh.append(evt)
        if fresh:
            now = datetime.now(timezone.utc)
            self.session.execute(insert(processed), [
                {"event_id": evt.id, "event_type": evt.name, "processed_at": now} for evt in fresh])
        moved = [{"source": src, "subject": subj, "sequence": seq}
                 for (src, subj), seq in position.items() if stored.get((src, subj)) != seq]
        if moved:
            self.session.execute(_upsert(self.session, positions, ["source", "subject"], ["sequence"]), moved)
        return fresh

    def forget_applied(self) -> None:
        """Before a rebuild by replay: no event counts as applied any more, so every replayed one is."""
        for name in ("processed_events", "stream_positions"):
            self.session.execute(self._tables[name].delete())

    def claim_job(self, job: str, period: str, stale_after: timedelta = timedelta(hours=2)) -> bool:
        """True for the one replica that gets to run a periodic job for this period.

        A run that never called finish_job (its replica died) may be taken over once it is
        older than stale_after, so a crash delays a sweep instead of skipping it.
        """
        job_runs = self._tables["job_runs"]
        now = datetime.now(timezone.utc)
        try:
            with self.session.begin_nested():
                self.session.execute(insert(job_runs).values(job=job, period=period, started_at=now,
                                                             detail={"finished": False}))
            return True
        except IntegrityError:
            pass
        row = self.session.execute(select(job_runs.c.started_at, job_runs.c.detail).where(
            job_runs.c.job == job, job_runs.c.period == period)).first()
        if row is None or (row.detail or {}).get("finished") or utc(row.started_at) > now - stale_after:
            return False
        taken = self.session.execute(update(job_runs).where(
            job_runs.c.job == job, job_runs.c.period == period, job_runs.c.started_at == row.started_at)
            .values(started_at=now))
        return taken.rowcount == 1

    def finish_job(self, job: str, period: str, detail: dict | None = None) -> None:
        job_runs = self._tables["job_runs"]
        self.session.execute(update(job_runs).where(job_runs.c.job == job, job_runs.c.period == period)
                             .values(detail=_jsonable({**(detail or {}), "finished": True})))


# PostgreSQL's codes for a transaction that lost a race: deadlock, serialization failure, and a unique
# key another transaction took between our check and our insert (e.g. a request and an event both
# seeing a customer first). Run again, the transaction sees the winner's rows.
RACE_CODES = {"40P01", "40001", "23505"}
RUN_ATTEMPTS = 3


def lost_a_race(error: BaseException) -> bool:
    return isinstance(error, sa_exc.DBAPIError) and getattr(error.orig, "pgcode", None) in RACE_CODES


# SQLite reports a syntax error or a missing table as OperationalError too: only these mean "busy, try again"
SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy", "disk i/o error",
                    "unable to open database")


def is_transient(error: BaseException) -> bool:
    """The database (or its pool) is away or busy: wait and try again, whatever the work. A mistake in the
    statement is not: retried, it would fail forever (and answer 503 instead of the 500 it is)."""
    if isinstance(error, EventFailed):
        error = error.error
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.OperationalError) and type(error.orig).__module__.startswith("sqlite3"):
        return any(sign in str(error.orig).lower() for sign in SQLITE_TRANSIENT)
    return isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError))


class Transactions:
    """What a service does with its store: ``run`` a use case in one transaction, or ``apply_once``
    an event (claimed in the same transaction, so a redelivery changes nothing). Mixed into
    whatever gives units of work when called."""

    def __call__(self) -> UnitOfWork:  # pragma: no cover - provided by the concrete store
        raise NotImplementedError

    def run(self, use_case, *args, **kwargs):
        """``use_case(uow, ...)`` in one transaction, committed. A transaction that lost a race to
        another (lost_a_race) is run again from the start, and then sees the winner's rows."""
        for attempt in range(1, RUN_ATTEMPTS + 1):
            try:
                with self() as uow:
                    result = use_case(uow, *args, **kwargs)
                    uow.commit()
                    return result
            except sa_exc.DBAPIError as exc:
                if attempt == RUN_ATTEMPTS or not lost_a_race(exc):
                    raise
                time.sleep(random.uniform(0.01, 0.05) * attempt)  # apart, so the two do not meet again

    def run_job(self, job: str, period: str, work):
        """Run a periodic job's work in the one replica that claims this period; None elsewhere.
        The run is marked finished with what work() returned (a dict of figures)."""
        with self() as uow:
            claimed = uow.claim_job(job, period)
            uow.commit()
        if not claimed:
            return None
        figures = work()
        with self() as uow:
            uow.finish_job(job, period, figures if isinstance(figures, dict) else {"result": figures})
            uow.commit()
        return figures

    def apply_batch(self, events: list[Event], table, context=None) -> list[Event]:
        """Apply a batch of events in one transaction with the handlers of ``table``
        (crm_common.consumer.Consumes); returns those that were new (the others were duplicates or stale). A handler failing raises
        ``EventFailed`` naming the event, so the consumer can split the batch around it."""
        with self() as uow:
            fresh = uow.claim_batch(events, any_order=table.any_order)
            if fresh and table.prepare is not None:  # a failure here splits the batch, like one in flush
                table.prepare(uow, fresh, context)
            for evt in fresh:
                handler = table.handlers.get(evt.name)
                try:
                    if handler is None:
                        raise EventRejected(f"{evt.name} is not consumed by {uow.source}")
                    handler(uow, evt, context)
                except DomainError as exc:
                    raise EventFailed(evt, EventRejected(f"{evt.name}: {exc.field or ''}: {exc.message}")) from exc
                except Exception as exc:
                    raise EventFailed(evt, exc) from exc
            if fresh and table.flush is not None:
                table.flush(uow, context)
            uow.commit()
        return fresh

    def apply_once(self, event, change, *args, **kwargs) -> bool:
        """False when the event was applied before. A business rule refusing the event
        (DomainError) rejects it for good: it is dead-lettered, not retried."""
        with self() as uow:
            if not uow.claim(event):
                return False
            try:
                change(uow, *args, **kwargs)
            except DomainError as exc:
                raise EventRejected(f"{event.name}: {exc.field or ''}: {exc.message}") from exc
            uow.commit()
        return True


def lease_partitions(session_factory: sessionmaker, tables: dict[str, Table], holder: str, partitions: int,
                     ttl: timedelta) -> set[int]:
    """The partitions this replica may consume now: its fair share among the live replicas (those seen
    within ttl). Renews what it holds, gives back what is above its share, takes free or expired ones."""
    members, leases = tables["consumer_members"], tables["partition_leases"]
    now = datetime.now(timezone.utc)
    with session_factory() as session:
        session.execute(_upsert(session, members, ["holder"], ["seen_at"]), [{"holder": holder, "seen_at": now}])
        session.execute(_insert_missing(session, leases, ["partition"]),
                        [{"partition": index, "holder": None, "expires_at": now} for index in range(partitions)])
        live = session.execute(select(func.count()).select_from(members)
                               .where(members.c.seen_at > now - ttl)).scalar_one()
        share = -(-partitions // max(live, 1))
        rows = session.execute(select(leases).where(leases.c.partition < partitions)
                               .order_by(leases.c.partition).with_for_update()).all()
        mine = [row.partition for row in rows if row.holder == holder and utc(row.expires_at) > now]
        free = [row.partition for row in rows
                if row.holder != holder and (row.holder is None or utc(row.expires_at) <= now)]
        keep = set(mine[:share]) | set(free[:max(0, share - len(mine))])
        for index in keep:
            session.execute(update(leases).where(leases.c.partition == index)
                            .values(holder=holder, expires_at=now + ttl))
        for index in set(mine) - keep:
            session.execute(update(leases).where(leases.c.partition == index).values(holder=None, expires_at=now))
        session.execute(members.delete().where(members.c.seen_at < now - 10 * ttl))
        session.commit()
    return keep


def release_partitions(session_factory: sessionmaker, tables: dict[str, Table], holder: str) -> None:
    """A replica stopping gives its partitions back at once, so the others need not wait for expiry."""
    members, leases = tables["consumer_members"], tables["partition_leases"]
    with session_factory() as session:
        session.execute(update(leases).where(leases.c.holder == holder)
                        .values(holder=None, expires_at=datetime.now(timezone.utc)))
        session.execute(members.delete().where(members.c.holder == holder))
        session.commit()


class EventFailed(Exception):
    """One event of a batch could not be applied (the batch was rolled back)."""

    def __init__(self, event: Event, error: Exception):
        super().__init__(f"{event.name} {event.id}: {type(error).__name__}: {error}")
        self.event, self.error = event, error


def in_stream_order(events: list[Event]) -> list[Event]:
    """The batch with each stream's events sorted by sequence, in the slots that stream had:
    streams stay interleaved as they arrived, which keeps the rough order between producers."""
    slots: dict[tuple, list[int]] = {}
    for index, evt in enumerate(events):
        if evt.sequence is not None:
            slots.setdefault(evt.stream, []).append(index)
    ordered = list(events)
    for indexes in slots.values():
        if len(indexes) > 1:
            for index, evt in zip(indexes, sorted((events[i] for i in indexes), key=lambda e: e.sequence)):
                ordered[index] = evt
    return ordered


def outbox_channel(service: str) -> str:
    return f"crm_outbox_{service}"


def _dialect(session) -> str:
    return session.get_bind().dialect.name


_STATEMENTS: dict = {}  # ON CONFLICT statements are not in SQLAlchemy's compiled cache: built once each


def _on_conflict(session, kind: str, table: Table, build):
    """The statement ``build(insert(table))`` makes, built once per (kind, dialect, table)."""
    dialect = _dialect(session)
    key = (kind, dialect, table.name)
    if key not in _STATEMENTS:
        _STATEMENTS[key] = build((postgresql if dialect == "postgresql" else sqlite).insert(table))
    return _STATEMENTS[key]


def _insert_missing(session, table: Table, keys: list[str]):
    """INSERT ... ON CONFLICT (keys) DO NOTHING (PostgreSQL and SQLite alike)."""
    return _on_conflict(session, "ignore", table, lambda insert_: insert_.on_conflict_do_nothing(index_elements=keys))


def _upsert(session, table: Table, keys: list[str], columns: list[str]):
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET columns (PostgreSQL and SQLite alike)."""
    return _on_conflict(session, "upsert", table, lambda insert_: insert_.on_conflict_do_update(
        index_elements=keys, set_={name: insert_.excluded[name] for name in columns}))


def _bump_sequences(session, table: Table):
    """INSERT (subject, n) ... ON CONFLICT add n to last_sequence, RETURNING the new last (both dialects)."""
    return _on_conflict(session, "bump", table, lambda insert_: insert_.on_conflict_do_update(
        index_elements=["subject"], set_={"last_sequence": table.c.last_sequence + insert_.excluded.last_sequence},
    ).returning(table.c.subject, table.c.last_sequence))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
