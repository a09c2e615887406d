"""Rules for logging an interaction (a touch with a customer)."""
from __future__ import annotations

from datetime import datetime, timedelta

from services.followups.domain.base import (
    INTERACTION_KINDS, LIFECYCLES, OUTCOMES, PHASES, PIPELINE_STAGES, POST_SALE_LIFECYCLES,
    PRODUCTIVE_OUTCOMES, DomainError, require_aware, require_choice, require_non_negative,
)

# Client clocks drift; a touch logged "now" from a laptop a few minutes ahead is still fine.
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)


def validate_occurred_at(occurred_at: datetime, now: datetime, clock_skew: timedelta = DEFAULT_CLOCK_SKEW) -> None:
    """Backdated touches are allowed; touches in the future (beyond the skew tolerance) are not."""
    require_aware(occurred_at, "occurred_at")
    require_aware(now, "now")
    require_non_negative(clock_skew, "clock_skew")
    if occurred_at > now + clock_skew:
        raise DomainError(f"is in the future ({occurred_at.isoformat()} > now {now.isoformat()})",
                          field="occurred_at")


def validate_satisfaction(satisfaction: int | None) -> None:
    if satisfaction is None:
        return
    if isinstance(satisfaction, bool) or not isinstance(satisfaction, int) or not 1 <= satisfaction <= 5:
        raise DomainError(f"must be a whole number from 1 to 5, got {satisfaction!r}", field="satisfaction")


def derive_phase(explicit_phase: str | None = None, *, lifecycle: str | None = None,
                 pipeline_stage: str | None = None, has_purchased: bool = False) -> str:
    """An explicit phase wins; otherwise a customer who bought (or was won) is post-sale."""
    if explicit_phase is not None:
        return require_choice(explicit_phase, PHASES, "phase")
    if lifecycle is not None:
        require_choice(lifecycle, LIFECYCLES, "lifecycle")
    if pipeline_stage is not None:
        require_choice(pipeline_stage, PIPELINE_STAGES, "pipeline_stage")
    if has_purchased or lifecycle in POST_SALE_LIFECYCLES or pipeline_stage == "won":
        return "post_sale"
    return "pre_sale"


def validate_interaction(*, kind: str, outcome: str, occurred_at: datetime, now: datetime,
                         satisfaction: int | None = None, clock_skew: timedelta = DEFAULT_CLOCK_SKEW) -> None:
    """All field rules of a new interaction; raises DomainError naming the first bad field."""
    require_choice(kind, INTERACTION_KINDS, "kind")
    require_choice(outcome, OUTCOMES, "outcome")
    validate_occurred_at(occurred_at, now, clock_skew)
    validate_satisfaction(satisfaction)


def is_productive(outcome: str) -> bool:
    """True when the touch reached the customer (reached / positive)."""
    return outcome in PRODUCTIVE_OUTCOMES
