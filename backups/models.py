"""The rows that are the truth about every operation.

Backup and RestoreRun hold status, phase, progress counters, heartbeat and errors; pages,
commands and the audit read them. OperationLock makes "one data-changing operation at a time"
a database fact. AuditEvent is append-only and hash-chained.

Backup status transitions::

    pending -> running -> succeeded | failed | cancelled
    pending -> failed | cancelled              (never started: no worker, or cancelled first)
    succeeded | failed | cancelled -> deleting -> deleted | failed

RestoreRun status transitions::

    pending -> running -> succeeded
                       -> rolled_back          (a step failed, or cancel: the data was put back)
                       -> failed               (a step failed and the rollback could not finish)
                       -> interrupted          (the worker died; the rollback is offered)
    pending -> cancelled | failed
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.utils import timezone


class Source(models.TextChoices):
    WEB = "web", "Web console"
    CLI = "cli", "Command line"
    SCHEDULE = "schedule", "Schedule"
    SYSTEM = "system", "System"


class A4CMaintenance(models.TextChoices):
    """What a run did with Alien4Cloud's maintenance mode (operations/maintenance_mode.py)."""

    NOT_USED = "", "not used"
    HELD = "held", "on, enabled by this run"
    RELEASED = "released", "enabled by this run, then disabled"
    STUCK = "stuck", "enabled by this run and still on: disabling it failed or was unsafe"
    FOREIGN = "foreign", "on, enabled by someone else: left as it was"
    UNAVAILABLE = "unavailable", "not available: ran without it"


class RunRow(models.Model):
    """What every run row (a backup, a restore) reports: phase, counters, heartbeat, error."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    phase = models.CharField(max_length=40, blank=True)
    shards_done = models.IntegerField(default=0)
    shards_total = models.IntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    files_done = models.IntegerField(default=0)
    files_total = models.IntegerField(default=0)
    # The whole run's progress (backups/progress.py): its stages, and the figure shown.
    stages = models.JSONField(default=list, blank=True, help_text="[{name, weight in bytes}]")
    percent = models.PositiveSmallIntegerField(default=0)
    error_message = models.TextField(blank=True)
    error_detail = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(
        max_length=150, help_text="User name, or the OS user for the command line."
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.WEB)
    task_id = models.CharField(max_length=64, blank=True)
    # Written before maintenance is enabled, so that recovery knows what a dead worker held.
    a4c_maintenance = models.CharField(
        max_length=12, blank=True, choices=A4CMaintenance.choices, default=""
    )
    a4c_maintenance_note = models.CharField(max_length=500, blank=True)

    class Meta:
        abstract = True

    @property
    def duration(self):
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


@dataclass(frozen=True)
class SnapshotLocation:
    repository: str
    snapshot: str

    def __str__(self) -> str:
        return f"snapshot {self.snapshot} in repository {self.repository}"


class Backup(RunRow):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        DELETING = "deleting"
        DELETED = "deleted"

    class Trigger(models.TextChoices):
        WEB = "web", "Web console"
        CLI = "cli", "Command line"
        SCHEDULE = "schedule", "Schedule"
        SAFETY = "safety", "Safety backup before a restore"

    ACTIVE = (Status.PENDING, Status.RUNNING, Status.DELETING)
    RESTORABLE = (Status.SUCCEEDED,)

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    trigger = models.CharField(
        max_length=10, choices=Trigger.choices, default=Trigger.WEB, db_index=True
    )
    include_elasticsearch = models.BooleanField(default=True)
    include_files = models.BooleanField(default=True)
    index_patterns = models.JSONField(
        default=list, blank=True, help_text="Chosen indices; empty for all of A4C's."
    )
    options = models.JSONField(default=dict, blank=True)
    pinned = models.BooleanField(
        default=False, help_text="Pinned backups are never removed by retention."
    )
    policy = models.ForeignKey(
        "Policy", null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )

    # What it holds.
    indices = models.JSONField(
        default=dict, blank=True, help_text="{index: {docs, size}} at snapshot time."
    )
    file_count = models.IntegerField(default=0)
    file_bytes = models.BigIntegerField(default=0)
    new_bytes = models.BigIntegerField(
        default=0, help_text="Bytes this backup added to the storage."
    )
    files_reused = models.IntegerField(
        default=0, help_text="Unchanged files taken from the previous manifest."
    )
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    snapshot_name = models.CharField(max_length=255, blank=True)
    repository = models.CharField(max_length=255, blank=True)
    repository_location = models.CharField(max_length=1000, blank=True)  # at backup time
    es_version = models.CharField(max_length=40, blank=True)
    es_cluster_name = models.CharField(max_length=255, blank=True)
    es_cluster_uuid = models.CharField(max_length=64, blank=True)
    warnings = models.JSONField(default=list, blank=True)

    verified_at = models.DateTimeField(null=True, blank=True)
    verify_ok = models.BooleanField(null=True, blank=True)
    verify_problems = models.JSONField(default=list, blank=True)
    # A verification asked from the console runs on a worker; these say who asked and when.
    verify_requested_at = models.DateTimeField(null=True, blank=True)
    verify_requested_by = models.CharField(max_length=150, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    # Its record in the storage (storage/catalog.py); a row made by sync or import says whence.
    set_id = models.CharField(max_length=32, blank=True, db_index=True)
    imported_from = models.CharField(max_length=1000, blank=True)
    vanished_at = models.DateTimeField(null=True, blank=True)  # sync found its set gone

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"])]
        permissions = [
            ("verify_backup", "Can verify backups"),
            ("cancel_operation", "Can cancel a running backup or restore"),
            ("restore_backup", "Can restore backups"),
            ("rollback_restore", "Can roll back a restore"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def is_restorable(self) -> bool:
        return self.status in self.RESTORABLE

    @property
    def is_verifying(self) -> bool:
        """A verification was asked and has not ended since."""
        requested, ended = self.verify_requested_at, self.verified_at
        return requested is not None and (ended is None or ended < requested)

    @property
    def index_count(self) -> int:
        return len(self.indices or {})

    @property
    def document_count(self) -> int:
        return sum(i.get("docs", 0) for i in (self.indices or {}).values())

    @property
    def snapshot_location(self) -> SnapshotLocation:
        """Where this backup's Elasticsearch snapshot is, decided here only. A row written
        before the repository and snapshot name were recorded names neither: its snapshot is
        the backup's name in the configured repository."""
        return SnapshotLocation(
            repository=self.repository or settings.A4C_ES_REPOSITORY,
            snapshot=self.snapshot_name or self.name,
        )

    @property
    def has_snapshot(self) -> bool:
        """A snapshot was started for it (even one that holds no index was recorded)."""
        return bool(self.snapshot_name or (self.include_elasticsearch and self.indices))


