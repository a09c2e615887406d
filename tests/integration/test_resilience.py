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
    api = system["customers"].base_url
    admin = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin')}"}
    rep = f"g{uuid.uuid4().hex[:8]}"
    assert requests.post(f"{api}/v1/reps", json={"id": rep, "name": rep, "team": rep}, headers=admin).status_code == 201
    ids = [requests.post(f"{api}/v1/customers", json={"company": f"Stream {i}", "owner_id": rep},
                         headers=admin).json()["id"] for i in range(100)]
    replica = start_service("customers")
    touched = datetime.now(timezone.utc) - timedelta(minutes=1)
    exchange = Exchange("crm.events", type="topic", durable=True)
    with Connection(infra["CRM_AMQP_URI"]) as connection:
        producer = connection.Producer()
        for customer_id in ids:
            event = make_event("interaction.logged", customer_id, {
                "interaction_id": uuid.uuid4().hex, "customer_id": customer_id, "rep_id": rep, "kind": "call",
                "phase": "pre_sale", "occurred_at": touched, "outcome": "reached"}, source="crm/test")
            producer.publish(to_envelope(event), exchange=exchange, routing_key="interaction.logged.v1",
                             serializer="json", delivery_mode=2)
    time.sleep(0.3)
    assert replica.stop() == 0  # SIGTERM while the queue is still being worked through
    remaining = set(ids)

    def all_applied():
        for customer_id in list(remaining):
            if requests.get(f"{api}/v1/customers/{customer_id}", headers=admin).json()["last_interaction_at"]:
                remaining.discard(customer_id)
        return not remaining
    eventually(all_applied, timeout=60, message="every event applied by the remaining replica")
