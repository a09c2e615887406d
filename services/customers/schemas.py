"""Request and response shapes of the customers HTTP API."""
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from crm_common.contracts.fields import LIFECYCLES, PIPELINE_STAGES, ROLES, TIERS, Timestamp
from crm_common.contracts.imports import KINDS, check_mapping

SOURCE_CHANNELS = ("exhibition", "online", "referral", "cold_call", "partner", "advertising", "event", "other")
IMPORTANT_DATE_KINDS = ("birthday", "contract_anniversary", "founding_day", "other")
SORTS = ("created_at", "company", "rolling_12m_total", "last_purchase_at")

Text = lambda max_len, **kw: fields.String(validate=validate.Length(min=1, max=max_len), **kw)  # noqa: E731


class Strict(Schema):
    class Meta:
        unknown = RAISE


class ContactSchema(Strict):
    name = Text(200, required=True)
    role = fields.String(allow_none=True, validate=validate.Length(max=100))
    phone = fields.String(allow_none=True, validate=validate.Regexp(r"^[0-9 +()\-.]{3,50}$",
                                                                     error="not a phone number"))
    email = fields.Email(allow_none=True)
    is_decision_maker = fields.Boolean(load_default=False)
    birthday = fields.Date(allow_none=True)


class ImportantDateSchema(Strict):
    kind = fields.String(required=True, validate=validate.OneOf(IMPORTANT_DATE_KINDS))
    date = fields.Date(required=True)
    label = fields.String(load_default="", validate=validate.Length(max=200))


class CustomerFields(Strict):
    company = Text(300)
    industry = fields.String(allow_none=True, validate=validate.Length(max=100))
    source_channel = fields.String(allow_none=True, validate=validate.OneOf(SOURCE_CHANNELS))
    owner_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(max=50))
    contacts = fields.List(fields.Nested(ContactSchema), validate=validate.Length(max=100))
    important_dates = fields.List(fields.Nested(ImportantDateSchema), validate=validate.Length(max=50))
    notes = fields.String(validate=validate.Length(max=10000))
    pipeline_stage = fields.String(allow_none=True, validate=validate.OneOf(PIPELINE_STAGES))


class CustomerCreateSchema(CustomerFields):
    company = Text(300, required=True)
    created_at = Timestamp()  # imports may backdate the record
    external_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))  # unique
    team = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))  # an unowned customer's


class CustomerUpdateSchema(CustomerFields):
    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("nothing to update", field_name="body")


class PurchaseSchema(Strict):
    amount = fields.Decimal(required=True, places=2, validate=validate.Range(min=0, min_inclusive=False))
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$", error="ISO 4217 code, e.g. USD"))
    purchased_at = Timestamp(required=True)
    external_ref = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))


class ImportSchema(Strict):
    """A customer with its purchase history in one call (migrations, demo data)."""
    customer = fields.Nested(CustomerCreateSchema, required=True)
    purchases = fields.List(fields.Nested(PurchaseSchema), load_default=list, validate=validate.Length(max=5000))
    stages = fields.List(fields.Nested(lambda: StageMoveSchema()), load_default=list)


class StageMoveSchema(Strict):
    stage = fields.String(required=True, validate=validate.OneOf(PIPELINE_STAGES))
    changed_at = Timestamp()


class TransferSchema(Strict):
    to_owner_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    reason = fields.String(load_default="", validate=validate.Length(max=1000))


class HandoverSchema(Strict):
    to_owner_id = fields.String(validate=validate.Length(min=1, max=64))
    to_team = fields.String(validate=validate.Length(min=1, max=64))
    reason = fields.String(load_default="", validate=validate.Length(max=1000))
    deactivate = fields.Boolean(load_default=True)
    dry_run = fields.Boolean(load_default=False)  # the plan (who gets which customers), nothing moved

    @validates_schema
    def one_target(self, data, **kwargs):
        if bool(data.get("to_owner_id")) == bool(data.get("to_team")):
            raise ValidationError("give exactly one of to_owner_id or to_team", field_name="to_owner_id")


class RepSchema(Strict):
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.\-]{1,64}$"))
    name = Text(200, required=True)
    email = fields.Email(allow_none=True)
    team = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    role = fields.String(load_default="rep", validate=validate.OneOf(ROLES))
    manager_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))


class LoginSchema(Strict):
    user = Text(200, required=True)        # rep id or email
    password = Text(256, required=True)


class PasswordSchema(Strict):
    password = fields.String(required=True)  # its rules (length, ...) are checked by domain.signin, naming the field
    current_password = fields.String(load_default=None, allow_none=False, validate=validate.Length(max=256))


class RepUpdateSchema(Strict):
    name = Text(200)
    email = fields.Email(allow_none=True)
    team = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    role = fields.String(validate=validate.OneOf(ROLES))
    manager_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    active = fields.Boolean()

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:  # an UPDATE with nothing to set is no SQL at all (it answered 503)
            raise ValidationError("nothing to update", field_name="body")


class ListQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    owner_id = fields.String()
    team = fields.String()
    external_id = fields.String(validate=validate.Length(min=1, max=100))
    tier = fields.String(validate=validate.OneOf(TIERS))
    lifecycle = fields.String(validate=validate.OneOf(LIFECYCLES))
    stage = fields.String(validate=validate.OneOf(PIPELINE_STAGES))
    industry = fields.String()
    tag = fields.String()
    q = fields.String(validate=validate.Length(min=2, max=100))
    include_archived = fields.Boolean(load_default=False)
    sort = fields.String(load_default="created_at", validate=validate.OneOf(SORTS + tuple("-" + s for s in SORTS)))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String()


class ClassificationSettingsSchema(Strict):
    """PUT /v1/classification/settings: what to store over the environment's policy (absent: the environment's)."""
    tier_minimums = fields.Dict(keys=fields.String(validate=validate.OneOf(TIERS)),
                                values=fields.Decimal(validate=validate.Range(min=0, max=10 ** 12)))
    new_days = fields.Integer(validate=validate.Range(min=1, max=3650))
    active_days = fields.Integer(validate=validate.Range(min=1, max=3650))
    at_risk_days = fields.Integer(validate=validate.Range(min=1, max=3650))
    churned_days = fields.Integer(validate=validate.Range(min=1, max=3650))
    churn_contact_days = fields.Integer(validate=validate.Range(min=1, max=3650))


class SweepSchema(Strict):
    as_of = Timestamp()
    # every live customer, not only those due: after the environment's policy (CUSTOMERS_*_DAYS, ...) changed
    review_all = fields.Boolean(load_default=False)


class ImportJobSchema(Strict):
    """POST /v1/imports: what the file is and how to read it; the file itself follows with PUT .../file."""
    kind = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(KINDS))  # None: from headers
    filename = fields.String(load_default="upload.csv", validate=validate.Length(min=1, max=300))
    dry_run = fields.Boolean(load_default=False)
    mapping = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict,
                          validate=validate.Length(max=500))
    timezone = fields.String(load_default="UTC", validate=validate.Length(min=1, max=64))  # of dates without one
    # the file's SHA-256, when the client knows it: the upload is checked against it, and a client that was
    # stopped finds its job again by it
    sha256 = fields.String(allow_none=True, load_default=None, validate=validate.Regexp(r"^[0-9a-f]{64}$"))

    @validates_schema
    def readable(self, data, **kwargs):
        try:
            check_mapping(data.get("mapping") or {})
        except ValueError as exc:
            raise ValidationError(str(exc), field_name="mapping")
        try:
            ZoneInfo(data.get("timezone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("not an IANA time zone, e.g. Asia/Shanghai", field_name="timezone")


class ImportListQuery(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
