"""Field helpers shared by the contracts, so every payload spells values alike."""
from datetime import datetime, timezone

from marshmallow import ValidationError, fields, validate

TIERS = ("A", "B", "C")
LIFECYCLES = ("potential", "new", "active", "dormant", "at_risk", "churned")
# The stages in which an open churn alert is news and moves a customer to at_risk. A dormant customer
# stays dormant (its quarterly wake-up is the answer), a prospect is never flagged, one at_risk by
# silence already is. Alerts reads it to ask for the flag, customers to decide what the flag does.
AT_RISK_IS_NEWS = ("new", "active")
PIPELINE_STAGES = ("first_contact", "needs_analysis", "proposal", "won", "lost")
ROLES = ("rep", "manager", "admin")


def Id(**kw):
    return fields.String(validate=validate.Length(min=1, max=64), **kw)


def OptionalId(**kw):
    return fields.String(allow_none=True, load_default=None, validate=validate.Length(min=1, max=64), **kw)


# every moment a CRM deals in; outside it, windows subtracted or added (365 days, grace periods) overflow
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(3000, 1, 1, tzinfo=timezone.utc)


class UTCDateTime(fields.AwareDateTime):
    """RFC 3339 timestamp; naive input is taken as UTC and every value comes out in UTC."""

    def __init__(self, **kw):
        super().__init__(default_timezone=timezone.utc, **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            moment = super()._deserialize(value, attr, data, **kwargs).astimezone(timezone.utc)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: no such UTC instant
            raise ValidationError("Not a valid datetime: no such UTC instant.") from None
        if not EARLIEST <= moment < LATEST:
            raise ValidationError(f"must be between {EARLIEST.year} and {LATEST.year - 1}")
        return moment


def Timestamp(**kw):
    return UTCDateTime(**kw)


def Money(**kw):
    return fields.Decimal(as_string=True, places=2, **kw)


def OneOf(choices, **kw):
    return fields.String(validate=validate.OneOf(choices), **kw)
