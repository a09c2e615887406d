"""Customers service throughput, next to the broker's own limit measured in the same run.

    python bench/bench_customers.py [--customers 2000] [--events 20000] [--concurrency 20]

Uses RabbitMQ and PostgreSQL when CRM_AMQP_URI and CUSTOMERS_DATABASE_URL are set
(e.g. `scripts/infra.sh start .run/bench && . .run/bench/env.sh`), otherwise the embedded
default (in-memory transport, SQLite). Prints:
  1. customers created per second through the HTTP API;
  2. events per second from the outbox (committed rows) to a plain kombu subscriber;
  3. raw kombu publish-with-confirms + consume of messages of the same size on the same broker,
     and the ratio of (2) to (3).
"""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from kombu import Connection, Exchange, Queue  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402

from crm import runner  # noqa: E402
from crm_common import memory_transport  # noqa: E402
from crm_common.auth import issue_token  # noqa: E402
from crm_common.config import DEV_SECRET, nameko_config  # noqa: E402
from crm_common.events import EVENTS_EXCHANGE  # noqa: E402


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url, token, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


def consume(amqp_uri, queue, expected, timeout=600):
    """Blocks until `expected` messages were received from queue; returns the time it took."""
    received = 0
    started = time.perf_counter()
    with Connection(amqp_uri) as connection:
        def on_message(body, message):
            nonlocal received
            received += 1
            message.ack()
        with connection.Consumer(queue, callbacks=[on_message], accept=["json"], prefetch_count=500):
            deadline = time.monotonic() + timeout
            while received < expected and time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=1)
                except socket.timeout:
                    pass
    return time.perf_counter() - started, received


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()

    amqp_uri = os.environ.get("CRM_AMQP_URI", "memory://")
    db_url = os.environ.get("CUSTOMERS_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp()}/customers.db"
    if amqp_uri.startswith("memory"):
        memory_transport.install()
    runner.migrate("customers", db_url)
    port = free_port()
    config = nameko_config("customers", {"AMQP_URI": amqp_uri, "DATABASE_URL": db_url,
                                         "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", "OUTBOX_POLL_SECONDS": 0.2,
                                         "max_workers": max(10, args.concurrency)})
    container = ServiceContainer(runner.service_class("customers"), config)
    container.start()
    base = f"http://127.0.0.1:{port}"
    admin = issue_token(DEV_SECRET, "admin", "admin")
    rep = f"bench-{int(time.time())}"
    post(f"{base}/v1/reps", admin, {"id": rep, "name": "Bench Rep", "team": "bench"})
    print(f"broker: {amqp_uri.split('@')[-1]}  database: {db_url.split('@')[-1]}")

    # 1. customers created per second through the API
    pool = eventlet.GreenPool(args.concurrency)
    body = {"company": "Bench Co", "owner_id": rep, "industry": "retail", "tags": ["bench"],
            "contacts": [{"name": "Pat Doe", "email": "pat@example.com", "is_decision_maker": True}]}
    started = time.perf_counter()
    statuses = list(pool.imap(lambda i: post(f"{base}/v1/customers", admin, {**body, "company": f"Bench {i}"}),
                              range(args.customers)))
    seconds = time.perf_counter() - started
    assert all(s == 201 for s in statuses), set(statuses)
    print(f"1. customers created through the API: {args.customers / seconds:8.0f}/s "
          f"({args.customers} in {seconds:.1f}s, {args.concurrency} concurrent clients)")

    # 2. events through the outbox to a subscriber
    exchange = Exchange(EVENTS_EXCHANGE, type="topic", durable=True)
    queue = Queue(f"bench.outbox.{rep}", exchange, routing_key="customer.archived.v1", durable=False,
                  auto_delete=True)
    with Connection(amqp_uri) as connection:
        queue(connection.default_channel).declare()
    store = next(d for d in container.dependencies if d.attr_name == "store")
    now = datetime.now(timezone.utc)
    waiter = eventlet.spawn(consume, amqp_uri, queue, args.events)
    eventlet.sleep(0.5)
    started = time.perf_counter()
    for offset in range(0, args.events, 1000):
        with store.unit_of_work() as uow:
            for i in range(offset, min(offset + 1000, args.events)):
                uow.emit("customer.archived", f"c{i}", {"customer_id": f"c{i}", "owner_id": rep, "team": "bench",
                                                        "archived_at": now})
            uow.commit()
    _, received = waiter.wait()
    outbox_seconds = time.perf_counter() - started
    outbox_rate = received / outbox_seconds
    print(f"2. events outbox -> subscriber:      {outbox_rate:8.0f}/s ({received} in {outbox_seconds:.1f}s, "
          f"write + confirm-publish + consume)")
    sample = json.dumps({"specversion": "1.0", "id": "x" * 36, "source": "crm/customers",
                         "type": "crm.customer.archived", "subject": "c1", "time": now.isoformat(),
                         "dataschema": "urn:crm:event:customer.archived:v1", "dataversion": 1,
                         "datacontenttype": "application/json",
                         "data": {"customer_id": "c1", "owner_id": rep, "team": "bench", "archived_at": now.isoformat()}})
    container.stop()

    # 3. the broker's own limit: same-sized messages, confirms on, same exchange type
    raw_queue = Queue(f"bench.raw.{rep}", exchange, routing_key="bench.raw", durable=False, auto_delete=True)
    with Connection(amqp_uri) as connection:
        raw_queue(connection.default_channel).declare()
    waiter = eventlet.spawn(consume, amqp_uri, raw_queue, args.events)
    eventlet.sleep(0.5)
    started = time.perf_counter()
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = connection.Producer()
        for _ in range(args.events):
            producer.publish(sample, exchange=exchange, routing_key="bench.raw", delivery_mode=2,
                             content_type="application/json", content_encoding="utf-8")
    _, received = waiter.wait()
    raw_seconds = time.perf_counter() - started
    raw_rate = received / raw_seconds
    print(f"3. raw kombu publish+consume:        {raw_rate:8.0f}/s ({received} messages of {len(sample)} bytes)")
    print(f"   outbox path / raw broker = {outbox_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
