"""The event envelope every service publishes and every consumer accepts.

Attribute names follow CloudEvents 1.0 (structured JSON mode) so that outside
tools read them without a guide:

    specversion      "1.0"
    id               unique event id (uuid4); consumers deduplicate on it
    source           the producer, e.g. "crm/customers"
    type             "crm.<event name>", e.g. "crm.customer.created"
    subject          the customer id the event concerns
    time             when the fact happened (RFC 3339, UTC)
    dataschema       "urn:crm:event:<event name>:v<version>"
    dataversion      the payload schema version as an integer (extension)
    sequence         the producer's sequence number for this subject, as decimal digits
                     (CloudEvents "sequence" extension): per (source, subject) it starts
                     at 1 and only grows, so a consumer applies one subject's events in
                     this order and knows a stale one when it sees it
    datacontenttype  "application/json"
    data             the payload, validated by the registered marshmallow schema

On the bus the routing key is the event name plus its version,
e.g. "customer.created.v1", on the topic exchange ``EVENTS_EXCHANGE``; the
headers ``cloudEvents:subject`` and ``cloudEvents:sequence`` repeat those two
attributes so the broker can partition by subject without reading the body.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from marshmallow import Schema, ValidationError, fields, validate

EVENTS_EXCHANGE = "crm.events"
DEAD_LETTER_EXCHANGE = "crm.dead-letter"
SPEC_VERSION = "1.0"
TYPE_PREFIX = "crm."
SUBJECT_HEADER = "cloudEvents:subject"
SEQUENCE_HEADER = "cloudEvents:sequence"


class InvalidEvent(Exception):
    """A message that can never be applied: it goes to the dead-letter queue."""


@dataclass(frozen=True)
class EventDefinition:
    name: str
    version: int
    schema: type[Schema]
    producer: str
    description: str
    validator: Schema = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # one schema instance per event: building marshmallow schemas is costly and they are reentrant
        object.__setattr__(self, "validator", self.schema())

    @property
    def routing_key(self) -> str:
        return f"{self.name}.v{self.version}"

    @property
    def dataschema(self) -> str:
        return f"urn:crm:event:{self.name}:v{self.version}"


REGISTRY: dict[tuple[str, int], EventDefinition] = {}


def define(name: str, version: int, producer: str, description: str):
    """Class decorator registering a payload schema as an event contract."""

    def register(schema_cls: type[Schema]) -> type[Schema]:
        key = (name, version)
        if key in REGISTRY:
            raise ValueError(f"event {name} v{version} defined twice")
        REGISTRY[key] = EventDefinition(name, version, schema_cls, producer, description)
        return schema_cls

    return register


def definition(name: str, version: int | None = None) -> EventDefinition:
    if version is None:
        versions = [v for (n, v) in REGISTRY if n == name]
        if not versions:
            raise KeyError(f"unknown event {name}")
        version = max(versions)
    try:
        return REGISTRY[(name, version)]
    except KeyError:
        raise KeyError(f"unknown event {name} v{version}") from None


@dataclass(frozen=True)
class Event:
    name: str
    version: int
    subject: str
    data: dict
    source: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    sequence: int | None = None  # set by the producer's outbox; None only on events from before it existed
    # delivered by a producer's replay (a rebuild), not live: deduplicated by id only, see claim_batch
    replayed: bool = field(default=False, compare=False)

    @property
    def routing_key(self) -> str:
        return f"{self.name}.v{self.version}"

    @property
    def stream(self) -> tuple[str, str]:
        """The (source, subject) pair whose events are ordered by ``sequence``."""
        return self.source, self.subject


class EnvelopeSchema(Schema):
    specversion = fields.String(required=True, validate=validate.Equal(SPEC_VERSION))
    id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    source = fields.String(required=True, validate=validate.Length(min=1))
    type = fields.String(required=True, validate=validate.Regexp(r"^crm\.[a-z_]+(\.[a-z_]+)+$"))
    subject = fields.String(required=True, validate=validate.Length(min=1, max=64))
    time = fields.AwareDateTime(required=True, default_timezone=timezone.utc)
    dataschema = fields.String(required=True)
    dataversion = fields.Integer(required=True, validate=validate.Range(min=1))
    datacontenttype = fields.String(load_default="application/json")
    sequence = fields.String(load_default=None, validate=validate.Regexp(r"^[0-9]{1,19}$"))
    data = fields.Dict(required=True)


_envelope_schema = EnvelopeSchema()


def _event_name(type_attr: str) -> str:
    return type_attr[len(TYPE_PREFIX):]


def _normalize_time(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def make_event(name: str, subject, data: dict, source: str, time: datetime | None = None,
               version: int | None = None) -> Event:
    """Validate a payload against its contract and build the event (producer side)."""
    spec = definition(name, version)
    serialized = spec.validator.dump(data)
    errors = spec.validator.validate(serialized)
    if errors:
        raise ValueError(f"payload of {name} v{spec.version} breaks its contract: {errors}")
    return Event(
        name=name, version=spec.version, subject=str(subject), data=serialized, source=source,
        time=_normalize_time(time or datetime.now(timezone.utc)),
    )


def to_envelope(event: Event) -> dict:
    spec = definition(event.name, event.version)
    return {
        "specversion": SPEC_VERSION,
        "id": event.id,
        "source": event.source,
        "type": TYPE_PREFIX + event.name,
        "subject": event.subject,
        "time": event.time.isoformat(),
        "dataschema": spec.dataschema,
        "dataversion": event.version,
        "datacontenttype": "application/json",
        **({"sequence": str(event.sequence)} if event.sequence is not None else {}),
        "data": event.data,
    }


def from_envelope(body) -> Event:
    """Validate an envelope and its payload (consumer side); InvalidEvent says why not."""
    if not isinstance(body, dict):
        raise InvalidEvent(f"body is {type(body).__name__}, expected a JSON object envelope")
    try:
        envelope = _envelope_schema.load(body, unknown="include")
    except ValidationError as exc:
        raise InvalidEvent(f"invalid envelope: {exc.messages}") from None
    name = _event_name(envelope["type"])
    try:
        spec = definition(name, envelope["dataversion"])
    except KeyError as exc:
        raise InvalidEvent(str(exc.args[0])) from None
    try:
        data = spec.validator.load(envelope["data"])
    except ValidationError as exc:
        raise InvalidEvent(f"invalid data for {name} v{spec.version}: {exc.messages}") from None
    return Event(
        name=name, version=spec.version, subject=envelope["subject"], data=data,
        source=envelope["source"], id=envelope["id"], time=_normalize_time(envelope["time"]),
        sequence=int(envelope["sequence"]) if envelope["sequence"] is not None else None,
    )
