"""One batch of an import's rows applied: each row through the same schema and rules as the API, so a bad row
is reported (row, column, value, reason) and the rest of the batch still goes in; customers and purchases are
then written together (a few statements a batch), pipeline moves one by one in a savepoint each.

Customers and purchases are this service's own facts. Interactions belong to the followups service: their
customers and reps are resolved here, then followups applies them (RPC, it answers per row), and the report
is written here. Every row has a key (external id, invoice number, or one made from its content): seen twice
in one file it is a duplicate; found already stored, the row is unchanged, so importing a file again changes
nothing.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from crm_common.auth import Principal
from services.customers import classifier, commands, domain, schemas
from services.customers import import_checks as checks
from services.customers.domain import imports as rules
from services.customers.models import customers, import_keys, purchases, stage_history
from services.customers.views import load_rep


def prepare(store, context: checks.Context, batch, now: datetime):
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


def apply(uow, context: checks.Context, batch, prepared, now: datetime) -> dict:
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


def _apply(uow, context: checks.Context, batch, prepared, now: datetime) -> dict:
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
            except checks.Rejected as exc:
                outcomes.append(exc.problems)
    rejected = [(number, outcome) for (number, _), outcome in zip(batch, outcomes) if isinstance(outcome, list)]
    checks.reject(uow, context, rejected)
    for outcome in outcomes:
        counts["rejected" if isinstance(outcome, list) else outcome] += 1
    return counts


# ---------------------------------------------------------------- customers

def _customers(uow, context: checks.Context, batch, now: datetime) -> list:
    """Each row's outcome: "imported", "unchanged" or its problems; the new customers written at the end."""
    read = []
    for number, cells in batch:
        row = rules.RowReader(cells)
        read.append((number, row, row.get("external_id", required=True), rules.customer_body(row, context.zone),
                     row.get("owner")))
    owners = checks.reps_named(uow, [owner for *_, owner in read if owner])
    keys = checks.Keys(uow, context, [f"customer:{external_id}" for _, _, external_id, _, _ in read if external_id])
    existing = {r.external_id: r for r in uow.session.execute(select(
        customers.c.external_id, customers.c.owner_id, customers.c.team).where(
        customers.c.external_id.in_({external_id for _, _, external_id, _, _ in read if external_id})))}
    outcomes, new = [], []
    for number, row, external_id, body, named in read:
        owner = owners.get(named) or owners.get((named or "").lower())
        if named and owner is None:
            row.fail("owner", f"no rep with id or e-mail {named} in the directory")
        try:
            checks.check(row)
            keys.see(f"customer:{external_id}", number, "external_id", row)
            if external_id in existing:
                if not context.actor.can_see(existing[external_id].owner_id, existing[external_id].team):
                    raise checks.Rejected([rules.Problem("external_id", external_id, "in use by a customer outside your scope")])
                outcomes.append("unchanged")
                continue
            body.update(external_id=external_id, owner_id=owner.id if owner else None)
            if row.has("team"):
                body["team"] = row.get("team")
            new.append(checks.valid(row, schemas.CustomerCreateSchema, body, lambda data: commands.plan_customer(
                context.actor, data, _owner(uow, context.actor, data, owners), now, context.policy)))
            outcomes.append("imported")
        except checks.Rejected as exc:
            outcomes.append(exc.problems)
    keys.write()
    if not context.dry_run:
        commands.insert_customers(uow, context.actor, new)
    return outcomes


def _owner(uow, actor: Principal, data: dict, owners: dict):
    """The directory row of the rep a new customer goes to (domain.requested_owner), or None."""
    owner_id = domain.requested_owner(actor, data.get("owner_id"))
    return None if owner_id is None else owners.get(owner_id) or load_rep(uow, owner_id, field="owner_id")


def _rep(uow, row: rules.RowReader, field: str) -> str | None:
    """A rep named by id or e-mail, as in the directory; a problem on the row when nobody is."""
    named = row.get(field)
    if not named:
        return None
    found = checks.reps_named(uow, [named])
    rep = found.get(named) or found.get(named.lower())
    if rep is None:
        row.fail(field, f"no rep with id or e-mail {named} in the directory")
    return rep.id if rep else None


