"""One batch of an import's rows applied: each row through the same use case and schema as the API, in its own
savepoint, so a bad row is reported (row, column, value, reason) and the rest of the batch still goes in.

Customers and purchases are this service's own facts. Interactions belong to the followups service: their
customers and reps are resolved here, then followups applies them (RPC, it answers per row), and the report
is written here. Every row has a key (external id, invoice number, or one made from its content): seen twice
in one file it is a duplicate; found already stored, the row is unchanged, so importing a file again changes
nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from sqlalchemy import func, insert, select

from crm_common.auth import Principal
from crm_common.errors import CrmError
from services.customers import classifier, commands, schemas
from services.customers.domain import imports as rules
from services.customers.domain import ClassificationPolicy
from services.customers.models import customers, import_keys, import_rejections, purchases, reps, stage_history

# where the API's field names point back to the file's columns
API_TO_COLUMN = {"owner_id": "owner", "external_ref": "invoice_ref", "contacts": "contact_name",
                 "name": "contact_name", "role": "contact_role", "phone": "contact_phone", "email": "contact_email",
                 "is_decision_maker": "contact_is_decision_maker", "important_dates": "birthday",
                 "customer_id": "customer", "rep_id": "rep", "body": "customer"}


@dataclass
class Context:
    job_id: str
    kind: str
    dry_run: bool
    zone: ZoneInfo
    policy: ClassificationPolicy
    actor: Principal
    headers: dict          # field -> the header the file gives it
    followups: object      # RPC proxy: import_interactions(actor, rows, dry_run)


class Rejected(Exception):
    def __init__(self, problems: list[rules.Problem]):
        self.problems = problems


def prepare(store, context: Context, batch, now: datetime):
    """Work done outside the batch's transaction: only interactions, which another service applies."""
    if context.kind != "interactions":
        return None
    resolved = store.run(_resolve_interactions, context, batch, now)
    sendable = [r for r in resolved if "body" in r]
    answers = context.followups.import_interactions(
        {"user_id": context.actor.user_id, "role": context.actor.role, "team": context.actor.team},
        [r["body"] for r in sendable], context.dry_run) if sendable else []
    for item, answer in zip(sendable, answers):
        item.update(answer)
    return resolved


def apply(uow, context: Context, batch, prepared, now: datetime) -> dict:
    """The batch's rows applied (or, interactions, their answers recorded) in this transaction; counts."""
    counts = {"imported": 0, "unchanged": 0, "rejected": 0}
    touched: dict[str, datetime] = {}  # customer id -> its earliest purchase imported in this batch
    for index, (number, cells) in enumerate(batch):
        row = rules.RowReader(cells)
        try:
            if context.kind == "interactions":
                outcome = _recorded_interaction(uow, context, number, prepared[index])
            else:
                apply_row = {"customers": _customer_row, "purchases": _purchase_row, "stages": _stage_row}[context.kind]
                outcome = apply_row(uow, context, number, row, now, touched)
        except Rejected as exc:
            _reject(uow, context, number, exc.problems)
            outcome = "rejected"
        counts[outcome] += 1
    if touched and not context.dry_run:
        rows = uow.session.execute(select(customers).where(customers.c.id.in_(list(touched)))
                                   .order_by(customers.c.id)).all()
        classifier.reclassify_rows(uow, rows, now, context.policy, "imported", touched)
    return counts


def _reject(uow, context: Context, number: int, problems: list[rules.Problem]) -> None:
    uow.session.execute(insert(import_rejections), [
        {"job_id": context.job_id, "row": number, "column": context.headers.get(p.field, p.field),
         "value": p.value[:2000], "reason": p.reason[:2000]} for p in problems])


def _check(row: rules.RowReader) -> None:
    if row.problems:
        raise Rejected(row.problems)


