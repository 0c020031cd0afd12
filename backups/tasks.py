"""Celery tasks: thin doors into backups/operations.py.

A backup or restore is never retried by Celery: once it has begun changing data, only the
operation's own rollback may act. Recovery runs on a beat schedule and when a worker starts.
"""

from celery import shared_task
from celery.signals import worker_ready

from backups import operations


@shared_task(name="backups.tasks.run_backup", acks_late=False)
def run_backup(backup_id: int) -> str:
    return operations.run_backup(backup_id).status


@shared_task(name="backups.tasks.run_restore", acks_late=False)
def run_restore(restore_id: int) -> str:
    return operations.run_restore(restore_id).status


@shared_task(name="backups.tasks.run_verify")
def run_verify(backup_id: int) -> bool:
    return operations.run_verify(backup_id).ok


@shared_task(name="backups.tasks.recover_stale_runs")
def recover_stale_runs() -> list[str]:
    operations.record_worker_heartbeat()
    return operations.recover_stale_runs()


@shared_task(name="backups.tasks.run_due_policies")
def run_due_policies() -> list[str]:
    """The scheduler's tick: starts the backups of due policies on the workers."""
    operations.record_worker_heartbeat()
    started = operations.start_due_policies()
    for backup in started:
        run_backup.delay(backup.pk)
    return [b.name for b in started]


@shared_task(name="backups.tasks.check_recent_backup")
def check_recent_backup() -> bool:
    return operations.check_recent_backup()


@shared_task(name="backups.tasks.ping")
def ping(value: str) -> str:
    """Answers its argument: proves a worker is there and the broker carries messages."""
    return f"pong:{value}"


@worker_ready.connect
def _recover_on_start(**_kwargs) -> None:
    operations.recover_stale_runs()
