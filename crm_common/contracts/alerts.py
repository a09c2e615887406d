"""Events published by the alerts service (source "crm/alerts")."""
from marshmallow import Schema, fields, validate

from crm_common.contracts.fields import Id, Money, OneOf, OptionalId, Timestamp
from crm_common.events import define

PRODUCER = "alerts"

ALERT_OUTCOMES = ("recovered", "lost", "false_alarm")
HEALTH_BANDS = ("healthy", "watch", "at_risk")


class Signal(Schema):
    name = fields.String(required=True)
    value = fields.Raw(allow_none=True, required=True)
    threshold = fields.Raw(allow_none=True, load_default=None)
    detail = fields.String(load_default="")


class AlertFields(Schema):
    alert_id = Id(required=True)
    customer_id = Id(required=True)
    rule = fields.String(required=True)
    owner_id = OptionalId()
    team = fields.String(allow_none=True, load_default=None)


@define("alert.raised", 1, PRODUCER, "A churn warning was raised for a customer, naming the signals that fired.")
class AlertRaised(AlertFields):
    signals = fields.List(fields.Nested(Signal), required=True, validate=validate.Length(min=1))
    health_score = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=0, max=100))
    raised_at = Timestamp(required=True)
    # additive (optional) fields: what the raise asks of others, so consumers need no second look-up
    recall = fields.Boolean(load_default=True)                      # False: no recall (a dormant customer)
    recall_due_at = Timestamp(allow_none=True, load_default=None)   # due time of the recall task to create
    recall_purpose = fields.String(load_default="")                # its purpose line (rule and signal details)
    flag_at_risk = fields.Boolean(load_default=True)               # True only where at_risk is news
    trigger = fields.String(load_default="")                       # "sweep" or the event that set it off


@define("alert.acknowledged", 1, PRODUCER, "Someone took the alert on.")
class AlertAcknowledged(AlertFields):
    acknowledged_by = Id(required=True)
    acknowledged_at = Timestamp(required=True)
    note = fields.String(load_default="")


@define("alert.escalated", 1, PRODUCER, "Not acknowledged in time: escalated to the owner's manager.")
class AlertEscalated(AlertFields):
    escalated_to = OptionalId()
    escalated_at = Timestamp(required=True)
    raised_at = Timestamp(allow_none=True, load_default=None)


@define("alert.resolved", 1, PRODUCER, "The alert was closed with an outcome: recovered, lost or false_alarm.")
class AlertResolved(AlertFields):
    outcome = OneOf(ALERT_OUTCOMES, required=True)
    resolved_by = Id(required=True)
    resolved_at = Timestamp(required=True)
    raised_at = Timestamp(required=True)
    # additive (optional): True when no other alert still holds the customer at risk and the outcome
    # (recovered or false_alarm) lifts the at_risk flag; None from producers that predate the field
    clears_at_risk = fields.Boolean(allow_none=True, load_default=None)
    open_alerts = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=0))
    note = fields.String(load_default="")


@define("health.score_changed", 1, PRODUCER,
        "A customer's health score crossed a band threshold (healthy >= 70 > watch >= 40 > at_risk by default).")
class HealthScoreChanged(Schema):
    customer_id = Id(required=True)
    old_score = fields.Integer(allow_none=True, load_default=None)
    new_score = fields.Integer(required=True, validate=validate.Range(min=0, max=100))
    old_band = OneOf(HEALTH_BANDS, allow_none=True, load_default=None)
    new_band = OneOf(HEALTH_BANDS, required=True)
    owner_id = OptionalId()
    team = fields.String(allow_none=True, load_default=None)
    as_of = Timestamp(required=True)


class DigestEntry(Schema):
    customer_id = Id(required=True)
    owner_id = OptionalId()
    tier = fields.String(allow_none=True, load_default=None)
    lifecycle = fields.String(allow_none=True, load_default=None)
    health_score = fields.Integer(allow_none=True, load_default=None)
    value_at_stake = Money(required=True)  # 12-month revenue x risk, base currency
    rules = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    first_raised_at = Timestamp(required=True)


@define("alert.digest", 1, PRODUCER,
        "Once a day, each rep's and each manager's top entries of the alert queue, most value at stake first: "
        "for mail or chat.")
class AlertDigest(Schema):
    recipient_id = Id(required=True)
    role = OneOf(("rep", "manager"), required=True)
    team = fields.String(allow_none=True, load_default=None)
    as_of = Timestamp(required=True)
    entries = fields.List(fields.Nested(DigestEntry), required=True, validate=validate.Length(min=1))
    customers_in_queue = fields.Integer(required=True, validate=validate.Range(min=1))  # the whole queue, not the top
    value_at_stake = Money(required=True)                                            # of the whole queue
