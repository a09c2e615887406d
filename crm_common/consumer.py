"""What a service consumes, and the one entrypoint that consumes it: in order per subject, in batches.

A service declares one table, ``CONSUMES = Consumes({"customer.created": on_created, ...})``: event name
-> ``handler(uow, event, context)``, plus an optional ``prepare(uow, events, context)`` run once per batch
before the handlers (reads the whole batch needs) and ``flush(uow, context)`` run once per batch before
commit (for writes added up across the batch). Queues, bindings, the replay plan and the docs all come
from that table. service.py has one method::

    @consume(projections.CONSUMES)
    def apply_events(self, events):
        return self.store.apply_batch(events, projections.CONSUMES, projections.Context(...))

Topology (docs/architecture.md says why): ``crm.events`` (topic) -> ``crm.<service>.inbound``, an
``x-consistent-hash`` exchange bound once per consumed routing key, hashing the ``cloudEvents:subject``
header -> ``<service>.events.p<i>``, durable single-active-consumer queues. One subject always lands in
one partition, a partition has one active consumer, so one subject's events arrive in the order the
producer's relay published them (its sequence order). Replicas share the partitions through leases in
the service's database (each takes its fair share of the live replicas; a dead one's expire); the
single-active-consumer flag keeps a partition to one consumer even while a lease changes hands. The in-memory transport has no consistent-hash
exchange and no exchange-to-exchange bindings; embedded mode runs one replica, so it has one partition
bound straight to ``crm.events``.

Messages are taken up to EVENT_BATCH_SIZE at a time or EVENT_BATCH_MS after the first, applied in one
transaction (``Transactions.apply_batch``) and acked after the commit. An event that fails splits the
batch: what came before it is applied, it is retried alone (EVENT_MAX_ATTEMPTS, with back-off) and then
dead-lettered with the reason, and what came after goes on. A business rule refusing it
(``EventRejected``/``DomainError``) or a message that is not a valid envelope is dead-lettered at once.
When the database itself is away the batch waits and is tried again, never dead-lettered.
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping

import eventlet
from eventlet.event import Event as GreenEvent
from kombu import Connection, Exchange, Queue, binding
from kombu import Consumer as KombuConsumer
from nameko.extensions import Entrypoint

import crm_common.contracts  # noqa: F401 - consuming needs every contract registered
from crm_common import metrics
from crm_common.config import env
from crm_common.db import EventFailed, is_transient, lease_partitions, release_partitions
from crm_common.dependencies import Store
from crm_common.errors import EventRejected
from crm_common.events import DEAD_LETTER_EXCHANGE, SUBJECT_HEADER, InvalidEvent, definition, from_envelope
from crm_common.outbox import REPLAY_HEADER, BrokerPublisher, dead_letter_exchange, events_exchange

log = logging.getLogger(__name__)

REASON_HEADER = "x-crm-dead-letter-reason"
DELIVERY_LIMIT_KEY = "delivery-limit"  # routing key (after the service's name) of what the broker dead-letters
LEASE_TTL = timedelta(seconds=10)
LEASE_TICK_SECONDS = 2.0
DEFAULT_EXCHANGE = Exchange("", type="direct")


@dataclass(frozen=True)
class Consumes:
    """A service's table of consumed events: name -> handler(uow, event, context); ``prepare(uow, events,
    context)`` runs before the handlers (to read what the whole batch needs at once), ``flush(uow,
    context)`` after them."""

    handlers: Mapping[str, Callable]
    flush: Callable | None = None
    prepare: Callable | None = None
    # the read model takes a stream's events in any order (dated books): one older than what was applied is
    # applied too, not skipped as stale (crm_common.db.claim_batch)
    any_order: bool = False
    routing_keys: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "routing_keys", tuple(definition(name).routing_key for name in self.handlers))

    def replay_plan(self) -> dict[str, list[str]]:
        """producer service -> the routing keys it must replay for a rebuild of this service's read models."""
        plan: dict[str, list[str]] = {}
        for name in self.handlers:
            spec = definition(name)
            plan.setdefault(spec.producer, []).append(spec.routing_key)
        return plan


# ------------------------------------------------------------------ topology


def is_memory(amqp_uri: str) -> bool:
    return amqp_uri.startswith("memory")


