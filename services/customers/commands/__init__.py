"""Use cases that change the customers service's data: one transaction each, events via the outbox.

Every function takes a unit of work (already entered), the acting principal and plain data already
validated by the schemas; the rules they apply are in domain/.
"""
from services.customers.commands.ownership import (
    ensure_admin, handover, register_rep, transfer_customer, update_rep,
)
from services.customers.commands.records import (
    NewCustomer, archive_customer, create_customer, import_customer, insert_customers, insert_purchases, move_stage,
    plan_customer, plan_purchase, record_purchase, update_customer,
)

__all__ = ["register_rep", "ensure_admin", "update_rep", "transfer_customer", "handover", "create_customer",
           "import_customer", "update_customer", "archive_customer", "record_purchase", "move_stage", "NewCustomer",
           "plan_customer", "insert_customers", "plan_purchase", "insert_purchases"]