class RestoreRun(RunRow):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        ROLLED_BACK = "rolled_back", "Rolled back"
        INTERRUPTED = "interrupted"
        CANCELLED = "cancelled"

    class Scope(models.TextChoices):
        ALL = "all", "Everything: Elasticsearch and files"
        INDICES = "indices", "Chosen indices only"
        ELASTICSEARCH = "elasticsearch", "Elasticsearch only"
        FILES = "files", "Files only"

    class FileMode(models.TextChoices):
        MIRROR = "mirror", "Mirror the backup exactly"
        MERGE = "merge", "Only add and overwrite files"

    ACTIVE = (Status.PENDING, Status.RUNNING)

    backup = models.ForeignKey(Backup, on_delete=models.PROTECT, related_name="restores")
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    scope = models.CharField(max_length=14, choices=Scope.choices, default=Scope.ALL)
    chosen_indices = models.JSONField(default=list, blank=True)
    rename_pattern = models.CharField(max_length=200, blank=True)
    rename_replacement = models.CharField(max_length=200, blank=True)
    file_mode = models.CharField(max_length=8, choices=FileMode.choices, default=FileMode.MIRROR)
    take_safety_backup = models.BooleanField(default=True)
    plan = models.JSONField(default=dict, blank=True, help_text="The plan shown before it ran.")
    safety_backup = models.ForeignKey(
        Backup, null=True, blank=True, on_delete=models.SET_NULL, related_name="protected_restores"
    )
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rollbacks"
    )
    phases = models.JSONField(
        default=list, blank=True, help_text="[{name, started, finished, outcome}]"
    )
    state = models.JSONField(
        default=dict, blank=True, help_text="What recovery needs: kept old tree, ..."
    )
    rolled_back = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"restore #{self.pk} of {self.backup.name}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class OperationLock(models.Model):
    """One row (pk=1): who may change data now. Claimed with a conditional UPDATE."""

    kind = models.CharField(
        max_length=20, blank=True, help_text="backup, restore, delete ...; empty when free"
    )
    run_id = models.BigIntegerField(null=True, blank=True)
    label = models.CharField(max_length=300, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.label}" if self.kind else "free"


class AuditChainHead(models.Model):
    """One row (pk=1) holding the newest event's hash; locked while an event is appended."""

    last_hash = models.CharField(max_length=64, default="0" * 64)
    count = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"audit chain head after {self.count} events"


