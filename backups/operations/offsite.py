"""Off-site copies: every succeeded backup copied, encrypted, into the off-site bucket.

A copy is a Job of kind offsite run by the lifecycle (operations/lifecycle.py): the worker
asks for one after every succeeded backup when A4C_OFFSITE_URL is set (operations/aftercare.py;
tasks.run_backup hands it to a worker), and `manage.py offsite push NAME` runs one in its own
process. Its steps (operations/offsite_push.py) stream the archive `export` writes, in
segments each encrypted to A4C_EXPORT_RECIPIENTS (never in clear: without recipients the copy
is refused), check what the bucket holds, and write the marker last. A push the bucket fails
(a network cut, the server down) is tried again with a growing wait (tenacity), resuming what
was sent; one that fails for good ends failed and is notified like a failed backup. The
backup itself is never touched: it stays good whatever its copy does.

The marker in the bucket is the truth of which sets have a copy (``list_copies``); the Job's
result is this console's cache of it (the Backups page reads it).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, datetime, timedelta

import tenacity
from django.conf import settings
from django.utils import timezone

from backups import audit, objectstore, progress
from backups.audit import Actor, Outcome
from backups.errors import BackupError, ConfigError, InvalidInput, OffsiteError
from backups.formatting import printable
from backups.models import Backup, Job, RunKind
from backups.operations import lifecycle
from backups.operations import signing as installation
from backups.operations.archives import archive_job
from backups.operations.lookup import get_backup, get_job, succeeded_backup
from backups.operations.offsite_push import PushHooks, PushReport, push_copy, read_marker
from backups.operations.pause_points import pause_point
from backups.operations.running import ProgressCallback, ProgressWriter
from backups.signing import canonical
from backups.sizes import parse_size
from backups.storage import parse_recipients

log = logging.getLogger("backups.operations")

OFFSITE_REQUEST = "offsite.request"
OFFSITE_DELETE = "offsite.delete"
MAX_RETRY_WAIT = 600.0
PAUSE_POINT = "offsite-segments"  # tests hold a push here once a segment is in the bucket


def bucket() -> objectstore.Bucket:
    """The configured bucket; ConfigError when there is none or a setting is wrong."""
    found = objectstore.configured()
    if found is None:
        raise ConfigError(
            "A4C_OFFSITE_URL is not set: there is no off-site bucket (README, 'Off-site copies')."
        )
    return found


def recipients() -> list[str]:
    """The age keys copies are encrypted to; a copy is never written in clear."""
    keys = list(settings.A4C_EXPORT_RECIPIENTS)
    if not keys:
        raise ConfigError(
            "A4C_EXPORT_RECIPIENTS is empty: an off-site copy is encrypted to those age keys and "
            "never written in clear, so it is refused. Set A4C_EXPORT_RECIPIENTS "
            "(`manage.py keygen KEYFILE` makes a key pair)."
        )
    parse_recipients(keys)  # a ConfigError names a key that is not one
    return keys


def segment_bytes() -> int:
    size = parse_size(str(settings.A4C_OFFSITE_SEGMENT_SIZE))
    if not size or size < 1024:
        raise ConfigError(
            f"A4C_OFFSITE_SEGMENT_SIZE is {settings.A4C_OFFSITE_SEGMENT_SIZE!r}: give a size "
            "such as 64M (at least 1K)."
        )
    return size


# --- asking ------------------------------------------------------------------------------


def copyable(backup_id: int | str) -> Backup:
    backup = get_backup(backup_id)
    succeeded_backup(backup, "copied off-site")
    if backup.vanished_at:
        raise InvalidInput(f"Backup {backup.name} is gone from the storage: it cannot be copied.")
    return backup


def active_copy(backup: Backup) -> Job | None:
    return Job.objects.filter(kind=RunKind.OFFSITE, backup=backup, status__in=Job.ACTIVE).first()


def request_copy(backup_id: int | str, actor: Actor) -> Job:
    """Asks for an off-site copy of a succeeded set (a worker or the command line runs it);
    one asked and not ended is asked again, not doubled. Refused, saying which setting,
    without a bucket or without recipients."""
    backup = copyable(backup_id)
    try:
        bucket()
        recipients()
    except ConfigError as exc:
        audit.record(
            actor,
            OFFSITE_REQUEST,
            target=backup.name,
            backup=backup,
            outcome=Outcome.REFUSED,
            message=str(exc),
        )
        raise
    job = active_copy(backup)
    if job is None:
        now = timezone.now()
        job = Job.objects.create(
            kind=RunKind.OFFSITE,
            backup=backup,
            requested_by=actor.user,
            actor=actor.name,
            source=actor.source,
            created_at=now,
            heartbeat_at=now,
        )
    audit.record(
        actor, OFFSITE_REQUEST, target=backup.name, backup=backup, outcome=Outcome.REQUESTED
    )
    return job


def request_after_backup(backup_id: int) -> Job | None:
    """After a succeeded backup, with A4C_OFFSITE_URL set: its copy asked for (the worker
    hands it on). A copy refused for its settings is logged and checked by `manage.py check`
    (a4c.E026, a4c.W003): the backup stays good."""
    if not settings.A4C_OFFSITE_URL:
        return None
    backup = Backup.objects.get(pk=backup_id)
    if backup.status != Backup.Status.SUCCEEDED:
        return None
    try:
        return request_copy(backup.pk, Actor.system("offsite"))
    except BackupError as exc:
        log.warning("no off-site copy of %s: %s", backup.name, exc)
        return None


def run_copy(job_id: int, progress_callback: ProgressCallback = None) -> Job:
    """The copy request_copy asked for (a worker's door); the row says how it ended."""
    return lifecycle.run(get_job(job_id, RunKind.OFFSITE), OffsiteRun(), progress_callback)


def push_now(backup_id: int | str, actor: Actor, progress_callback=None) -> PushReport:
    """Copies a set now, in this process (the command line): the report; raises what stopped
    the copy."""
    job = request_copy(backup_id, actor)
    kind = OffsiteRun()
    job = lifecycle.run(job, kind, progress_callback)
    if kind.raised is not None:
        raise kind.raised
    if job.status in Job.ACTIVE:
        raise OffsiteError(
            f"a copy of {job.backup.name} is already {job.status} (job #{job.pk}, by "
            f"{job.actor}): wait for it to end, or cancel it"
        )
    if job.status != Job.Status.SUCCEEDED:
        raise OffsiteError(job.error_message or f"the copy of {job.backup.name} is {job.status}")
    return kind.report


# --- the run -----------------------------------------------------------------------------


class OffsiteRun(lifecycle.JobKind):
    """A copy's steps; a failure is notified like a failed backup's."""

    name = RunKind.OFFSITE
    outcome_action = "offsite.copy"
    report: PushReport

    def steps(self, job: Job, runner: ProgressWriter) -> dict:
        backup = job.backup
        succeeded_backup(backup, "copied off-site")  # deleted since it was asked
        keys = recipients()
        target = bucket()
        size = segment_bytes()
        runner.plan_stages([progress.Stage("sending", None)])
        attempts = max(1, settings.A4C_OFFSITE_ATTEMPTS)
        job.result = {"attempts": 0}
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(
                multiplier=settings.A4C_OFFSITE_RETRY_SECONDS, max=MAX_RETRY_WAIT
            ),
            retry=tenacity.retry_if_exception(lambda exc: getattr(exc, "retryable", False)),
            sleep=lambda seconds: wait_checking(runner, seconds),
            before_sleep=lambda state: retry_noted(job, runner, state, attempts),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                job.result = {**job.result, "attempts": attempt.retry_state.attempt_number}
                self.report = push_once(job, runner, target, keys, size)
        job.result = {**job.result, **self.report.as_result()}
        return {
            "bytes": self.report.archive_size,
            "segments": self.report.segments,
            "segments_kept": self.report.segments_kept,
            "attempts": job.result["attempts"],
            "to": target.where(objectstore.set_prefix(backup.name)),
        }

    def succeeded(self, job: Job, parameters: dict) -> lifecycle.Ending:
        ending = super().succeeded(job, parameters)
        ending.fields["result"] = job.result
        return ending

    def failed(self, job: Job, runner: ProgressWriter, exc: Exception) -> lifecycle.Ending:
        ending = super().failed(job, runner, exc)
        ending.fields["result"] = job.result or {}
        return ending

    def notice(self, job: Job) -> lifecycle.Notice | None:
        if job.status != Job.Status.FAILED:
            return None
        return lifecycle.Notice(
            "offsite.failed",
            f"Off-site copy of backup {job.backup.name} failed",
            job.error_message + " The backup itself is good; its copy is asked again with the "
            "next backup, or by `manage.py offsite push " + job.backup.name + "`.",
            {"backup": job.backup.name, "attempts": (job.result or {}).get("attempts", 0)},
        )


def push_once(
    job: Job, runner: ProgressWriter, target: objectstore.Bucket, keys: list[str], size: int
) -> PushReport:
    backup = job.backup

    def shown(done: int, total: int) -> None:
        runner.progress(bytes_done=done, bytes_total=total)

    def stored(done: int, total: int) -> None:
        figures = {"bytes_done": done, "bytes_total": total}
        runner.progress(**figures)
        pause_point(PAUSE_POINT, done, total, lambda: runner.update(**figures), runner.check)

    hooks = PushHooks(
        phase=runner.phase,
        progress=shown,
        segment_stored=stored,
        check=runner.check,
    )
    finished = backup.finished_at or backup.created_at
    report = push_copy(
        archive_job(backup, []),
        target,
        keys,
        installation.installation_key(),
        created=finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
        segment_bytes=size,
        hooks=hooks,
    )
    runner.flush(bytes_done=report.archive_size, bytes_total=report.archive_size)
    return report


def wait_checking(runner: ProgressWriter, seconds: float) -> None:
    """The wait before a retry, honouring a cancel."""
    deadline = time.monotonic() + seconds
    while True:
        runner.check()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


def retry_noted(job: Job, runner: ProgressWriter, state, attempts: int) -> None:
    exc = state.outcome.exception()
    wait = state.next_action.sleep if state.next_action else 0
    log.warning(
        "off-site copy of %s, attempt %s failed: %s", job.backup.name, state.attempt_number, exc
    )
    job.result = {**job.result, "last_error": str(exc)}
    runner.update(
        phase=f"retry {state.attempt_number + 1}/{attempts} in {wait:.0f}s"[:40], result=job.result
    )


# Copies that failed (a worker killed, a bucket down past the retries) are asked again by the
# hourly upkeep: a copy failed this long ago, of a set at most this old, this many times at most.
ASK_AGAIN_AFTER = timedelta(minutes=10)
ASK_AGAIN_WITHIN = timedelta(days=7)
ASK_AGAIN_TIMES = 3


def ask_again_failed_copies(now: datetime | None = None) -> list[Job]:
    """The copies asked anew of recent sets whose last copy failed (each resumes what was
    sent); the caller hands them to a worker. None without A4C_OFFSITE_URL."""
    now = now or timezone.now()
    if not settings.A4C_OFFSITE_URL:
        return []
    asked = []
    recent = Backup.objects.filter(
        status=Backup.Status.SUCCEEDED,
        vanished_at__isnull=True,
        finished_at__gte=now - ASK_AGAIN_WITHIN,
    )
    for backup in recent:
        jobs = list(
            Job.objects.filter(kind=RunKind.OFFSITE, backup=backup).order_by("-created_at", "-id")
        )
        if not jobs or jobs[0].status != Job.Status.FAILED:
            continue
        failed = [j for j in jobs if j.status == Job.Status.FAILED]
        if len(failed) >= ASK_AGAIN_TIMES or now - (jobs[0].finished_at or now) < ASK_AGAIN_AFTER:
            continue
        try:
            asked.append(request_copy(backup.pk, Actor.system("offsite")))
        except BackupError as exc:
            log.warning("the copy of %s was not asked again: %s", backup.name, exc)
    return asked


# --- what the bucket holds ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ListedCopy:
    """A set's copy in the bucket, as its marker says, and what this console knows of it."""

    name: str
    set_id: str
    completed: str
    archive_size: int
    archive_sha256: str
    segments: int
    installation: str
    local_status: str  # the set's status here, "" when this console has no such set
    trusted: bool  # the marker's signature is this installation's or a trusted one's
    # Why the copy cannot be verified (a marker unreadable, changed after it was signed, or
    # of another set): its other facts are then unknown. Text from the bucket: escape it.
    problem: str = ""

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


def unverifiable(name: str, problem: str, local_status: str) -> ListedCopy:
    return ListedCopy(name, "", "", 0, "", 0, "", local_status, False, problem)


def list_copies() -> list[ListedCopy]:
    """Every set with a marker in the bucket (the truth), newest first."""
    target = bucket()
    names = sorted(
        {
            info.key.split("/", 1)[0]
            for info in target.list()
            if info.key.endswith("/" + objectstore.MARKER) and info.key.count("/") == 1
        }
    )
    keyring = installation.keyring()
    local = dict(Backup.objects.filter(name__in=names).values_list("name", "status"))
    found = []
    for name in names:
        try:
            marker = read_marker(target, name)
        except BackupError as exc:
            log.warning("off-site marker of %s unreadable: %s", printable(name), exc)
            found.append(unverifiable(name, str(exc), local.get(name, "")))
            continue
        if marker is None:
            continue
        copy = marker.copy
        try:
            verdict = keyring.check(canonical(copy.body()), marker.signature, name)
        except BackupError as exc:  # a trusted key's signature that does not match
            found.append(unverifiable(name, str(exc), local.get(name, "")))
            continue
        if copy.name != name:
            problem = f"its marker is of another set, {printable(copy.name)}"
            found.append(unverifiable(name, problem, local.get(name, "")))
            continue
        found.append(
            ListedCopy(
                copy.name,
                copy.set_id,
                copy.completed,
                copy.archive_size,
                copy.archive_sha256,
                len(copy.segments),
                copy.installation,
                local.get(name, ""),
                verdict.trusted,
            )
        )
    return sorted(found, key=lambda c: c.completed, reverse=True)


def latest_copies(backup_ids) -> dict[int, Job]:
    """The newest offsite job of each backup (the cache a page shows), by backup id."""
    found: dict[int, Job] = {}
    jobs = Job.objects.filter(kind=RunKind.OFFSITE, backup_id__in=list(backup_ids)).order_by(
        "created_at", "id"
    )
    for job in jobs:
        found[job.backup_id] = job
    return found


# --- retention ---------------------------------------------------------------------------


def retire_copies(names: list[str], actor: Actor, now: datetime | None = None) -> list[str]:
    """The sets retention deleted here: their copies go too, now, or once
    A4C_OFFSITE_KEEP_DAYS old (``offsite_upkeep`` deletes those later). Never raises: a copy
    that cannot be deleted now is tried again by the upkeep."""
    now = now or timezone.now()
    if not names or not settings.A4C_OFFSITE_URL:
        return []
    # On every copy of those sets, a copy still running too (it writes its result, never its
    # parameters): the upkeep deletes it once it has succeeded.
    for job in Job.objects.filter(kind=RunKind.OFFSITE, backup__name__in=names):
        if "retired_at" not in (job.parameters or {}):
            Job.objects.filter(pk=job.pk).update(
                parameters={**(job.parameters or {}), "retired_at": now.isoformat()}
            )
    return offsite_upkeep(actor, now)


def offsite_upkeep(actor: Actor, now: datetime | None = None) -> list[str]:
    """Deletes the copies of retired sets whose A4C_OFFSITE_KEEP_DAYS have passed; their names."""
    now = now or timezone.now()
    if not settings.A4C_OFFSITE_URL:
        return []
    keep = timedelta(days=max(0, settings.A4C_OFFSITE_KEEP_DAYS))
    deleted = []
    for job in Job.objects.select_related("backup").filter(
        kind=RunKind.OFFSITE, status=Job.Status.SUCCEEDED, parameters__has_key="retired_at"
    ):
        result = job.result or {}
        if result.get("deleted_offsite_at"):
            continue
        completed = _parse_time(result.get("completed")) or job.finished_at or now
        if now - completed < keep:
            continue
        try:
            removed = delete_copy(job.backup.name)
        except BackupError as exc:
            log.warning("the off-site copy of %s could not be deleted: %s", job.backup.name, exc)
            continue
        Job.objects.filter(pk=job.pk).update(
            result={**result, "deleted_offsite_at": now.isoformat(), "objects_deleted": removed}
        )
        audit.record(
            actor,
            OFFSITE_DELETE,
            target=job.backup.name,
            backup=job.backup,
            outcome=Outcome.SUCCEEDED,
            parameters={"objects": removed, "keep_days": settings.A4C_OFFSITE_KEEP_DAYS},
        )
        deleted.append(job.backup.name)
    return deleted


def delete_copy(name: str) -> int:
    """Removes a set's copy from the bucket: its marker first (so no half copy is ever taken
    for whole), then its segments; how many objects."""
    target = bucket()
    marker = objectstore.marker_key(name)
    count = 0
    if target.head(marker) is not None:
        target.delete(marker)
        count += 1
    return count + target.delete_prefix(objectstore.set_prefix(name))


def _parse_time(text) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
