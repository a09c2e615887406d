"""Each service's audit log, read back: who changed what and when, newest first (admins only).

Every service writes its own changes (and the tokens it refused) to its own ``audit_log``; each serves it at
``GET /v1/audit/<service>``, and the console merges the four. Filters by entity, entity id, actor and action,
a time window, and a cursor (the id of the last entry of the previous page).
"""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from crm_common.contracts.fields import Timestamp
from crm_common.db import utc


MAX_CURSOR = 10 ** 12 - 1  # audit ids; a bound so junk is refused, not answered with an empty page


class AuditQuery(Schema):
    class Meta:
        unknown = RAISE

    entity = fields.String(validate=validate.Length(min=1, max=32))
    entity_id = fields.String(validate=validate.Length(min=1, max=64))
    actor_id = fields.String(validate=validate.Length(min=1, max=64))
    action = fields.String(validate=validate.Length(min=1, max=64))
    since = Timestamp()
    until = Timestamp()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    cursor = fields.Integer(validate=validate.Range(min=1, max=MAX_CURSOR))


def audit_page(uow, actor, audit_table, args: dict) -> dict:
    actor.require("admin")
    params = AuditQuery().load(args)
    query = select(audit_table)
    for name in ("entity", "entity_id", "actor_id", "action"):
        if name in params:
            query = query.where(audit_table.c[name] == params[name])
    if "since" in params:
        query = query.where(audit_table.c.at >= params["since"])
    if "until" in params:
        query = query.where(audit_table.c.at < params["until"])
    if "cursor" in params:
        query = query.where(audit_table.c.id < params["cursor"])
    rows = uow.session.execute(query.order_by(audit_table.c.id.desc()).limit(params["limit"] + 1)).all()
    page = rows[:params["limit"]]
    return {"items": [{"id": r.id, "at": utc(r.at), "actor_id": r.actor_id, "actor_role": r.actor_role,
                       "action": r.action, "entity": r.entity, "entity_id": r.entity_id, "changes": r.changes}
                      for r in page],
            "next_cursor": page[-1].id if len(rows) > params["limit"] else None}
