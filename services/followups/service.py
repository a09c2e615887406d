"""Followups service entrypoints."""
from crm_common.dependencies import Clock, Store
from crm_common.ops import Operations
from services.followups import models


class FollowupsService(Operations):
    name = "followups"

    store = Store(models.metadata, models.infrastructure)
    clock = Clock()
