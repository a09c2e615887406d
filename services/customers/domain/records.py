"""The customer record and its purchases: what a change may do to them."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from crm_common.auth import Principal
from crm_common.errors import Conflict, CrmError, DomainError, Forbidden


def check_not_future(moment: datetime, now: datetime, field: str) -> None:
    """Backdating is allowed (imports, late entry); the future is not."""
    if moment > now:
        raise CrmError(f"{field} cannot be in the future", field=field)


def check_live(archived_at: datetime | None) -> None:
    """An archived customer is read-only."""
    if archived_at is not None:
        raise DomainError("customer is archived", field="customer_id")


def check_update(archived_at: datetime | None, owner_id: str | None, pipeline_stage: str | None,
                 changes: dict) -> None:
    """Owner and stage have their own use cases (with their history and events), not a plain edit."""
    check_live(archived_at)
    if "owner_id" in changes and changes["owner_id"] != owner_id:
        raise CrmError("change the owner with POST /v1/customers/{id}/transfer", field="owner_id")
    if "pipeline_stage" in changes and changes["pipeline_stage"] != pipeline_stage:
        raise CrmError("move the stage with POST /v1/customers/{id}/stage", field="pipeline_stage")


def check_archive(actor: Principal, archived_at: datetime | None) -> None:
    if actor.role == "rep":
        raise Forbidden("only a manager or an admin archives customers")
    if archived_at is not None:
        raise Conflict("customer is already archived", field="customer_id")


def company_key(company: str) -> str:
    """Search and sorting ignore case and surrounding blanks."""
    return company.strip().lower()


def normalized_tags(tags) -> list[str]:
    """Tags are case-insensitive labels: lower-cased, blanks dropped, each once."""
    return sorted({t.strip().lower() for t in tags if t.strip()})


def parse_amount(value) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise DomainError("amount must be a number", field="amount") from None
    if not amount.is_finite() or amount <= 0:
        raise DomainError("amount must be positive", field="amount")
    return amount.quantize(Decimal("0.01"))
