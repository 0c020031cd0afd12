"""Cancel, verify, delete and recovery of runs whose worker died."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from backups import audit
from backups.audit import Actor
from backups.elastic import client as elastic
from backups.errors import BackupError, Busy, ElasticError, InvalidInput
from backups.models import Backup, RestoreRun, Source
from backups.operations import running
from backups.operations.backup import _end_backup
from backups.operations.common import Outcome, _claim, _data_dir, _get_backup, _get_restore, store
from backups.operations.restore import _rollback_hint

# --- cancel, verify, delete, garbage ------------------------------------------------------


def cancel(kind: str, run_id: int, actor: Actor) -> object:
    """Asks a running backup or restore to stop; a pending one is cancelled at once."""
    model = {"backup": Backup, "restore": RestoreRun}.get(kind)
    if model is None:
        raise InvalidInput("Only a backup or a restore can be cancelled.")
    run = _get_backup(run_id) if model is Backup else _get_restore(run_id)
    target = run.name if model is Backup else run.backup.name
    if model.objects.filter(pk=run.pk, status=model.Status.PENDING).update(
        status=model.Status.CANCELLED,
        finished_at=timezone.now(),
        error_message=f"Cancelled by {actor.name}.",
    ):
        running.release(kind, run.pk)
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


@dataclasses.dataclass
class VerifyReport:
    backup: str
    ok: bool
    problems: list[str]


def request_verify(backup_id: int | str, actor: Actor) -> Backup:
    """Records that a verification was asked (the console hands it to a worker: it re-reads
    every file, which can outlast a web request); run_verify does it."""
    backup = _get_backup(backup_id)
    if backup.status != Backup.Status.SUCCEEDED:
        raise InvalidInput(
            f"Backup {backup.name} is {backup.status}; only a succeeded backup can be verified."
        )
    Backup.objects.filter(pk=backup.pk).update(
        verify_requested_at=timezone.now(), verify_requested_by=actor.name
    )
    audit.record(
        actor, "backup.verify", target=backup.name, backup=backup, outcome=Outcome.REQUESTED
    )
    backup.refresh_from_db()
    return backup


def verify_not_started(backup_id: int, actor: Actor, reason: str) -> None:
    """Takes back a verification request no worker could be given, and records why."""
    backup = _get_backup(backup_id)
    Backup.objects.filter(pk=backup.pk).update(verify_requested_at=None)
    audit.record(
        actor,
        "backup.verify",
        target=backup.name,
        backup=backup,
        outcome=Outcome.FAILED,
        message=reason,
    )


def run_verify(backup_id: int) -> VerifyReport:
    """The verification request_verify recorded, in the name of who asked."""
    backup = _get_backup(backup_id)
    actor = Actor(name=backup.verify_requested_by or "console", source=Source.WEB)
    return verify_backup(backup.pk, actor)


def verify_backup(backup_id: int | str, actor: Actor) -> VerifyReport:
    """The snapshot exists and is SUCCESS, the repository verifies, every blob hashes right."""
    backup = _get_backup(backup_id)
    if backup.status != Backup.Status.SUCCEEDED:
        raise InvalidInput(
            f"Backup {backup.name} is {backup.status}; only a succeeded backup can be verified."
        )
    problems: list[str] = []
    if backup.include_elasticsearch and backup.indices:
        cluster = elastic.cluster()
        try:
            cluster.verify_repository(backup.repository or settings.A4C_ES_REPOSITORY)
            snap = cluster.snapshot(
                backup.repository or settings.A4C_ES_REPOSITORY, backup.snapshot_name or backup.name
            )
        except ElasticError as exc:
            problems.append(str(exc))
            snap = {}
        if snap is None:
            problems.append(
                f"snapshot {backup.snapshot_name or backup.name} is missing from repository "
                f"{backup.repository}"
            )
        elif snap:
            if snap.get("state") != "SUCCESS":
                problems.append(f"snapshot {backup.name} is {snap.get('state')}, not SUCCESS")
            missing = sorted(set(backup.indices) - set(snap.get("indices", [])))
            if missing:
                problems.append(f"snapshot {backup.name} lacks indices {', '.join(missing)}")
    if backup.include_files:
        if not store().has_manifest(backup.name):
            problems.append(f"the file manifest of {backup.name} is missing")
        else:
            try:
                problems.extend(store().verify(backup.name).problems)
            except BackupError as exc:
                problems.append(str(exc))
    ok = not problems
    Backup.objects.filter(pk=backup.pk).update(
        verified_at=timezone.now(), verify_ok=ok, verify_problems=problems[:100]
    )
    audit.record(
        actor,
        "backup.verify",
        target=backup.name,
        backup=backup,
        outcome=Outcome.SUCCEEDED if ok else Outcome.FAILED,
        message="; ".join(problems[:5]),
        parameters={"problems": len(problems)},
    )
    return VerifyReport(backup.name, ok, problems)


def delete_backup(backup_id: int | str, actor: Actor, *, collect: bool = True) -> Backup:
    """Deletes a backup's snapshot and manifest, then the blobs no other backup uses."""
    backup = _get_backup(backup_id)
    if backup.status in (Backup.Status.PENDING, Backup.Status.RUNNING):
        raise InvalidInput(f"Backup {backup.name} is {backup.status}: cancel it first.")
    if backup.status in (Backup.Status.DELETED, Backup.Status.DELETING):
        raise InvalidInput(f"Backup {backup.name} is already {backup.status}.")
    try:
        _claim("delete", backup, backup.name, actor, 0)
    except Busy as busy:
        audit.record(
            actor,
            "backup.delete",
            target=backup.name,
            outcome=Outcome.REFUSED,
            message=str(busy),
            backup=backup,
        )
        raise
    previous_status = backup.status
    try:
        Backup.objects.filter(pk=backup.pk).update(status=Backup.Status.DELETING)
        if backup.snapshot_name or (backup.include_elasticsearch and backup.indices):
            elastic.cluster().delete_snapshot(
                backup.repository or settings.A4C_ES_REPOSITORY, backup.snapshot_name or backup.name
            )
        store().delete_manifest(backup.name)
        store().discard_partial(backup.name)
        Backup.objects.filter(pk=backup.pk).update(
            status=Backup.Status.DELETED, deleted_at=timezone.now()
        )
        freed = store().collect_garbage() if collect else None
    except BackupError as exc:
        Backup.objects.filter(pk=backup.pk).update(status=previous_status, error_message=str(exc))
        audit.record(
            actor,
            "backup.delete",
            target=backup.name,
            outcome=Outcome.FAILED,
            message=str(exc),
            backup=backup,
        )
        raise
    finally:
        running.release("delete", backup.pk)
    audit.record(
        actor,
        "backup.delete",
        target=backup.name,
        outcome=Outcome.SUCCEEDED,
        backup=backup,
        parameters=dataclasses.asdict(freed) if freed else {},
    )
    backup.refresh_from_db()
    return backup


