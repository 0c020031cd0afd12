"""Read-only questions about the rows, asked by the pages, /metrics, the doctor, the commands,
the schedules and retention: what runs now, what ran last, which backup is the newest good one.

Nothing here changes data (the work and every change live in backups/operations), and nothing
here imports operations or the web, so any room may ask. Each function issues a fixed number of
queries whatever the number of rows, so pages and scrapes stay quick with years of history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, QuerySet, Sum
from django.utils import timezone

from backups.models import Backup, Job, OperationLock, RestoreRun, RunKind, SystemState

# "The newest good backup" is the one that finished last: the dashboard's age, the metric, the
# missing-backup alert all speak of when a backup was done, and retention keeps that same one,
# so the backup the dashboard names is never the one a policy deletes. A row with no finish
# time (one a hand or an old catalog left so) cannot claim to be the newest: it sorts last on
# every database (they disagree on where empty values go when left to themselves). One lock
# means no two runs overlap, so for backups taken here this agrees with created_at.
NEWEST_FINISHED = (F("finished_at").desc(nulls_last=True), "-created_at", "-id")
# Lists of rows show the newest asked for first.
NEWEST_CREATED = ("-created_at", "-id")


def good_backups() -> QuerySet[Backup]:
    """Succeeded backups taken on purpose: a safety backup covers only what one restore
    overwrote, so it never counts as a backup of Alien4Cloud; a foreign set (no key trusted
    here vouches for it: operations/signing.py) never counts either."""
    return Backup.objects.filter(status=Backup.Status.SUCCEEDED, foreign=False).exclude(
        trigger=Backup.Trigger.SAFETY
    )


def newest_good_backup() -> Backup | None:
    """The one definition of "the newest good backup" (dashboard, doctor, metrics, the
    missing-backup alert, and retention, which always keeps it)."""
    return good_backups().order_by(*NEWEST_FINISHED).first()


def previous_backup(backup: Backup, **having) -> Backup | None:
    """The newest succeeded backup other than ``backup`` (safety ones too) with the given
    fields, e.g. ``include_files=True``: its figures and manifest help the next one. Never a
    foreign set: the hashes its manifest claims would be taken on trust."""
    return (
        Backup.objects.filter(status=Backup.Status.SUCCEEDED, foreign=False, **having)
        .exclude(pk=backup.pk)
        .order_by(*NEWEST_FINISHED)
        .first()
    )


def newest_of_series(name: str, suffix: str) -> Backup | None:
    """The newest succeeded backup called ``name`` or ``name`` followed by ``suffix`` (a
    regular expression, the dated tail `backup --unique` adds). Never a foreign set: a name
    and a date read from outside must not choose what is restored."""
    series = re.compile(re.escape(name) + f"({suffix})?")
    found = [
        b
        for b in Backup.objects.filter(
            name__startswith=name, status=Backup.Status.SUCCEEDED, foreign=False
        )
        if series.fullmatch(b.name)
    ]
    return max(found, key=lambda b: (b.created_at, b.pk), default=None)


@dataclass
class LastGood:
    backup: Backup | None
    age: timedelta | None
    too_old: bool
    max_age_hours: float


def last_good_backup(now: datetime | None = None) -> LastGood:
    """The newest good backup, how old it is, and whether that is older than allowed."""
    backup = newest_good_backup()
    max_age = float(settings.A4C_LAST_BACKUP_MAX_AGE_HOURS)
    if backup is None:
        return LastGood(None, None, True, max_age)
    age = (now or timezone.now()) - (backup.finished_at or backup.created_at)
    return LastGood(backup, age, age > timedelta(hours=max_age), max_age)


# --- what runs now ------------------------------------------------------------------------


def lock_holder() -> OperationLock | None:
    """The lock's row while an operation holds it."""
    lock = OperationLock.objects.filter(pk=1).first()
    return lock if lock and lock.kind else None


@dataclass
class RunningOperation:
    kind: str  # a RunKind: backup, restore, delete ...
    run: Backup | RestoreRun | Job | None  # the row that holds the lock
    label: str
    actor: str
    since: object


def running_operation() -> RunningOperation | None:
    """What holds the operation lock now, with its row when it has one."""
    lock = lock_holder()
    if lock is None:
        return None
    if lock.kind == RunKind.BACKUP:
        run = Backup.objects.filter(pk=lock.run_id).first()
    elif lock.kind == RunKind.RESTORE:
        run = RestoreRun.objects.select_related("backup").filter(pk=lock.run_id).first()
    else:  # the other kinds are jobs on a backup
        run = Job.objects.select_related("backup").filter(pk=lock.run_id).first()
    return RunningOperation(lock.kind, run, lock.label, lock.actor, lock.acquired_at)


def latest_job(backup: Backup, kind: RunKind) -> Job | None:
    """The newest job of ``kind`` asked for this backup (running, or how the last one ended)."""
    return backup.jobs.filter(kind=kind).order_by("-created_at", "-id").first()


# --- restore drills (operations/drill.py) -------------------------------------------------


def drills_of(backup: Backup, count: int = 20) -> list[Job]:
    """The drills asked for this backup, newest first."""
    return list(backup.jobs.filter(kind=RunKind.DRILL).order_by("-created_at", "-id")[:count])


def active_drill(backup: Backup) -> Job | None:
    """The drill of this backup asked and not ended, if any."""
    return (
        backup.jobs.filter(kind=RunKind.DRILL, status__in=Job.ACTIVE)
        .order_by("-created_at", "-id")
        .first()
    )


