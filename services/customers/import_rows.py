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
from sqlalchemy import func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from crm_common.auth import Principal
from crm_common.errors import CrmError
from services.customers import classifier, commands, schemas
from services.customers.domain import imports as rules
from services.customers.domain import ClassificationPolicy
from services.customers import domain
from services.customers.views import load_rep
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
    """The batch's rows applied (or, interactions, their answers recorded) in this transaction; counts.
    Customers and purchases are checked row by row against what a few queries fetched for the whole batch,
    then written together; a row written meanwhile by someone else (a unique key taken) makes the batch run
    once more from the start, and that row is then found unchanged."""
    for attempt in (1, 2):
        try:
            with uow.savepoint():
                return _apply(uow, context, batch, prepared, now)
        except IntegrityError:
            if attempt == 2:
                raise


def _apply(uow, context: Context, batch, prepared, now: datetime) -> dict:
    counts = {"imported": 0, "unchanged": 0, "rejected": 0}
    if context.kind in ("customers", "purchases"):
        outcomes = (_customers if context.kind == "customers" else _purchases)(uow, context, batch, now)
    else:
        outcomes = []
        for index, (number, cells) in enumerate(batch):
            try:
                outcomes.append(_recorded_interaction(uow, context, number, prepared[index])
                                if context.kind == "interactions" else
                                _stage_row(uow, context, number, rules.RowReader(cells), now))
            except Rejected as exc:
                outcomes.append(exc.problems)
    for (number, _), outcome in zip(batch, outcomes):
        if isinstance(outcome, list):
            _reject(uow, context, number, outcome)
            outcome = "rejected"
        counts[outcome] += 1
    return counts


def _reject(uow, context: Context, number: int, problems: list[rules.Problem]) -> None:
    uow.session.execute(insert(import_rejections), [
        {"job_id": context.job_id, "row": number, "column": context.headers.get(p.field, p.field),
         "value": p.value[:2000], "reason": p.reason[:2000]} for p in problems])


def _check(row: rules.RowReader) -> None:
    if row.problems:
        raise Rejected(row.problems)


def _valid(row: rules.RowReader, schema, body: dict, plan):
    """The body validated by the API's schema and the use case's rules applied to it (plan); what either
    refuses becomes the row's report."""
    try:
        return plan(schema().load(body))
    except ValidationError as exc:
        raise Rejected([rules.Problem(_column(path), _shown(row, _column(path)), _message(msg))
                        for path, msg in _flatten(exc.messages)]) from None
    except CrmError as exc:
        field = _column(exc.field or "body")
        raise Rejected([rules.Problem(field, _shown(row, field), exc.message)]) from None


def _use_case(uow, context: Context, row: rules.RowReader, schema, body: dict, call):
    """As _valid, with the use case run in a savepoint (undone in a dry run)."""
    def run(data):
        with uow.savepoint(keep=not context.dry_run):
            return call(data)
    return _valid(row, schema, body, run)


class Keys:
    """The rows' keys this job has seen, fetched for a batch at once; the batch's new ones written together."""

    def __init__(self, uow, context: Context, keys: list[str]):
        self.uow, self.context, self.new = uow, context, []
        self.first = dict(uow.session.execute(select(import_keys.c.key, import_keys.c.row).where(
            import_keys.c.job_id == context.job_id, import_keys.c.key.in_({k[:200] for k in keys}))).all())

    def see(self, key: str, number: int, field: str, row: rules.RowReader) -> None:
        """Remember the row's key; a key already seen names the row that had it first."""
        first = self.first.get(key[:200])
        if first is not None:
            raise Rejected([rules.Problem(field, _shown(row, field), f"the same as row {first} of this file")])
        self.first[key[:200]] = number
        self.new.append({"job_id": self.context.job_id, "key": key[:200], "row": number})

    def write(self) -> None:
        if self.new:
            self.uow.session.execute(insert(import_keys), self.new)


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

def _customers(uow, context: Context, batch, now: datetime) -> list:
    """Each row's outcome: "imported", "unchanged" or its problems; the new customers written at the end."""
    read = []
    for number, cells in batch:
        row = rules.RowReader(cells)
        read.append((number, row, row.get("external_id", required=True), rules.customer_body(row, context.zone),
                     row.get("owner")))
    owners = _reps_named(uow, [owner for *_, owner in read if owner])
    keys = Keys(uow, context, [f"customer:{external_id}" for _, _, external_id, _, _ in read if external_id])
    existing = {r.external_id: r for r in uow.session.execute(select(
        customers.c.external_id, customers.c.owner_id, customers.c.team).where(
        customers.c.external_id.in_({external_id for _, _, external_id, _, _ in read if external_id})))}
    outcomes, new = [], []
    for number, row, external_id, body, named in read:
        owner = owners.get(named) or owners.get((named or "").lower())
        if named and owner is None:
            row.fail("owner", f"no rep with id or e-mail {named} in the directory")
        try:
            _check(row)
            keys.see(f"customer:{external_id}", number, "external_id", row)
            if external_id in existing:
                if not context.actor.can_see(existing[external_id].owner_id, existing[external_id].team):
                    raise Rejected([rules.Problem("external_id", external_id, "in use by a customer outside your scope")])
                outcomes.append("unchanged")
                continue
            body.update(external_id=external_id, owner_id=owner.id if owner else None)
            if row.has("team"):
                body["team"] = row.get("team")
            new.append(_valid(row, schemas.CustomerCreateSchema, body, lambda data: commands.plan_customer(
                context.actor, data, _owner(uow, context.actor, data, owners), now, context.policy)))
            outcomes.append("imported")
        except Rejected as exc:
            outcomes.append(exc.problems)
    keys.write()
    if not context.dry_run:
        commands.insert_customers(uow, context.actor, new)
    return outcomes


