"""Renders the event contract from the registered schemas, so no copy of it can drift from the code.

docs/events.md is for people; docs/asyncapi.yaml (AsyncAPI 3.0) and docs/schemas/*.json (JSON Schema
2020-12, one per payload version plus the envelope) are for tools and for teams in other languages.
``python -m crm docs-events`` writes them all; tests fail when one is out of date.
"""
import json
import os

import yaml
from marshmallow import RAISE, fields, missing, validate

import crm_common.contracts  # noqa: F401 - registers every contract
from crm_common.events import (
    DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, REGISTRY, SEQUENCE_HEADER, SPEC_VERSION, SUBJECT_HEADER, TYPE_PREFIX,
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_FILE = "asyncapi.yaml"
SCHEMAS_DIR = "schemas"
ENVELOPE_FILE = f"{SCHEMAS_DIR}/envelope.json"
AMQP_BINDING_VERSION = "0.3.0"
# the AsyncAPI document's own version; each event is versioned by its routing key
ASYNCAPI_INFO_VERSION = "1.0.0"

# marshmallow field -> (JSON Schema, wording in events.md); subclasses before their bases
_SCALARS = (
    (fields.Email, {"type": "string", "format": "email"}, "email address"),
    (fields.AwareDateTime, {"type": "string", "format": "date-time"}, "timestamp (RFC 3339, UTC)"),
    (fields.Date, {"type": "string", "format": "date"}, "date (YYYY-MM-DD)"),
    (fields.Integer, {"type": "integer"}, "integer"),
    (fields.Boolean, {"type": "boolean"}, "boolean"),
    (fields.String, {"type": "string"}, "string"),
    (fields.Dict, {"type": "object"}, "object"),
    (fields.Raw, {}, "any JSON value"),
)
_LENGTH_KEYWORDS = {"string": ("minLength", "maxLength"), "array": ("minItems", "maxItems"),
                    "object": ("minProperties", "maxProperties")}

_DELIVERY = "Delivery is at least once: deduplicate on `id`."
_VERSIONING = (
    "Versioning: a payload only gains optional fields within a version; a breaking change is published",
    "as a new version (new routing key) alongside the old one until consumers have moved.",
)


def _specs():
    return [REGISTRY[key] for key in sorted(REGISTRY)]


def _sources() -> list[str]:
    return sorted({f"crm/{spec.producer}" for spec in REGISTRY.values()})


def _envelope_attributes() -> list[tuple[str, dict, str]]:
    """(attribute, JSON Schema, meaning): the meaning is both the events.md cell and the schema's description
    (unless the schema brings a fuller one), so the page and envelope.json say the same thing."""
    return [
        ("specversion", {"const": SPEC_VERSION}, f"always `{SPEC_VERSION}`"),
        ("id", {"type": "string", "minLength": 1, "maxLength": 64},
         "unique event id (UUID); the same id on a redelivery"),
        ("source", {"enum": _sources()}, "the producer: `crm/customers`, `crm/followups`, `crm/alerts`"),
        ("type", {"type": "string", "pattern": r"^crm\.[a-z_]+(\.[a-z_]+)+$"},
         "`crm.<event name>`, e.g. `crm.customer.created`"),
        ("subject", {"type": "string", "minLength": 1, "maxLength": 64},
         "the customer id the event concerns (the rep id for `rep.*` events)"),
        ("time", {"type": "string", "format": "date-time"},
         "when the fact happened (RFC 3339, UTC); backdated facts carry their own time"),
        ("dataschema", {"type": "string", "pattern": r"^urn:crm:event:[a-z_.]+:v[1-9][0-9]*$"},
         "`urn:crm:event:<event name>:v<version>`"),
        ("dataversion", {"type": "integer", "minimum": 1},
         "the payload schema version, an integer (extension attribute)"),
        ("sequence", {"type": "string", "pattern": "^[0-9]+$", "description": (
            "The producer's sequence number for this subject: per producer and subject it starts at 1 and is "
            "strictly increasing. Decimal digits in a string, compared as integers (zero-padding is not "
            "guaranteed). Apply one subject's events in this order and ignore one not above the last applied. "
            f"Extension attribute, repeated in the `{SEQUENCE_HEADER}` message header.")},
         "the producer's sequence number for this subject: per producer and subject, strictly increasing; "
         "apply one subject's events in this order and ignore one not above the last applied"),
        ("datacontenttype", {"const": "application/json"}, "`application/json`"),
        ("data", {"type": "object", "description": "the payload, valid under the JSON Schema that `dataschema` "
                                                   "names (`schemas/<event name>.v<version>.json`)"},
         "the payload described below"),
    ]


def _attribute_schema(name: str) -> dict:
    return next(schema for attribute, schema, _ in _envelope_attributes() if attribute == name)


# --- JSON Schema of a payload, walked from its marshmallow schema ----------------------------------

def _scalar(field) -> tuple[dict, str]:
    for cls, schema, wording in _SCALARS:
        if isinstance(field, cls):
            return schema, wording
    raise TypeError(f"no JSON Schema for field {field.name!r} of type {type(field).__name__}")


def _choices(field):
    return next((v.choices for v in field.validators if isinstance(v, validate.OneOf)), None)


def _decimal_pattern(quantum) -> str:
    # marshmallow keeps `places` as a quantum (Decimal("0.01")) and dumps exactly that many decimals
    if quantum is None:
        return r"^-?[0-9]+(\.[0-9]+)?$"
    digits = -quantum.as_tuple().exponent
    return rf"^-?[0-9]+\.[0-9]{{{digits}}}$" if digits > 0 else r"^-?[0-9]+$"


def _type_schema(field) -> dict:
    if isinstance(field, fields.Nested):
        item = _object_schema(field.schema, unknown=field.unknown)
        return {"type": "array", "items": item} if field.many else item
    if isinstance(field, fields.List):
        return {"type": "array", "items": _field_schema(field.inner)}
    if isinstance(field, fields.Decimal):
        if not field.as_string:
            raise TypeError(f"decimal field {field.name!r} must be published as a string (as_string=True)")
        return {"type": "string", "pattern": _decimal_pattern(field.places)}
    schema = dict(_scalar(field)[0])  # a copy: the caller adds keywords
    if isinstance(field, fields.Dict) and field.value_field is not None:
        schema["additionalProperties"] = _field_schema(field.value_field)
    return schema


def _range_keywords(check: validate.Range) -> dict:
    keywords = {}
    if check.min is not None:
        keywords["minimum" if check.min_inclusive else "exclusiveMinimum"] = check.min
    if check.max is not None:
        keywords["maximum" if check.max_inclusive else "exclusiveMaximum"] = check.max
    return keywords


def _validator_keywords(check, json_type: str) -> dict:
    if isinstance(check, validate.OneOf):
        return {"enum": list(check.choices)}
    if isinstance(check, validate.Equal):
        return {"const": check.comparable}
    if isinstance(check, validate.Regexp):
        # marshmallow anchors at the start (re.match); a JSON Schema pattern matches anywhere
        pattern = check.regex.pattern
        return {"pattern": pattern if pattern.startswith("^") else f"^(?:{pattern})"}
    if isinstance(check, validate.Length):
        low, high = _LENGTH_KEYWORDS[json_type]
        bounds = (check.equal, check.equal) if check.equal is not None else (check.min, check.max)
        return {key: value for key, value in zip((low, high), bounds) if value is not None}
    if isinstance(check, validate.Range):
        return _range_keywords(check)
    # refusing beats a schema that quietly accepts what the consumers refuse
    raise TypeError(f"no JSON Schema for validator {check!r}")


def _field_schema(field) -> dict:
    if field.dump_only or field.load_only:
        raise TypeError(f"field {field.name!r} is dump_only or load_only: producer and consumer would disagree")
    schema = _type_schema(field)
    for check in field.validators:
        schema.update(_validator_keywords(check, schema.get("type")))
    if field.allow_none:  # marshmallow runs no validator on None, so null joins the type and any enum
        if isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    if field.load_default is not missing:  # what a consumer reads when the field is absent
        schema["default"] = field.load_default() if callable(field.load_default) else field.load_default
    if "description" in field.metadata:
        schema["description"] = field.metadata["description"]
    return schema


def _object_schema(schema, title: str | None = None, unknown: str | None = None) -> dict:
    keys = {name: field.data_key or name for name, field in schema.fields.items()}
    return {
        "title": title or type(schema).__name__,
        "type": "object",
        "properties": {keys[name]: _field_schema(field) for name, field in schema.fields.items()},
        "required": [keys[name] for name, field in schema.fields.items() if field.required],
        # marshmallow refuses unknown keys under RAISE, its default, and drops or keeps them otherwise
        "additionalProperties": (unknown or schema.unknown) != RAISE,
    }


def schema_path(spec) -> str:
    return f"{SCHEMAS_DIR}/{spec.routing_key}.json"


def payload_schema(spec) -> dict:
    """The JSON Schema of one event version's payload; its $id is the envelope's ``dataschema``."""
    body = _object_schema(spec.validator, title=f"{spec.name} v{spec.version}")
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": spec.dataschema, "title": body.pop("title"),
            "description": spec.description, **body}


