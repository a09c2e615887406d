"""Alerts service entrypoints."""
from crm_common.dependencies import Clock, Store
from crm_common.ops import Operations
from services.alerts import models


class AlertsService(Operations):
    name = "alerts"

    store = Store(models.metadata, models.infrastructure)
    clock = Clock()
