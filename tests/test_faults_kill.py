"""A worker killed with SIGKILL in the middle of copying files, backup or restore.

tests/test_recovery.py kills workers parked in hook commands; here the kill lands while the
files themselves are being copied. The worker is held at a pause point a quarter of the way
through the 16 MiB of files (A4C_TEST_PAUSE_DIR, tests' only: conftest's pause_points): the
test waits for the run to stop there, its row showing the copy begun, and kills it. No clock
decides the outcome, only that event. The killed backup is
recovered by a real beat with the default timings (heartbeat older than 30 s, a tick every
15 s), within the minute an operator is promised.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from fault_support import leftovers, tree, wait_for

from backups import operations, tasks
from backups.demo import generator as demo
from backups.models import AuditEvent, Backup, RestoreRun
from backups.operations import locking
from backups.storage import Store

pytestmark = pytest.mark.django_db(transaction=True)

DATA = {"size": 16 << 20, "files": 400}


def recover_after_the_kill(settings) -> list[str]:
    """What the beat's recovery tick does a minute later, without the minute."""
    settings.A4C_STALE_AFTER_SECONDS = 1
    return operations.recover_stale_runs(now=timezone.now() + timedelta(seconds=1.5))


def test_a_backup_killed_while_copying_files_is_failed_and_nothing_partial_is_kept(
    a4c, start_worker, worker_env, settings, cli_actor, pause_points
):
    demo.generate(a4c.data_dir, prefix=a4c.prefix, cluster=a4c.cluster, **DATA)
    store = Store(settings.A4C_BACKUP_DIR)
    worker = start_worker(**worker_env, **pause_points.env)
    pause_points.arm("backup-files", 0.25)
    backup = operations.request_backup(operations.BackupRequest(name="killed-copying"), cli_actor)
    tasks.run_backup.delay(backup.pk)
    pause_points.reached("backup-files")
    assert Backup.objects.filter(pk=backup.pk, phase="files", bytes_done__gt=0).exists()
    start_worker.kill(worker)

    backup.refresh_from_db()
    assert backup.status == Backup.Status.RUNNING and backup.bytes_done < backup.bytes_total
    assert (store.tmp / "killed-copying").is_dir(), "its blobs were being written"
    assert not store.manifests.exists("killed-copying")
    # Recovery as in production: the beat's tick, with the default heartbeat age and tick.
    killed_at = timezone.now()
    start_worker(beat=True, **worker_env)
    wait_for(  # the recovery's last step
        lambda: AuditEvent.objects.filter(
            action="backup.recover", target="killed-copying"
        ).exists(),
        timeout=120,
        what="the beat recovering the backup",
    )

    backup.refresh_from_db()
    assert (backup.finished_at - killed_at).total_seconds() < 60, "recovered within a minute"
    assert backup.status == Backup.Status.FAILED
    assert "stopped answering during files" in backup.error_message
    assert locking.lock_holder() is None
    assert "killed-copying" not in store.manifests.names()
    assert not (store.tmp / "killed-copying").exists()
    assert a4c.cluster.snapshot(settings.A4C_ES_REPOSITORY, "killed-copying") is None
    assert not Backup.objects.filter(status=Backup.Status.SUCCEEDED).exists()
    # The next backup runs, and is whole.
    after = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="after"), cli_actor).pk
    )
    assert after.status == Backup.Status.SUCCEEDED, after.error_message
    assert operations.verify_backup(after.pk, cli_actor).ok


def test_a_restore_killed_while_copying_files_has_changed_nothing_and_leaves_no_staging(
    a4c, start_worker, worker_env, settings, cli_actor, pause_points
):
    demo.generate(a4c.data_dir, prefix=a4c.prefix, cluster=a4c.cluster, **DATA)
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    # weeks of use: files edited, removed, added, modes changed; documents and indices too
    artifacts = sorted(p for p in (a4c.data_dir / "artifacts").rglob("*") if p.is_file())
    artifacts[0].write_bytes(b"edited after the backup")
    artifacts[1].unlink()
    artifacts[2].chmod(0o600)
    (a4c.data_dir / "artifacts" / "added-later.txt").write_text("added after the backup")
    client = a4c.cluster.client
    client.index(index=a4c.index("user"), id="late", document={"username": "late"}, refresh=True)
    client.indices.delete(index=a4c.index("plugin"))
    files_before, es_before = tree(a4c.data_dir), a4c.state()

    worker = start_worker(**worker_env, **pause_points.env)
    pause_points.arm("restorerun-files", 0.25)
    run = operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    tasks.run_restore.delay(run.pk)
    pause_points.reached("restorerun-files")
    assert RestoreRun.objects.filter(pk=run.pk, phase="files", bytes_done__gt=0).exists()
    assert leftovers(a4c.data_dir), "the restore copies files into its staging tree"
    start_worker.kill(worker)

    run.refresh_from_db()
    assert run.status == RestoreRun.Status.RUNNING and run.bytes_done < run.bytes_total
    assert tree(a4c.data_dir) == files_before, "the data dir is only touched by the swap"
    notes = recover_after_the_kill(settings)

    # A mirror restore builds its tree (re-hashing every blob) before it changes anything,
    # even before its safety backup: killed there, it has nothing to put back.
    run.refresh_from_db()
    assert run.status == RestoreRun.Status.FAILED
    assert "Nothing had been changed yet" in run.error_message
    assert run.safety_backup is None
    assert any(f"restore #{run.pk}" in note for note in notes)
    assert locking.lock_holder() is None
    assert leftovers(a4c.data_dir) == [], "the half-built staging tree is removed"
    assert tree(a4c.data_dir) == files_before
    assert a4c.state() == es_before
