"""Celery tasks: thin doors into backups/operations, and ``enqueue``, the one way every door
(console, command line, scheduler) hands a requested run to a worker.

A backup or restore is never retried by Celery: once it has begun changing data, only the
operation's own rollback may act. Recovery and the catalog sync run on a beat schedule and when
a worker starts.
"""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from kombu.utils.url import maybe_sanitize_url

import a4c_backup.celery  # noqa: F401  (the app the shared tasks are sent with)
from backups import operations
from backups.audit import Actor
from backups.errors import BackupError, QueueUnavailable
from backups.models import Backup, Job, RestoreRun, RunKind

log = logging.getLogger(__name__)


@shared_task(name="backups.tasks.run_backup", acks_late=False)
def run_backup(backup_id: int) -> str:
    status = operations.run_backup(backup_id).status
    dispatch_offsite_copy(backup_id)  # its off-site copy follows, as a run of its own
    dispatch_due_drills()  # a policy's drill follows its backup, as a run of its own
    return status


def dispatch_offsite_copy(backup_id: int) -> str:
    """Hands the off-site copy the backup's aftercare asked for to a worker; a copy the queue
    cannot take ends not started (its backup stays good; `offsite push` copies it)."""
    job = (
        Job.objects.filter(
            kind=RunKind.OFFSITE, backup_id=backup_id, status=Job.Status.PENDING, task_id=""
        )
        .order_by("id")
        .first()
    )
    if job is None:
        return ""
    try:
        return enqueue(RunKind.OFFSITE, job.pk, Actor.system("offsite"))
    except QueueUnavailable:
        return ""


@shared_task(name="backups.tasks.offsite_upkeep")
def offsite_upkeep() -> list[str]:
    """Deletes the off-site copies of sets retention deleted, once A4C_OFFSITE_KEEP_DAYS old,
    and asks again the copies of recent sets that failed (a killed worker, a bucket down)."""
    for job in operations.ask_again_failed_copies():
        try:
            enqueue(RunKind.OFFSITE, job.pk, Actor.system("offsite"))
        except QueueUnavailable:
            break  # taken back as not started; the next upkeep asks again
    return operations.offsite_upkeep(Actor.system("offsite"))


@shared_task(name="backups.tasks.run_restore", acks_late=False)
def run_restore(restore_id: int) -> str:
    return operations.run_restore(restore_id).status


@shared_task(name="backups.tasks.run_job", acks_late=False)
def run_job(job_id: int) -> str:
    """A job on a backup (a verification ...), whatever its kind: the row says which."""
    return operations.run_job(job_id).status


@shared_task(name="backups.tasks.recover_stale_runs")
def recover_stale_runs() -> list[str]:
    operations.record_worker_heartbeat()
    return operations.recover_stale_runs()


@shared_task(name="backups.tasks.run_due_policies")
def run_due_policies() -> list[str]:
    """The scheduler's tick: starts the backups of due policies on the workers."""
    operations.record_worker_heartbeat()
    started = operations.start_due_policies()
    names = []
    for backup in started:
        try:
            enqueue(RunKind.BACKUP, backup.pk, Actor.system("scheduler"))
        except QueueUnavailable:
            continue  # the backup is cancelled and says why; the next tick tries again
        names.append(backup.name)
    dispatch_due_drills()
    return names


def dispatch_due_drills() -> list[int]:
    """Requests the policies' due drills (each under the lock) and hands them to workers; a
    drill the queue cannot take is due again at the next tick."""
    sent = []
    for job in operations.start_due_drills():
        try:
            enqueue(RunKind.DRILL, job.pk, Actor.system("scheduler"))
        except QueueUnavailable:
            operations.release_unsent_drill(job)
            continue
        sent.append(job.pk)
    return sent


@shared_task(name="backups.tasks.check_recent_backup")
def check_recent_backup() -> bool:
    return operations.check_recent_backup()


@shared_task(name="backups.tasks.check_drill_age")
def check_drill_age() -> bool:
    return operations.check_drill_age()


@shared_task(name="backups.tasks.sync_catalog")
def sync_catalog() -> dict:
    """Sees the sets other consoles wrote into a shared storage, and the ones that went."""
    report = operations.sync_catalog(Actor.system("sync")).as_json()
    # Counts, for the worker's log: every few minutes, the names of every set would flood it.
    return {k: len(v) if isinstance(v, list) else v for k, v in report.items()}


@shared_task(name="backups.tasks.ping")
def ping(value: str) -> str:
    """Answers its argument: proves a worker is there and the broker carries messages."""
    return f"pong:{value}"


@worker_ready.connect
def _recover_on_start(**_kwargs) -> None:
    operations.recover_stale_runs()


@worker_ready.connect
def _sync_on_start(**_kwargs) -> None:
    """The catalog is synced as soon as a worker runs, not A4C_SYNC_SECONDS later (the beat's
    first tick): a new machine lists the storage's sets at once. Queued, so that the worker's
    own process stays free, and run by the task the beat runs."""
    try:
        sync_catalog.delay()
    except Exception:  # noqa: BLE001 - the broker's many errors: the beat's tick syncs later
        log.exception("could not queue the catalog sync at the worker's start")


# The worker's door for each kind of run; every other kind is a Job, run by run_job.
RUN_TASKS = {RunKind.BACKUP: run_backup, RunKind.RESTORE: run_restore}
# What a person is told a run of each kind is, when it could not be handed to a worker.
WHAT = {
    RunKind.VERIFY: "verification",
    RunKind.DELETE: "deletion",
    RunKind.DRILL: "drill",
    RunKind.OFFSITE: "off-site copy",
}


def enqueue(kind: RunKind | str, run_id: int, actor: Actor) -> str:
    """Hands a requested run (a backup, a restore, a job such as a verification) to a worker;
    returns the task id.

    When the broker cannot take it, the request is taken back (a backup or restore is
    cancelled, which frees the lock; a job ends as not started) so that nothing waits for a
    worker that will never come, and QueueUnavailable says what to do.
    """
    kind = RunKind(kind)
    task = RUN_TASKS.get(kind, run_job)
    what = WHAT.get(kind, str(kind))
    try:
        result = task.delay(run_id)
    except Exception as exc:  # noqa: BLE001 - kombu and redis raise many kinds when Redis is down
        log.exception("could not queue %s %s", kind, run_id)
        message = (
            f"The {what} could not be handed to a worker: the queue at "
            f"{maybe_sanitize_url(settings.CELERY_BROKER_URL)} did not answer ({exc}). "
            "Nothing was changed; start Redis and try again."
        )
        try:
            if kind in RUN_TASKS:
                operations.cancel(kind, run_id, actor)
            else:
                operations.job_not_started(run_id, actor, message)
        except BackupError:
            pass  # it ended meanwhile
        raise QueueUnavailable(message) from exc
    model = {RunKind.BACKUP: Backup, RunKind.RESTORE: RestoreRun}.get(kind, Job)
    model.objects.filter(pk=run_id, task_id="").update(task_id=result.id)
    return result.id
