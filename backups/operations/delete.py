"""Deleting a backup set (snapshot, manifest, then the blobs no other set uses), and pinning
one so that retention never deletes it.

``check_may_delete`` is the one rule on who may delete: every deletion passes through
``delete_backup``, which asks it, and so does saving a policy whose retention would delete
(a policy's retention later runs as the schedule, on the authority of whoever set it)."""

from __future__ import annotations

import dataclasses

from django.conf import settings
from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.elastic import client as elastic
from backups.errors import (
    BackupError,
    Busy,
    InvalidInput,
    NotAllowed,
)
from backups.models import (
    Backup,
)
from backups.operations import locking, records
from backups.operations.lookup import get_backup
from backups.operations.places import store
from backups.operations.recovery import recover_stale_runs

DELETE_PERMISSION = "backups.delete_backup"


def may_delete(actor: Actor) -> bool:
    """A person signed in to the console needs the delete right (the restorers' role). The
    command line, the worker and the schedule act with the rights of the machine's operator."""
    return actor.user is None or actor.user.has_perm(DELETE_PERMISSION)


def check_may_delete(actor: Actor, what: str, *, backup: Backup | None = None) -> None:
    """Raises NotAllowed, after recording the refusal, unless ``actor`` may delete backups."""
    if may_delete(actor):
        return
    message = (
        f"{actor.name} may not delete backups, and {what}. Ask someone in the restorers "
        "group (or an administrator) to do it."
    )
    audit.record(
        actor,
        "backup.delete",
        target=backup.name if backup else what,
        outcome=Outcome.DENIED,
        message=f"Missing permission {DELETE_PERMISSION}.",
        backup=backup,
    )
    raise NotAllowed(message)


def delete_backup(backup_id: int | str, actor: Actor, *, collect: bool = True) -> Backup:
    """Deletes a backup's snapshot and manifest, then the blobs no other backup uses."""
    backup = get_backup(backup_id)
    check_may_delete(actor, f"this would delete backup {backup.name}", backup=backup)
    if backup.status in (Backup.Status.PENDING, Backup.Status.RUNNING):
        raise InvalidInput(f"Backup {backup.name} is {backup.status}: cancel it first.")
    if backup.status in (Backup.Status.DELETED, Backup.Status.DELETING):
        raise InvalidInput(f"Backup {backup.name} is already {backup.status}.")
    try:
        locking.acquire("delete", backup.pk, backup.name, actor.name, recover=recover_stale_runs)
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
        if not backup.transition(Backup.Status.DELETING):
            raise InvalidInput(f"Backup {backup.name} changed meanwhile; try again.")
        foreign = backup.repository and backup.repository != settings.A4C_ES_REPOSITORY
        if foreign:  # an imported archive's read-only repository: only this set is in it
            if elastic.cluster().repository_location(backup.repository) is not None:
                elastic.cluster().delete_repository(backup.repository)
        elif backup.has_snapshot:
            elastic.cluster().delete_snapshot(
                backup.snapshot_location.repository, backup.snapshot_location.snapshot
            )
        records.forget_record(backup.name)
        store().manifests.delete(backup.name)
        store().discard_partial(backup.name)
        backup.transition(Backup.Status.DELETED, deleted_at=timezone.now())
        freed = store().collect_garbage() if collect else None
    except BackupError as exc:
        if backup.status == Backup.Status.DELETING:
            backup.transition(previous_status, error_message=str(exc))
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
        locking.release("delete", backup.pk)
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


def set_pinned(backup_id: int | str, actor: Actor, pinned: bool) -> Backup:
    """Pins (or unpins) a backup: retention never removes a pinned one."""
    backup = get_backup(backup_id)
    Backup.objects.filter(pk=backup.pk).update(pinned=pinned)
    backup.pinned = pinned
    records.rewrite_record(backup)
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