def envelope_schema() -> dict:
    attributes = _envelope_attributes()
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "CRM event envelope",
        "description": f"CloudEvents {SPEC_VERSION} in structured JSON mode, as published on `{EVENTS_EXCHANGE}`.",
        "type": "object",
        "properties": {name: {"description": meaning, **schema} for name, schema, meaning in attributes},
        "required": [name for name, _, _ in attributes],
        # CloudEvents lets a producer add extension attributes: a consumer ignores those it does not know
        "additionalProperties": True,
    }


# --- AsyncAPI 3.0 -------------------------------------------------------------------------------

def _info() -> dict:
    description = [
        f"Facts the CRM services publish on the durable topic exchange `{EVENTS_EXCHANGE}`, one channel per",
        "routing key `<event name>.v<version>`. Each message is a persistent CloudEvents envelope in structured",
        f"JSON mode (`{ENVELOPE_FILE}`) whose `data` follows the payload schema of its channel",
        f"(`{SCHEMAS_DIR}/<event name>.v<version>.json`, whose `$id` is the envelope's `dataschema`); the AMQP",
        "`message_id` property is the event id.",
        "",
        _DELIVERY,
        "Per subject, apply events in `sequence` order (compared as integers) and ignore one not above the",
        "last applied.",
        "",
        *_VERSIONING,
        "",
        f"Messages a CRM service cannot apply go to its own queue on the `{DEAD_LETTER_EXCHANGE}` topic exchange;",
        "that is internal to each consumer and not part of this contract.",
    ]
    return {"title": "CRM events", "version": ASYNCAPI_INFO_VERSION, "description": "\n".join(description)}