class AppendOnlyError(Exception):
    pass


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events are append-only: they cannot be changed.")

    def delete(self):
        raise AppendOnlyError("Audit events are append-only: they cannot be deleted.")


class AuditEvent(models.Model):
    """An append-only record of something someone did. Never edited, never deleted."""

    class Outcome(models.TextChoices):
        REQUESTED = "requested"
        STARTED = "started"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REFUSED = "refused"
        DENIED = "denied"
        CANCELLED = "cancelled"
        ROLLED_BACK = "rolled_back"
        INFO = "info"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, db_index=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    action = models.CharField(max_length=40, db_index=True)
    target = models.CharField(max_length=300, blank=True, db_index=True)
    parameters = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.INFO)
    message = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    backup = models.ForeignKey(
        Backup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restore = models.ForeignKey(
        RestoreRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # Carried in by sync from a record: linked anew here, its hash where it was written kept.
    imported_from = models.CharField(max_length=1000, blank=True)
    imported_hash = models.CharField(max_length=64, blank=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["action", "-id"]), models.Index(fields=["actor", "-id"])]

    def __str__(self) -> str:
        return (
            f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target} {self.outcome}"
        )

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("Audit events are append-only: they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only: they cannot be deleted.")

    def canonical(self) -> bytes:
        """The bytes the hash covers: every field a reader relies on."""
        fields = {
            "at": self.at.isoformat(timespec="microseconds"),
            "actor": self.actor,
            "source": self.source,
            "action": self.action,
            "target": self.target,
            "parameters": self.parameters,
            "outcome": self.outcome,
            "message": self.message,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "backup": self.backup_id,
            "restore": self.restore_id,
            "prev": self.prev_hash,
        }
        if self.imported_from:  # only then: the hashes of events written before stay the same
            fields.update(imported_from=self.imported_from, imported_hash=self.imported_hash)
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str).encode()

    def compute_hash(self) -> str:
        # Keyed (HMAC): a plain hash can be recomputed by anyone who can write to the database,
        # who could then rewrite an event, every hash after it and the head unnoticed.
        key = settings.A4C_AUDIT_KEY.encode()
        return hmac.new(key, self.canonical(), hashlib.sha256).hexdigest()


class Policy(models.Model):
    """A schedule that takes backups by itself, and the retention that thins them out.

    Retention, applied to the policy's succeeded backups (whole sets: snapshot and files):

    1. *wanted* starts as every backup, or, when any calendar tier is set, the newest backup of
       each of the last ``keep_daily`` days, ``keep_weekly`` ISO weeks and ``keep_monthly``
       months that have backups;
    2. backups older than ``max_age_days`` leave *wanted*;
    3. ``keep_last`` ("keep at most N") cuts *wanted* to its newest N;
    4. ``keep_min`` ("keep at least M") adds back the newest others until M are wanted;
    5. pinned backups, and the newest succeeded backup of all, are always kept.
    Every other backup of the policy is deleted; the preview lists exactly those.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    name_pattern = models.CharField(
        max_length=150,
        default="{policy}-{date}",
        help_text="Backup names: {policy} and {date} (YYYYMMDD-HHMMSS) are replaced.",
    )
    schedule = models.CharField(
        max_length=100, default="0 2 * * *", help_text="Cron: minute hour day month weekday."
    )
    include_elasticsearch = models.BooleanField(default=True)
    include_files = models.BooleanField(default=True)
    index_patterns = models.JSONField(default=list, blank=True)
    keep_last = models.PositiveIntegerField(
        null=True, blank=True, help_text="Keep at most this many."
    )
    keep_min = models.PositiveIntegerField(default=1, help_text="Keep at least this many.")
    max_age_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Expire after this many days."
    )
    keep_daily = models.PositiveIntegerField(default=0)
    keep_weekly = models.PositiveIntegerField(default=0)
    keep_monthly = models.PositiveIntegerField(default=0)
    paused = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_failure_message = models.TextField(blank=True)
    last_duration_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name


class NotificationDelivery(models.Model):
    """One attempt to tell someone something: the channel, the target and how it went."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    event = models.CharField(max_length=40, db_index=True)
    channel = models.CharField(max_length=10, choices=[("email", "Email"), ("webhook", "Webhook")])
    target = models.CharField(max_length=500)
    subject = models.CharField(max_length=300)
    payload = models.JSONField(default=dict)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.event} by {self.channel} to {self.target}: {'ok' if self.ok else 'failed'}"


class SystemState(models.Model):
    """Small facts kept between runs, by key: the worker's last heartbeat, the last alert sent."""

    key = models.CharField(max_length=60, primary_key=True)
    value = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key
