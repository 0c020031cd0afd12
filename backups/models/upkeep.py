"""What the console keeps about its own upkeep: the schedules and their retention (Policy),
each notification sent, and small facts kept between runs."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


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
    # When the scheduler drills the policy's newest good backup (operations/drill_schedule.py):
    # "never", "daily", "weekly", or a number N, every Nth backup.
    drill_every = models.CharField(
        max_length=10,
        default="never",
        help_text="Restore drills: never, daily, weekly, or N (every Nth backup).",
    )
    backups_since_drill = models.PositiveIntegerField(default=0)
    # Set when a drill is due and not yet requested (the lock was busy): the scheduler's next
    # tick tries again; drill_waiting says why it waits.
    drill_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    drill_waiting = models.TextField(blank=True)
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