def _use_case(uow, context: Context, row: rules.RowReader, schema, body: dict, call):
    """The body validated by the API's schema, then the use case in a savepoint (undone in a dry run); what
    either refuses becomes the row's report."""
    try:
        data = schema().load(body)
        with uow.savepoint(keep=not context.dry_run):
            return call(data)
    except ValidationError as exc:
        raise Rejected([rules.Problem(_column(path), _shown(row, _column(path)), _message(msg))
                        for path, msg in _flatten(exc.messages)]) from None
    except CrmError as exc:
        field = _column(exc.field or "body")
        raise Rejected([rules.Problem(field, _shown(row, field), exc.message)]) from None


def _seen(uow, context: Context, key: str, number: int, field: str, row: rules.RowReader) -> None:
    """Remember the row's key for this job; a key already seen names the row that had it first."""
    first = uow.session.execute(select(import_keys.c.row).where(
        import_keys.c.job_id == context.job_id, import_keys.c.key == key)).scalar()
    if first is not None:
        raise Rejected([rules.Problem(field, _shown(row, field), f"the same as row {first} of this file")])
    uow.session.execute(insert(import_keys).values(job_id=context.job_id, key=key[:200], row=number))


def _occurrences(uow, context: Context, key: str) -> int:
    """How often this job has seen the key (stored as key, key#2, key#3, ...): exact lookups on the primary key, a
    hundred at a time, since a prefix LIKE cannot use the index under a non-C collation."""
    seen, step = 0, 100
    while True:
        candidates = [key if n == 1 else f"{key}#{n}" for n in range(seen + 1, seen + step + 1)]
        found = uow.session.execute(select(func.count()).select_from(import_keys).where(
            import_keys.c.job_id == context.job_id, import_keys.c.key.in_(candidates))).scalar()
        seen += found
        if found < step:
            return seen


def _occurrence(uow, context: Context, key: str, number: int) -> str:
    """A key made from a row's content, numbered when the file has the same row again (two equal purchases)."""
    count = _occurrences(uow, context, key)
    numbered = key if not count else f"{key}#{count + 1}"
    uow.session.execute(insert(import_keys).values(job_id=context.job_id, key=numbered, row=number))
    return numbered


# ---------------------------------------------------------------- customers

def _customer_row(uow, context: Context, number: int, row: rules.RowReader, now: datetime, touched) -> str:
    external_id = row.get("external_id", required=True)
    body = rules.customer_body(row, context.zone)
    owner = _rep(uow, row, "owner")
    _check(row)
    _seen(uow, context, f"customer:{external_id}", number, "external_id", row)
    existing = uow.session.execute(select(customers.c.owner_id, customers.c.team).where(
        customers.c.external_id == external_id)).first()
    if existing is not None:
        if not context.actor.can_see(existing.owner_id, existing.team):
            raise Rejected([rules.Problem("external_id", external_id, "in use by a customer outside your scope")])
        return "unchanged"
    body.update(external_id=external_id, owner_id=owner)
    if row.has("team"):
        body["team"] = row.get("team")
    _use_case(uow, context, row, schemas.CustomerCreateSchema, body,
              lambda data: commands.create_customer(uow, context.actor, data, now, context.policy))
    return "imported"


def _rep(uow, row: rules.RowReader, field: str) -> str | None:
    """A rep named by id or e-mail, as in the directory; a problem on the row when nobody is."""
    named = row.get(field)
    if not named:
        return None
    found = uow.session.execute(select(reps.c.id).where(reps.c.id == named)).scalar() or \
        uow.session.execute(select(reps.c.id).where(func.lower(reps.c.email) == named.lower())).scalar()
    if found is None:
        row.fail(field, f"no rep with id or e-mail {named} in the directory")
    return found


# ---------------------------------------------------------------- purchases

def _customer_by_external_id(uow, context: Context, row: rules.RowReader):
    external_id = row.get("customer", required=True)
    if not external_id:
        return None
    found = uow.session.execute(select(customers.c.id, customers.c.owner_id, customers.c.team).where(
        customers.c.external_id == external_id)).first()
    if found is None or not context.actor.can_see(found.owner_id, found.team):
        row.fail("customer", f"no customer with external id {external_id} (import the customers file first)")
        return None
    return found


