"""Published event contracts: one module per producing service.

Importing this package registers every event in ``crm_common.events.REGISTRY``;
docs/events.md is generated from it (``python -m crm docs-events``).
"""
from crm_common.contracts import alerts, customers, followups  # noqa: F401
