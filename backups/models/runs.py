"""The run rows, the truth about every operation, and the lock; nothing else lives here.

Backup, RestoreRun and Job (the smaller kinds of run on a backup: verify, delete) hold status,
phase, progress counters, heartbeat and errors; pages, commands and the audit read them. RunKind
names every kind of run (the lock's kind, the lifecycle's, recovery's). OperationLock makes "one
data-changing operation at a time" a database fact. A status moves only through
RunRow.transition(), along these tables (declared as each model's TRANSITIONS):

Backup status transitions::

    pending -> running -> succeeded | failed | cancelled
    pending -> failed | cancelled              (never started: no worker, or cancelled first)
    succeeded | failed | cancelled -> deleting -> deleted
                                   deleting -> the status it had (the deletion failed)

RestoreRun status transitions::

    pending -> running -> succeeded
                       -> rolled_back          (a step failed, or cancel: the data was put back)
                       -> failed               (a step failed and the rollback could not finish)
                       -> cancelled            (cancelled before anything was changed)
                       -> interrupted          (the worker died; the rollback is offered)
    pending -> cancelled | failed

Job status transitions::

    pending -> running -> succeeded | failed | cancelled
    pending -> failed | cancelled              (never started: no worker, or cancelled first)
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.utils import timezone


class Source(models.TextChoices):
    WEB = "web", "Web console"
    CLI = "cli", "Command line"
    SCHEDULE = "schedule", "Schedule"
    SYSTEM = "system", "System"


class RunKind(models.TextChoices):
    """Every kind of run: the lock's kind, the lifecycle's (operations/lifecycle.Kind.name),
    recovery's, cancel's. A rollback is a restore (RestoreRun.rollback_of says so)."""

    BACKUP = "backup"
    RESTORE = "restore"
    VERIFY = "verify"
    DELETE = "delete"
    DRILL = "drill"
    OFFSITE = "offsite"  # a copy of a set pushed to the off-site bucket (operations/offsite.py)


class A4CMaintenance(models.TextChoices):
    """What a run did with Alien4Cloud's maintenance mode (operations/maintenance_mode.py)."""

    NOT_USED = "", "not used"
    HELD = "held", "on, enabled by this run"
    RELEASED = "released", "enabled by this run, then disabled"
    STUCK = "stuck", "enabled by this run and still on: disabling it failed or was unsafe"
    FOREIGN = "foreign", "on, enabled by someone else: left as it was"
    UNAVAILABLE = "unavailable", "not available: ran without it"


class TransitionNotAllowed(Exception):
    """A status move the row's table does not declare: a bug in the code, never a user's."""


