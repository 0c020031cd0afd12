"""The audit trail: append-only events, hash-chained under a key. Never edited, never deleted."""

from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings
from django.db import models
from django.utils import timezone

from backups.models.runs import Backup, RestoreRun, Source


class AuditChainHead(models.Model):
    """One row (pk=1) holding the newest event's hash; locked while an event is appended."""

    last_hash = models.CharField(max_length=64, default="0" * 64)
    count = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"audit chain head after {self.count} events"


class AppendOnlyError(Exception):
    pass


class AuditAction(models.TextChoices):
    """Every action this console writes to its audit history (audit.record refuses another),
    grouped by what it is about; the console's filter lists them all."""

    AUTH_LOGIN = "auth.login", "signed in"
    AUTH_LOGIN_FAILED = "auth.login_failed", "sign-in refused"
    AUTH_LOGOUT = "auth.logout", "signed out"
    AUTH_LOCKED_OUT = "auth.locked_out", "sign-in locked after failures"
    AUTH_UNLOCKED = "auth.unlocked", "sign-in lock lifted"
    AUTH_ROLES_CHANGED = "auth.roles_changed", "roles changed by the directory"
    AUTH_SESSION_EXPIRED = "auth.session_expired", "session ended"
    AUTH_SIGNED_OUT_EVERYWHERE = "auth.signed_out_everywhere", "signed out everywhere"
    PAGE_VIEW = "page.view", "page viewed"
    BACKUP_CREATE = "backup.create", "backup asked for"
    BACKUP_RUN = "backup.run", "backup run"
    BACKUP_SAFETY = "backup.safety", "safety backup"
    BACKUP_VERIFY = "backup.verify", "backup verified"
    BACKUP_DELETE = "backup.delete", "backup deleted"
    BACKUP_CANCEL = "backup.cancel", "backup cancelled"
    BACKUP_PIN = "backup.pin", "backup pinned or unpinned"
    BACKUP_RECOVER = "backup.recover", "backup ended by recovery"
    BACKUP_EXPORT = "backup.export", "backup exported"
    BACKUP_IMPORT = "backup.import", "backup imported"
    VERIFY_RUN = "verify.run", "verification run"
    VERIFY_CANCEL = "verify.cancel", "verification cancelled"
    VERIFY_RECOVER = "verify.recover", "verification ended by recovery"
    DELETE_RUN = "delete.run", "deletion run"
    DELETE_RECOVER = "delete.recover", "deletion ended by recovery"
    DRILL_REQUEST = "drill.request", "restore drill asked for"
    DRILL_RUN = "drill.run", "restore drill run"
    DRILL_CANCEL = "drill.cancel", "restore drill cancelled"
    DRILL_RECOVER = "drill.recover", "restore drill ended by recovery"
    OFFSITE_REQUEST = "offsite.request", "off-site copy asked for"
    OFFSITE_RUN = "offsite.run", "off-site copy started"
    OFFSITE_COPY = "offsite.copy", "off-site copy made"
    OFFSITE_CANCEL = "offsite.cancel", "off-site copy cancelled"
    OFFSITE_RECOVER = "offsite.recover", "off-site copy ended by recovery"
    OFFSITE_DELETE = "offsite.delete", "off-site copy deleted"
    RESTORE_REQUEST = "restore.request", "restore asked for"
    RESTORE_RUN = "restore.run", "restore run"
    RESTORE_ROLLBACK = "restore.rollback", "restore rolled back"
    RESTORE_CANCEL = "restore.cancel", "restore cancelled"
    RESTORE_RECOVER = "restore.recover", "restore ended by recovery"
    POLICY_CREATE = "policy.create", "policy created"
    POLICY_UPDATE = "policy.update", "policy changed"
    POLICY_DELETE = "policy.delete", "policy deleted"
    POLICY_PAUSE = "policy.pause", "policy paused"
    POLICY_RESUME = "policy.resume", "policy resumed"
    POLICY_RUN_NOW = "policy.run_now", "policy run now"
    RETENTION_APPLY = "retention.apply", "retention applied"
    STORAGE_COLLECT = "storage.collect", "storage collected"
    CATALOG_SYNC = "catalog.sync", "catalog synced"
    NOTIFY_TEST = "notify.test", "test notification"
    A4C_MAINTENANCE = "a4c.maintenance", "Alien4Cloud maintenance mode"


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
