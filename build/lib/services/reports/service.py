"""Reports service entrypoints."""
from crm_common.dependencies import Clock, Store
from crm_common.ops import Operations
from services.reports import models


class ReportsService(Operations):
    name = "reports"

    store = Store(models.metadata, models.infrastructure)
    clock = Clock()