def _reps_named(uow, names: list[str]) -> dict:
    """The directory's reps named by id or e-mail: by id, and by lower-cased e-mail."""
    if not names:
        return {}
    found = uow.session.execute(select(reps).where(or_(reps.c.id.in_(set(names)), func.lower(reps.c.email).in_(
        {n.lower() for n in names})))).all()
    return {**{r.email.lower(): r for r in found if r.email}, **{r.id: r for r in found}}


def _owner(uow, actor: Principal, data: dict, owners: dict):
    """The directory row of the rep a new customer goes to (domain.requested_owner), or None."""
    owner_id = domain.requested_owner(actor, data.get("owner_id"))
    return None if owner_id is None else owners.get(owner_id) or load_rep(uow, owner_id, field="owner_id")


def _rep(uow, row: rules.RowReader, field: str) -> str | None:
    """A rep named by id or e-mail, as in the directory; a problem on the row when nobody is."""
    named = row.get(field)
    if not named:
        return None
    found = _reps_named(uow, [named])
    rep = found.get(named) or found.get(named.lower())
    if rep is None:
        row.fail(field, f"no rep with id or e-mail {named} in the directory")
    return rep.id if rep else None


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


def _purchases(uow, context: Context, batch, now: datetime) -> list:
    """Each row's outcome; the new purchases written at the end, their customers' rows once each, and the
    customers they touched reclassified from their earliest new purchase."""
    read = []
    for number, cells in batch:
        row = rules.RowReader(cells)
        read.append((number, row, row.get("customer", required=True),
                     rules.purchase_body(row, context.zone, context.policy.base_currency)))
    found = {r.external_id: r for r in uow.session.execute(select(customers).where(customers.c.external_id.in_(
        {external_id for _, _, external_id, _ in read if external_id})).order_by(customers.c.id).with_for_update())}
    keys = Keys(uow, context, [f"purchase:{found[e].id}:{b['external_ref']}" for _, r, e, b in read
                               if e in found and r.has("invoice_ref")])
    candidates, outcomes = [], []
    for number, row, external_id, body in read:
        customer = found.get(external_id)
        if external_id and (customer is None or not context.actor.can_see(customer.owner_id, customer.team)):
            row.fail("customer", f"no customer with external id {external_id} (import the customers file first)")
        try:
            _check(row)
            if row.has("invoice_ref"):
                keys.see(f"purchase:{customer.id}:{body['external_ref']}", number, "invoice_ref", row)
            else:
                body["external_ref"] = _occurrence(uow, context, body["external_ref"], number)
            candidates.append((len(outcomes), row, customer, body))
            outcomes.append("imported")
        except Rejected as exc:
            outcomes.append(exc.problems)
    keys.write()
    stored = set(uow.session.execute(select(purchases.c.customer_id, purchases.c.external_ref).where(
        purchases.c.customer_id.in_({c.id for _, _, c, _ in candidates}),
        purchases.c.external_ref.in_({b["external_ref"] for *_, b in candidates}))).tuples())
    new, touched = [], {}
    for index, row, customer, body in candidates:
        if (customer.id, body["external_ref"]) in stored:
            outcomes[index] = "unchanged"
            continue
        try:
            purchase = _valid(row, schemas.PurchaseSchema, body, lambda data: commands.plan_purchase(
                context.actor, customer, data, now, context.policy))
        except Rejected as exc:
            outcomes[index] = exc.problems
            continue
        new.append((customer, purchase))
        touched[customer.id] = min(touched.get(customer.id, purchase["purchased_at"]), purchase["purchased_at"])
    if new and not context.dry_run:
        commands.insert_purchases(uow, context.actor, new, now, context.policy)
        rows = uow.session.execute(select(customers).where(customers.c.id.in_(list(touched)))
                                   .order_by(customers.c.id)).all()
        classifier.reclassify_rows(uow, rows, now, context.policy, "imported", touched)
    return outcomes


# ---------------------------------------------------------------- pipeline moves

def _stage_row(uow, context: Context, number: int, row: rules.RowReader, now: datetime) -> str:
    customer = _customer_by_external_id(uow, context, row)
    body = rules.stage_body(row, context.zone)
    _check(row)
    key = f"stage:{customer.id}:{body['stage']}:{body['changed_at']}"
    keys = Keys(uow, context, [key])
    keys.see(key, number, "stage", row)
    keys.write()

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
