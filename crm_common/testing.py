"""Helpers for tests of any service: a real SQLite unit of work and a look into its outbox."""
from __future__ import annotations

import json

from sqlalchemy import MetaData, select
from sqlalchemy.orm import sessionmaker

from crm_common.db import Transactions, UnitOfWork, make_engine
from crm_common.events import from_envelope


class InMemoryStore(Transactions):
    """Stands in for the Store dependency in worker_factory: same UnitOfWork, SQLite file (or a
    database URL), no relay."""

    def __init__(self, metadata: MetaData, tables: dict, service: str, path: str):
        self.engine = make_engine(path if "://" in path else f"sqlite:///{path}")
        metadata.create_all(self.engine)
        self.tables = tables
        self.service = service
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, self.tables, self.service)

    def events(self, name: str | None = None) -> list:
        """Events committed to the outbox, oldest first, as consumers would receive them."""
        outbox = self.tables["outbox"]
        with self.session_factory() as session:
            bodies = session.execute(select(outbox.c.body).order_by(outbox.c.id)).scalars().all()
        events = [from_envelope(json.loads(body)) for body in bodies]
        return [e for e in events if name is None or e.name == name]


def api_request(principal, method: str = "GET", json=None, query=None):
    """A request as an @api entrypoint receives it, already authenticated as principal."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    request = Request(EnvironBuilder(method=method, json=json, query_string=query).get_environ())
    request.principal = principal
    return request
