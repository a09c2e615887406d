#!/usr/bin/env python3
"""Subscribe to CRM events with plain kombu: no nameko, no CRM code.

    CRM_AMQP_URI=amqp://guest:guest@localhost:5672/ python examples/kombu_subscriber.py 'customer.*.v1'

Declares a durable queue of its own, bound to the `crm.events` topic exchange with the
given routing-key patterns (default `#`: everything), prints each event and acks it.
Delivery is at least once, so it skips ids it has already seen. Each producer numbers its events
per subject (`sequence`), and one queue with one consumer receives them in that order; an event at
or below the last sequence seen for its (source, subject) is a redelivery or a stale copy: skipped.
"""
import argparse
import json
import os
import socket

from kombu import Connection, Exchange, Queue


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("patterns", nargs="*", default=["#"], help="routing-key patterns, e.g. customer.*.v1")
    parser.add_argument("--queue", default="example.crm-subscriber")
    parser.add_argument("--max-events", type=int, default=0, help="exit after this many events (0: never)")
    parser.add_argument("--idle-timeout", type=float, default=0, help="exit after this many idle seconds")
    args = parser.parse_args()

    exchange = Exchange("crm.events", type="topic", durable=True)
    queue = Queue(args.queue, exchange=exchange, routing_key=args.patterns[0], durable=True)
    seen, last_sequence, received = set(), {}, 0

    def on_message(body, message):
        nonlocal received
        event = json.loads(body) if isinstance(body, (str, bytes)) else body
        stream, sequence = (event["source"], event["subject"]), int(event.get("sequence") or 0)
        if event["id"] not in seen and (not sequence or sequence > last_sequence.get(stream, 0)):
            seen.add(event["id"])
            last_sequence[stream] = max(sequence, last_sequence.get(stream, 0))
            received += 1
            print(f"{event['time']} {event['type']} v{event['dataversion']} subject={event['subject']} "
                  f"sequence={sequence} "
                  f"data={json.dumps(event['data'], sort_keys=True)}", flush=True)
        message.ack()

    with Connection(os.environ.get("CRM_AMQP_URI", "amqp://guest:guest@localhost:5672/")) as connection:
        bound = queue(connection.default_channel)
        bound.declare()
        for pattern in args.patterns[1:]:
            bound.bind_to(exchange, routing_key=pattern)
        print(f"listening on {args.queue} for {', '.join(args.patterns)}", flush=True)
        with connection.Consumer(bound, callbacks=[on_message], accept=["json"]):
            while not args.max_events or received < args.max_events:
                try:
                    connection.drain_events(timeout=args.idle_timeout or None)
                except socket.timeout:
                    break


if __name__ == "__main__":
    main()
