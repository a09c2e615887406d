"""Who a token's holder is now: every request's principal checked against the reps directory.

A token says who signed in and with what role; the directory says whether that person still works here and
in which role and team. Each service keeps its own copy of the directory (customers owns it; the others
build theirs from rep.registered / rep.updated), so the check needs no other service: a deactivated rep is
refused (401) as soon as the event reaches the service (a second's cache aside), and a manager moved to
another team sees the new team's data with the same token. A directory entry's ``tokens_valid_after``
(set when a password changes or an admin signs a user out everywhere) revokes every token issued before it.

Refused tokens are written to the service's audit log, at most once a minute per reason and user, so a
flood of bad tokens costs no more than a handful of rows.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import eventlet
from sqlalchemy import Table, insert, select

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.errors import Unauthorized

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0
AUDIT_REFUSALS_EVERY_SECONDS = 60.0
# a rep registered a moment ago may not have reached this service's copy yet: look again before refusing
WAIT_FOR_NEWCOMER_SECONDS = 2.0


class Directory:
    """``check(principal)`` -> the principal as the directory has it now, or Unauthorized."""

    def __init__(self, session_factory, table: Table, id_column: str, cache_seconds: float = CACHE_SECONDS,
                 wait_seconds: float = WAIT_FOR_NEWCOMER_SECONDS, audit_table: Table | None = None):
        self.session_factory = session_factory
        self.table, self.id_column = table, table.c[id_column]
        self.cache_seconds, self.wait_seconds = cache_seconds, wait_seconds
        self.audit_table = audit_table
        self._cache: dict[str, tuple[float, tuple | None]] = {}
        self._audited: dict[tuple, float] = {}

    def _entry(self, user_id: str):
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        with self.session_factory() as session:
            row = session.execute(select(self.table.c.role, self.table.c.team, self.table.c.active,
                                         self.table.c.tokens_valid_after)
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
                               "(POST /v1/reps), service accounts too", reason="unknown_user",
                               subject=principal.user_id)
        role, team, active, valid_after = entry
        if not active:
            raise Unauthorized(f"{principal.user_id} is deactivated", reason="deactivated", subject=principal.user_id)
        if valid_after is not None and principal.issued_at is not None and principal.issued_at < utc(valid_after).timestamp():
            raise Unauthorized("token revoked (signed out everywhere or password changed); sign in again",
                               reason="revoked", subject=principal.user_id)
        return Principal(user_id=principal.user_id, role=role or principal.role, team=team,
                         issued_at=principal.issued_at)

    def record_refusal(self, error: Unauthorized, route: str, remote: str | None) -> None:
        """The refused request in the audit log, throttled per (reason, user); never fails the answer."""
        if self.audit_table is None:
            return
        key, now = (error.reason, error.subject), time.monotonic()
        if now - self._audited.get(key, -AUDIT_REFUSALS_EVERY_SECONDS) < AUDIT_REFUSALS_EVERY_SECONDS:
            return
        self._audited[key] = now
        if len(self._audited) > 10_000:
            self._audited.clear()
        try:
            with self.session_factory() as session:
                session.execute(insert(self.audit_table).values(
                    at=datetime.now(timezone.utc), actor_id=(error.subject or "anonymous")[:64], actor_role="none",
                    action="auth.refused", entity="token", entity_id=(error.subject or "-")[:64],
                    changes={"reason": error.reason, "route": route, "remote": remote}))
                session.commit()
        except Exception:  # the database being away must not turn a 401 into a 500
            log.warning("could not audit a refused token", exc_info=True)
