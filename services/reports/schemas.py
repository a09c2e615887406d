"""Query parameters of the reports HTTP API (unknown parameters are refused, naming them)."""
from marshmallow import RAISE, Schema, fields, validate

from services.reports.domain import CUSTOMER_METRICS, PERIOD_KINDS

KINDS = (*(k.value for k in PERIOD_KINDS), "range")  # range: one row from `from` to `to`, both days included
BREAKDOWNS = ("team", "rep", "tier", "lifecycle", "industry")
FORMATS = ("json", "csv")
Label = lambda **kw: fields.String(validate=validate.Length(min=1, max=30), **kw)  # noqa: E731
Name = lambda **kw: fields.String(validate=validate.Length(min=1, max=64), **kw)  # noqa: E731


class Query(Schema):
    class Meta:
        unknown = RAISE

    team = Name()
    rep = Name()

    def load(self, data, **kwargs):
        loaded = super().load(data, **kwargs)
        if "from_" in loaded:
            loaded["from"] = loaded.pop("from_")
        return loaded


class PeriodQuery(Query):
    """One period: a label or a range "2026-02-10..2026-05-20", or from and to (a custom range, both days included)."""
    period = Label()
    from_ = Label(data_key="from")
    to = Label()


class DashboardQuery(PeriodQuery):
    as_of = fields.Date()
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))


class RangeQuery(Query):
    period_kind = fields.String(load_default="month", validate=validate.OneOf(KINDS))
    from_ = Label(data_key="from")
    to = Label()
    breakdown = fields.String(validate=validate.OneOf(BREAKDOWNS))


class TableQuery(RangeQuery):
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))


class ChartQuery(RangeQuery):
    period = Label()  # funnel and coverage: one period (default: this quarter / this month)


class DistributionQuery(Query):
    dimension = fields.String(required=True, validate=validate.OneOf(("tier", "lifecycle", "industry")))
    as_of = fields.Date()
    base = fields.String(load_default="all", validate=validate.OneOf(("all", "active")))
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))


class BehindQuery(PeriodQuery):
    """GET /v1/reports/customers: the customers behind a distinct figure (the dashboard's period rules)."""
    metric = fields.String(required=True, validate=validate.OneOf(CUSTOMER_METRICS))
    tier = Name()
    lifecycle = Name()
    industry = Name()
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = Name()
