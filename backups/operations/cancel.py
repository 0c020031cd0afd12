"""Cancelling a run: a pending one ends at once, a running one stops at its next check."""

from __future__ import annotations

from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.errors import (
    InvalidInput,
)
from backups.models import (
    Backup,
    RestoreRun,
)
from backups.operations import locking
from backups.operations.lookup import get_backup, get_restore


def cancel(kind: str, run_id: int, actor: Actor) -> object:
    """Asks a running backup or restore to stop; a pending one is cancelled at once."""
    model = {"backup": Backup, "restore": RestoreRun}.get(kind)
    if model is None:
        raise InvalidInput("Only a backup or a restore can be cancelled.")
    run = get_backup(run_id) if model is Backup else get_restore(run_id)
    target = run.name if model is Backup else run.backup.name
    if run.status == model.Status.PENDING and run.transition(
        model.Status.CANCELLED,
        finished_at=timezone.now(),
        error_message=f"Cancelled by {actor.name}.",
    ):
        locking.release(kind, run.pk)
    elif not model.objects.filter(pk=run.pk, status=model.Status.RUNNING).update(
        cancel_requested=True
    ):
        run.refresh_from_db()
        raise InvalidInput(
            f"The {kind} is {run.status}; only a pending or running {kind} can be cancelled."
        )
    audit.record(
        actor,
        f"{kind}.cancel",
        target=target,
        outcome=Outcome.REQUESTED,
        **({"backup": run} if model is Backup else {"restore": run}),
    )
    run.refresh_from_db()
    return run
