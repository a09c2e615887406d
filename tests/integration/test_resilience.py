"""Start before the broker, stop in the middle of work: nothing is lost either way."""
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import requests
from kombu import Connection, Exchange
from sqlalchemy import text

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET
from crm_common.db import make_engine
from crm_common.events import make_event, to_envelope
from crm_common.outbox import event_headers


PROXY = """
import socket, sys, threading
listen_port, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
server = socket.create_server(("127.0.0.1", listen_port))
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
while True:
    client, _ = server.accept()
    upstream = socket.create_connection((host, port))
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
"""


class GatedProxy:
    """A TCP port that refuses connections until opened, then forwards them to the real broker
    (a separate process, so its sockets stay out of this test's event loop)."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = None

    def open(self):
        self.process = subprocess.Popen([sys.executable, "-c", PROXY, str(self.port), *map(str, self.target)])

    def close(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def _published(infra, rep_id) -> bool:
    engine = make_engine(infra["CUSTOMERS_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            return connection.execute(text(
                "SELECT published_at IS NOT NULL FROM outbox WHERE routing_key = 'rep.registered.v1' AND subject = :rep"),
                {"rep": rep_id}).scalar() is True
    finally:
        engine.dispose()


def test_service_started_before_the_broker(start_service, infra, eventually):
    broker = urlsplit(infra["CRM_AMQP_URI"])
    proxy = GatedProxy(broker.hostname, broker.port)
    uri = f"amqp://{broker.username}:{broker.password}@127.0.0.1:{proxy.port}/"
    service = start_service("customers", wait_healthy=False, CRM_AMQP_URI=uri)
    try:
        def health():
            try:
                response = requests.get(service.base_url + "/health", timeout=5)
                return response.status_code, response.json()
            except requests.RequestException:
                return None
        status, body = eventually(health, timeout=30, message="/health answering while the broker is away")
        assert status == 503 and body["checks"]["broker"].startswith("error")
        time.sleep(3)
        assert service.process.poll() is None, service.tail()  # still waiting, not crashed
        proxy.open()
        eventually(lambda: (health() or (None,))[0] == 200, timeout=60, message="healthy once the broker is up")
        admin = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}
        assert requests.post(service.base_url + "/v1/reps", json={"id": f"late-{proxy.port}", "name": "Late"},
                             headers=admin).status_code == 201
        # published by whichever customers replica relays at the moment (the others may too)
        eventually(lambda: _published(infra, f"late-{proxy.port}"), message="the event published")
        assert service.stop() == 0
    finally:
        proxy.close()


def test_a_replica_stopped_mid_stream_loses_nothing(system, start_service, infra, eventually):
    """Reports counts every interaction: an event lost in the stop is missing from the figure, one
    applied twice (committed, then redelivered unacknowledged) is counted twice."""
    api, reports = system["customers"].base_url, system["reports"].base_url
    admin = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}
    rep = f"g{uuid.uuid4().hex[:8]}"
    assert requests.post(f"{api}/v1/reps", json={"id": rep, "name": rep, "team": rep}, headers=admin).status_code == 201
    ids = [requests.post(f"{api}/v1/customers", json={"company": f"Stream {i}", "owner_id": rep},
                         headers=admin).json()["id"] for i in range(40)]
    replica = start_service("reports")
    eventually(lambda: replica.metric("crm_event_partitions_held") > 0, timeout=30, message="the new replica holding partitions")
    now = datetime.now(timezone.utc)
    window = {"period_kind": "month", "from": (now - timedelta(days=40)).strftime("%Y-%m"),
              "to": now.strftime("%Y-%m"), "rep": rep}

    def counted():
        rows = requests.get(f"{reports}/v1/reports/interactions", params=window, headers=admin).json()["rows"]
        return sum(row["interactions"] for row in rows)
    total = 6000
    exchange = Exchange("crm.events", type="topic", durable=True)
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        producer = connection.Producer()
        for n in range(total):
            customer_id = ids[n % len(ids)]
            event = make_event("interaction.logged", customer_id, {
                "interaction_id": uuid.uuid4().hex, "customer_id": customer_id, "rep_id": rep, "kind": "call",
                "phase": "pre_sale", "occurred_at": now - timedelta(days=n % 30, minutes=n), "outcome": "reached"},
                source="crm/test")
            producer.publish(to_envelope(event), exchange=exchange, routing_key="interaction.logged.v1",
                             serializer="json", delivery_mode=2, headers=event_headers(customer_id, None))
    # stopped with work in flight: it has applied some, and some are still to be counted (in the queues,
    # ready or prefetched by a replica)
    eventually(lambda: replica.metric("crm_events_consumed_total", 'outcome="applied"',
                                       'routing_key="interaction.logged.v1"'), interval=0.05, message="the replica applying some")
    assert counted() < total
    assert replica.stop() == 0  # SIGTERM, as Kubernetes sends it
    eventually(lambda: counted() >= total, timeout=120, message="every interaction counted")
    time.sleep(2)  # redeliveries of what the stopped replica committed but had not acknowledged
    assert counted() == total

