"""A worker killed with SIGKILL in the middle of copying files, backup or restore.

tests/test_recovery.py kills workers parked in hook commands; here the kill lands while the
files themselves are being copied: enough demo data that the files step lasts seconds.
"""

from __future__ import annotations

import time

import pytest
from fault_support import leftovers, tree, wait_for

from backups import demo, operations, running, tasks
from backups.models import Backup, RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)

BIG = {"size": 200 << 20, "files": 3000}  # seconds of copying, even for a fast disk


def recover_after_the_kill(settings) -> list[str]:
    settings.A4C_STALE_AFTER_SECONDS = 1
    time.sleep(1.5)
    return operations.recover_stale_runs()


def test_a_restore_killed_while_copying_files_is_rolled_back_to_the_same_bytes(
    a4c, start_worker, worker_env, settings, cli_actor
):
    demo.generate(a4c.data_dir, prefix=a4c.prefix, cluster=a4c.cluster, **BIG)
    backup = operations.run_backup(operations.request_backup(cli_actor, name="base").pk)
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

    worker = start_worker(**worker_env)
    run = operations.request_restore(backup.pk, cli_actor)
    tasks.run_restore.delay(run.pk)
    wait_for(
        lambda: (
            RestoreRun.objects.filter(pk=run.pk, phase="files").exists() and leftovers(a4c.data_dir)
        ),
        timeout=120,
        what="the restore building its staging tree",
    )
    start_worker.kill(worker)
    run.refresh_from_db()
    assert run.status == RestoreRun.Status.RUNNING, "it finished before the kill: use more data"
    assert tree(a4c.data_dir) == files_before, "the data dir is only touched by the swap"
    notes = recover_after_the_kill(settings)

    run.refresh_from_db()
    assert run.status == RestoreRun.Status.INTERRUPTED
    assert run.safety_backup.name in run.error_message, "it says how to go back"
    assert any(f"restore #{run.pk}" in note for note in notes)
    assert running.lock_holder() is None
    assert leftovers(a4c.data_dir) == [], "the half-built staging tree is removed"

    rollback = operations.run_restore(operations.request_rollback(run.pk, cli_actor).pk)

    assert rollback.status == RestoreRun.Status.SUCCEEDED, rollback.error_message
    assert tree(a4c.data_dir) == files_before
    assert a4c.state() == es_before
    assert leftovers(a4c.data_dir) == []