def last_drill(backup: Backup | None = None) -> Job | None:
    """The newest drill that has ended, of this backup or (None) of any: what the backup's row
    shows as its last drill's time, outcome and measured restore time."""
    found = Job.objects.filter(kind=RunKind.DRILL, status__in=Job.ENDED)
    if backup is not None:
        found = found.filter(backup=backup)
    return found.select_related("backup").order_by("-finished_at", "-id").first()


def newest_proven_backup() -> Job | None:
    """The passing drill of the newest backup still restorable that has passed one (its
    newest passing drill): the dashboard's "last proven restorable"."""
    return (
        Job.objects.filter(
            kind=RunKind.DRILL,
            status=Job.Status.SUCCEEDED,
            backup__status__in=Backup.RESTORABLE,
        )
        .select_related("backup")
        .order_by("-backup__created_at", "-backup__id", "-finished_at", "-id")
        .first()
    )


@dataclass(frozen=True)
class DrillAge:
    """The newest passing drill against A4C_DRILL_MAX_AGE_DAYS (0: no limit, never too old)."""

    job: Job | None
    age: timedelta | None
    too_old: bool
    max_age_days: float

    @property
    def sentence(self) -> str:
        if self.job is None:
            return "No restore drill has ever passed."
        when = timezone.localtime(self.job.finished_at)
        days = self.age.total_seconds() / 86400
        limit = f"; the limit is {self.max_age_days:g} days" if self.max_age_days else ""
        return (
            f"The last passing restore drill was of backup {self.job.backup.name}, "
            f"at {when:%Y-%m-%d %H:%M}, {days:.1f} days ago{limit}."
        )


def last_passing_drill() -> Job | None:
    return (
        Job.objects.filter(
            kind=RunKind.DRILL, status=Job.Status.SUCCEEDED, finished_at__isnull=False
        )
        .select_related("backup")
        .order_by("-finished_at", "-id")
        .first()
    )


def drill_age(now: datetime | None = None) -> DrillAge:
    """How long ago a drill last passed, and whether that is past A4C_DRILL_MAX_AGE_DAYS."""
    limit = float(settings.A4C_DRILL_MAX_AGE_DAYS)
    job = last_passing_drill()
    age = (now or timezone.now()) - job.finished_at if job else None
    too_old = bool(limit) and (age is None or age > timedelta(days=limit))
    return DrillAge(job, age, too_old, limit)


def drill_outcome(job: Job) -> str:
    """passed; failed (the set does not restore as recorded); or how the run ended otherwise
    (a drill that could not run, or was cancelled, says nothing of the set)."""
    if job.status == Job.Status.SUCCEEDED:
        return "passed"
    if job.status == Job.Status.FAILED and (job.result or {}).get("outcome") == "failed":
        return "failed"
    return {Job.Status.FAILED: "error"}.get(job.status, str(job.status))


def worker_heartbeat() -> datetime | None:
    """When a worker last ran a scheduled task."""
    beat = SystemState.objects.filter(key="worker-heartbeat").first()
    return datetime.fromisoformat(beat.value["at"]) if beat and beat.value.get("at") else None


# --- restores ---------------------------------------------------------------------------------


def live_data_source() -> RestoreRun | None:
    """The restore (or rollback) whose data A4C runs on now: the last one that succeeded.
    None when nothing was ever restored (the data is A4C's own)."""
    return (
        RestoreRun.objects.select_related("backup", "rollback_of")
        .filter(status=RestoreRun.Status.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )


def restores_after(run: RestoreRun) -> list[RestoreRun]:
    """Restores and rollbacks that succeeded after ``run``: rolling ``run`` back undoes them."""
    if run.finished_at is None:
        return []
    return list(
        RestoreRun.objects.filter(
            status=RestoreRun.Status.SUCCEEDED, finished_at__gt=run.finished_at
        )
        .exclude(pk=run.pk)
        .order_by("finished_at")
    )


def restores_protected_by(backup: Backup) -> list[RestoreRun]:
    """Restores of this backup and restores this backup is the safety backup of."""
    return list(
        RestoreRun.objects.select_related("backup")
        .filter(backup=backup)
        .order_by("-created_at")[:20]
    ) + list(
        RestoreRun.objects.select_related("backup")
        .filter(safety_backup=backup)
        .order_by("-created_at")[:5]
    )


# --- lists ------------------------------------------------------------------------------------


def latest_backups(count: int = 8) -> list[Backup]:
    return list(
        Backup.objects.exclude(status=Backup.Status.DELETED).order_by(*NEWEST_CREATED)[:count]
    )


def latest_restores(count: int = 5) -> list[RestoreRun]:
    return list(RestoreRun.objects.select_related("backup").order_by("-created_at", "-id")[:count])


def restorable_backups(limit: int = 200) -> list[Backup]:
    """The newest backups a restore may start from, newest first."""
    return list(
        Backup.objects.filter(status__in=Backup.RESTORABLE)
        .only(
            "id",
            "name",
            "created_at",
            "finished_at",
            "trigger",
            "include_elasticsearch",
            "include_files",
            "indices",
        )
        .order_by(*NEWEST_CREATED)[:limit]
    )


# --- counts, for /metrics ---------------------------------------------------------------------


def backups_by_status() -> dict[str, int]:
    return dict(Backup.objects.values_list("status").annotate(n=Count("id")))


def restores_by_status() -> dict[str, int]:
    return dict(RestoreRun.objects.values_list("status").annotate(n=Count("id")))


def stored_bytes() -> int:
    """Bytes the kept backups added to the storage."""
    total = Backup.objects.filter(status=Backup.Status.SUCCEEDED).aggregate(
        stored=Sum("new_bytes")
    )["stored"]
    return total or 0
