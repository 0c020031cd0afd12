"""A worker killed with SIGKILL mid-operation: its run is recovered and its lock freed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from fault_support import wait_for

from backups import operations, tasks
from backups.demo import generator as demo
from backups.models import Backup, OperationLock, RestoreRun
from backups.storage import Store

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_backup_whose_worker_is_killed_is_failed_and_cleaned_up(
    a4c, start_worker, worker_env, settings, cli_actor
):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    worker = start_worker(**worker_env, A4C_PRE_BACKUP_COMMAND="sleep 60")
    backup = operations.request_backup(operations.BackupRequest(name="killed-mid-way"), cli_actor)
    tasks.run_backup.delay(backup.pk)
    wait_for(
        lambda: Backup.objects.filter(pk=backup.pk, phase="pre-command").exists(),
        what="the backup starting",
    )

    start_worker.kill(worker)
    # The dead worker's heartbeat stopped a while ago, as it would have after the wait.
    Backup.objects.filter(pk=backup.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.A4C_STALE_AFTER_SECONDS + 1)
    )
    # A second request finds the lock held by a dead run, recovers it and goes ahead.
    second = operations.request_backup(
        operations.BackupRequest(name="after-the-kill", include_elasticsearch=False), cli_actor
    )

    backup.refresh_from_db()
    assert backup.status == Backup.Status.FAILED
    assert "stopped answering during pre-command" in backup.error_message
    assert OperationLock.objects.get(pk=1).run_id == second.pk
    assert not Store(settings.A4C_BACKUP_DIR).manifests.exists("killed-mid-way")
    assert not Backup.objects.filter(status=Backup.Status.SUCCEEDED, name="killed-mid-way").exists()


def test_a_restore_whose_worker_is_killed_is_marked_interrupted_and_can_be_rolled_back(
    a4c, start_worker, worker_env, settings, cli_actor
):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    a4c.cluster.client.indices.delete(index=a4c.index("user"))
    (a4c.data_dir / "artifacts" / "made-after.txt").write_text("after the backup")
    before = a4c.state()
    worker = start_worker(**worker_env, A4C_POST_RESTORE_COMMAND="sleep 60")
    run = operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    tasks.run_restore.delay(run.pk)
    wait_for(
        lambda: (
            RestoreRun.objects.filter(pk=run.pk, phase="verify").exists()
            or RestoreRun.objects.filter(
                pk=run.pk, phase__startswith="files", state__changed=True
            ).exists()
        ),
        what="the restore changing data",
    )
    wait_for(
        lambda: not (a4c.data_dir / "artifacts" / "made-after.txt").exists(), what="the files swap"
    )

    start_worker.kill(worker)
    later = timezone.now() + timedelta(seconds=settings.A4C_STALE_AFTER_SECONDS + 1)
    operations.recover_stale_runs(now=later)

    run.refresh_from_db()
    assert run.status == RestoreRun.Status.INTERRUPTED
    assert run.safety_backup.name in run.error_message
    assert OperationLock.objects.get(pk=1).kind == ""
    rollback = operations.run_restore(operations.request_rollback(run.pk, cli_actor).pk)
    assert rollback.status == RestoreRun.Status.SUCCEEDED, rollback.error_message
    assert a4c.state() == before
    assert (a4c.data_dir / "artifacts" / "made-after.txt").read_text() == "after the backup"
