"""HTTP use cases that change something: one unit of work each (already entered), the acting principal,
data the schemas validated and ``now`` from the service clock. Rules come from ``domain``."""
from services.followups.commands.interactions import import_interactions, log_interaction
from services.followups.commands.tasks import (
    complete_task, create_manual_task, put_policy, reassign_task, skip_task,
)

__all__ = ["log_interaction", "import_interactions", "create_manual_task", "complete_task", "skip_task", "reassign_task", "put_policy"]