# ---------------------------------------------------------------- purchases

def _customer_by_external_id(uow, context: checks.Context, row: rules.RowReader):
    external_id = row.get("customer", required=True)
    if not external_id:
        return None
    found = uow.session.execute(select(customers.c.id, customers.c.owner_id, customers.c.team).where(
        customers.c.external_id == external_id)).first()
    if found is None or not context.actor.can_see(found.owner_id, found.team):
        row.fail("customer", f"no customer with external id {external_id} (import the customers file first)")
        return None
    return found


def _purchases(uow, context: checks.Context, batch, now: datetime) -> list:
    """Each row's outcome; the new purchases written at the end, their customers' rows once each, and the
    customers they touched reclassified from their earliest new purchase."""
    read = []
    for number, cells in batch:
        row = rules.RowReader(cells)
        read.append((number, row, row.get("customer", required=True),
                     rules.purchase_body(row, context.zone, context.policy.base_currency)))
    found = {r.external_id: r for r in uow.session.execute(select(customers).where(customers.c.external_id.in_(
        {external_id for _, _, external_id, _ in read if external_id})).order_by(customers.c.id).with_for_update())}
    keys = checks.Keys(uow, context, [f"purchase:{found[e].id}:{b['external_ref']}" for _, r, e, b in read
                               if e in found and r.has("invoice_ref")])
    candidates, outcomes = [], []
    for number, row, external_id, body in read:
        customer = found.get(external_id)
        if external_id and (customer is None or not context.actor.can_see(customer.owner_id, customer.team)):
            row.fail("customer", f"no customer with external id {external_id} (import the customers file first)")
        try:
            checks.check(row)
            if row.has("invoice_ref"):
                keys.see(f"purchase:{customer.id}:{body['external_ref']}", number, "invoice_ref", row)
            else:
                body["external_ref"] = checks.occurrence(uow, context, body["external_ref"], number)
            candidates.append((len(outcomes), row, customer, body))
            outcomes.append("imported")
        except checks.Rejected as exc:
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
            purchase = checks.valid(row, schemas.PurchaseSchema, body, lambda data: commands.plan_purchase(
                context.actor, customer, data, now, context.policy))
        except checks.Rejected as exc:
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

def _stage_row(uow, context: checks.Context, number: int, row: rules.RowReader, now: datetime) -> str:
    customer = _customer_by_external_id(uow, context, row)
    body = rules.stage_body(row, context.zone)
    checks.check(row)
    key = f"stage:{customer.id}:{body['stage']}:{body['changed_at']}"
    keys = checks.Keys(uow, context, [key])
    keys.see(key, number, "stage", row)
    keys.write()

    def move(data: dict) -> str:
        if uow.session.execute(select(stage_history.c.id).where(
                stage_history.c.customer_id == customer.id, stage_history.c.to_stage == data["stage"],
                stage_history.c.changed_at == data["changed_at"])).first():
            return "unchanged"  # in the customer's history already (the file imported before)
        commands.move_stage(uow, context.actor, customer.id, data["stage"], data["changed_at"], now)
        return "imported"

    return checks.use_case(uow, context, row, schemas.StageMoveSchema, body, move)


# ---------------------------------------------------------------- interactions (applied by followups)

def _resolve_interactions(uow, context: checks.Context, batch, now: datetime) -> list[dict]:
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
        seen = checks.occurrences(uow, context, key) + keys_in_batch.get(key, 0)
        keys_in_batch[key] = keys_in_batch.get(key, 0) + 1
        ref = key if not seen else f"{key}#{seen + 1}"
        resolved.append({"key": ref, "cells": cells, "body": {
            **body, "customer_id": customer.id, "rep_id": rep, "external_ref": ref}})
    return resolved


def _recorded_interaction(uow, context: checks.Context, number: int, item: dict) -> str:
    if "problems" in item:
        raise checks.Rejected(item["problems"])
    uow.session.execute(insert(import_keys).values(job_id=context.job_id, key=item["key"], row=number))
    if item.get("status") == "rejected":
        field = checks.column(item.get("field") or "body")
        raise checks.Rejected([rules.Problem(field, rules.text(item["cells"].get(field)), item["reason"])])
    return item["status"]


