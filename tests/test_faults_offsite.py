"""Off-site copies made by a real Celery worker: after each backup it takes, and a copy whose
worker is killed half-way (held at the offsite-segments pause point, then SIGKILL) resumed by
the next push, which keeps the segments already in the bucket and sends only the rest."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone
from fault_support import wait_for
from offsite_support import offsite_env, read_copy
from pyrage import x25519

from backups import operations, tasks
from backups.models import Backup, Job, RunKind
from backups.operations.offsite import PAUSE_POINT

pytestmark = pytest.mark.django_db(transaction=True)

SEGMENT = 256 << 10


@pytest.fixture
def identity(settings):
    key = x25519.Identity.generate()
    settings.A4C_EXPORT_RECIPIENTS = [str(key.to_public())]
    return key


@pytest.fixture
def copying(offsite, identity, files, settings, tmp_path):
    settings.A4C_OFFSITE_SEGMENT_SIZE = str(SEGMENT)
    settings.A4C_OFFSITE_RETRY_SECONDS = 0.05
    settings.A4C_OFFSITE_ATTEMPTS = 3
    settings.A4C_SIGNING_KEY_FILE = tmp_path / "signing-key"  # the worker's too
    (files.data_dir / "csar" / "random.bin").write_bytes(os.urandom(2 << 20))
    return offsite


def copy_of(backup: Backup) -> Job:
    return Job.objects.filter(kind=RunKind.OFFSITE, backup=backup).latest("id")


def test_the_worker_copies_each_backup_it_takes(
    copying, identity, start_worker, worker_env, settings, cli_actor
):
    start_worker(**worker_env, **offsite_env(settings))
    backup = operations.request_backup(operations.BackupRequest(name="worker-1"), cli_actor)
    tasks.enqueue(RunKind.BACKUP, backup.pk, cli_actor)

    wait_for(
        lambda: Job.objects.filter(
            kind=RunKind.OFFSITE, backup=backup, status__in=Job.ENDED
        ).exists(),
        timeout=120,
        what="the worker's off-site copy of worker-1 to end",
    )

    job = copy_of(backup)
    assert job.status == Job.Status.SUCCEEDED, job.error_message
    assert job.task_id, "handed to the worker by the backup's task"
    marker, _ = read_copy(copying, "worker-1", identity)
    assert marker["copy"]["set_id"] == Backup.objects.get(pk=backup.pk).set_id


def test_a_copy_killed_half_way_is_resumed_keeping_what_was_sent(
    copying, identity, take, start_worker, worker_env, settings, cli_actor, pause_points
):
    backup = take("killed-1", include_elasticsearch=False)
    job = copy_of(backup)
    worker = start_worker(**worker_env, **offsite_env(settings), **pause_points.env)
    pause_points.arm(PAUSE_POINT, 0.5)
    tasks.enqueue(RunKind.OFFSITE, job.pk, cli_actor)
    pause_points.reached(PAUSE_POINT)
    start_worker.kill(worker)

    held = [o.key for o in copying.list("killed-1/segments/")]
    assert len(held) >= 4, "half of 2 MiB in 256 KiB segments was sent"
    assert copying.head("killed-1/COPY.json") is None, "no marker for a copy not finished"
    settings.A4C_STALE_AFTER_SECONDS = 1
    operations.recover_stale_runs(now=timezone.now() + timedelta(seconds=1.5))
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "stopped answering" in job.error_message and "push it again" in job.error_message
    backup.refresh_from_db()
    assert backup.status == Backup.Status.SUCCEEDED

    report = operations.push_now(backup.pk, cli_actor)

    assert report.segments_kept == len(held), "every segment sent before the kill was kept"
    assert report.segments_sent == report.segments - len(held)
    read_copy(copying, "killed-1", identity)
    assert copying.uploads() == []
