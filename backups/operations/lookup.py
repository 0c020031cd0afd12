"""Finding the rows an operation works on, by id or name, or NotFound saying what to do."""

from __future__ import annotations

from backups.errors import (
    InvalidInput,
    NotFound,
)
from backups.models import (
    Backup,
    Job,
    Policy,
    RestoreRun,
    RunKind,
)
from backups.operations.names import NAME_MAX


def get_backup(backup_id: int | str) -> Backup:
    # A name first: "20250101" is a valid name, and a number only when no backup is named so.
    text = str(backup_id)
    # No name holds a control character (and PostgreSQL refuses NUL in a query) nor is longer.
    if len(text) <= NAME_MAX and not any(ord(c) < 32 for c in text):
        found = Backup.objects.filter(name=text).first()
        if found is not None:
            return found
    try:
        pk = int(backup_id)
        if not 0 < pk < 2**63:  # beyond a bigint, the database would fail, not answer
            raise ValueError(pk)
        return Backup.objects.get(pk=pk)
    except (Backup.DoesNotExist, ValueError, TypeError):
        raise NotFound(
            f"No backup {backup_id!r}: list them with `manage.py backups` or on the Backups page."
        ) from None


def succeeded_backup(backup: Backup, to: str) -> Backup:
    """The backup, if it succeeded; else InvalidInput: only a succeeded backup can be ``to``
    (verified, drilled: it may have been deleted since the run was asked)."""
    if backup.status != Backup.Status.SUCCEEDED:
        raise InvalidInput(
            f"Backup {backup.name} is {backup.status}; only a succeeded backup can be {to}."
        )
    return backup


def get_restore(restore_id: int) -> RestoreRun:
    try:
        return RestoreRun.objects.select_related("backup", "safety_backup").get(pk=restore_id)
    except RestoreRun.DoesNotExist:
        raise NotFound(f"No restore run #{restore_id}.") from None


def get_job(job_id: int, kind: RunKind | None = None) -> Job:
    """A job (a verification, a deletion) by its number; of ``kind`` when one is named."""
    found = Job.objects.select_related("backup").filter(pk=job_id)
    if kind is not None:
        found = found.filter(kind=kind)
    job = found.first()
    if job is None:
        what = kind.label.lower() if kind is not None else "job"
        raise NotFound(f"No {what} #{job_id}.")
    return job


def get_policy(policy_id) -> Policy:
    try:
        if isinstance(policy_id, str) and not policy_id.isdigit():
            return Policy.objects.get(name=policy_id)
        return Policy.objects.get(pk=int(policy_id))
    except (Policy.DoesNotExist, ValueError):
        raise NotFound(f"No policy {policy_id!r}.") from None
