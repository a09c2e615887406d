"""The classification policy in force: the environment's (CUSTOMERS_TIER_THRESHOLDS, CUSTOMERS_ACTIVE_DAYS, ...)
with what an admin stored over it (PUT /v1/classification/settings), read by every use case that classifies.

``EffectivePolicy`` is the service's ``policy`` dependency: each worker gets the policy in force, read from the
one settings row at most once a second per process, so a change reaches every replica within a second or two.
A change rewrites no history: it marks every customer due for review, so the next sweep (daily, or POST
/v1/classification/sweep) classifies everyone under it from where their history was exact, and each purchase or
fact from then on its customer.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime

from nameko.extensions import DependencyProvider
from sqlalchemy import insert, select, update

from crm_common.auth import Principal
from crm_common.db import utc
from crm_common.dependencies import Store
from services.customers.domain import ClassificationPolicy
from services.customers.domain.classification import DAY_SETTINGS
from services.customers.models import classification_settings, customers

log = logging.getLogger(__name__)
CACHE_SECONDS = 1.0


def stored_overrides(uow, for_update: bool = False):
    query = select(classification_settings).where(classification_settings.c.id == 1)
    return uow.session.execute(query.with_for_update() if for_update else query).first()


def settings_view(uow, actor: Principal, base: ClassificationPolicy) -> dict:
    """GET: the policy in force, what is stored over the environment, and who stored it."""
    actor.require("manager", "admin")
    row = stored_overrides(uow)
    overrides = row.overrides if row is not None else {}
    return {"policy": _as_dict(base.with_overrides(overrides)), "environment": _as_dict(base),
            "overrides": overrides, "updated_at": utc(row.updated_at) if row else None,
            "updated_by": row.updated_by if row else None}


def put_settings(uow, actor: Principal, data: dict, base: ClassificationPolicy, now: datetime) -> dict:
    """PUT (admin): the overrides replaced by these (an empty body goes back to the environment's)."""
    actor.require("admin")
    overrides = {**({"tier_minimums": {t: str(v) for t, v in data["tier_minimums"].items()}}
                    if data.get("tier_minimums") else {}),
                 **{name: data[name] for name in DAY_SETTINGS if name in data}}
    base.with_overrides(overrides)  # refused here, naming the field, if a relation breaks
    row = stored_overrides(uow, for_update=True)
    values = {"overrides": overrides, "updated_at": now, "updated_by": actor.user_id}
    if row is None:
        uow.session.execute(insert(classification_settings).values(id=1, **values))
    else:
        uow.session.execute(update(classification_settings).where(classification_settings.c.id == 1).values(**values))
    # the change points of every customer move with the day counts: all are due for review under the new policy
    uow.session.execute(update(customers).where(customers.c.archived_at.is_(None)).values(next_review_at=now))
    uow.audit(actor, "classification_settings.updated", "classification_settings", 1,
              {"before": row.overrides if row else {}, "after": overrides})
    return settings_view(uow, actor, base)


def _as_dict(policy: ClassificationPolicy) -> dict:
    return {"tier_minimums": {tier: str(minimum) for tier, minimum in policy.tier_thresholds},
            **{name: getattr(policy, name) for name in DAY_SETTINGS}, "base_currency": policy.base_currency}


class EffectivePolicy(DependencyProvider):
    """The environment's policy with the stored overrides, for each worker (cached a second per process)."""

    def setup(self):
        self.base = ClassificationPolicy.from_settings(self.container.config.get("SERVICE_SETTINGS", {}))
        self._cached: tuple[float, dict | None, ClassificationPolicy] | None = None

    def _store(self) -> Store:
        return next(d for d in self.container.dependencies if isinstance(d, Store))

    def current(self) -> ClassificationPolicy:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
            return self._cached[2]
        try:
            with self._store().unit_of_work() as uow:
                row = stored_overrides(uow)
        except Exception as exc:  # never fail here: nameko stops the whole container when a dependency raises
            log.warning("classification settings unreadable (%s); using the last known ones", exc)
            return self._cached[2] if self._cached is not None else self.base
        overrides = row.overrides if row is not None else None
        if self._cached is not None and self._cached[1] == overrides:
            policy = self._cached[2]
        else:
            policy = self.base.with_overrides(overrides) if overrides else self.base
        self._cached = (now, overrides, policy)
        return policy

    def get_dependency(self, worker_ctx):
        return self.current()
