"""Outbox relay: publishes committed events with publisher confirms.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several replicas drain one
outbox without publishing a row twice in the normal case; a crash between the
broker's confirm and the commit republishes a row, which consumers absorb
because they deduplicate on the event id (at-least-once delivery).
"""
from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone

from kombu import Connection, Exchange
from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import sessionmaker

from crm_common import metrics
from crm_common.events import DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE

log = logging.getLogger(__name__)

events_exchange = Exchange(EVENTS_EXCHANGE, type="topic", durable=True)
dead_letter_exchange = Exchange(DEAD_LETTER_EXCHANGE, type="topic", durable=True)


class BrokerPublisher:
    """One long-lived confirmed channel; reconnects on failure."""

    def __init__(self, amqp_uri: str, declare: tuple = ()):
        self.amqp_uri = amqp_uri
        self.declare = declare  # queues to (re)declare on every connection, e.g. a dead-letter queue
        self._connection = None
        self._producer = None
        # one channel waits for one confirm at a time; green threads take turns
        self._lock = threading.Lock()

    def _ensure(self):
        if self._producer is None:
            self._connection = Connection(self.amqp_uri, transport_options={"confirm_publish": True})
            self._connection.ensure_connection(max_retries=3)
            self._producer = self._connection.Producer(serializer="json")
            for entity in (events_exchange, dead_letter_exchange, *self.declare):
                entity(self._producer.channel).declare()
        return self._producer

    def publish(self, body, exchange: Exchange, routing_key: str, headers: dict | None = None,
                message_id: str | None = None) -> None:
        """Returns once the broker confirmed the message (raises otherwise)."""
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body, default=str)
        with self._lock:
            try:
                self._ensure().publish(
                    body, exchange=exchange, routing_key=routing_key, headers=headers or {},
                    delivery_mode=2, content_type="application/json", content_encoding="utf-8",
                    message_id=message_id,
                )
            except Exception:
                self.close()
                raise

    def close(self):
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # pragma: no cover - closing a broken connection
                pass
        self._connection = self._producer = None


def relay_batch(session_factory: sessionmaker, outbox: Table, publisher: BrokerPublisher,
                service: str, batch_size: int = 200) -> int:
    """Publish up to batch_size unpublished events in order; returns how many."""
    with session_factory() as session:
        rows = session.execute(
            select(outbox.c.id, outbox.c.event_id, outbox.c.routing_key, outbox.c.body)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            session.rollback()
            return 0
        published = []
        try:
            for row in rows:
                publisher.publish(row.body, events_exchange, row.routing_key, message_id=row.event_id)
                published.append(row.id)
                metrics.EVENTS_PUBLISHED.labels(service, row.routing_key).inc()
        finally:
            if published:
                session.execute(update(outbox).where(outbox.c.id.in_(published))
                                .values(published_at=datetime.now(timezone.utc)))
                session.commit()
        return len(published)


def backlog(session_factory: sessionmaker, outbox: Table) -> int:
    with session_factory() as session:
        return session.execute(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))).scalar_one()


def replay(session_factory: sessionmaker, outbox: Table, publisher: BrokerPublisher, consumer: str,
           routing_keys: list[str], batch_size: int = 1000) -> int:
    """Publish every event this service ever emitted with one of routing_keys straight to the
    consumer's queues (``<consumer>.<routing key>``), oldest first, so a read model can be rebuilt.
    Consumers deduplicate on event id, so replaying onto a live read model changes nothing."""
    from kombu import Exchange

    default_exchange = Exchange("", type="direct")
    sent, last_id = 0, 0
    while True:
        with session_factory() as session:
            rows = session.execute(
                select(outbox.c.id, outbox.c.event_id, outbox.c.routing_key, outbox.c.body)
                .where(outbox.c.id > last_id, outbox.c.routing_key.in_(routing_keys))
                .order_by(outbox.c.id).limit(batch_size)).all()
        if not rows:
            return sent
        for row in rows:
            publisher.publish(row.body, default_exchange, f"{consumer}.{row.routing_key}", message_id=row.event_id)
        sent += len(rows)
        last_id = rows[-1].id
