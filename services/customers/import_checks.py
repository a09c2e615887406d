"""What every row of an import goes through: the schema and rules of the API (a refusal becomes the row's
report: row, column, value, reason), the keys the job has seen (a duplicate names the row it repeats), the
reps of the directory by id or e-mail."""
from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from sqlalchemy import func, insert, or_, select

from crm_common.auth import Principal
from crm_common.errors import CrmError
from services.customers.domain import ClassificationPolicy
from services.customers.domain import imports as rules
from services.customers.models import import_keys, import_rejections, reps

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


def reject(uow, context: Context, rows: list[tuple[int, list[rules.Problem]]]) -> None:
    """The rejected rows' report lines: (row number, its problems) each."""
    lines = [{"job_id": context.job_id, "row": number, "column": context.headers.get(p.field, p.field),
              "value": p.value[:2000], "reason": p.reason[:2000]} for number, problems in rows for p in problems]
    if lines:
        uow.session.execute(insert(import_rejections), lines)


def check(row: rules.RowReader) -> None:
    if row.problems:
        raise Rejected(row.problems)


def valid(row: rules.RowReader, schema, body: dict, plan):
    """The body validated by the API's schema and the use case's rules applied to it (plan); what either
    refuses becomes the row's report."""
    try:
        return plan(schema().load(body))
    except ValidationError as exc:
        raise Rejected([rules.Problem(column(path), shown(row, column(path)), _message(msg))
                        for path, msg in _flatten(exc.messages)]) from None
    except CrmError as exc:
        field = column(exc.field or "body")
        raise Rejected([rules.Problem(field, shown(row, field), exc.message)]) from None


def use_case(uow, context: Context, row: rules.RowReader, schema, body: dict, call):
    """As _valid, with the use case run in a savepoint (undone in a dry run)."""
    def run(data):
        with uow.savepoint(keep=not context.dry_run):
            return call(data)
    return valid(row, schema, body, run)


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
            raise Rejected([rules.Problem(field, shown(row, field), f"the same as row {first} of this file")])
        self.first[key[:200]] = number
        self.new.append({"job_id": self.context.job_id, "key": key[:200], "row": number})

    def write(self) -> None:
        if self.new:
            self.uow.session.execute(insert(import_keys), self.new)


def occurrences(uow, context: Context, key: str) -> int:
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


def occurrence(uow, context: Context, key: str, number: int) -> str:
    """A key made from a row's content, numbered when the file has the same row again (two equal purchases)."""
    count = occurrences(uow, context, key)
    numbered = key if not count else f"{key}#{count + 1}"
    uow.session.execute(insert(import_keys).values(job_id=context.job_id, key=numbered, row=number))
    return numbered


def reps_named(uow, names: list[str]) -> dict:
    """The directory's reps named by id or e-mail: by id, and by lower-cased e-mail."""
    if not names:
        return {}
    found = uow.session.execute(select(reps).where(or_(reps.c.id.in_(set(names)), func.lower(reps.c.email).in_(
        {n.lower() for n in names})))).all()
    return {**{r.email.lower(): r for r in found if r.email}, **{r.id: r for r in found}}


# ---------------------------------------------------------------- error messages back to columns

def _flatten(messages, path: str = ""):
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, key if isinstance(key, str) else path) if isinstance(value, dict) \
                else [(key if isinstance(key, str) else path, value)]
    else:
        yield path or "body", messages


def column(field: str) -> str:
    return API_TO_COLUMN.get(field, field)


def shown(row: rules.RowReader, field: str) -> str:
    return rules.text(row.cells.get(field))


def _message(messages) -> str:
    return "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
