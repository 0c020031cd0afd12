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
    Job,
    RestoreRun,
    RunKind,
)
from backups.operations import locking
from backups.operations.lookup import get_backup, get_job, get_restore

# The kinds of run a person may stop; a deletion runs to its end once begun.
CANCELLABLE = (RunKind.BACKUP, RunKind.RESTORE, RunKind.VERIFY, RunKind.DRILL, RunKind.OFFSITE)


def cancel(kind: RunKind | str, run_id: int, actor: Actor) -> Backup | RestoreRun | Job:
    """Asks a running backup, restore, verification or drill to stop; a pending one is
    cancelled at once."""
    if kind not in CANCELLABLE:
        raise InvalidInput(
            "Only a backup, a restore, a verification, a drill or an off-site copy can be "
            "cancelled."
        )
    kind = RunKind(kind)
    if kind == RunKind.BACKUP:
        run = get_backup(run_id)
        target, links = run.name, {"backup": run}
    elif kind == RunKind.RESTORE:
        run = get_restore(run_id)
        target, links = run.backup.name, {"restore": run}
    else:
        run = get_job(run_id, kind)
        target, links = run.backup.name, {"backup": run.backup}
    model = type(run)
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
    audit.record(actor, f"{kind}.cancel", target=target, outcome=Outcome.REQUESTED, **links)
    run.refresh_from_db()
    return run