# --- recovery ------------------------------------------------------------------------------


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
        if Backup.objects.filter(
            pk=backup.pk, status=Backup.Status.RUNNING, heartbeat_at__lt=stale
        ).update(status=Backup.Status.FAILED, finished_at=now, error_message=message):
            _end_backup(backup, Backup.Status.FAILED, message)
            running.release("backup", backup.pk)
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
        if Backup.objects.filter(pk=backup.pk, status=Backup.Status.PENDING).update(
            status=Backup.Status.FAILED, finished_at=now, error_message=message
        ):
            running.release("backup", backup.pk)
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
            + (_rollback_hint(run) if run.state.get("changed") else "Nothing had been changed yet.")
        )
        if run.state.get("old_tree"):
            try:  # the data dir goes back to wholly old at once; the rollback does the rest
                store().undo_restore(_data_dir(), Path(run.state["old_tree"]))
            except BackupError as exc:
                message += f" The kept previous data dir could not be put back: {exc}."
        try:  # a half-built staging tree beside the data dir: as big as the data, and useless
            store().discard_staging(_data_dir())
        except BackupError as exc:
            message += f" Its staging tree could not be removed: {exc}."
        if RestoreRun.objects.filter(
            pk=run.pk, status=RestoreRun.Status.RUNNING, heartbeat_at__lt=stale
        ).update(
            status=RestoreRun.Status.INTERRUPTED
            if run.state.get("changed")
            else RestoreRun.Status.FAILED,
            finished_at=now,
            error_message=message,
        ):
            if run.safety_backup_id and run.safety_backup.status == Backup.Status.RUNNING:
                _end_backup(
                    run.safety_backup, Backup.Status.FAILED, "Interrupted with its restore."
                )
            running.release("restore", run.pk)
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
        if RestoreRun.objects.filter(pk=run.pk, status=RestoreRun.Status.PENDING).update(
            status=RestoreRun.Status.FAILED,
            finished_at=now,
            error_message="No worker started this restore in time; nothing was changed.",
        ):
            running.release("restore", run.pk)
            notes.append(f"restore #{run.pk}: never started")
    notes.extend(_free_orphan_lock())
    return notes


def _free_orphan_lock() -> list[str]:
    lock = running.lock_holder()
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
    running.release(lock.kind, lock.run_id)
    return [f"lock held by finished {lock.kind} {lock.label} released"]


def record_worker_heartbeat() -> None:
    """A worker ran a scheduled task just now: the dashboard and /metrics read this."""
    from backups.models import SystemState

    SystemState.objects.update_or_create(
        key="worker-heartbeat", defaults={"value": {"at": timezone.now().isoformat()}}
    )


def set_pinned(backup_id: int | str, actor: Actor, pinned: bool) -> Backup:
    """Pins (or unpins) a backup: retention never removes a pinned one."""
    backup = _get_backup(backup_id)
    Backup.objects.filter(pk=backup.pk).update(pinned=pinned)
    audit.record(
        actor,
        "backup.pin",
        target=backup.name,
        backup=backup,
        outcome=Outcome.SUCCEEDED,
        parameters={"pinned": pinned},
    )
    backup.refresh_from_db()
    return backup
