"""Request shapes of the alerts HTTP API (responses are built by handlers; docs/openapi/alerts.yaml)."""
from marshmallow import RAISE, Schema, fields, validate

from crm_common.contracts.alerts import ALERT_OUTCOMES
from crm_common.contracts.fields import TIERS, Timestamp
from services.alerts.domain import RULE_NAMES

STATUS_FILTERS = ("open", "acknowledged", "escalated", "resolved", "unresolved")
Id = lambda **kw: fields.String(validate=validate.Length(min=1, max=64), **kw)  # noqa: E731


class Strict(Schema):
    class Meta:
        unknown = RAISE


class PageQuery(Strict):
    """Keyset pages: ``limit`` rows after ``cursor`` (the ``next_cursor`` of the page before)."""
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(validate=validate.Length(min=1, max=500))


class AlertListQuerySchema(PageQuery):
    owner_id = Id()
    team = Id()
    customer_id = Id()
    rule = fields.String(validate=validate.OneOf(RULE_NAMES))
    status = fields.String(validate=validate.OneOf(STATUS_FILTERS))


class AlertQueueQuerySchema(PageQuery):
    team = Id()
    rep = Id()
    rule = fields.String(validate=validate.OneOf(RULE_NAMES))
    tier = fields.String(validate=validate.OneOf(TIERS))


class AcknowledgeSchema(Strict):
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class ResolveSchema(Strict):
    outcome = fields.String(required=True, validate=validate.OneOf(ALERT_OUTCOMES))
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class SweepSchema(Strict):
    as_of = Timestamp()


class HealthQuerySchema(Strict):
    as_of = Timestamp()
    history_limit = fields.Integer(load_default=50, validate=validate.Range(min=0, max=1000))
