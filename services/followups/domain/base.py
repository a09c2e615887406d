"""Vocabulary, the domain error and small validators shared by the follow-up rules.

The vocabulary mirrors crm_common.contracts (a unit test keeps them equal); it is
repeated here so the core does not import marshmallow.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from crm_common.errors import DomainError

INTERACTION_KINDS = ("call", "message", "email", "visit", "meeting", "complaint", "survey")
OUTCOMES = ("reached", "no_answer", "declined", "positive", "negative", "neutral", "resolved", "open")
PHASES = ("pre_sale", "post_sale")
TASK_KINDS = ("follow_up", "maintenance", "care", "recall")
TIERS = ("A", "B", "C")
LIFECYCLES = ("potential", "new", "active", "dormant", "at_risk", "churned")
PIPELINE_STAGES = ("first_contact", "needs_analysis", "proposal", "won", "lost")
IMPORTANT_DATE_KINDS = ("birthday", "contract_anniversary", "founding_day", "other")

# Everything but "potential" means the customer has bought from us at least once.
POST_SALE_LIFECYCLES = ("new", "active", "dormant", "at_risk", "churned")
# Outcomes that show we actually got through to the customer.
PRODUCTIVE_OUTCOMES = ("reached", "positive")

__all__ = [
    "DomainError", "INTERACTION_KINDS", "OUTCOMES", "PHASES", "TASK_KINDS", "TIERS", "LIFECYCLES",
    "PIPELINE_STAGES", "IMPORTANT_DATE_KINDS", "POST_SALE_LIFECYCLES", "PRODUCTIVE_OUTCOMES",
]


def require_aware(moment: Any, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise DomainError("must be a timezone-aware datetime", field=name)
    return moment


def require_choice(value: Any, choices: Iterable[str], name: str) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise DomainError(f"unknown value {value!r}, expected one of {', '.join(choices)}", field=name)
    return value


MAX_DAYS = 36_500  # a century: more overflows the date arithmetic of the cadence


def require_days(value: Any, name: str, *, minimum: int = 1) -> int:
    """Day counts are whole numbers; bool is refused although it is an int subclass."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_DAYS:
        what = "a positive whole number of days" if minimum == 1 else f"a whole number of days >= {minimum}"
        raise DomainError(f"must be {what}, got {value!r}", field=name)
    return value


def require_non_negative(span: Any, name: str) -> timedelta:
    if not isinstance(span, timedelta) or span < timedelta(0):
        raise DomainError(f"must be a non-negative duration, got {span!r}", field=name)
    return span
