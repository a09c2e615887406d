"""Outbox relay: publishes committed events in outbox order, with pipelined publisher confirms.

One replica relays at a time (an advisory lock), so one subject's events reach the broker in the
order they were numbered. A crash between the broker's confirm and the commit republishes a window,
which consumers absorb because they deduplicate on the event id and the subject's sequence
(at-least-once delivery).
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter
from datetime import datetime, timezone

import amqp
from kombu import Connection, Exchange
from sqlalchemy import Table, func, select, text, update
from sqlalchemy.orm import sessionmaker

from crm_common import metrics
from crm_common.events import DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, SEQUENCE_HEADER, SUBJECT_HEADER

log = logging.getLogger(__name__)

REPLAY_HEADER = "x-crm-replay"

events_exchange = Exchange(EVENTS_EXCHANGE, type="topic", durable=True)
dead_letter_exchange = Exchange(DEAD_LETTER_EXCHANGE, type="topic", durable=True)


class BrokerPublisher:
    """One long-lived channel in confirm mode; reconnects on failure.

    ``publish_many`` pipelines: it sends a whole window, then waits for the broker's acks (which may
    cover many messages at once), instead of one round trip per message.
    """

    def __init__(self, amqp_uri: str, declare: tuple = (), confirm_timeout: float = 30.0):
        self.amqp_uri = amqp_uri
        self.declare = declare  # queues to (re)declare on every connection, e.g. a dead-letter queue
        self.confirm_timeout = confirm_timeout
        self._connection = None
        self._producer = None
        self._confirms = not amqp_uri.startswith("memory")  # the in-memory transport has no confirms
        self._next_tag = 1
        self._unconfirmed: set[int] = set()
        self._nacked: set[int] = set()
        # one channel, one window at a time; green threads take turns
        self._lock = threading.Lock()

    def _ensure(self):
        if self._producer is None:
            self._connection = Connection(self.amqp_uri)
            self._connection.ensure_connection(max_retries=3)
            self._producer = self._connection.Producer(serializer="json")
            channel = self._producer.channel
            if self._confirms:
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
                self._next_tag, self._unconfirmed, self._nacked = 1, set(), set()
            for entity in (events_exchange, dead_letter_exchange, *self.declare):
                entity(channel).declare()
        return self._producer

    def _on_ack(self, delivery_tag, multiple):
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag, multiple):
        nacked = {tag for tag in self._unconfirmed if tag <= delivery_tag} if multiple else {delivery_tag}
        self._nacked |= nacked
        self._unconfirmed -= nacked

    def publish(self, body, exchange: Exchange, routing_key: str, headers: dict | None = None,
                message_id: str | None = None) -> None:
        """Returns once the broker confirmed the message (raises otherwise)."""
        if self.publish_many([(body, exchange, routing_key, headers, message_id)]) != 1:
            raise RuntimeError(f"the broker refused a message for {routing_key}")

    def publish_many(self, messages) -> int:
        """Publish (body, exchange, routing_key, headers, message_id) tuples as one window; returns how
        many of them, from the first on, the broker confirmed (all, unless it refused one)."""
        with self._lock:
            try:
                producer = self._ensure()
                first = self._next_tag
                for body, exchange, routing_key, headers, message_id in messages:
                    if not isinstance(body, (str, bytes)):
                        body = json.dumps(body, default=str)
                    if not self._confirms:
                        producer.publish(body, exchange=exchange, routing_key=routing_key, headers=headers or {},
                                         delivery_mode=2, content_type="application/json", content_encoding="utf-8",
                                         message_id=message_id)
                        continue
                    # py-amqp directly: kombu's Producer.publish costs more CPU than the frames themselves
                    producer.channel.basic_publish(amqp.Message(
                        body.encode() if isinstance(body, str) else body, delivery_mode=2,
                        content_type="application/json", content_encoding="utf-8",
                        application_headers=headers or {}, message_id=message_id),
                        exchange=exchange.name, routing_key=routing_key)
                    self._unconfirmed.add(self._next_tag)
                    self._next_tag += 1
                if not self._confirms:
                    return len(messages)
                deadline = time.monotonic() + self.confirm_timeout
                while self._unconfirmed:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no confirm from the broker in {self.confirm_timeout}s")
                    self._connection.drain_events(timeout=1)
                refused = sorted(tag for tag in self._nacked if tag >= first)
                self._nacked.clear()
                return (refused[0] - first) if refused else len(messages)
            except socket.timeout:
                return self._fail(TimeoutError("no confirm from the broker"))
            except Exception as exc:
                return self._fail(exc)

    def _fail(self, exc):
        self.close()
        raise exc

    def close(self):
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # pragma: no cover - closing a broken connection
                pass
        self._connection = self._producer = None


def event_headers(subject: str, sequence) -> dict:
    return {SUBJECT_HEADER: subject, **({SEQUENCE_HEADER: str(sequence)} if sequence is not None else {})}


def _is_relay(session, service: str) -> bool:
    """Only one replica relays at a time (a transaction-scoped advisory lock on PostgreSQL): two relays
    publishing side by side could interleave one subject's events out of order."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return session.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"),
                           {"key": f"crm-outbox-relay-{service}"}).scalar()


