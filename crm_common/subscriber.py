"""``@subscribe("customer.created")``: consume one event type, safely.

Each (service, event type) pair has a durable queue ``<service>.<event>.v<n>``
bound to the ``crm.events`` topic exchange; replicas of a service share it, so
each event is handled by one of them. The method receives a validated
``crm_common.events.Event``.

- A message that can never be applied (not an envelope, unknown type, payload
  breaking its contract, or the handler raising ``EventRejected``) goes to the
  ``crm.dead-letter`` exchange at once, with the reason in its headers, and is
  acked so it does not block the queue.
- Any other failure is retried with back-off, the attempt counted in a header;
  after EVENT_MAX_ATTEMPTS the message is dead-lettered with the last error.
- Handlers make themselves idempotent with ``uow.claim(event)``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import eventlet
from kombu import Exchange, Queue
from functools import partial

from nameko.messaging import Consumer, QueueConsumer

import crm_common.contracts  # noqa: F401 - subscribing needs every contract registered
from crm_common import metrics
from crm_common.errors import EventRejected  # noqa: F401 - handlers import it from here too
from crm_common.events import InvalidEvent, definition, from_envelope
from crm_common.outbox import BrokerPublisher, dead_letter_exchange, events_exchange

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-crm-attempts"
REASON_HEADER = "x-crm-dead-letter-reason"
DEFAULT_EXCHANGE = Exchange("", type="direct")  # routes by queue name: a retry goes back to its own queue


def queue_name(service: str, routing_key: str) -> str:
    return f"{service}.{routing_key}"


def dead_letter_queue(service: str) -> Queue:
    """All of a service's dead letters, in one durable queue an operator can inspect."""
    return Queue(f"{service}.dead-letter", exchange=dead_letter_exchange, routing_key=f"{service}.#",
                 durable=True)


class EventQueueConsumer(QueueConsumer):
    """nameko's queue consumer, plus: a body that is not even JSON is dead-lettered."""

    def get_consumers(self, consumer_cls, channel):
        # called on every (re)connection: the service's dead-letter queue exists from then on
        dead_letter_exchange(channel).declare()
        for service in {provider.service for provider in self._providers}:
            dead_letter_queue(service)(channel).declare()
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.on_decode_error = partial(provider.handle_undecodable)
        return consumers


class EventSubscriber(Consumer):
    queue_consumer = EventQueueConsumer()

    def __init__(self, event_name: str, version: int | None = None, **kwargs):
        self.event_definition = definition(event_name, version)
        # the queue needs the service name, known only once bound to a container
        super().__init__(queue=None, requeue_on_error=False, **kwargs)

    def setup(self):
        self.service = self.container.service_name
        self.routing_key = self.event_definition.routing_key
        self.queue = Queue(queue_name(self.service, self.routing_key), exchange=events_exchange,
                           routing_key=self.routing_key, durable=True)
        self.max_attempts = self.container.config.get("EVENT_MAX_ATTEMPTS", 5)
        # nothing here touches the broker: a service starts (and answers /health) before it is up,
        # and nameko's consumer connects when it can (declaring the dead-letter queue then)
        self.publisher = BrokerPublisher(self.container.config["AMQP_URI"], declare=(dead_letter_queue(self.service),))
        super().setup()

    def stop(self):
        super().stop()
        self.publisher.close()

    def handle_message(self, body, message):
        try:
            event = from_envelope(body)
        except InvalidEvent as exc:
            self._settle(message, body, dead_letter_reason=str(exc))
            return
        self.container.spawn_worker(
            self, (event,), {}, context_data={},
            handle_result=lambda worker_ctx, result, exc_info: self._handled(body, message, result, exc_info))

    def handle_undecodable(self, message, exc):
        self._settle(message, message.body, dead_letter_reason=f"undecodable body ({message.content_type}): {exc}")

    def _handled(self, body, message, result, exc_info):
        if exc_info is None:
            metrics.EVENTS_CONSUMED.labels(self.service, self.routing_key,
                                           "duplicate" if result is False else "applied").inc()
            self.queue_consumer.ack_message(message)
            return result, exc_info
        exc = exc_info[1]
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 0)) + 1
        if isinstance(exc, EventRejected):
            self._settle(message, body, dead_letter_reason=f"rejected: {exc}")
        elif attempts >= self.max_attempts:
            self._settle(message, body,
                         dead_letter_reason=f"failed {attempts} times, last: {type(exc).__name__}: {exc}")
        else:
            metrics.EVENTS_CONSUMED.labels(self.service, self.routing_key, "retried").inc()
            log.warning("event %s failed in %s (attempt %d): %s", self.routing_key, self.service, attempts, exc)
            eventlet.sleep(min(0.2 * 2 ** attempts, 10))  # back off without blocking other workers
            self._settle(message, body, retry_attempt=attempts)
        return result, exc_info

    def _settle(self, message, body, dead_letter_reason: str | None = None, retry_attempt: int | None = None):
        """Ack only once the dead letter or the retry copy is confirmed by the broker; if that
        publish fails, requeue the original so nothing is lost. Never raises: an exception here
        would take the whole service container down."""
        try:
            if dead_letter_reason is not None:
                self._dead_letter(body, message, dead_letter_reason)
            else:
                self.publisher.publish(body, exchange=DEFAULT_EXCHANGE, routing_key=self.queue.name,
                                       headers={**(message.headers or {}), ATTEMPTS_HEADER: retry_attempt})
        except Exception as exc:
            log.error("could not re-publish a message from %s (%s); returning it to the queue", self.queue.name, exc)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)

    def _dead_letter(self, body, message, reason: str) -> None:
        log.error("dead-lettering message on %s: %s", self.queue.name, reason)
        headers = {
            **(message.headers or {}),
            REASON_HEADER: reason[:2000],
            "x-crm-original-queue": self.queue.name,
            "x-crm-original-routing-key": message.delivery_info.get("routing_key"),
            "x-crm-dead-lettered-at": datetime.now(timezone.utc).isoformat(),
        }
        self.publisher.publish(body, exchange=dead_letter_exchange,
                               routing_key=f"{self.service}.{self.routing_key}", headers=headers)
        metrics.EVENTS_DEAD_LETTERED.labels(self.service, self.routing_key).inc()
        metrics.EVENTS_CONSUMED.labels(self.service, self.routing_key, "failed").inc()




subscribe = EventSubscriber.decorator