def queue_type() -> str:
    """CRM_QUEUE_TYPE: ``quorum`` (default: replicated over a cluster's nodes, a node's loss loses no queue) or
    ``classic`` (what releases before 2026-12 declared; a queue keeps its type, so an upgraded broker that still
    has classic queues sets this until they are drained and deleted, see docs/operations.md)."""
    kind = env("CRM_QUEUE_TYPE", "quorum")
    if kind not in ("quorum", "classic"):
        raise SystemExit(f"CRM_QUEUE_TYPE must be quorum or classic, not {kind!r}")
    return kind


def _typed(arguments: dict | None = None) -> dict:
    return {"x-queue-type": queue_type(), **(arguments or {})}


def _partition_arguments(service: str) -> dict:
    """A quorum partition hands a message back to the dead letters after CRM_EVENT_DELIVERY_LIMIT deliveries
    (20): an event that kills its consumer each time (out of memory, a crash in a driver) would otherwise come
    back after every restart, forever. The consumer's own retries happen in process and are not deliveries."""
    arguments = {"x-single-active-consumer": True}
    if queue_type() == "quorum":
        arguments.update({"x-delivery-limit": int(env("CRM_EVENT_DELIVERY_LIMIT", "20")),
                          "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                          "x-dead-letter-routing-key": f"{service}.{DELIVERY_LIMIT_KEY}"})
    return _typed(arguments)


def dead_letter_queue(service: str) -> Queue:
    """All of a service's dead letters, in one durable queue an operator can inspect."""
    return Queue(f"{service}.dead-letter", exchange=dead_letter_exchange, routing_key=f"{service}.#",
                 durable=True, queue_arguments=_typed())


def inbound_exchange(service: str) -> Exchange:
    return Exchange(f"crm.{service}.inbound", type="x-consistent-hash", durable=True,
                    arguments={"hash-header": SUBJECT_HEADER})


def partition_queues(service: str, routing_keys, partitions, amqp_uri: str) -> list[Queue]:
    if is_memory(amqp_uri):
        return [Queue(f"{service}.events.p0", durable=True,
                      bindings=[binding(events_exchange, routing_key=key) for key in routing_keys])]
    return [Queue(f"{service}.events.p{index}", exchange=inbound_exchange(service), routing_key="1", durable=True,
                  queue_arguments=_partition_arguments(service)) for index in sorted(partitions)]


def declare_topology(channel, service: str, routing_keys, partitions: int, amqp_uri: str) -> dict[int, Queue]:
    """Every partition queue, whichever replica holds it: the consistent-hash ring is its set of bound
    queues, so binding one only when it is first leased would move subjects to another partition while
    events of theirs still wait in the old one (applied out of order, then skipped as stale)."""
    for exchange in (events_exchange, dead_letter_exchange):
        exchange(channel).declare()
    dead_letter_queue(service)(channel).declare()
    if not is_memory(amqp_uri):
        inbound = inbound_exchange(service)(channel)
        inbound.declare()
        for key in routing_keys:
            inbound.bind_to(events_exchange, routing_key=key)
    queues = {index: queue(channel)
              for index, queue in enumerate(partition_queues(service, routing_keys, range(partitions), amqp_uri))}
    for queue in queues.values():
        queue.declare()
    return queues


def replay_route(service: str, routing_key: str, amqp_uri: str) -> tuple[Exchange, str]:
    """Where a producer sends a replayed event for one consumer only: through its inbound exchange,
    so the event lands in the partition live events of its subject land in."""
    if is_memory(amqp_uri):
        return DEFAULT_EXCHANGE, f"{service}.events.p0"
    return inbound_exchange(service), routing_key


# ------------------------------------------------------------------ the entrypoint


class Stopping(Exception):
    """The container is stopping: leave the batch unacked, the broker redelivers it."""


class EventConsumer(Entrypoint):
    def __init__(self, table: Consumes, **kwargs):
        self.table = table
        super().__init__(**kwargs)

    def setup(self):
        config = self.container.config
        self.service = self.container.service_name
        self.amqp_uri = config["AMQP_URI"]
        self.batch_size = int(config.get("EVENT_BATCH_SIZE", 500))
        self.batch_seconds = int(config.get("EVENT_BATCH_MS", 20)) / 1000
        self.max_attempts = int(config.get("EVENT_MAX_ATTEMPTS", 5))
        self.partitions = 1 if is_memory(self.amqp_uri) else int(config.get("EVENT_PARTITIONS", 4))
        # which replica consumes which partitions is leased in the service's own database
        self.store = next(d for d in self.container.dependencies if isinstance(d, Store))
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.publisher = BrokerPublisher(self.amqp_uri, declare=(dead_letter_queue(self.service),))
        self._running = False
        self._thread = None
        self.consuming: frozenset[int] = frozenset()  # the partitions subscribed to right now

    def start(self):
        self._running = True
        self._thread = self.container.spawn_managed_thread(self._consume_forever,
                                                           identifier=f"{self.service}.events")

    def stop(self):
        self._running = False
        if self._thread is not None:
            self._thread.wait()
        self.publisher.close()
        try:
            release_partitions(self.store.session_factory, self.store.tables, self.holder)
        except Exception as exc:  # the leases expire by themselves
            log.warning("%s could not give its partitions back (%s)", self.service, exc)
        super().stop()

    def kill(self):
        self._running = False
        if self._thread is not None:
            self._thread.kill()
        self.publisher.close()

    # -------------------------------------------------------------- consuming

    def _leased(self) -> set[int]:
        if is_memory(self.amqp_uri):
            return {0}
        return lease_partitions(self.store.session_factory, self.store.tables, self.holder, self.partitions,
                                LEASE_TTL)

    def _consume_forever(self):
        failures = 0
        while self._running:
            try:
                partitions = self._leased()
                metrics.PARTITIONS_HELD.labels(self.service).set(len(partitions))
                if not partitions:  # the other replicas hold every partition: stand by
                    eventlet.sleep(LEASE_TICK_SECONDS)
                    continue
                with Connection(self.amqp_uri, heartbeat=self.container.config.get("HEARTBEAT", 60)) as connection:
                    connection.ensure_connection(max_retries=1)
                    failures = 0
                    self._consume(connection, partitions)
            except Stopping:
                return
            except Exception as exc:  # broker away or connection lost: unacked messages go back to the queue
                failures += 1
                log.warning("event consumer of %s lost its broker or database (%s); reconnecting", self.service, exc)
                eventlet.sleep(min(0.5 * 2 ** failures, 10))

    def _consume(self, connection, partitions: set[int]):
        """Consume the leased partitions until the lease changes (then the channel closes, returning
        prefetched messages to the front of their queues, for the partition's next holder)."""
        channel = connection.channel()
        declared = declare_topology(channel, self.service, self.table.routing_keys, self.partitions, self.amqp_uri)
        metrics.PARTITIONS_HELD.labels(self.service).set(len(partitions))
        channel.basic_qos(0, self.batch_size, False)
        pending: list = []
        consumer = KombuConsumer(channel, [declared[index] for index in sorted(partitions)],
                                 on_message=pending.append, accept=["json"])
        with consumer:
            self.consuming = frozenset(partitions)
            try:
                self._drain(connection, channel, partitions, pending)
            finally:
                self.consuming = frozenset()

    def _drain(self, connection, channel, partitions: set[int], pending: list):
        """Apply what arrives in batches (batch_size, or batch_seconds after the first message)."""
        lease_check = time.monotonic() + LEASE_TICK_SECONDS
        first_at = None
        while self._running:
            if not pending and time.monotonic() >= lease_check:
                lease_check = time.monotonic() + LEASE_TICK_SECONDS
                if self._lease_changed(partitions):
                    return
            wait = self.batch_seconds if first_at is None else max(0.0, first_at + self.batch_seconds - time.monotonic())
            try:
                connection.drain_events(timeout=wait if pending else 0.25)
            except socket.timeout:
                pass
            if pending and first_at is None:
                first_at = time.monotonic()
            if pending and (len(pending) >= self.batch_size or time.monotonic() >= first_at + self.batch_seconds):
                batch, pending[:] = list(pending), []
                first_at = None
                self._handle(batch, channel)
            connection.heartbeat_check()

    def _lease_changed(self, partitions: set[int]) -> bool:
        try:
            return self._leased() != partitions
        except Exception as exc:  # database away: keep consuming what we hold (single-active-consumer guards it)
            log.warning("%s could not renew its partition leases (%s)", self.service, exc)
            return False

    def _handle(self, messages, channel):
        """Apply a batch, then ack it all (after the commit, and after any dead letter is confirmed)."""
        decoded = []
        for message in messages:
            try:
                event = from_envelope(message.decode())
                if (message.headers or {}).get(REPLAY_HEADER):
                    event = replace(event, replayed=True)
                decoded.append((message, event))
            except InvalidEvent as exc:
                self._dead_letter(message, str(exc))
            except Exception as exc:  # not JSON, wrong content type, broken encoding
                self._dead_letter(message, f"undecodable body ({message.content_type}): {exc}")
        self._apply(decoded)
        if is_memory(self.amqp_uri):
            for message in messages:
                message.ack()
        else:
            channel.basic_ack(messages[-1].delivery_tag, multiple=True)

    def _apply(self, pairs):
        while pairs:
            try:
                self._count(pairs, self._run([event for _, event in pairs]))
                return
            except Exception as exc:
                if is_transient(exc):
                    self._back_off(f"database unavailable ({exc})")
                    continue
                if len(pairs) == 1:
                    self._apply_alone(pairs[0], exc)
                    return
                # split around the event that failed (or in halves when the batch as a whole did)
                index = ([e.id for _, e in pairs].index(exc.event.id) if isinstance(exc, EventFailed)
                         else len(pairs) // 2)
                self._apply(pairs[:index])
                if isinstance(exc, EventFailed):
                    self._apply_alone(pairs[index], exc)
                    index += 1
                pairs = pairs[index:]

    def _apply_alone(self, pair, error: Exception):
        message, event = pair
        attempts = 1
        while True:
            cause = error.error if isinstance(error, EventFailed) else error
            if isinstance(cause, EventRejected):
                self._dead_letter(message, f"rejected: {cause}", event.routing_key)
                return
            if is_transient(cause):
                self._back_off(f"database unavailable ({cause})")
            elif attempts >= self.max_attempts:
                self._dead_letter(message, f"failed {attempts} times, last: {type(cause).__name__}: {cause}",
                                  event.routing_key)
                return
            else:
                metrics.EVENTS_CONSUMED.labels(self.service, event.routing_key, "retried").inc()
                log.warning("event %s failed in %s (attempt %d): %s", event.routing_key, self.service, attempts, cause)
                eventlet.sleep(min(0.2 * 2 ** attempts, 10))
                attempts += 1
            try:
                self._count([pair], self._run([event]))
                return
            except Exception as exc:
                error = exc

    def _back_off(self, why: str):
        if not self._running:
            raise Stopping()
        log.warning("%s: %s; trying the batch again", self.service, why)
        eventlet.sleep(1.0)

    def _run(self, events):
        """One nameko worker for the batch (so dependencies are injected as for any entrypoint)."""
        done = GreenEvent()

        def handle_result(worker_ctx, result, exc_info):
            done.send((result, exc_info))
            return result, exc_info

        self.container.spawn_worker(self, (events,), {}, context_data={}, handle_result=handle_result)
        result, exc_info = done.wait()
        if exc_info is not None:
            raise exc_info[1]
        return result

    def _count(self, pairs, fresh):
        fresh_ids = {event.id for event in fresh or ()}
        for _, event in pairs:
            outcome = "applied" if event.id in fresh_ids else "duplicate"
            fresh_ids.discard(event.id)  # a second copy in the same batch is a duplicate
            metrics.EVENTS_CONSUMED.labels(self.service, event.routing_key, outcome).inc()

    def _dead_letter(self, message, reason: str, routing_key: str | None = None) -> None:
        """Confirmed by the broker before the batch is acked; if that fails the batch is not acked
        (the connection is dropped, so it comes back) and nothing is lost."""
        routing_key = routing_key or message.delivery_info.get("routing_key") or "unknown"
        log.error("dead-lettering a message for %s: %s", self.service, reason)
        headers = {
            **(message.headers or {}),
            REASON_HEADER: reason[:2000],
            "x-crm-original-routing-key": routing_key,
            "x-crm-dead-lettered-at": datetime.now(timezone.utc).isoformat(),
        }
        self.publisher.publish(message.body, exchange=dead_letter_exchange,
                               routing_key=f"{self.service}.{routing_key}", headers=headers)
        metrics.EVENTS_DEAD_LETTERED.labels(self.service, routing_key).inc()
        metrics.EVENTS_CONSUMED.labels(self.service, routing_key, "failed").inc()


consume = EventConsumer.decorator