def relay_batch(session_factory: sessionmaker, outbox: Table, publisher: BrokerPublisher,
                service: str, batch_size: int = 5000) -> int:
    """Publish up to batch_size unpublished events in outbox order as one confirmed window; returns how
    many. A row is marked published only once the broker confirmed it. (Each window waits for its last
    confirm before the next starts, so fewer, larger windows keep the broker busier.)"""
    with session_factory() as session:
        if not _is_relay(session, service):
            session.rollback()
            return 0
        rows = session.execute(
            select(outbox.c.id, outbox.c.event_id, outbox.c.routing_key, outbox.c.subject, outbox.c.sequence,
                   outbox.c.body)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(batch_size)
        ).all()
        if not rows:
            session.rollback()
            return 0
        confirmed = publisher.publish_many([
            (row.body, events_exchange, row.routing_key, event_headers(row.subject, row.sequence), row.event_id)
            for row in rows])
        published = rows[:confirmed]
        if published:
            session.execute(update(outbox).where(outbox.c.id.in_([row.id for row in published]))
                            .values(published_at=datetime.now(timezone.utc)))
            session.commit()
            for routing_key, count in Counter(row.routing_key for row in published).items():
                metrics.EVENTS_PUBLISHED.labels(service, routing_key).inc(count)
        return len(published)


def backlog(session_factory: sessionmaker, outbox: Table) -> int:
    with session_factory() as session:
        return session.execute(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))).scalar_one()


def replay(session_factory: sessionmaker, outbox: Table, publisher: BrokerPublisher, consumer: str,
           routing_keys: list[str], batch_size: int = 1000) -> int:
    """Publish every event this service ever emitted with one of routing_keys to one consumer only (into
    the partition its subject's live events go to), oldest first, so a read model can be rebuilt.
    Consumers deduplicate on event id and sequence, so replaying onto a live read model changes nothing."""
    from crm_common.consumer import replay_route  # the consumer side owns its topology

    sent, last_id = 0, 0
    while True:
        with session_factory() as session:
            rows = session.execute(
                select(outbox.c.id, outbox.c.event_id, outbox.c.routing_key, outbox.c.subject, outbox.c.sequence,
                       outbox.c.body)
                .where(outbox.c.id > last_id, outbox.c.routing_key.in_(routing_keys))
                .order_by(outbox.c.id).limit(batch_size)).all()
        if not rows:
            return sent
        window = []
        for row in rows:
            exchange, routing_key = replay_route(consumer, row.routing_key, publisher.amqp_uri)
            headers = {**event_headers(row.subject, row.sequence), REPLAY_HEADER: True}
            window.append((row.body, exchange, routing_key, headers, row.event_id))
        if publisher.publish_many(window) != len(window):
            raise RuntimeError("the broker refused part of a replay")
        sent += len(rows)
        last_id = rows[-1].id
