"""Helpers shared by the bench scripts (import as ``from bench.benchlib import ...``).

Only interfaces meant to stay put while the services' internals change: the migrations, the service
classes' entrypoints (or a service's CONSUMES table), the tables a service's models declare, the broker
(plain AMQP), ``python -m crm serve`` and /health/live, scripts/infra.sh.
"""
from __future__ import annotations

import importlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from urllib.parse import unquote, urlsplit

import amqp
from sqlalchemy import MetaData, func, inspect, select

from crm_common.auth import issue_token
from crm_common.db import add_infrastructure_tables, make_engine, utc
from crm_common.events import EVENTS_EXCHANGE, definition
from crm_common.migrations import upgrade

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSED = add_infrastructure_tables(MetaData())["processed_events"]  # the same in every service's database


def migrate(service: str, url: str) -> list[str]:
    """The service's schema at head. Tables its models declare that no migration creates yet (the code is
    ahead of its migrations, mid-change) are created from the models and returned, so a bench still runs;
    callers print and record them."""
    upgrade(service, url)
    metadata = importlib.import_module(f"services.{service}.models").metadata
    engine = make_engine(url, pool_size=1)
    try:
        missing = sorted(set(metadata.tables) - set(inspect(engine).get_table_names()))
        if missing:
            metadata.create_all(engine, tables=[metadata.tables[name] for name in missing])
            print(f"  NOTE {service}: no migration creates {', '.join(missing)}; created from the models")
        return missing
    finally:
        engine.dispose()


def _entrypoints(service_cls):
    for attr in dir(service_cls):
        for entrypoint in getattr(getattr(service_cls, attr, None), "nameko_entrypoints", ()):
            yield attr, entrypoint


def batch_consumer(service_cls) -> tuple[str, object]:
    """(method name, consumed-events table) of the service's batch entrypoint (``@consume(CONSUMES)``)."""
    return next((attr, entrypoint.table) for attr, entrypoint in _entrypoints(service_cls)
                if hasattr(entrypoint, "table"))


def consumed_events(service: str) -> set[str]:
    """The event names a service applies: its CONSUMES table."""
    from crm import runner
    return set(batch_consumer(runner.service_class(service))[1].handlers)


def write_json(path: str | None, figures: dict) -> None:
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as handle:
            json.dump(figures, handle, indent=2, default=str)
        print(f"figures written to {path}")


# ------------------------------------------------------------------ a real broker, services as processes

def broker(uri: str):
    """A plain py-amqp connection (no kombu, no eventlet): what the broker does at its best."""
    url = urlsplit(uri)
    connection = amqp.Connection(host=f"{url.hostname}:{url.port or 5672}", userid=unquote(url.username or "guest"),
                                 password=unquote(url.password or "guest"), virtual_host=unquote(url.path[1:]) or "/")
    connection.connect()
    return connection


def publish_confirmed(connection, messages, window: int = 1000) -> float:
    """Publish (routing key, body, properties) persistently on crm.events, pipelined: at most `window`
    unconfirmed at a time. Returns the seconds until the broker confirmed the last one."""
    channel = connection.channel()
    channel.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True, auto_delete=False)
    channel.confirm_select()
    pending, nacked = set(), []

    def settle(tag, multiple, refused=False):  # confirms may come out of order when queues differ
        done = {t for t in pending if t <= tag} if multiple else {tag}
        pending.difference_update(done)
        if refused:
            nacked.extend(done)

    channel.events["basic_ack"].add(settle)
    channel.events["basic_nack"].add(lambda tag, multiple: settle(tag, multiple, True))
    started = time.perf_counter()
    for tag, (routing_key, body, properties) in enumerate(messages, 1):
        channel.basic_publish(amqp.Message(body, delivery_mode=2, content_type="application/json", **properties),
                              exchange=EVENTS_EXCHANGE, routing_key=routing_key)
        pending.add(tag)
        while len(pending) >= window:
            connection.drain_events(timeout=30)
    while pending:
        connection.drain_events(timeout=30)
    seconds = time.perf_counter() - started
    channel.close()
    if nacked:
        raise RuntimeError(f"the broker refused {len(nacked)} messages")
    return seconds


def consume_all(connection, queue: str, count: int, prefetch: int = 500, ack_every: int = 250) -> float:
    """Consume `count` messages with a prefetch window, acking `ack_every` at once (multiple); returns seconds."""
    channel, got = connection.channel(), [0]
    channel.basic_qos(0, prefetch, False)

    def on_message(message):
        got[0] += 1
        if got[0] % ack_every == 0 or got[0] == count:
            channel.basic_ack(message.delivery_tag, multiple=True)

    started = time.perf_counter()
    channel.basic_consume(queue, callback=on_message)
    while got[0] < count:
        connection.drain_events(timeout=30)
    seconds = time.perf_counter() - started
    channel.close()
    return seconds


