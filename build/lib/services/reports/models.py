"""Tables of the reports service (its own database; nobody else reads them)."""
from sqlalchemy import MetaData

from crm_common.db import add_infrastructure_tables

metadata = MetaData()
infrastructure = add_infrastructure_tables(metadata)
