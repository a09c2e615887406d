"""Events published by the customers service (source "crm/customers")."""
from marshmallow import Schema, fields, validate

from crm_common.contracts.fields import (
    LIFECYCLES, PIPELINE_STAGES, ROLES, TIERS, Id, Money, OneOf, OptionalId, Timestamp,
)
from crm_common.events import define

PRODUCER = "customers"


class ImportantDate(Schema):
    kind = OneOf(("birthday", "contract_anniversary", "founding_day", "other"), required=True)
    date = fields.Date(required=True)
    label = fields.String(load_default="", validate=validate.Length(max=200))


class CustomerSnapshot(Schema):
    customer_id = Id(required=True)
    company = fields.String(required=True)
    industry = fields.String(allow_none=True, load_default=None)
    source_channel = fields.String(allow_none=True, load_default=None)
    owner_id = OptionalId()
    team = fields.String(allow_none=True, load_default=None)
    tags = fields.List(fields.String(), load_default=list)
    tier = OneOf(TIERS, required=True)
    lifecycle = OneOf(LIFECYCLES, required=True)
    pipeline_stage = OneOf(PIPELINE_STAGES, allow_none=True, load_default=None)
    important_dates = fields.List(fields.Nested(ImportantDate), load_default=list)
    # the id the customer has in the system it was imported from (additive: absent in older events)
    external_id = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=100))
    archived = fields.Boolean(load_default=False)
    created_at = Timestamp(required=True)


@define("customer.created", 1, PRODUCER, "A customer record was created (full snapshot).")
class CustomerCreated(CustomerSnapshot):
    pass


@define("customer.updated", 1, PRODUCER,
        "A customer's record changed; full snapshot after the change and the names of changed fields.")
class CustomerUpdated(CustomerSnapshot):
    changed_fields = fields.List(fields.String(), required=True)


@define("customer.archived", 1, PRODUCER, "A customer was archived; it stays readable but leaves lists and cadences.")
class CustomerArchived(Schema):
    customer_id = Id(required=True)
    owner_id = OptionalId()
    team = fields.String(allow_none=True, load_default=None)
    archived_at = Timestamp(required=True)


@define("purchase.recorded", 1, PRODUCER,
        "A purchase was recorded (possibly backdated). amount_base is amount converted to base_currency.")
class PurchaseRecorded(Schema):
    customer_id = Id(required=True)
    purchase_id = Id(required=True)
    amount = Money(required=True)
    currency = fields.String(required=True, validate=validate.Length(equal=3))
    amount_base = Money(required=True)
    base_currency = fields.String(required=True, validate=validate.Length(equal=3))
    purchased_at = Timestamp(required=True)
    owner_id = OptionalId()
    team = fields.String(allow_none=True, load_default=None)


@define("customer.tier_changed", 1, PRODUCER,
        "Value tier (rolling 12-month purchases in base currency) changed at as_of, the moment it happened. A "
        "backdated fact publishes corrections dated in the past: fold changes by as_of, the last published "
        "for one instant winning.")
class TierChanged(Schema):
    customer_id = Id(required=True)
    old_tier = OneOf(TIERS, allow_none=True, load_default=None)
    new_tier = OneOf(TIERS, required=True)
    rolling_12m_total = Money(required=True)
    owner_id = OptionalId()
    team = fields.String(allow_none=True, load_default=None)
    as_of = Timestamp(required=True)


@define("customer.lifecycle_changed", 1, PRODUCER,
        "Lifecycle stage changed at as_of, the moment it happened; reason names the rule. A backdated fact "
        "publishes corrections dated in the past: fold changes by as_of, the last published for one instant "
        "winning.")
class LifecycleChanged(Schema):
    customer_id = Id(required=True)
    old_lifecycle = OneOf(LIFECYCLES, allow_none=True, load_default=None)
    new_lifecycle = OneOf(LIFECYCLES, required=True)
    reason = fields.String(required=True)
    owner_id = OptionalId()
    team = fields.String(allow_none=True, load_default=None)
    as_of = Timestamp(required=True)


@define("customer.stage_changed", 1, PRODUCER, "Pipeline stage of a prospect changed at changed_at.")
class StageChanged(Schema):
    customer_id = Id(required=True)
    old_stage = OneOf(PIPELINE_STAGES, allow_none=True, load_default=None)
    new_stage = OneOf(PIPELINE_STAGES, required=True)
    changed_at = Timestamp(required=True)
    owner_id = OptionalId()
    team = fields.String(allow_none=True, load_default=None)


@define("customer.owner_changed", 1, PRODUCER,
        "Ownership moved to another rep (single transfer or a departing rep's hand-over).")
class OwnerChanged(Schema):
    customer_id = Id(required=True)
    old_owner_id = OptionalId()
    old_team = fields.String(allow_none=True, load_default=None)
    new_owner_id = Id(required=True)
    new_team = fields.String(allow_none=True, load_default=None)
    reason = fields.String(load_default="")
    transfer_id = Id(required=True)
    changed_by = Id(required=True)


class RepSnapshot(Schema):
    rep_id = Id(required=True)
    name = fields.String(required=True)
    email = fields.String(allow_none=True, load_default=None)
    team = fields.String(allow_none=True, load_default=None)
    role = OneOf(ROLES, required=True)
    manager_id = OptionalId()
    active = fields.Boolean(required=True)
    # tokens issued before this instant are refused (password changed, signed out everywhere); additive
    tokens_valid_after = Timestamp(allow_none=True, load_default=None)


@define("rep.registered", 1, PRODUCER, "A sales rep, manager or admin joined the directory. subject is the rep id.")
class RepRegistered(RepSnapshot):
    pass


@define("rep.updated", 1, PRODUCER,
        "A directory entry changed (team, role, manager, or deactivated when the rep left). subject is the rep id.")
class RepUpdated(RepSnapshot):
    pass
