from alembic import context

from crm_common.migrations import run_env
from services.customers.models import metadata

run_env(context, metadata)
