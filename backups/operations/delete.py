"""Deleting a backup set (snapshot, manifest, then the blobs no other set uses), and pinning
one so that retention never deletes it. A deletion is a Job of kind delete, run by the
lifecycle (operations/lifecycle.py) under the lock.

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
from backups.elastic import repository as repository_files
from backups.errors import (
    Busy,
    InvalidInput,
    NotAllowed,
)
from backups.models import Backup, Job, RunKind
from backups.operations import lifecycle, locking, records
from backups.operations.archives import import_location
from backups.operations.lookup import get_backup
from backups.operations.places import store
from backups.operations.recovery import recover_stale_runs
from backups.operations.running import ProgressWriter

DELETE_PERMISSION = "backups.delete_backup"
DELETE_ACTION = "backup.delete"  # the audit's action for a deletion, refused or run


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
        DELETE_ACTION,
        target=backup.name if backup else what,
        outcome=Outcome.DENIED,
        message=f"Missing permission {DELETE_PERMISSION}.",
        backup=backup,
    )
    raise NotAllowed(message)


def delete_backup(backup_id: int | str, actor: Actor, *, collect: bool = True) -> Backup:
    """Deletes a backup's snapshot and manifest, then (with ``collect``) the blobs no other
    backup uses: a Job of kind delete, claimed with the lock and run by the lifecycle in this
    process. Raises what stopped it, after the run's row and audit have said so."""
    backup = get_backup(backup_id)
    check_may_delete(actor, f"this would delete backup {backup.name}", backup=backup)
    if backup.status in (Backup.Status.PENDING, Backup.Status.RUNNING):
        raise InvalidInput(f"Backup {backup.name} is {backup.status}: cancel it first.")
    if backup.status in (Backup.Status.DELETED, Backup.Status.DELETING):
        raise InvalidInput(f"Backup {backup.name} is already {backup.status}.")
    verification = backup.verification
    if verification is not None and verification.status == Job.Status.RUNNING:
        raise InvalidInput(
            f"Backup {backup.name} is being verified (asked by {verification.actor}): "
            "wait for the verification to end, then delete it."
        )

    def refused(busy: Busy) -> None:
        audit.record(
            actor,
            DELETE_ACTION,
            target=backup.name,
            outcome=Outcome.REFUSED,
            message=str(busy),
            backup=backup,
        )

    fields = {
        "kind": RunKind.DELETE,
        "backup": backup,
        "parameters": {"collect": collect, "status_before": backup.status},
    }
    job = locking.create_claimed(
        RunKind.DELETE,
        backup.name,
        actor,
        Job,
        fields,
        wait=0.0,
        refused=refused,
        recover=recover_stale_runs,
    )
    kind = DeleteRun()
    lifecycle.run(job, kind)
    if kind.raised is not None:
        raise kind.raised
    backup.refresh_from_db()
    return backup


def collection_notes(backup_id: int) -> list[str]:
    """What the collection of the backup's last deletion has to tell (a lease that held it, a
    lease it ignored), from that deletion's row."""
    job = Job.objects.filter(kind=RunKind.DELETE, backup_id=backup_id).order_by("-pk").first()
    notes = (job.result or {}).get("notes", []) if job else []
    return [str(note) for note in notes]


class DeleteRun(lifecycle.JobKind):
    """A deletion's steps; its outcome is audited as backup.delete. It is not cancellable: once
    begun, it runs to its end. A failure puts back the status the backup had."""

    name = RunKind.DELETE
    outcome_action = DELETE_ACTION

    def begin(self, job: Job, runner: ProgressWriter) -> None:
        runner.cancellable = False

    def steps(self, job: Job, runner: ProgressWriter) -> dict:
        backup = job.backup
        if backup.status != job.parameters["status_before"] or not backup.transition(
            Backup.Status.DELETING
        ):
            raise InvalidInput(f"Backup {backup.name} changed meanwhile; try again.")
        runner.phase("snapshot")
        foreign = backup.repository and backup.repository != settings.A4C_ES_REPOSITORY
        if foreign:  # an imported archive's read-only repository: only this set is in it
            if elastic.cluster().repository_location(backup.repository) is not None:
                elastic.cluster().delete_repository(backup.repository)
            repository, location = import_location(backup.name)
            # Its directory too, but only the one an import of this name makes: a record is
            # not trusted to name a directory to delete.
            if backup.repository == repository and backup.repository_location == str(location):
                repository_files.remove_location(location)
        elif backup.has_snapshot:
            elastic.cluster().delete_snapshot(
                backup.snapshot_location.repository, backup.snapshot_location.snapshot
            )
        runner.phase("manifest")
        records.forget_record(backup.name)
        store().manifests.delete(backup.name)
        store().discard_partial(backup.name)
        backup.transition(Backup.Status.DELETED, deleted_at=timezone.now())
        if not job.parameters.get("collect", True):
            return {}
        runner.phase("collect")
        freed = store().collect_garbage(own=runner.heartbeat.lease)
        return {**dataclasses.asdict(freed), "notes": freed.notes()}

    def succeeded(self, job: Job, parameters: dict) -> lifecycle.Ending:
        ending = super().succeeded(job, parameters)
        ending.fields["result"] = parameters  # what the collection freed, when it ran
        return ending

    def closing(self, job: Job, runner: ProgressWriter, ending: lifecycle.Ending) -> None:
        backup = job.backup
        if ending.status != Job.Status.SUCCEEDED and backup.status == Backup.Status.DELETING:
            backup.transition(job.parameters["status_before"], error_message=ending.message)


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