def _headers_schema() -> dict:
    return {
        "type": "object",
        "required": [SUBJECT_HEADER, SEQUENCE_HEADER],
        "properties": {
            SUBJECT_HEADER: {**_attribute_schema("subject"), "description": (
                "the envelope's `subject`, so a consumer can partition by subject without reading the body")},
            SEQUENCE_HEADER: {**_attribute_schema("sequence"), "description": "the envelope's `sequence`"},
        },
        "additionalProperties": True,  # the broker and retries add their own headers
    }


def _message(spec) -> dict:
    return {
        "name": spec.routing_key,
        "title": f"{spec.name} v{spec.version}",
        "summary": spec.description,
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/cloudEventsHeaders"},
        "payload": {"allOf": [{"$ref": f"./{ENVELOPE_FILE}"}, {
            "type": "object",
            "properties": {
                "source": {"const": f"crm/{spec.producer}"},
                "type": {"const": TYPE_PREFIX + spec.name},
                "dataschema": {"const": spec.dataschema},
                "dataversion": {"const": spec.version},
                "data": {"$ref": f"./{schema_path(spec)}"},
            },
        }]},
        "bindings": {"$ref": "#/components/messageBindings/json"},
        "tags": [{"name": spec.producer}],
    }


def _channel(spec) -> dict:
    key = spec.routing_key
    return {
        "address": key,
        "title": f"{spec.name} v{spec.version}",
        "description": f"{spec.description} Published by crm/{spec.producer}.",
        "messages": {key: {"$ref": f"#/components/messages/{key}"}},
        "bindings": {"$ref": "#/components/channelBindings/eventsExchange"},
    }


def _operations(spec) -> dict:
    key = spec.routing_key
    shared = {"channel": {"$ref": f"#/channels/{key}"}, "messages": [{"$ref": f"#/channels/{key}/messages/{key}"}]}
    return {
        f"send.{key}": {"action": "send", **shared, "summary": f"crm/{spec.producer} publishes it.",
                        "tags": [{"name": spec.producer}], "bindings": {"$ref": "#/components/operationBindings/send"}},
        f"receive.{key}": {"action": "receive", **shared, "summary": (
            f"A subscriber binds its queue to `{EVENTS_EXCHANGE}` with this routing key or a pattern "
            "(`#`, `customer.*.v1`) and acks once it has applied the event."),
            "bindings": {"$ref": "#/components/operationBindings/receive"}},
    }


def _components(specs) -> dict:
    version = {"bindingVersion": AMQP_BINDING_VERSION}
    return {
        "schemas": {"cloudEventsHeaders": _headers_schema()},
        "messages": {spec.routing_key: _message(spec) for spec in specs},
        "channelBindings": {"eventsExchange": {"amqp": {
            "is": "routingKey",
            "exchange": {"name": EVENTS_EXCHANGE, "type": "topic", "durable": True, "autoDelete": False},
            **version}}},
        "operationBindings": {"send": {"amqp": {"deliveryMode": 2, **version}},  # persistent
                              "receive": {"amqp": {"ack": True, **version}}},
        "messageBindings": {"json": {"amqp": {"contentEncoding": "utf-8", **version}}},
    }


