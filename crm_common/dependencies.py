"""nameko dependency providers: the database (with its outbox relay) and the clock."""
from __future__ import annotations

import logging

import eventlet
from eventlet.green import select as green_select
from eventlet.event import Event as GreenEvent
from nameko.extensions import DependencyProvider
from sqlalchemy import MetaData, Table
from sqlalchemy.orm import sessionmaker

from crm_common import metrics
from crm_common.clock import clock_from_config
from crm_common.db import Transactions, UnitOfWork, add_infrastructure_tables, make_engine, outbox_channel
from crm_common.directory import Directory
from crm_common.outbox import BrokerPublisher, backlog, relay_batch, replay

log = logging.getLogger(__name__)


class Store(DependencyProvider):
    """A service's database: ``with self.store() as uow: ...; uow.commit()``.

    Also runs the outbox relay of the service: woken right after a transaction
    that emitted events commits, in this replica directly and in the others by
    PostgreSQL's NOTIFY, and every OUTBOX_POLL_SECONDS to pick up rows a crashed
    process left behind.
    """

    def __init__(self, metadata: MetaData, tables: dict | None = None, directory: tuple[Table, str] | None = None):
        self.metadata = metadata
        self.tables = tables
        self.directory_table = directory  # (the service's copy of the reps directory, its id column)
        self.directory = None

    def setup(self):
        config = self.container.config
        self.service = self.container.service_name
        if self.tables is None:
            self.tables = add_infrastructure_tables(self.metadata)
        self.engine = make_engine(config["DATABASE_URL"])
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        if self.directory_table is not None:  # read by crm_common.http for every request's principal
            self.directory = Directory(self.session_factory, *self.directory_table,
                                       audit_table=self.tables.get("audit_log"))
        self.poll_seconds = config.get("OUTBOX_POLL_SECONDS", 1.0)
        self.publisher = BrokerPublisher(config["AMQP_URI"])
        self._wake = GreenEvent()
        self._running = False
        self._relay_thread = None

    def start(self):
        self._running = True
        self._relay_thread = self.container.spawn_managed_thread(self._relay_forever, identifier="outbox-relay")
        if self.engine.dialect.name == "postgresql":
            self.container.spawn_managed_thread(self._listen_forever, identifier="outbox-listen")

    def _pause(self, seconds: float) -> None:
        """Until woken (a commit, or stop) or seconds have passed."""
        with eventlet.Timeout(seconds, False):
            self._wake.wait()
        self._wake = GreenEvent()

    def _listen_forever(self):
        """Wake the relay whenever any replica commits events (LISTEN on a connection of its own)."""
        while self._running:
            connection = None
            try:
                connection = self.engine.raw_connection()
                raw = connection.dbapi_connection
                raw.autocommit = True
                with raw.cursor() as cursor:
                    cursor.execute(f'LISTEN "{outbox_channel(self.service)}"')
                while self._running:
                    readable, _, _ = green_select.select([raw], [], [], self.poll_seconds)
                    if readable:
                        raw.poll()
                        if raw.notifies:
                            raw.notifies.clear()
                            self.wake()
            except Exception as exc:  # database away: the relay's own poll covers the gap
                log.warning("outbox listener of %s failed (%s); retrying", self.service, exc)
                eventlet.sleep(self.poll_seconds)
            finally:
                if connection is not None:
                    try:
                        connection.invalidate()  # never hand a LISTENing connection back to the pool
                    except Exception:
                        pass

    def stop(self):
        self._running = False
        self.wake()
        if self._relay_thread is not None:
            self._relay_thread.wait()
        self.publisher.close()
        self.engine.dispose()

    def kill(self):
        self._running = False
        self.publisher.close()

    def wake(self):
        if not self._wake.ready():
            self._wake.send(True)

    def _relay_forever(self):
        failures = 0
        while self._running:
            try:
                while relay_batch(self.session_factory, self.tables["outbox"], self.publisher, self.service):
                    pass
                metrics.OUTBOX_BACKLOG.labels(self.service).set(
                    backlog(self.session_factory, self.tables["outbox"]))
                failures = 0
            except Exception as exc:  # broker or database away: keep the rows, try again later
                failures += 1
                log.warning("outbox relay of %s failed (%s); retrying", self.service, exc)
                self._pause(min(0.5 * 2 ** failures, 30))
                continue
            self._pause(self.poll_seconds)
        # drain what was committed while stopping, so a graceful stop loses nothing
        try:
            relay_batch(self.session_factory, self.tables["outbox"], self.publisher, self.service)
        except Exception as exc:
            log.warning("outbox of %s left for the next start (%s)", self.service, exc)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, self.tables, self.service, on_commit=self.wake)

    def replay(self, consumer: str, routing_keys: list[str]) -> int:
        publisher = BrokerPublisher(self.container.config["AMQP_URI"])
        try:
            return replay(self.session_factory, self.tables["outbox"], publisher, consumer, routing_keys)
        finally:
            publisher.close()

    def get_dependency(self, worker_ctx):
        return StoreAccess(self)


class StoreAccess(Transactions):
    """What a worker sees as ``self.store``: call it for a unit of work, or use run / apply_once."""

    def __init__(self, provider: Store):
        self._provider = provider

    def __call__(self) -> UnitOfWork:
        return self._provider.unit_of_work()

    def replay(self, consumer: str, routing_keys: list[str]) -> int:
        return self._provider.replay(consumer, routing_keys)


class Clock(DependencyProvider):
    """Injects the service clock (frozen with CRM_FROZEN_TIME, replaceable in tests)."""

    def setup(self):
        self.clock = clock_from_config(self.container.config.get("FROZEN_TIME"))

    def get_dependency(self, worker_ctx):
        return self.clock


class Settings(DependencyProvider):
    """The service's own settings (environment variables prefixed with its name)."""

    def __init__(self, parse):
        self.parse = parse

    def setup(self):
        self.settings = self.parse(self.container.config.get("SERVICE_SETTINGS", {}))

    def get_dependency(self, worker_ctx):
        return self.settings
