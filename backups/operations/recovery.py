"""Ending honestly the runs whose worker died, and freeing a lock nobody holds any more.

Called by the beat schedule, when a worker starts, and before giving up on a held lock."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.elastic import client as elastic
from backups.errors import (
    BackupError,
)
from backups.models import (
    Backup,
    RestoreRun,
)
from backups.operations import locking
from backups.operations.backup_steps import discard_backup
from backups.operations.maintenance_mode import UNSAFE, release_for_dead_run
from backups.operations.places import data_dir, store
from backups.operations.restore_state import RestoreState

# How long the recovery waits for the shards a dead restore left recovering.
RECOVERY_WAIT_SECONDS = 300.0


def recover_stale_runs(now=None) -> list[str]:
    """Finds runs whose worker died and ends them honestly; frees a lock nobody holds."""
    now = now or timezone.now()
    stale = now - timezone.timedelta(seconds=settings.A4C_STALE_AFTER_SECONDS)
    never_started = now - timezone.timedelta(seconds=settings.A4C_PENDING_TIMEOUT_SECONDS)
    system = Actor.system("recovery")
    notes = []
    for backup in Backup.objects.filter(status=Backup.Status.RUNNING, heartbeat_at__lt=stale):
        message = (
            "The worker running this backup stopped answering during "
            f"{backup.phase or 'its start'} (killed or lost); the partial snapshot and manifest "
            "were removed."
        )
        if backup.transition(
            Backup.Status.FAILED,
            only_if={"heartbeat_at__lt": stale},
            finished_at=now,
            error_message=message,
        ):
            Backup.objects.filter(pk=backup.pk).update(**discard_backup(backup, message))
            message = _release_maintenance(backup)
            locking.release("backup", backup.pk)
            audit.record(
                system,
                "backup.recover",
                target=backup.name,
                outcome=Outcome.FAILED,
                message=message,
                backup=backup,
            )
            notes.append(f"backup {backup.name}: {message}")
    for backup in Backup.objects.filter(status=Backup.Status.PENDING, created_at__lt=never_started):
        message = "No worker started this backup in time; is the Celery worker running?"
        if backup.transition(Backup.Status.FAILED, finished_at=now, error_message=message):
            locking.release("backup", backup.pk)
            audit.record(
                system,
                "backup.recover",
                target=backup.name,
                outcome=Outcome.FAILED,
                message=message,
                backup=backup,
            )
            notes.append(f"backup {backup.name}: {message}")
    for run in RestoreRun.objects.select_related("backup", "safety_backup").filter(
        status=RestoreRun.Status.RUNNING, heartbeat_at__lt=stale
    ):
        message = (
            f"The worker running this restore stopped answering during {run.phase or 'its start'}. "
            + (
                rollback_hint(run)
                if RestoreState.of(run).changed
                else "Nothing had been changed yet."
            )
        )
        shards_back = True
        if RestoreState.of(run).changed:
            shards_back, said = _await_restored_shards(run)
            message += said
        if RestoreState.of(run).old_tree:
            try:  # the data dir goes back to wholly old at once; the rollback does the rest
                store().undo_restore(data_dir(), Path(RestoreState.of(run).old_tree))
            except BackupError as exc:
                message += f" The kept previous data dir could not be put back: {exc}."
        try:  # a half-built staging tree beside the data dir: as big as the data, and useless
            store().discard_staging(data_dir())
        except BackupError as exc:
            message += f" Its staging tree could not be removed: {exc}."
        if run.transition(
            RestoreRun.Status.INTERRUPTED
            if RestoreState.of(run).changed
            else RestoreRun.Status.FAILED,
            only_if={"heartbeat_at__lt": stale},
            finished_at=now,
            error_message=message,
        ):
            safety = run.safety_backup
            if safety is not None and safety.status == Backup.Status.RUNNING:
                safety.transition(
                    Backup.Status.FAILED, **discard_backup(safety, "Interrupted with its restore.")
                )
            # Half-restored data stays closed to Alien4Cloud's users until the operator
            # restores again; a restore that changed nothing opens it again.
            message = _release_maintenance(
                run, keep=UNSAFE if RestoreState.of(run).changed or not shards_back else ""
            )
            locking.release("restore", run.pk)
            audit.record(
                system,
                "restore.recover",
                target=run.backup.name,
                outcome=Outcome.FAILED,
                message=message,
                restore=run,
                backup=run.backup,
            )
            notes.append(f"restore #{run.pk}: {message}")
    for run in RestoreRun.objects.filter(
        status=RestoreRun.Status.PENDING, created_at__lt=never_started
    ):
        if run.transition(
            RestoreRun.Status.FAILED,
            finished_at=now,
            error_message="No worker started this restore in time; nothing was changed.",
        ):
            locking.release("restore", run.pk)
            notes.append(f"restore #{run.pk}: never started")
    notes.extend(_free_orphan_lock())
    return notes


def _await_restored_shards(run: RestoreRun) -> tuple[bool, str]:
    """Waits for the shards a dead restore had Elasticsearch recover: Elasticsearch goes on
    without the worker, and a node stopped (Alien4Cloud restarted) before they are back loses
    them. Whether they came back, and what to add to the run's message."""
    state = RestoreState.of(run)
    try:
        cluster = elastic.cluster()
        present = list(cluster.indices(include=state.existing_touched + state.created))
        cluster.wait_for_recovery(present, timeout=RECOVERY_WAIT_SECONDS)
    except BackupError as exc:
        return False, (
            f" Its indices have not all recovered ({exc}): do not restart Alien4Cloud before "
            "they have."
        )
    return True, " Every shard it had begun restoring has finished recovering."


def _release_maintenance(run, keep: str = "") -> str:
    """Ends the Alien4Cloud maintenance the dead run had enabled (or, with ``keep``, leaves it
    on, saying why); its final message."""
    note = release_for_dead_run(run, keep=keep)
    message = type(run).objects.filter(pk=run.pk).values_list("error_message", flat=True)[0]
    if note:
        message += note
        type(run).objects.filter(pk=run.pk).update(error_message=message)
    return message


def _free_orphan_lock() -> list[str]:
    lock = locking.lock_holder()
    if lock is None:
        return []
    model = {"backup": Backup, "restore": RestoreRun, "delete": Backup}.get(lock.kind)
    if lock.kind == "delete":
        alive = Backup.objects.filter(pk=lock.run_id, status=Backup.Status.DELETING).exists()
        stale = lock.acquired_at and lock.acquired_at < timezone.now() - timezone.timedelta(hours=1)
        alive = alive and not stale
    else:
        alive = (
            model is not None
            and model.objects.filter(pk=lock.run_id, status__in=model.ACTIVE).exists()
        )
    if alive:
        return []
    locking.release(lock.kind, lock.run_id)
    return [f"lock held by finished {lock.kind} {lock.label} released"]


def record_worker_heartbeat() -> None:
    """A worker ran a scheduled task just now: the dashboard and /metrics read this."""
    from backups.models import SystemState

    SystemState.objects.update_or_create(
        key="worker-heartbeat", defaults={"value": {"at": timezone.now().isoformat()}}
    )


def rollback_hint(run: RestoreRun) -> str:
    if run.safety_backup_id:
        return f"Restore safety backup {run.safety_backup.name} to return to the state before."
    return "No safety backup was taken: restore an earlier backup."
