"""Who a token's holder is now: every request's principal checked against the reps directory.

A token says who signed in and with what role; the directory says whether that person still works here and
in which role and team. Each service keeps its own copy of the directory (customers owns it; the others
build theirs from rep.registered / rep.updated), so the check needs no other service: a deactivated rep is
refused (401) as soon as the event reaches the service (a second's cache aside), and a manager moved to
another team sees the new team's data with the same token.
"""
from __future__ import annotations

import time

import eventlet
from sqlalchemy import Table, select

from crm_common.auth import Principal
from crm_common.errors import Unauthorized

CACHE_SECONDS = 1.0
# a rep registered a moment ago may not have reached this service's copy yet: look again before refusing
WAIT_FOR_NEWCOMER_SECONDS = 2.0


class Directory:
    """``check(principal)`` -> the principal as the directory has it now, or Unauthorized."""

    def __init__(self, session_factory, table: Table, id_column: str, cache_seconds: float = CACHE_SECONDS,
                 wait_seconds: float = WAIT_FOR_NEWCOMER_SECONDS):
        self.session_factory = session_factory
        self.table, self.id_column = table, table.c[id_column]
        self.cache_seconds, self.wait_seconds = cache_seconds, wait_seconds
        self._cache: dict[str, tuple[float, tuple | None]] = {}

    def _entry(self, user_id: str):
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        with self.session_factory() as session:
            row = session.execute(select(self.table.c.role, self.table.c.team, self.table.c.active)
                                  .where(self.id_column == user_id)).first()
        entry = tuple(row) if row is not None else None
        if entry is not None:  # an unknown user is not cached: the registration may be on its way
            self._cache[user_id] = (now, entry)
        if len(self._cache) > 100_000:
            self._cache.clear()
        return entry

    def check(self, principal: Principal) -> Principal:
        entry = self._entry(principal.user_id)
        deadline = time.monotonic() + self.wait_seconds
        while entry is None and time.monotonic() < deadline:
            eventlet.sleep(0.1)
            entry = self._entry(principal.user_id)
        if entry is None:
            raise Unauthorized(f"{principal.user_id} is not in the reps directory; an admin registers users "
                               "(POST /v1/reps), service accounts too")
        role, team, active = entry
        if not active:
            raise Unauthorized(f"{principal.user_id} is deactivated")
        return Principal(user_id=principal.user_id, role=role or principal.role, team=team)
