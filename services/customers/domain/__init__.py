"""Customer rules with no framework in them: classification, the record, the pipeline, ownership.

No nameko, HTTP or SQL here; every time-dependent rule takes the moment explicitly. A refused
change raises a crm_common.errors error naming the field (DomainError for a broken business rule).
docs/customers.md describes the rules and their defaults.
"""
from services.customers.domain.classification import (
    FIRST_LIFECYCLE, LIFECYCLES, TIERS, Classification, ClassificationPolicy, CustomerFacts, classify,
    facts_known_at, lifecycle_for, refreshes_recency, resolution_clears_flag, rolling_window_start, tier_for,
)
from services.customers.domain.ownership import (
    check_can_assign, check_can_hand_over, check_can_own, check_handover_to_rep, check_owner_team, check_handover_to_team,
    check_transfer, requested_owner, round_robin, takes_handover, team_of_unowned,
)
from services.customers.domain.pipeline import (
    FIRST_STAGE, OPEN_STAGES, PIPELINE_STAGES, check_stage_move, check_stage_time,
)
from services.customers.domain.records import (
    check_archive, check_live, check_not_future, check_update, company_key, normalized_tags, parse_amount,
)

__all__ = [
    # classification
    "TIERS", "LIFECYCLES", "FIRST_LIFECYCLE", "ClassificationPolicy", "CustomerFacts", "Classification",
    "facts_known_at", "tier_for", "lifecycle_for", "classify", "rolling_window_start", "refreshes_recency",
    "resolution_clears_flag",
    # the record and its purchases
    "check_not_future", "check_live", "check_update", "check_archive", "company_key", "normalized_tags",
    "parse_amount",
    # pipeline
    "PIPELINE_STAGES", "OPEN_STAGES", "FIRST_STAGE", "check_stage_move", "check_stage_time",
    # ownership
    "requested_owner", "team_of_unowned", "check_can_assign", "check_can_own", "check_owner_team", "check_transfer",
    "check_can_hand_over", "check_handover_to_rep", "check_handover_to_team", "takes_handover", "round_robin",
]
