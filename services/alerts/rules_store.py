"""The settings rows (alert_settings): the rules an admin stored over the environment's, and what the last
sweep was judged with (so the next one knows whether it may skip the customers whose verdict cannot change)."""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime

from sqlalchemy import insert, select, update

from crm_common.db import utc
from services.alerts import domain
from services.alerts.models import alert_settings

log = logging.getLogger(__name__)

OVERRIDES, SWEEP = "overrides", "sweep"
# bump when a rule, the score or next_check changes meaning: the next sweep then judges every customer
JUDGEMENT_REVISION = 1

_config_cache: dict = {}  # (id(settings), version) -> (settings, config): building a config validates it all


def stored(uow, key: str, for_update: bool = False):
    query = select(alert_settings).where(alert_settings.c.key == key)
    return uow.session.execute(query.with_for_update() if for_update else query).first()


def write(uow, key: str, value: dict, now: datetime, by: str, row=None) -> None:
    if row is None:
        uow.session.execute(insert(alert_settings).values(key=key, value=value, version=1, updated_at=now,
                                                          updated_by=by))
    else:
        uow.session.execute(update(alert_settings).where(alert_settings.c.key == key).values(
            value=value, version=row.version + 1, updated_at=now, updated_by=by))


def current_config(uow, settings: domain.AlertsSettings) -> domain.AlertsConfig:
    """Defaults <- ALERTS_* environment <- overrides an admin stored with PUT /v1/alert-rules.

    Read in every unit of work (one primary-key look-up), so a PUT takes effect on every replica at once;
    the parsed config is cached per stored version."""
    row = stored(uow, OVERRIDES)
    key = (id(settings), row.version if row else 0)
    cached = _config_cache.get(key)
    if cached is not None and cached[0] is settings:
        return cached[1]
    try:
        config = settings.config(row.value if row else None)
    except domain.DomainError as err:  # the environment changed under a stored override: keep running on env
        log.error("stored alert-rules overrides no longer valid (%s); using the environment's settings", err)
        config = settings.config()
    if len(_config_cache) > 64:
        _config_cache.clear()
    _config_cache[key] = (settings, config)
    return config


def fingerprint(cfg: domain.AlertsConfig) -> str:
    text = json.dumps({"config": domain.config_to_dict(cfg), "revision": JUDGEMENT_REVISION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def only_due_customers(uow, cfg: domain.AlertsConfig, as_of: datetime) -> bool:
    """May this sweep judge only the customers due by ``as_of``? Not when the rules changed since the last
    sweep, nor when sweeping a moment earlier than it (next_check_at was worked out from later days)."""
    row = stored(uow, SWEEP)
    if row is None or row.value.get("config") != fingerprint(cfg):
        return False
    return as_of >= utc(datetime.fromisoformat(row.value["as_of"]))


def record_sweep(uow, cfg: domain.AlertsConfig, as_of: datetime, now: datetime) -> None:
    write(uow, SWEEP, {"config": fingerprint(cfg), "as_of": as_of.isoformat()}, now, "sweep",
          stored(uow, SWEEP, for_update=True))
