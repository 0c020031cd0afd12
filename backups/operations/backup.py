"""Taking a backup: the Elasticsearch snapshot and the files, between optional hooks."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError as DbIntegrityError

from backups import audit
from backups.audit import Actor, Outcome
from backups.errors import BackupError, Busy, Cancelled, InvalidInput
from backups.models import Backup, RunKind
from backups.operations import lifecycle, records, running
from backups.operations.aftercare import after_backup, after_policy_backup
from backups.operations.backup_steps import (
    backup_elasticsearch,
    backup_files,
    discard_backup,
    finish_set,
    plan_backup_stages,
)
from backups.operations.hooks import run_hook
from backups.operations.locking import create_claimed
from backups.operations.lookup import get_backup
from backups.operations.maintenance_mode import MaintenanceWindow
from backups.operations.names import (
    default_backup_name,
    index_name_problem,
    validate_backup_name,
    validate_description,
)
from backups.operations.recovery import recover_stale_runs
from backups.operations.requests import BackupRequest
from backups.operations.running import ProgressCallback

log = logging.getLogger("backups.operations")

# --- backup --------------------------------------------------------------------------------


def request_backup(request: BackupRequest, actor: Actor, *, wait: float = 0.0) -> Backup:
    """Validates, creates the pending row and takes the lock for it; the work is run_backup."""
    if not request.include_elasticsearch and not request.include_files:
        raise InvalidInput("Choose what to back up: Elasticsearch, files, or both.")
    name = validate_backup_name(request.name) if request.name else default_backup_name()
    description = validate_description(request.description)
    patterns = list(request.indices)
    for pattern in patterns:
        problem = index_name_problem(pattern, pattern=True)
        if problem:
            raise InvalidInput(f"{pattern!r} is not an index name or pattern A4C uses: {problem}.")
    if patterns and not request.include_elasticsearch:
        raise InvalidInput("Indices were chosen but Elasticsearch is left out of the backup.")
    if records.catalog().exists(name) and not Backup.objects.filter(name=name).exists():
        raise InvalidInput(
            f"The backup storage holds a set named {name!r} this console does not list (taken "
            "by another console, or before a reinstall): run `manage.py sync`, or choose "
            "another name."
        )
    fields = {
        "name": name,
        "description": description,
        "trigger": request.trigger_for(actor.source),
        "include_elasticsearch": request.include_elasticsearch,
        "include_files": request.include_files,
        "index_patterns": patterns,
    }

    def refused(busy: Busy) -> None:
        audit.record(
            actor, "backup.create", target=name, outcome=Outcome.REFUSED, message=str(busy)
        )

    try:
        backup = create_claimed(
            RunKind.BACKUP,
            name,
            actor,
            Backup,
            fields,
            wait=wait,
            refused=refused,
            recover=recover_stale_runs,
        )
    except DbIntegrityError:
        raise InvalidInput(
            f"A backup named {name!r} exists already; choose another name."
        ) from None
    audit.record(
        actor,
        "backup.create",
        target=name,
        outcome=Outcome.REQUESTED,
        backup=backup,
        parameters={
            "elasticsearch": request.include_elasticsearch,
            "files": request.include_files,
            "indices": patterns,
        },
    )
    return backup


def run_backup(backup_id: int, progress: ProgressCallback = None) -> Backup:
    """Runs a pending backup to its end; the row says how it ended. Never raises for its failure."""
    return lifecycle.run(get_backup(backup_id), BackupRun(), progress)


class BackupRun(lifecycle.Kind):
    """A backup's steps, and what a backup does differently around them."""

    name = RunKind.BACKUP

    def target(self, backup: Backup) -> str:
        return backup.name

    def links(self, backup: Backup) -> dict:
        return {"backup": backup}

    def steps(self, backup: Backup, runner: running.ProgressWriter) -> dict:
        _perform_backup(backup, runner)
        return {
            "indices": backup.index_count,
            "documents": backup.document_count,
            "files": backup.file_count,
            "bytes": backup.file_bytes,
            "new_bytes": backup.new_bytes,
        }

    def failed(
        self, backup: Backup, runner: running.ProgressWriter, exc: Exception
    ) -> lifecycle.Ending:
        ending = super().failed(backup, runner, exc)
        detail = "" if isinstance(exc, Cancelled) else ending.fields["error_detail"]
        ending.fields = discard_backup(
            backup, str(exc), detail, free_blobs=True, own=runner.heartbeat.lease
        )
        return ending

    def notice(self, backup: Backup) -> lifecycle.Notice | None:
        if backup.status != Backup.Status.FAILED:
            return None
        return lifecycle.Notice(
            "backup.failed",
            f"Backup {backup.name} failed",
            backup.error_message,
            {"backup": backup.name, "trigger": backup.trigger, "actor": backup.actor},
        )

    def after(self, backup: Backup, actor: Actor) -> None:
        try:
            after_backup(backup.pk)
        except BackupError as exc:  # an off-site copy never turns a good backup bad
            log.warning("the off-site copy after %s was not asked: %s", backup.name, exc)
        if backup.policy_id:
            try:
                after_policy_backup(backup.pk)
            except BackupError as exc:  # retention trouble never turns a good backup bad
                log.warning("retention after %s failed: %s", backup.name, exc)


def _perform_backup(backup: Backup, runner: running.ProgressWriter) -> None:
    """The pre-command, Alien4Cloud's maintenance mode on, the snapshot and the files (then
    one same moment), maintenance off at once, the post-command; verification and retention
    come after, with Alien4Cloud open again."""
    counted = plan_backup_stages(backup, runner)
    runner.phase("pre-command")
    run_hook(settings.A4C_PRE_BACKUP_COMMAND, "pre-backup")
    window = MaintenanceWindow(backup, f"backup {backup.name}")
    outcome = "failed"
    try:
        window.open()
        window.follow(runner)
        if backup.include_elasticsearch:
            backup_elasticsearch(backup, runner)
        if backup.include_files:
            backup_files(backup, runner, counted)
        outcome = "taken"
    except Cancelled:
        outcome = "cancelled"
        raise
    finally:
        window.close(outcome)
        if settings.A4C_POST_BACKUP_COMMAND:  # else the row keeps the phase a failure was in
            runner.phase("post-command")
            run_hook(settings.A4C_POST_BACKUP_COMMAND, "post-backup")
    finish_set(backup, runner)
