"""Verifying a backup: its snapshot is whole, and every stored file hashes to what its manifest
says."""

from __future__ import annotations

import dataclasses

from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.elastic import client as elastic
from backups.errors import (
    BackupError,
    DamagedBackup,
    ElasticError,
    InvalidInput,
)
from backups.models import (
    Backup,
    Source,
)
from backups.operations import records
from backups.operations.lookup import get_backup
from backups.operations.places import store


@dataclasses.dataclass
class VerifyReport:
    backup: str
    ok: bool
    problems: list[str]


def request_verify(backup_id: int | str, actor: Actor) -> Backup:
    """Records that a verification was asked (the console hands it to a worker: it re-reads
    every file, which can outlast a web request); run_verify does it."""
    backup = get_backup(backup_id)
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
    backup = get_backup(backup_id)
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
    backup = get_backup(backup_id)
    actor = Actor(name=backup.verify_requested_by or "console", source=Source.WEB)
    return verify_backup(backup.pk, actor)


def verify_backup(backup_id: int | str, actor: Actor) -> VerifyReport:
    """The snapshot exists and is SUCCESS, the repository verifies, every blob hashes right."""
    backup = get_backup(backup_id)
    if backup.status != Backup.Status.SUCCEEDED:
        raise InvalidInput(
            f"Backup {backup.name} is {backup.status}; only a succeeded backup can be verified."
        )
    problems: list[str] = []
    if backup.include_elasticsearch and backup.indices:
        cluster = elastic.cluster()
        where = backup.snapshot_location
        try:
            records.ensure_repository_for(backup)
            cluster.verify_repository(where.repository)
            snap = cluster.snapshot(where.repository, where.snapshot)
            unread = False
        except (ElasticError, DamagedBackup) as exc:  # DamagedBackup: a record's claim refused
            problems.append(str(exc))
            snap, unread = None, True
        if snap is None and not unread:
            problems.append(
                f"snapshot {where.snapshot} is missing from repository {where.repository}"
            )
        elif snap is not None:
            if snap.state != "SUCCESS":
                problems.append(f"snapshot {backup.name} is {snap.state}, not SUCCESS")
            missing = sorted(set(backup.indices) - set(snap.indices))
            if missing:
                problems.append(f"snapshot {backup.name} lacks indices {', '.join(missing)}")
    if backup.include_files:
        if not store().manifests.exists(backup.name):
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
