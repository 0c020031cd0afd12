"""What a command prints about runs: a backup or restore as one plain dict (for --json and
for the human-readable lines), local times, and the last words of a run with the exit code
its status means.

It must not run or follow anything (backups/management/follow.py does), nor read arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from backups.formatting import printable
from backups.management.arguments import fail
from backups.management.progress import label
from backups.models import Backup, RestoreRun, RunKind


def local_time(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _seconds(value: timedelta | None) -> float | None:
    return round(value.total_seconds(), 3) if value is not None else None


def backup_summary(backup: Backup) -> dict:
    return {
        "kind": RunKind.BACKUP,
        "id": backup.pk,
        "name": backup.name,
        "status": backup.status,
        "description": backup.description,
        "trigger": backup.trigger,
        "actor": backup.actor,
        "source": backup.source,
        "pinned": backup.pinned,
        "foreign": backup.foreign,
        "signed_by": backup.signed_by,
        "created_at": _iso(backup.created_at),
        "started_at": _iso(backup.started_at),
        "finished_at": _iso(backup.finished_at),
        "duration_seconds": _seconds(backup.duration),
        "phase": backup.phase,
        "elasticsearch": backup.include_elasticsearch,
        "files": backup.include_files,
        "index_patterns": backup.index_patterns,
        "index_count": backup.index_count,
        "document_count": backup.document_count,
        "indices": backup.indices,
        "file_count": backup.file_count,
        "file_bytes": backup.file_bytes,
        "new_bytes": backup.new_bytes,
        "snapshot": backup.snapshot_name,
        "repository": backup.repository,
        "es_version": backup.es_version,
        "es_cluster_name": backup.es_cluster_name,
        "verified_at": _iso(backup.verified_at),
        "verify_ok": backup.verify_ok,
        "warnings": backup.warnings,
        "error": backup.error_message,
    }


def restore_summary(run: RestoreRun) -> dict:
    return {
        "kind": RunKind.RESTORE,
        "id": run.pk,
        "backup": run.backup.name,
        "status": run.status,
        "scope": run.scope,
        "indices": run.chosen_indices,
        "file_mode": run.file_mode,
        "rename": [run.rename_pattern, run.rename_replacement] if run.rename_pattern else None,
        "safety_backup": run.safety_backup.name if run.safety_backup_id else None,
        "rollback_of": run.rollback_of_id,
        "rolled_back": run.rolled_back,
        "actor": run.actor,
        "source": run.source,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_seconds": _seconds(run.duration),
        "phase": run.phase,
        "phases": run.phases,
        "error": run.error_message,
    }


def summary(run: Backup | RestoreRun) -> dict:
    return backup_summary(run) if isinstance(run, Backup) else restore_summary(run)


def backup_name_of(run: Backup | RestoreRun) -> str:
    return run.name if isinstance(run, Backup) else run.backup.name


def report_outcome(
    command: BaseCommand, run: Backup | RestoreRun, options: dict, done: Callable[[object], str]
) -> None:
    """The last words of a run: the summary, and the exit code its status means."""
    run = type(run).objects.get(pk=run.pk)
    queued_only = options.get("queue") and not options.get("wait")
    if options.get("json"):
        command.emit_json(summary(run))
    elif queued_only:
        command.say(
            f"{label(run)} is {run.status}; follow it with `manage.py show {backup_name_of(run)}`"
        )
    elif run.status == "succeeded":
        command.say(done(run))
    if queued_only or run.status in type(run).ACTIVE:
        return
    for warning in getattr(run, "warnings", None) or []:
        command.stderr.write(printable(f"warning: {warning}"))
    if run.status != "succeeded":
        raise fail(
            f"{label(run)} {run.status.replace('_', ' ')}: {run.error_message or 'no detail'}"
        )


def imported_line(backup: Backup) -> str:
    """What `import` and `offsite pull` say of the set they imported."""
    if backup.foreign:
        return (
            f"backup {backup.name} imported as a foreign set: restore it with `manage.py "
            f"restore {backup.name} --foreign` (add --other-cluster when it was taken on "
            "another cluster)"
        )
    return (
        f"backup {backup.name} imported (signed by {backup.signed_by}): restore it with "
        f"`manage.py restore {backup.name}` (add --other-cluster when it was taken on "
        "another cluster)"
    )