def asyncapi() -> dict:
    specs = _specs()
    return {
        "asyncapi": "3.0.0",
        "info": _info(),
        "defaultContentType": "application/json",
        "servers": {"rabbitmq": {
            "host": "rabbitmq.example.com:5672", "protocol": "amqp", "protocolVersion": "0.9.1",
            "description": "A placeholder: use the broker of your deployment (the services' AMQP_URI)."}},
        "channels": {spec.routing_key: _channel(spec) for spec in specs},
        "operations": {op_id: op for spec in specs for op_id, op in _operations(spec).items()},
        "components": _components(specs),
    }


# --- docs/events.md -----------------------------------------------------------------------------

def _type_of(field) -> str:
    if isinstance(field, fields.Nested):
        inner = field.schema
        return "object {" + ", ".join(f"{n}: {_type_of(f)}" for n, f in inner.fields.items()) + "}"
    if isinstance(field, fields.List):
        return f"list of {_type_of(field.inner)}"
    wording = "decimal as string" if isinstance(field, fields.Decimal) else _scalar(field)[1]
    choices = _choices(field)
    return f"{wording}, one of {', '.join(choices)}" if choices else wording


def _event_section(spec) -> list[str]:
    lines = [f"### `{spec.name}` v{spec.version}", "", f"Routing key `{spec.routing_key}`. {spec.description}", "",
             "| field | type | required |", "| --- | --- | --- |"]
    for field_name, field in spec.validator.fields.items():
        required = "yes" if field.required else ("nullable" if field.allow_none else "no")
        lines.append(f"| `{field_name}` | {_type_of(field)} | {required} |")
    return lines + [""]


def render() -> str:
    lines = [
        "# Event contract",
        "",
        "<!-- generated by `python -m crm docs-events`; a test fails when it is out of date -->",
        "",
        f"Every fact is published to the durable topic exchange `{EVENTS_EXCHANGE}` as a persistent JSON message",
        "(content type `application/json`), with routing key `<event name>.v<version>` (for example",
        "`customer.created.v1`). Bind a queue with `#` for everything, `customer.*.v1` for one family, or an",
        f"exact key. {_DELIVERY} A runnable subscriber with plain kombu is",
        "in `examples/kombu_subscriber.py`.",
        "",
        f"For code generators and other languages: [{ASYNCAPI_FILE}]({ASYNCAPI_FILE}) (AsyncAPI 3.0) describes",
        f"the channels, headers and messages, and [{SCHEMAS_DIR}/]({SCHEMAS_DIR}/) holds a JSON Schema (draft",
        "2020-12) for the envelope (`envelope.json`) and for each payload (`<event name>.v<version>.json`, its",
        "`$id` being the `dataschema`). Both are generated with this page.",
        "",
        "## Envelope (CloudEvents 1.0, structured mode)",
        "",
        "| attribute | meaning |",
        "| --- | --- |",
        *(f"| `{name}` | {meaning} |" for name, _, meaning in _envelope_attributes()),
        "",
        *_VERSIONING,
        "",
        f"Messages a consumer cannot apply go to the `{DEAD_LETTER_EXCHANGE}` topic exchange (routing key",
        "`<service>.<routing key>`, queue `<service>.dead-letter`) with the reason in the",
        "`x-crm-dead-letter-reason` header.",
        "",
    ]
    for producer in sorted({spec.producer for spec in REGISTRY.values()}):
        lines += [f"## Published by {producer}", ""]
        for spec in _specs():
            if spec.producer == producer:
                lines += _event_section(spec)
    return "\n".join(lines)


# --- files --------------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, and repeats shared objects instead of making YAML
    anchors of them, so the file reads like the AsyncAPI examples and any tool takes it."""

    def ignore_aliases(self, data):
        return True


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def _json(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """Every generated file's text, by its path under docs/."""
    files = {
        "events.md": render(),
        ASYNCAPI_FILE: yaml.dump(asyncapi(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110),
        ENVELOPE_FILE: _json(envelope_schema()),
    }
    files.update({schema_path(spec): _json(payload_schema(spec)) for spec in _specs()})
    return files


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def out_of_date(docs_dir: str) -> list[str]:
    """Paths under docs_dir that differ from what the contracts render, or that no contract renders any more."""
    files = render_all()
    stale = [path for path, text in files.items() if _read(os.path.join(docs_dir, path)) != text]
    schemas_dir = os.path.join(docs_dir, SCHEMAS_DIR)
    on_disk = sorted(os.listdir(schemas_dir)) if os.path.isdir(schemas_dir) else []
    return stale + [f"{SCHEMAS_DIR}/{name}" for name in on_disk if f"{SCHEMAS_DIR}/{name}" not in files]


def write(docs_dir: str) -> list[str]:
    """Brings docs_dir up to date (a schema whose contract is gone is removed); returns the paths it changed."""
    files = render_all()
    changed = out_of_date(docs_dir)
    for path in changed:
        target = os.path.join(docs_dir, path)
        if path not in files:
            os.remove(target)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(files[path])
    return changed
