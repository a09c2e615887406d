"""Faults while events stream through all four services on RabbitMQ and PostgreSQL (issue 12 item 4).

The stream is CRM_FAULT_EVENTS (10,000) events: purchases committed to the customers outbox (consumed by
followups, alerts and reports) and interactions committed to the followups outbox (consumed by customers,
alerts and reports), published by the running services' own relays. Part way through, one fault: a consumer
killed with SIGKILL, the producer killed right after its commit (before or while its relay publishes),
RabbitMQ stopped and started again, PostgreSQL stopped and started again, a consumer frozen (SIGSTOP) past
its broker heartbeat and resumed. Then, with no manual step: every service answers again, and

* lost = events of the stream a consumer never applied (its processed_events lack them);
* doubled = what the additive read models count beyond the source: reports' purchases, revenue and
  interactions for the stream's rep, against the events emitted;
* customers' last_interaction_at of each customer equals the latest interaction emitted for it.

The faults come one after another in one stream, each right after another part of the stream is committed,
once the consumer it hits has begun applying it (so each meets events in flight); lost and doubled are counted over the whole stream at its end. The
table (fault, events, in flight, lost, doubled, seconds to recover) is printed at the end of the run and kept
in docs/operations.md ("Faults").
"""
import os
import signal
import subprocess
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
from sqlalchemy import bindparam, text
from sqlalchemy.orm import sessionmaker

from crm_common.auth import issue_token
from crm_common.config import DEV_SECRET
from crm_common.db import UnitOfWork, make_engine

EVENTS = int(os.environ.get("CRM_FAULT_EVENTS", "10000"))
CUSTOMERS = 40
ADMIN = {"Authorization": f"Bearer {issue_token(DEV_SECRET, 'admin', 'admin', ttl_seconds=6 * 3600)}"}
CONSUMERS = {"purchase.recorded": ("followups", "alerts", "reports"),
             "interaction.logged": ("customers", "alerts", "reports")}
RESULTS: list[dict] = []


def _infra_state(infra) -> dict:
    run_dir = infra.get("CRM_INFRA_RUN_DIR")
    assert run_dir, "the fault tests stop and start the broker and database of scripts/infra.sh: CRM_INFRA_RUN_DIR"
    with open(os.path.join(run_dir, "infra.state")) as handle:
        return dict(line.strip().split("=", 1) for line in handle if "=" in line)