class RunRow(models.Model):
    """What every run row (a backup, a restore) reports: phase, counters, heartbeat, error.

    Its status moves only through transition(), along the moves its model's TRANSITIONS
    declares (the state machines at the top of this module); row creation sets the first."""

    # status -> the statuses it may move to
    TRANSITIONS: dict[str, tuple[str, ...]] = {}

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
    # False while files_total and bytes_total are only a floor: the data dir outgrew what was
    # known of it and its count, running ahead of the copy, has not ended
    totals_known = models.BooleanField(default=True)
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

    def transition(self, to: str, *, only_if: dict | None = None, **fields) -> bool:
        """Moves the row from its status as read to ``to``, writing ``fields`` with it, in one
        conditional update; whether it won (False: the row had moved meanwhile, or ``only_if``
        no longer held). A move not in TRANSITIONS raises TransitionNotAllowed."""
        source = self.status
        if to not in self.TRANSITIONS.get(source, ()):
            raise TransitionNotAllowed(
                f"{type(self).__name__} #{self.pk}: {source} -> {to} is not a move it may make"
            )
        won = (
            type(self)
            .objects.filter(pk=self.pk, status=source, **(only_if or {}))
            .update(status=to, **fields)
        )
        if won == 1:
            self.status = to
            for name, value in fields.items():
                setattr(self, name, value)
        return won == 1

    def phase_history(self, name: str, now) -> dict:
        """The fields that record phase ``name`` starting at ``now``; a row keeping no history
        of its phases records nothing."""
        return {}

    def figures_of(self, files) -> dict:
        """The row's own figures for the files copied so far (a storage FileProgress)."""
        return {}

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
    ENDED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    TRANSITIONS = {
        Status.PENDING: (Status.RUNNING, Status.FAILED, Status.CANCELLED),
        Status.RUNNING: ENDED,
        **dict.fromkeys(ENDED, (Status.DELETING,)),
        # a deletion that failed puts back the status it had
        Status.DELETING: (Status.DELETED, *ENDED),
    }

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

    # The verdict of its last verification (a Job of kind verify writes it).
    verified_at = models.DateTimeField(null=True, blank=True)
    verify_ok = models.BooleanField(null=True, blank=True)
    verify_problems = models.JSONField(default=list, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    # Its record in the storage (storage/catalog.py); a row made by sync or import says whence.
    set_id = models.CharField(max_length=32, blank=True, db_index=True)
    imported_from = models.CharField(max_length=1000, blank=True)
    vanished_at = models.DateTimeField(null=True, blank=True)  # sync found its set gone
    # A set no key trusted here vouched for (operations/signing.py): it joins no policy, is
    # never the newest good backup nor retention's, and restores only when confirmed.
    foreign = models.BooleanField(default=False)
    # The key whose signature was checked when it came in (or, foreign, the one it claimed).
    signed_by = models.CharField(max_length=100, blank=True)

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

    def figures_of(self, files) -> dict:
        # a backup's figures fill in as it goes (its page's tiles), the end writes them whole
        return {
            "file_count": files.files_done,
            "file_bytes": files.bytes_done,
            "new_bytes": files.new_bytes,
        }

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def is_restorable(self) -> bool:
        return self.status in self.RESTORABLE

    @property
    def made_here(self) -> bool:
        """Made by a backup run of this install, not imported or found by sync: its manifest's
        inodes and change times are this machine's (storage/manifest.read_by_this_backup)."""
        return not self.imported_from

    @property
    def verification(self) -> Job | None:
        """The verification asked for this backup that has not ended yet, if any."""
        return (
            self.jobs.filter(kind=RunKind.VERIFY, status__in=Job.ACTIVE)
            .order_by("-created_at", "-id")
            .first()
        )

    @property
    def is_verifying(self) -> bool:
        """A verification was asked and has not ended since."""
        return self.verification is not None

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
    TRANSITIONS = {
        Status.PENDING: (Status.RUNNING, Status.CANCELLED, Status.FAILED),
        Status.RUNNING: (
            Status.SUCCEEDED,
            Status.ROLLED_BACK,
            Status.FAILED,
            Status.CANCELLED,
            Status.INTERRUPTED,
        ),
    }

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

    def phase_history(self, name: str, now) -> dict:
        stamp = now.isoformat()
        phases = [dict(p) for p in self.phases]
        if phases and not phases[-1].get("finished"):
            phases[-1]["finished"] = stamp
        phases.append({"name": name, "started": stamp})
        return {"phases": phases}

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class Job(RunRow):
    """A smaller kind of run on one backup (verify, delete, drill, an off-site copy):
    the same lifecycle as a backup or a restore, its input and its result kept as JSON."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.PENDING, Status.RUNNING)
    ENDED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    TRANSITIONS = {
        Status.PENDING: (Status.RUNNING, Status.FAILED, Status.CANCELLED),
        Status.RUNNING: ENDED,
    }

    kind = models.CharField(max_length=12, choices=RunKind.choices, db_index=True)
    backup = models.ForeignKey(Backup, on_delete=models.PROTECT, related_name="jobs")
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    parameters = models.JSONField(default=dict, blank=True, help_text="What was asked.")
    result = models.JSONField(default=dict, blank=True, help_text="What it found or did.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "status"])]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} of {self.backup.name}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class OperationLock(models.Model):
    """One row (pk=1): who may change data now. Claimed with a conditional UPDATE."""

    kind = models.CharField(
        max_length=20, blank=True, choices=RunKind.choices, help_text="empty when free"
    )
    run_id = models.BigIntegerField(null=True, blank=True)
    label = models.CharField(max_length=300, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.label}" if self.kind else "free"
