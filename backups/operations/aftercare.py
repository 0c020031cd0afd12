"""What follows a backup: for a policy's, the policy's last success or failure, its retention,
the limit on safety backups, and whether its drill is due (operations/drill_schedule.py; the
drill itself is requested and handed to a worker after, never run in the backup's run); for
every succeeded one, its off-site copy asked for when A4C_OFFSITE_URL is set (operations/
offsite.py; handed to a worker after, like a drill). run_backup calls ``after_backup`` when a
backup ends."""

from __future__ import annotations

from django.utils import timezone

from backups.audit import Actor
from backups.models import Backup, Policy
from backups.operations.drill_schedule import mark_drill_due
from backups.operations.offsite import request_after_backup
from backups.operations.retention import apply_retention, prune_safety_backups


def record_policy_outcome(backup: Backup) -> None:
    """Called when a policy's backup ends: the policy's last success or failure."""
    if backup.policy_id is None:
        return
    if backup.status == Backup.Status.SUCCEEDED:
        duration = backup.duration.total_seconds() if backup.duration else None
        Policy.objects.filter(pk=backup.policy_id).update(
            last_success_at=backup.finished_at, last_duration_seconds=duration
        )
    else:
        Policy.objects.filter(pk=backup.policy_id).update(
            last_failure_at=backup.finished_at or timezone.now(),
            last_failure_message=backup.error_message,
        )


def after_policy_backup(backup_id: int) -> list[str]:
    """What follows a scheduled backup: the policy's record, its drill's turn, its retention,
    the safety limit."""
    backup = Backup.objects.select_related("policy").get(pk=backup_id)
    record_policy_outcome(backup)
    if backup.policy_id is None or backup.status != Backup.Status.SUCCEEDED:
        return []
    mark_drill_due(backup)
    actor = Actor.schedule(f"policy {backup.policy.name}")
    return apply_retention(backup.policy_id, actor) + prune_safety_backups(actor)


def after_backup(backup_id: int) -> None:
    """What follows every backup: its off-site copy asked for first (retention never deletes
    a set before its copy is asked), then a policy's aftercare."""
    request_after_backup(backup_id)