def _wait(check, what, timeout=180.0, interval=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the system is recovering: not yet
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Stream:
    """One case's world (a rep, a team, customers) and the events it emits, with what each consumer applied."""

    def __init__(self, infra, system):
        self.infra, self.system = infra, system
        self.run = uuid.uuid4().hex[:8]
        self.rep, self.team = f"flt-{self.run}", f"flt-{self.run}"
        self.engines = {name: make_engine(infra[f"{name.upper()}_DATABASE_URL"])
                        for name in ("customers", "followups", "alerts", "reports")}
        self.ids: dict[str, list[str]] = {"purchase.recorded": [], "interaction.logged": []}
        self.revenue = Decimal(0)
        self.latest_touch: dict[str, datetime] = {}
        api = system["customers"].base_url
        requests.post(f"{api}/v1/reps", json={"id": self.rep, "name": self.rep, "team": self.team},
                      headers=ADMIN, timeout=30).raise_for_status()
        self.customers = []
        for n in range(CUSTOMERS):
            created = requests.post(f"{api}/v1/customers", json={"company": f"Fault {self.run} {n}",
                                                                 "owner_id": self.rep}, headers=ADMIN, timeout=30)
            created.raise_for_status()
            self.customers.append(created.json()["id"])
        # every consumer knows the customers before facts about them arrive
        _wait(lambda: all(self._applied_created(name) == CUSTOMERS for name in ("followups", "alerts", "reports")),
              "the customers known to every consumer", timeout=60)

    def _applied_created(self, service) -> int:
        with self.engines["customers"].connect() as db:
            ids = list(db.execute(text("SELECT event_id FROM outbox WHERE routing_key = 'customer.created.v1' "
                                       "AND subject IN :ids").bindparams(bindparam("ids", expanding=True)),
                                  {"ids": self.customers}).scalars())
        return self._count_processed(service, ids)

    def _count_processed(self, service, ids) -> int:
        with self.engines[service].connect() as db:
            total = 0
            for start in range(0, len(ids), 5000):
                total += db.execute(text("SELECT count(*) FROM processed_events WHERE event_id IN :ids")
                                    .bindparams(bindparam("ids", expanding=True)),
                                    {"ids": ids[start:start + 5000]}).scalar()
            return total

    def emit(self, count, producer_tables, transaction=250):
        """count events, half purchases (customers' outbox), half interactions (followups' outbox)."""
        from services.customers import models as customer_models
        from services.followups import models as followup_models
        factories = {name: sessionmaker(bind=self.engines[name], expire_on_commit=False)
                     for name in ("customers", "followups")}
        tables = {"customers": customer_models.infrastructure, "followups": followup_models.infrastructure}
        now = datetime.now(timezone.utc).replace(microsecond=0)
        purchases, touches = count // 2, count - count // 2
        for name, total in (("customers", purchases), ("followups", touches)):
            for start in range(0, total, transaction):
                with UnitOfWork(factories[name], tables[name], name) as uow:
                    for n in range(start, min(total, start + transaction)):
                        customer = self.customers[n % CUSTOMERS]
                        at = now - timedelta(days=n % 20, minutes=n % 1440)
                        if name == "customers":
                            amount = Decimal(100 + n % 50)
                            event = uow.emit("purchase.recorded", customer, {
                                "customer_id": customer, "purchase_id": f"fp-{self.run}-{n}", "amount": amount,
                                "currency": "USD", "amount_base": amount, "base_currency": "USD",
                                "purchased_at": at, "owner_id": self.rep, "team": self.team})
                            self.revenue += amount
                        else:
                            event = uow.emit("interaction.logged", customer, {
                                # unique over every emit of the run: each touch is an interaction of its own
                                "interaction_id": f"fi-{self.run}-{len(self.ids['interaction.logged'])}",
                                "customer_id": customer,
                                "rep_id": self.rep, "team": self.team, "kind": "call", "phase": "post_sale",
                                "occurred_at": at, "outcome": "reached"})
                            self.latest_touch[customer] = max(self.latest_touch.get(customer, at), at)
                        self.ids[event.name].append(event.id)
                    uow.commit()
                    if producer_tables is not None:
                        producer_tables.append(name)

    def applied(self, service) -> int:
        return sum(self._count_processed(service, self.ids[name]) for name, services in CONSUMERS.items()
                   if service in services)

    def expected(self, service) -> int:
        return sum(len(self.ids[name]) for name, services in CONSUMERS.items() if service in services)

    def settled(self) -> bool:
        return all(self.applied(service) == self.expected(service)
                   for service in ("customers", "followups", "alerts", "reports"))

    def lost(self) -> int:
        return sum(self.expected(service) - self.applied(service)
                   for service in ("customers", "followups", "alerts", "reports"))

    def report_figures(self) -> dict:
        today = datetime.now(timezone.utc).date()
        params = {"period_kind": "month", "from": (today - timedelta(days=40)).strftime("%Y-%m"),
                  "to": today.strftime("%Y-%m"), "rep": self.rep}
        base = self.system["reports"].base_url
        summary = requests.get(f"{base}/v1/reports/summary", params=params, headers=ADMIN, timeout=30)
        summary.raise_for_status()
        rows = summary.json()["rows"]
        return {"purchases": sum(row["purchases"] for row in rows),
                "revenue": sum(Decimal(str(row["revenue"])) for row in rows),
                "interactions": sum(row["interactions"] for row in rows)}

    def doubled(self) -> int:
        """Counted beyond the source (negative: missing); waits for the figures to hold still first."""
        figures = self.report_figures()
        want = {"purchases": len(self.ids["purchase.recorded"]), "revenue": self.revenue,
                "interactions": len(self.ids["interaction.logged"])}
        extra = (figures["purchases"] - want["purchases"]) + (figures["interactions"] - want["interactions"])
        assert (figures["revenue"] - want["revenue"] == 0) == (figures["purchases"] == want["purchases"]), figures
        return extra

    def last_touch_mismatches(self) -> list[str]:
        with self.engines["customers"].connect() as db:
            rows = dict(db.execute(text("SELECT id, last_interaction_at FROM customers WHERE id IN :ids")
                                   .bindparams(bindparam("ids", expanding=True)), {"ids": self.customers}).all())
        def same(a, b):
            return a is not None and abs((a.replace(tzinfo=a.tzinfo or timezone.utc) - b).total_seconds()) < 1
        return [c for c, at in self.latest_touch.items() if not same(rows.get(c), at)]

    def dispose(self):
        for engine in self.engines.values():
            engine.dispose()


def _serving(system) -> bool:
    return all(requests.get(p.base_url + "/health", timeout=5).status_code == 200 for p in system.values()) and \
        requests.get(system["customers"].base_url + "/v1/customers?limit=1", headers=ADMIN, timeout=10).ok


# ------------------------------------------------------------------ the faults

def _kill(system, start_service, name):
    def fault(stream):
        system[name].process.kill()  # SIGKILL: no shutdown, unacknowledged messages go back to the queue
        system[name].process.wait()
        time.sleep(1)
        system[name] = start_service(name)
    return fault


def _kill_producer_after_commit(system, start_service):
    """The customers process killed the moment a large commit of purchases lands in its outbox: its relay (woken
    by the commit) is publishing them or about to; the rows it had not marked are published after the restart."""
    def fault(stream):
        done = []
        worker = threading.Thread(target=stream.emit, args=(2000, done, 2000))
        worker.start()
        _wait(lambda: "customers" in done, "the producer's commit", timeout=60, interval=0.005)
        system["customers"].process.kill()
        system["customers"].process.wait()
        worker.join()
        with stream.engines["customers"].connect() as db:  # committed, not yet marked published by the relay
            stream.unpublished_at_kill = db.execute(text(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL AND event_id IN :ids")
                .bindparams(bindparam("ids", expanding=True)), {"ids": stream.ids["purchase.recorded"]}).scalar()
        system["customers"] = start_service("customers")
    return fault


def _rabbitmq_restart(infra):
    def fault(stream):
        ctl = infra["CRM_RABBITMQCTL"]
        subprocess.run([ctl, "stop_app"], check=True, capture_output=True, timeout=120)
        time.sleep(3)
        subprocess.run([ctl, "start_app"], check=True, capture_output=True, timeout=120)
    return fault


def _postgres_restart(infra):
    def fault(stream):
        data = _infra_state(infra)["PG_DATA"]
        pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl"
        stream.dispose()  # the test's own connections would hold the fast shutdown up
        subprocess.run(["runuser", "-u", "postgres", "--", pg_ctl, "-D", data, "-m", "fast", "-w", "stop"],
                       check=True, capture_output=True, timeout=120)
        time.sleep(3)
        subprocess.run(["runuser", "-u", "postgres", "--", pg_ctl, "-D", data, "-l",
                        os.path.join(os.path.dirname(data), "postgresql.log"), "-w", "start"],
                       check=True, capture_output=True, timeout=120, cwd="/")
    return fault


HEARTBEAT = 3


def _freeze(system, start_service):
    """A second reports replica with a short heartbeat shares the partitions, then is frozen past the
    heartbeat: the broker drops its connection (its unacknowledged batch goes back to the queue), its leases
    lapse and the first replica takes its partitions; resumed, it reconnects and takes its share again."""
    def fault(stream):
        replica = start_service("reports", CRM_AMQP_HEARTBEAT=str(HEARTBEAT))
        _wait(lambda: replica.metric("crm_event_partitions_held") > 0, "the second replica holding partitions", 60)
        replica.process.send_signal(signal.SIGSTOP)
        time.sleep(HEARTBEAT * 4)
        replica.process.send_signal(signal.SIGCONT)
        stream.frozen_replica = replica
    return fault


def _faults(system, start_service, infra):
    return {
        "SIGKILL customers (consumer)": _kill(system, start_service, "customers"),
        "SIGKILL followups (consumer)": _kill(system, start_service, "followups"),
        "SIGKILL alerts (consumer)": _kill(system, start_service, "alerts"),
        "SIGKILL reports (consumer)": _kill(system, start_service, "reports"),
        "SIGKILL customers after commit": _kill_producer_after_commit(system, start_service),
        "RabbitMQ stopped and started": _rabbitmq_restart(infra),
        "PostgreSQL stopped and started": _postgres_restart(infra),
        "reports frozen past heartbeat": _freeze(system, start_service),
    }


FAULTS = ["SIGKILL customers (consumer)", "SIGKILL followups (consumer)", "SIGKILL alerts (consumer)",
          "SIGKILL reports (consumer)", "SIGKILL customers after commit", "RabbitMQ stopped and started",
          "PostgreSQL stopped and started", "reports frozen past heartbeat"]
# CRM_FAULTS="name,name" runs some of them only (looking into one); the suite runs them all
SELECTED = [f for f in FAULTS if not os.environ.get("CRM_FAULTS") or f in os.environ["CRM_FAULTS"].split(",")]
AFFECTED = {"SIGKILL customers (consumer)": "customers", "SIGKILL followups (consumer)": "followups",
            "SIGKILL alerts (consumer)": "alerts", "SIGKILL reports (consumer)": "reports",
            "SIGKILL customers after commit": "followups", "RabbitMQ stopped and started": "reports",
            "PostgreSQL stopped and started": "reports", "reports frozen past heartbeat": "reports"}


def test_faults_mid_stream_lose_nothing_and_double_nothing(system, start_service, infra):
    """One stream, the faults one after another while it flows: before each, another part of the stream is
    committed, and the fault comes once the consumer it hits has begun applying that part (so it meets events
    in flight); after each, the system serves and that consumer applies again. At the end the whole stream is
    compared with the read models."""
    faults = _faults(system, start_service, infra)
    stream = Stream(infra, system)
    rows = []
    own_commit = 2000 if "SIGKILL customers after commit" in SELECTED else 0  # what the producer's fault commits
    parts = len(SELECTED) - ("SIGKILL customers after commit" in SELECTED)
    try:
        for number, fault in enumerate(SELECTED):
            affected = AFFECTED[fault]
            before = stream.applied(affected)
            if fault != "SIGKILL customers after commit":
                stream.emit((EVENTS - own_commit) // parts + (number == 0) * ((EVENTS - own_commit) % parts), None)
                _wait(lambda: stream.applied(affected) > before, f"{affected} applying before {fault}", 120, 0.02)
            in_flight = stream.expected(affected) - stream.applied(affected)  # committed, not applied yet
            started = time.monotonic()
            faults[fault](stream)
            in_flight = getattr(stream, "unpublished_at_kill", None) or in_flight
            stream.unpublished_at_kill = None
            if fault.startswith("PostgreSQL"):
                stream.engines = {name: make_engine(infra[f"{name.upper()}_DATABASE_URL"]) for name in stream.engines}
            _wait(lambda: _serving(system), f"every service serving again after {fault}", 120)
            try:
                _wait(stream.settled, f"every event so far applied by every consumer after {fault}", 180, 0.25)
            except AssertionError:
                pass  # counted as lost below
            recovered = time.monotonic() - started
            time.sleep(1)  # redeliveries of what was committed but not acknowledged would land now
            rows.append({"fault": fault, "events": sum(map(len, stream.ids.values())), "in_flight": in_flight,
                         "lost": stream.lost(), "doubled": stream.doubled(), "recover_s": recovered})
        RESULTS.extend(rows)
        assert [(r["fault"], r["lost"], r["doubled"]) for r in rows] == [(f, 0, 0) for f in SELECTED]
        assert rows[-1]["events"] == EVENTS
        assert stream.last_touch_mismatches() == []
    finally:
        replica = getattr(stream, "frozen_replica", None)
        if replica is not None:
            replica.stop()
        stream.dispose()


@pytest.fixture(scope="module", autouse=True)
def print_table(request):
    yield
    if not RESULTS:
        return
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    lines = ["", f"{'fault':<34} {'events':>6} {'in flight':>9} {'lost':>5} {'doubled':>7} {'seconds to recover':>18}"]
    lines += [f"{r['fault']:<34} {r['events']:>6} {r['in_flight']:>9} {r['lost']:>5} {r['doubled']:>7} "
              f"{r['recover_s']:>18.1f}" for r in RESULTS]
    with capture.global_and_fixture_disabled():  # shown in every run, not only when the test fails
        print("\n".join(lines), flush=True)
