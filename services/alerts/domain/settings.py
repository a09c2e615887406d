"""The alerts service's settings from ALERTS_* environment variables (no I/O beyond an optional config file).

Two kinds of settings:

* the **rules and score** (an ``AlertsConfig`` mapping): defaults, overridden in this order by
  ``ALERTS_CONFIG_FILE`` (YAML or JSON file), ``ALERTS_CONFIG`` (JSON text), then the short-hand variables
  below; an admin can override further at runtime (PUT /v1/alert-rules, stored in the database);
* **operational** knobs of the service: sweep batch size and the live window.

Every bad value raises DomainError naming the variable (and the dotted setting), so a typo stops the service
at start instead of silently keeping a default.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from services.alerts.domain.common import DomainError
from services.alerts.domain.config import AlertsConfig, merge_settings
from services.alerts.domain.rules import RULE_NAMES

PREFIX = "ALERTS_"
# read by crm_common.config, not by the alerts service itself
INFRASTRUCTURE_VARIABLES = frozenset({"ALERTS_DATABASE_URL", "ALERTS_HTTP_ADDRESS", "ALERTS_DB_PASSWORD"})
# what Kubernetes injects for a Service named "alerts" (service links): not ours either
SERVICE_LINK_PREFIXES = ("ALERTS_SERVICE_", "ALERTS_PORT")


def _int(settings: Mapping[str, str], key: str, default: int, minimum: int = 1) -> int:
    raw = settings.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise DomainError(f"must be a whole number, got {raw!r}", key) from None
    if value < minimum:
        raise DomainError(f"must be >= {minimum}, got {value}", key)
    return value


def _pairs(raw: str, key: str) -> dict[str, str]:
    """"A:21,B:30" -> {"A": "21", "B": "30"}."""
    pairs = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition(":")
        if not sep or not name.strip() or not value.strip():
            raise DomainError(f"expected name:value pairs separated by commas, got {item.strip()!r}", key)
        pairs[name.strip()] = value.strip()
    return pairs


def _number(text: str, key: str) -> int | float:
    try:
        number = float(text)
    except ValueError:
        raise DomainError(f"{text!r} is not a number", key) from None
    return int(number) if number.is_integer() else number


def _load_file(path: str, key: str) -> dict:
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as exc:
        raise DomainError(f"cannot read {path}: {exc.strerror}", key) from None
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml
            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text or "{}")
    except Exception as exc:  # noqa: BLE001 - any parse error is a bad setting
        raise DomainError(f"cannot parse {path}: {exc}", key) from None
    if not isinstance(data, Mapping):
        raise DomainError(f"{path} must hold a mapping", key)
    return dict(data)


def overrides_from_environment(settings: Mapping[str, str]) -> dict[str, Any]:
    """The AlertsConfig mapping the ALERTS_* variables ask for (validated by the caller)."""
    overrides: dict[str, Any] = {}
    if settings.get("ALERTS_CONFIG_FILE"):
        overrides = merge_settings(overrides, _load_file(settings["ALERTS_CONFIG_FILE"], "ALERTS_CONFIG_FILE"))
    if settings.get("ALERTS_CONFIG"):
        try:
            data = json.loads(settings["ALERTS_CONFIG"])
        except ValueError as exc:
            raise DomainError(f"not valid JSON: {exc}", "ALERTS_CONFIG") from None
        if not isinstance(data, Mapping):
            raise DomainError("must be a JSON object", "ALERTS_CONFIG")
        overrides = merge_settings(overrides, data)
    short: dict[str, Any] = {}
    for key, name in (("ALERTS_ESCALATE_AFTER_HOURS", "escalate_after_hours"),
                      ("ALERTS_RECALL_DUE_HOURS", "recall_due_hours"),
                      ("ALERTS_REALERT_COOLDOWN_DAYS", "realert_cooldown_days")):
        if settings.get(key):
            short[name] = _int(settings, key, 0, minimum=0)
    if settings.get("ALERTS_SILENCE_DAYS"):
        days = {tier: _number(v, "ALERTS_SILENCE_DAYS")
                for tier, v in _pairs(settings["ALERTS_SILENCE_DAYS"], "ALERTS_SILENCE_DAYS").items()}
        short.setdefault("rules", {})["silence"] = {"days_by_tier": days}
    if settings.get("ALERTS_DISABLED_RULES"):
        for rule in (r.strip() for r in settings["ALERTS_DISABLED_RULES"].split(",")):
            if not rule:
                continue
            if rule not in RULE_NAMES:
                raise DomainError(f"unknown rule {rule!r} (rules are {', '.join(RULE_NAMES)})",
                                  "ALERTS_DISABLED_RULES")
            short.setdefault("rules", {}).setdefault(rule, {})["enabled"] = False
    if settings.get("ALERTS_HEALTH_WEIGHTS"):
        weights = {k: _number(v, "ALERTS_HEALTH_WEIGHTS")
                   for k, v in _pairs(settings["ALERTS_HEALTH_WEIGHTS"], "ALERTS_HEALTH_WEIGHTS").items()}
        short.setdefault("health", {})["weights"] = weights
    if settings.get("ALERTS_HEALTH_BANDS"):
        bands = {k: _number(v, "ALERTS_HEALTH_BANDS")
                 for k, v in _pairs(settings["ALERTS_HEALTH_BANDS"], "ALERTS_HEALTH_BANDS").items()}
        short.setdefault("health", {})["bands"] = bands
    return merge_settings(overrides, short)


@dataclass(frozen=True)
class AlertsSettings:
    """What the alerts service reads from its environment."""
    config_overrides: Mapping[str, Any] = field(default_factory=dict)  # AlertsConfig mapping from ALERTS_*
    sweep_batch_size: int = 5000            # customers per sweep page (one transaction each)
    live_window_hours: int = 48             # events dated older than this are backfill (see docs/alerts.md)

    def __post_init__(self) -> None:
        self.config()  # a broken override must fail at start

    def config(self, runtime_overrides: Mapping[str, Any] | None = None) -> AlertsConfig:
        """Defaults <- environment <- runtime overrides; DomainError names the dotted field at fault."""
        return AlertsConfig.from_dict(merge_settings(self.config_overrides, runtime_overrides))

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> "AlertsSettings":
        known = {"ALERTS_CONFIG_FILE", "ALERTS_CONFIG", "ALERTS_ESCALATE_AFTER_HOURS", "ALERTS_RECALL_DUE_HOURS",
                 "ALERTS_REALERT_COOLDOWN_DAYS", "ALERTS_SILENCE_DAYS", "ALERTS_DISABLED_RULES",
                 "ALERTS_HEALTH_WEIGHTS", "ALERTS_HEALTH_BANDS", "ALERTS_SWEEP_BATCH_SIZE",
                 "ALERTS_LIVE_WINDOW_HOURS"}
        unknown = sorted(k for k in settings if k.startswith(PREFIX) and k not in known | INFRASTRUCTURE_VARIABLES
                         and not k.startswith(SERVICE_LINK_PREFIXES))
        if unknown:
            raise DomainError(f"unknown setting (known: {', '.join(sorted(known))})", unknown[0])
        overrides = overrides_from_environment(settings)
        try:
            AlertsConfig.from_dict(overrides)
        except DomainError as err:
            raise DomainError(err.reason, f"ALERTS_* {err.field}" if err.field else "ALERTS_*") from None
        return cls(
            config_overrides=overrides,
            sweep_batch_size=_int(settings, "ALERTS_SWEEP_BATCH_SIZE", cls.sweep_batch_size),
            live_window_hours=_int(settings, "ALERTS_LIVE_WINDOW_HOURS", cls.live_window_hours, minimum=0),
        )
