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


def phase_at(occurred_at: datetime, explicit_phase: str | None = None, *, first_purchase_at: datetime | None = None,
             won_at: datetime | None = None, lifecycle: str | None = None, pipeline_stage: str | None = None,
             has_purchased: bool = False) -> str:
    """The phase as the customer stood when the touch happened: bought or won by then is post-sale.

    Without a dated purchase or win to go by, the customer's current class decides (derive_phase).
    """
    require_aware(occurred_at, "occurred_at")
    if explicit_phase is not None:
        return derive_phase(explicit_phase)
    if first_purchase_at is not None or won_at is not None:
        return derive_phase(None, has_purchased=first_purchase_at is not None and first_purchase_at <= occurred_at,
                            pipeline_stage="won" if won_at is not None and won_at <= occurred_at else None)
    return derive_phase(None, lifecycle=lifecycle, pipeline_stage=pipeline_stage, has_purchased=has_purchased)


def is_newer_touch(last_touch_at: datetime | None, occurred_at: datetime) -> bool:
    """Only a touch newer than the last one counts for recency (and so moves the cadence); an older,
    backdated one is history."""
    return last_touch_at is None or occurred_at > last_touch_at
