"""Rolling a restore back: a new restore of the safety backup it took, removing the indices it
created."""

from __future__ import annotations

from backups import audit
from backups.audit import Actor, Outcome
from backups.errors import InvalidInput
from backups.models import RestoreRun
from backups.operations.lookup import get_restore
from backups.operations.requests import RestoreRequest
from backups.operations.restore import request_restore
from backups.operations.restore_state import RestoreState


def request_rollback(restore_id: int, actor: Actor, *, wait: float = 0.0) -> RestoreRun:
    """A new restore that puts back the safety backup taken before ``restore_id``."""
    run = get_restore(restore_id)
    if run.is_active:
        raise InvalidInput(
            f"Restore #{run.pk} is still {run.status}; cancel it instead (it rolls back)."
        )
    if run.rolled_back:
        raise InvalidInput(f"Restore #{run.pk} was already rolled back.")
    safety = run.safety_backup
    if safety is None or not safety.is_restorable:
        raise InvalidInput(f"Restore #{run.pk} has no safety backup left to roll back to.")
    if safety.include_elasticsearch and safety.include_files:
        scope = RestoreRun.Scope.ALL
    elif safety.include_elasticsearch:
        scope = RestoreRun.Scope.ELASTICSEARCH
    else:
        scope = RestoreRun.Scope.FILES
    # Everything the safety backup holds goes back; indices the restore created are removed;
    # nothing else is touched.
    request = RestoreRequest(
        safety.pk, scope=scope, safety_backup=True, remove_indices=RestoreState.of(run).created
    )
    rollback = request_restore(request, actor, wait=wait, rollback_of=run)
    RestoreRun.objects.filter(pk=run.pk).update(rolled_back=True)
    audit.record(
        actor,
        "restore.rollback",
        target=run.backup.name,
        outcome=Outcome.REQUESTED,
        restore=rollback,
        backup=safety,
        parameters={"restore": run.pk},
    )
    return rollback
