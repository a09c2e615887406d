"""Run services: each in its own process (distributed) or all four in one (embedded)."""
from __future__ import annotations

import importlib
import logging
import signal

import eventlet
from nameko.containers import ServiceContainer

from crm_common import memory_transport
from crm_common.config import SERVICES, database_url, env, nameko_config
from crm_common.migrations import upgrade

log = logging.getLogger("crm")

SERVICE_CLASSES = {
    "customers": "services.customers.service:CustomersService",
    "followups": "services.followups.service:FollowupsService",
    "alerts": "services.alerts.service:AlertsService",
    "reports": "services.reports.service:ReportsService",
}


def service_class(name: str):
    module, _, attr = SERVICE_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def migrate(name: str, url: str | None = None) -> None:
    upgrade(name, url or database_url(name))


def bootstrap_admin(user_id: str, url: str | None = None, password: str | None = None) -> bool:
    """Register the first admin in the customers database (its outbox tells the other services), and set their
    sign-in password when one is given."""
    from datetime import datetime, timezone

    from sqlalchemy.orm import sessionmaker

    from crm_common.db import UnitOfWork, make_engine
    from services.customers import commands, models
    from services.customers.commands import signin

    engine = make_engine(url or database_url("customers"))
    try:
        with UnitOfWork(sessionmaker(bind=engine, expire_on_commit=False), models.infrastructure, "customers") as uow:
            created = commands.ensure_admin(uow, user_id, datetime.now(timezone.utc))
            if password is not None:
                signin.store_password(uow, user_id, password, changed_by="cli", now=datetime.now(timezone.utc))
            uow.commit()
        return created
    finally:
        engine.dispose()


class Runner:
    """Starts containers, stops them gracefully on SIGTERM/SIGINT (in-flight work finishes)."""

    def __init__(self, configs: dict[str, dict], after_start=None):
        self.containers = [ServiceContainer(service_class(name), config) for name, config in configs.items()]
        self._stopped = eventlet.event.Event()
        self._after_start = after_start

    def start(self) -> None:
        for container in self.containers:
            container.start()
        if self._after_start:
            self._after_start()

    def stop(self) -> None:
        # the last started is stopped first: in embedded mode it shares the first one's HTTP socket
        for container in reversed(self.containers):
            container.stop()
        if not self._stopped.ready():
            self._stopped.send(None)

    def wait(self) -> None:
        def on_signal(signum, frame):
            log.info("signal %s: stopping gracefully", signum)
            eventlet.spawn_n(self.stop)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        waiters = [eventlet.spawn(c.wait) for c in self.containers]
        self._stopped.wait()
        for waiter in waiters:
            waiter.kill()


def distributed(name: str) -> Runner:
    return Runner({name: nameko_config(name)})


def embedded(data_dir: str, port: int, frozen_time: str | None = None) -> Runner:
    """All services in this process on the in-memory bus, SQLite under data_dir, one HTTP port."""
    memory_transport.install()
    configs = {}
    for name in SERVICES:
        url = f"sqlite:///{data_dir}/{name}.db"
        migrate(name, url)
        configs[name] = nameko_config(name, {
            "AMQP_URI": "memory://", "DATABASE_URL": url, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
            "SHARED_HTTP_SERVER": True, "OUTBOX_POLL_SECONDS": 0.5,
            **({"FROZEN_TIME": frozen_time} if frozen_time else {}),
        })
    # embedded mode's first admin (`python -m crm token --user admin` works), registered once every service
    # listens, so that each directory hears of them
    customers_url = configs["customers"]["DATABASE_URL"]
    return Runner(configs, after_start=lambda: bootstrap_admin(env("CRM_BOOTSTRAP_ADMIN", "admin"), customers_url,
                                                               password=env("CRM_BOOTSTRAP_ADMIN_PASSWORD")))