def bind_queue(connection, queue: str, routing_key: str):
    """A durable, empty queue bound to crm.events; returns the channel that declared it."""
    channel = connection.channel()
    channel.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True, auto_delete=False)
    channel.queue_declare(queue, durable=True, auto_delete=False)
    channel.queue_bind(queue, EVENTS_EXCHANGE, routing_key)
    channel.queue_purge(queue)
    return channel


def queue_depth(connection, queue: str) -> int | None:
    """Messages ready in a queue; None when there is no such queue."""
    channel = connection.channel()
    try:
        return channel.queue_declare(queue, passive=True).message_count
    except amqp.exceptions.NotFound:
        return None
    finally:
        if channel.is_open:
            channel.close()


@contextmanager
def private_infra(run_dir: str):
    """CRM_AMQP_URI and the database URLs of the environment, or else a private RabbitMQ + PostgreSQL
    (scripts/infra.sh start RUN_DIR, its env.sh loaded into os.environ), stopped on the way out."""
    if os.environ.get("CRM_AMQP_URI"):
        yield False
        return
    infra = os.path.join(ROOT, "scripts", "infra.sh")
    print(f"starting a private RabbitMQ + PostgreSQL in {run_dir}")
    try:
        subprocess.run([infra, "start", run_dir], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(run_dir, "env.sh")) as handle:
            for line in handle:
                if line.startswith("export ") and "=" in line and "$" not in line:
                    key, _, value = line[len("export "):].strip().partition("=")
                    os.environ[key] = shlex.split(value)[0] if value else ""
        yield True
    finally:
        subprocess.run([infra, "stop", run_dir], stdout=subprocess.DEVNULL)


def start_service(name: str, run_dir: str, environ: dict | None = None):
    """``python -m crm serve NAME`` on a free port (log in RUN_DIR/NAME.log), once /health/live answers:
    returns (process, base URL)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = os.path.join(run_dir, f"{name}.log")
    # bench tokens are signed with CRM_AUTH_SECRET or the development secret (allowed here, refused by default)
    environ = {**os.environ, f"{name.upper()}_HTTP_ADDRESS": f"127.0.0.1:{port}", "CRM_ALLOW_DEV_SECRET": "1",
               **(environ or {})}
    with open(log, "ab") as output:
        process = subprocess.Popen([sys.executable, "-m", "crm", "serve", name], cwd=ROOT, env=environ,
                                   stdout=output, stderr=subprocess.STDOUT)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health/live", timeout=2):
                pass
            # the benchmarks' admin, announced again now that this service listens (every request's principal is
            # checked against the reps directory); customers' database is the one named by the environment
            subprocess.run([sys.executable, "-m", "crm", "admin", "--user", "admin"], cwd=ROOT, env=environ,
                           check=False, stdout=subprocess.DEVNULL)
            return process, base
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_service(process)
                raise RuntimeError(f"{name} did not come up; see {log}") from None
            time.sleep(0.3)


def unbind_service(uri: str, name: str, consumed) -> None:
    """Cut a stopped service off crm.events (the v2 inbound exchange, the v1 per-event queues), so later events
    are not copied into its queues."""
    connection = broker(uri)
    for routing_key in [None] + [definition(n).routing_key for n in consumed]:
        channel = connection.channel()
        try:
            if routing_key is None:
                channel.exchange_delete(f"crm.{name}.inbound")
            else:
                channel.queue_delete(f"{name}.{routing_key}")
        except amqp.exceptions.AMQPError:
            pass
    connection.close()


def applied(engine, where=None) -> tuple[int, datetime | None]:
    """(count, last processed_at) of the events a service applied (its processed_events), optionally only
    those matching `where` (a clause on PROCESSED)."""
    query = select(func.count(), func.max(PROCESSED.c.processed_at))
    with engine.connect() as conn:
        count, last = conn.execute(query if where is None else query.where(where)).one()
    return count, utc(last)


def wait_applied(engine, expected: int, where=None, baseline: int = 0, stall: float = 60):
    """(applied, last processed_at) once `expected` more events (matching `where`) are applied, or when nothing
    moved for `stall` seconds."""
    done, last, moved = 0, None, time.monotonic()
    while done < expected and time.monotonic() - moved < stall:
        time.sleep(0.25)
        count, last = applied(engine, where)
        if count - baseline != done:
            done, moved = count - baseline, time.monotonic()
    return done, last


def create_customers(base: str, count: int, secret: str) -> list[str]:
    """`count` customers created through the customers API (one new rep owns them); their ids."""
    headers = {"Authorization": f"Bearer {issue_token(secret, 'admin', 'admin')}",
               "Content-Type": "application/json"}

    def post(path, body):
        request = urllib.request.Request(base + path, json.dumps(body).encode(), headers, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    rep = f"rep-bench-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    post("/v1/reps", {"id": rep, "name": "Bench Rep", "team": "team-0"})
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda n: post("/v1/customers", {"company": f"Bench {n}", "owner_id": rep})["id"],
                             range(count)))


def stop_service(process) -> None:
    """SIGTERM (a graceful stop), SIGKILL after 30 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
