"""Request shapes of the followups HTTP API (responses are plain dicts built by commands and queries)."""
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from crm_common.contracts.fields import Timestamp
from crm_common.contracts.followups import INTERACTION_KINDS, OUTCOMES, PHASES, TASK_KINDS

TASK_STATUSES = ("open", "done", "skipped", "missed")
Id = lambda **kw: fields.String(validate=validate.Length(min=1, max=64), **kw)  # noqa: E731


class Strict(Schema):
    class Meta:
        unknown = RAISE


class InteractionSchema(Strict):
    customer_id = Id(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(INTERACTION_KINDS))
    occurred_at = Timestamp(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    satisfaction = fields.Integer(allow_none=True, load_default=None, strict=True,
                                  validate=validate.Range(min=1, max=5))
    summary = fields.String(load_default="", validate=validate.Length(max=10000))
    next_step = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=2000))
    phase = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(PHASES))
    completes_task_id = Id(allow_none=True, load_default=None)
    resolves_complaint_id = Id(allow_none=True, load_default=None)

    @validates_schema
    def complaint_not_self_resolving(self, data, **kwargs):
        if data.get("kind") == "complaint" and data.get("resolves_complaint_id"):
            raise ValidationError("a complaint cannot resolve another complaint; log the resolving touch "
                                  "as a call, visit, ... with resolves_complaint_id", field_name="resolves_complaint_id")


class TaskCreateSchema(Strict):
    customer_id = Id(required=True)
    kind = fields.String(load_default="follow_up", validate=validate.OneOf(TASK_KINDS))
    purpose = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    due_at = Timestamp(required=True)  # may be in the past: imported history is caught up by the sweep
    assignee_id = Id(allow_none=True, load_default=None)


class TaskCompleteSchema(Strict):
    interaction_id = Id(required=True)


class TaskSkipSchema(Strict):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class TaskReassignSchema(Strict):
    assignee_id = Id(required=True)
    reason = fields.String(load_default="", validate=validate.Length(max=1000))


class TaskListQuery(Strict):
    assignee_id = Id()
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    kind = fields.String(validate=validate.OneOf(TASK_KINDS))
    customer_id = Id()
    team = fields.String(validate=validate.Length(min=1, max=64))
    due_before = Timestamp()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    cursor = fields.String()


class WorklistQuery(Strict):
    rep_id = Id()
    tz = fields.String(validate=validate.Length(min=1, max=10))
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))


class TimelineQuery(Strict):
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))


class CadencePolicySchema(Strict):
    # key (lifecycle, tier, tier/lifecycle or *) -> days or null; validated by the domain, which names the key
    intervals = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), required=True)
    keep_defaults = fields.Boolean(load_default=True)


class MissedQuery(Strict):
    period_start = Timestamp(required=True)
    period_end = Timestamp(required=True)
    team = fields.String(validate=validate.Length(min=1, max=64))

    @validates_schema
    def end_after_start(self, data, **kwargs):
        if "period_start" in data and "period_end" in data and data["period_end"] <= data["period_start"]:
            raise ValidationError("must be after period_start", field_name="period_end")


class SweepSchema(Strict):
    as_of = Timestamp()
