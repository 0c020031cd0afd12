"""Verifications and deletions are jobs on the one lifecycle: a row of their own, its audit,
the lock (a deletion's), a cancel, and recovery when the process running one dies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from backups import operations
from backups.errors import InvalidInput, StorageError
from backups.models import AuditEvent, Backup, Job, RunKind, TransitionNotAllowed
from backups.operations import delete as delete_ops
from backups.operations import locking

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backup(a4c, cli_actor) -> Backup:
    (a4c.data_dir / "csar").mkdir()
    (a4c.data_dir / "csar" / "types.yml").write_text("tosca_definitions_version: 1.3\n" * 50)
    request = operations.BackupRequest(name="kept", include_elasticsearch=False)
    backup = operations.run_backup(operations.request_backup(request, cli_actor).pk)
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    return backup


def audited(backup: Backup) -> list[tuple[str, str]]:
    """The audit of everything done to ``backup`` after it was taken."""
    events = AuditEvent.objects.filter(backup=backup).order_by("pk")
    return [
        (e.action, e.outcome) for e in events if e.action not in ("backup.create", "backup.run")
    ]


def aged(settings) -> timezone.datetime:
    """A moment when every heartbeat written now, and every pending row, is stale."""
    seconds = max(settings.A4C_STALE_AFTER_SECONDS, settings.A4C_PENDING_TIMEOUT_SECONDS) + 1
    return timezone.now() + timedelta(seconds=seconds)


def test_a_verification_is_a_job_with_its_row_and_its_audit(backup, cli_actor):
    report = operations.verify_backup(backup.pk, cli_actor)

    assert report.ok and report.problems == []
    job = Job.objects.get(kind=RunKind.VERIFY, backup=backup)
    assert (job.status, job.phase, job.percent) == (Job.Status.SUCCEEDED, "done", 100)
    assert job.started_at and job.finished_at and job.actor == cli_actor.name
    assert job.result == {"ok": True, "problems": 0}
    assert audited(backup) == [("verify.run", "started"), ("backup.verify", "succeeded")]
    assert locking.lock_holder() is None


def test_a_verification_that_finds_a_changed_byte_fails_its_job_and_names_the_problem(
    backup, cli_actor, settings
):
    blob = next(p for p in (Path(settings.A4C_BACKUP_DIR) / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(b"not what was stored")

    report = operations.verify_backup(backup.pk, cli_actor)

    assert not report.ok and len(report.problems) == 1
    job = Job.objects.get(kind=RunKind.VERIFY, backup=backup)
    assert job.status == Job.Status.FAILED and job.result == {"ok": False, "problems": 1}
    assert job.error_message == (
        f"backup kept failed verification: 1 problem, first: {report.problems[0]}"
    )
    assert job.error_detail == report.problems[0]
    backup.refresh_from_db()
    assert backup.verify_ok is False and backup.verify_problems == report.problems
    event = AuditEvent.objects.get(action="backup.verify", outcome="failed")
    assert event.parameters == {"problems": 1} and event.message == report.problems[0]


def test_a_deletion_is_a_job_that_holds_the_lock_while_it_runs(backup, cli_actor, monkeypatch):
    held = []
    forget_record = delete_ops.records.forget_record

    def watching(name):
        held.append(locking.lock_holder())
        return forget_record(name)

    monkeypatch.setattr(delete_ops.records, "forget_record", watching)

    deleted = operations.delete_backup(backup.pk, cli_actor)

    job = Job.objects.get(kind=RunKind.DELETE, backup=backup)
    assert [(lock.kind, lock.run_id) for lock in held] == [(RunKind.DELETE, job.pk)]
    assert deleted.status == Backup.Status.DELETED
    assert (job.status, job.phase, job.percent) == (Job.Status.SUCCEEDED, "done", 100)
    assert job.parameters == {"collect": True, "status_before": "succeeded"}
    assert job.result["blobs_removed"] >= 1, job.result
    assert audited(backup) == [("delete.run", "started"), ("backup.delete", "succeeded")]
    assert locking.lock_holder() is None


def test_a_deletion_that_fails_puts_the_backup_back_and_says_why(backup, cli_actor, settings):
    manifest = Path(settings.A4C_BACKUP_DIR) / "manifests" / "kept.manifest"
    manifest.unlink()
    manifest.mkdir()  # a directory where the file was: even root cannot unlink it
    (manifest / "in-the-way").write_text("x")

    with pytest.raises(StorageError) as raised:
        operations.delete_backup(backup.pk, cli_actor)

    backup.refresh_from_db()
    assert backup.status == Backup.Status.SUCCEEDED
    assert backup.error_message == str(raised.value)
    job = Job.objects.get(kind=RunKind.DELETE, backup=backup)
    assert job.status == Job.Status.FAILED and job.error_message == str(raised.value)
    assert job.phase == "manifest"
    assert audited(backup) == [("delete.run", "started"), ("backup.delete", "failed")]
    assert locking.lock_holder() is None


def test_a_backup_being_verified_is_not_deleted_under_the_verification(backup, cli_actor):
    job = operations.request_verify(backup.pk, cli_actor)
    now = timezone.now()
    assert job.transition(Job.Status.RUNNING, started_at=now, heartbeat_at=now, phase="files")

    with pytest.raises(InvalidInput, match="is being verified"):
        operations.delete_backup(backup.pk, cli_actor)

    assert Backup.objects.get(pk=backup.pk).status == Backup.Status.SUCCEEDED
    assert not Job.objects.filter(kind=RunKind.DELETE).exists()


def dead_deletion(backup: Backup, actor, phase: str) -> Job:
    """A deletion as its process left it when killed during ``phase``: the lock held, the
    backup deleting, the heartbeat stopped."""
    job = locking.create_claimed(
        RunKind.DELETE,
        backup.name,
        actor,
        Job,
        {"kind": RunKind.DELETE, "backup": backup, "parameters": {"status_before": "succeeded"}},
        wait=0.0,
        refused=lambda busy: None,
        recover=None,
    )
    now = timezone.now()
    assert job.transition(Job.Status.RUNNING, started_at=now, heartbeat_at=now, phase=phase)
    assert backup.transition(Backup.Status.DELETING)
    return job


@pytest.mark.parametrize(
    ("phase", "backup_ends", "said"),
    [
        ("starting", "succeeded", "Nothing had been removed: the backup is as it was."),
        ("snapshot", "failed", "Part of the backup may be gone: it is marked failed"),
    ],
)
def test_a_deletion_whose_process_died_is_ended_by_recovery_and_its_lock_freed(
    backup, cli_actor, settings, phase, backup_ends, said
):
    job = dead_deletion(backup, cli_actor, phase)

    notes = operations.recover_stale_runs(now=aged(settings))

    job.refresh_from_db()
    backup.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert f"stopped answering during {phase}" in job.error_message and said in job.error_message
    assert backup.status == backup_ends
    assert notes == [f"delete #{job.pk} of kept: {job.error_message}"]
    assert locking.lock_holder() is None
    event = AuditEvent.objects.get(action="delete.recover")
    assert (event.outcome, event.actor, event.backup_id) == ("failed", "recovery", backup.pk)


def test_a_verification_whose_worker_died_is_ended_by_recovery(backup, cli_actor, settings):
    job = operations.request_verify(backup.pk, cli_actor)
    now = timezone.now()
    assert job.transition(Job.Status.RUNNING, started_at=now, heartbeat_at=now, phase="files")
    assert backup.is_verifying

    operations.recover_stale_runs(now=aged(settings))

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "stopped answering during files" in job.error_message
    assert not backup.is_verifying
    assert AuditEvent.objects.filter(action="verify.recover", outcome="failed").count() == 1


def test_a_verification_no_worker_started_is_failed_by_recovery(backup, cli_actor, settings):
    job = operations.request_verify(backup.pk, cli_actor)

    operations.recover_stale_runs(now=aged(settings))

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "No worker started this verification in time" in job.error_message


def test_a_verification_asked_twice_is_one_job(backup, cli_actor):
    first = operations.request_verify(backup.pk, cli_actor)
    second = operations.request_verify(backup.pk, cli_actor)

    assert first.pk == second.pk
    assert [e.outcome for e in AuditEvent.objects.filter(action="backup.verify")] == [
        "requested",
        "requested",
    ]


def test_a_pending_verification_is_cancelled_at_once_and_a_deletion_never(backup, cli_actor):
    job = operations.request_verify(backup.pk, cli_actor)

    cancelled = operations.cancel(RunKind.VERIFY, job.pk, cli_actor)

    assert cancelled.status == Job.Status.CANCELLED
    assert AuditEvent.objects.filter(action="verify.cancel", backup=backup).exists()
    operations.run_job(job.pk)  # a worker that gets it late does nothing
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED
    with pytest.raises(
        InvalidInput, match="Only a backup, a restore, a verification, a drill or an off-site copy"
    ):
        operations.cancel(RunKind.DELETE, job.pk, cli_actor)


@pytest.mark.django_db
def test_a_job_moves_only_along_its_table():
    backup = Backup.objects.create(name="moved", actor="t", status=Backup.Status.SUCCEEDED)
    job = Job.objects.create(kind=RunKind.VERIFY, backup=backup, actor="t")

    with pytest.raises(TransitionNotAllowed):
        job.transition(Job.Status.SUCCEEDED)
    assert job.transition(Job.Status.RUNNING)
    with pytest.raises(TransitionNotAllowed):
        job.transition(Job.Status.PENDING)
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING


def test_migration_0010_moves_a_verification_asked_and_not_ended_to_a_pending_job():
    executor = MigrationExecutor(connection)
    before, after = (
        [("backups", "0009_a4c_maintenance_kept")],
        [("backups", "0010_jobs_and_run_kinds")],
    )
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    asked = timezone.now() - timedelta(minutes=5)
    OldBackup = old.get_model("backups", "Backup")
    waiting = OldBackup.objects.create(
        name="waiting", status="succeeded", verify_requested_at=asked, verify_requested_by="rita"
    )
    OldBackup.objects.create(
        name="answered",
        status="succeeded",
        verify_requested_at=asked,
        verify_requested_by="rita",
        verified_at=asked + timedelta(minutes=1),
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    new = executor.loader.project_state(after).apps
    jobs = list(new.get_model("backups", "Job").objects.values("backup_id", "status", "actor"))
    # the database as the next tests expect it: every migration applied, later ones too
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert jobs == [{"backup_id": waiting.pk, "status": "pending", "actor": "rita"}]