def _purchase_row(uow, context: Context, number: int, row: rules.RowReader, now: datetime, touched) -> str:
    customer = _customer_by_external_id(uow, context, row)
    body = rules.purchase_body(row, context.zone, context.policy.base_currency)
    _check(row)
    if row.has("invoice_ref"):
        _seen(uow, context, f"purchase:{customer.id}:{body['external_ref']}", number, "invoice_ref", row)
    else:
        body["external_ref"] = _occurrence(uow, context, body["external_ref"], number)
    if uow.session.execute(select(purchases.c.id).where(
            purchases.c.customer_id == customer.id, purchases.c.external_ref == body["external_ref"])).first():
        return "unchanged"
    purchase = _use_case(uow, context, row, schemas.PurchaseSchema, body, lambda data: commands.record_purchase(
        uow, context.actor, customer.id, data, now, context.policy, reclassify_after=False))
    touched[customer.id] = min(touched.get(customer.id, purchase["purchased_at"]), purchase["purchased_at"])
    return "imported"


# ---------------------------------------------------------------- pipeline moves

def _stage_row(uow, context: Context, number: int, row: rules.RowReader, now: datetime, touched) -> str:
    customer = _customer_by_external_id(uow, context, row)
    body = rules.stage_body(row, context.zone)
    _check(row)
    _seen(uow, context, f"stage:{customer.id}:{body['stage']}:{body['changed_at']}", number, "stage", row)

    def move(data: dict) -> str:
        if uow.session.execute(select(stage_history.c.id).where(
                stage_history.c.customer_id == customer.id, stage_history.c.to_stage == data["stage"],
                stage_history.c.changed_at == data["changed_at"])).first():
            return "unchanged"  # in the customer's history already (the file imported before)
        commands.move_stage(uow, context.actor, customer.id, data["stage"], data["changed_at"], now)
        return "imported"

    return _use_case(uow, context, row, schemas.StageMoveSchema, body, move)


# ---------------------------------------------------------------- interactions (applied by followups)

def _resolve_interactions(uow, context: Context, batch, now: datetime) -> list[dict]:
    resolved, keys_in_batch = [], {}
    for number, cells in batch:
        row = rules.RowReader(cells)
        customer = _customer_by_external_id(uow, context, row)
        body = rules.interaction_body(row, context.zone)
        rep = _rep(uow, row, "rep") or (customer.owner_id if customer is not None else None)
        if customer is not None and rep is None and not row.has("rep"):
            row.fail("rep", "the customer has no owner; name the rep who had this interaction")
        if row.problems:
            resolved.append({"problems": row.problems})
            continue
        key = rules.row_key(customer.id, rep, body["kind"], body["outcome"], body["occurred_at"], body["summary"])
        seen = _occurrences(uow, context, key) + keys_in_batch.get(key, 0)
        keys_in_batch[key] = keys_in_batch.get(key, 0) + 1
        ref = key if not seen else f"{key}#{seen + 1}"
        resolved.append({"key": ref, "cells": cells, "body": {
            **body, "customer_id": customer.id, "rep_id": rep, "external_ref": ref}})
    return resolved


def _recorded_interaction(uow, context: Context, number: int, item: dict) -> str:
    if "problems" in item:
        raise Rejected(item["problems"])
    uow.session.execute(insert(import_keys).values(job_id=context.job_id, key=item["key"], row=number))
    if item.get("status") == "rejected":
        field = _column(item.get("field") or "body")
        raise Rejected([rules.Problem(field, rules.text(item["cells"].get(field)), item["reason"])])
    return item["status"]


# ---------------------------------------------------------------- error messages back to columns

def _flatten(messages, path: str = ""):
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, key if isinstance(key, str) else path) if isinstance(value, dict) \
                else [(key if isinstance(key, str) else path, value)]
    else:
        yield path or "body", messages


def _column(field: str) -> str:
    return API_TO_COLUMN.get(field, field)


def _shown(row: rules.RowReader, field: str) -> str:
    return rules.text(row.cells.get(field))


def _message(messages) -> str:
    return "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
