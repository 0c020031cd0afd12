"""manage.py cancel: stops a pending or running backup or restore."""

from __future__ import annotations

import pytest
from commands import manage

from backups import operations
from backups.management import arguments
from backups.models import AuditEvent, Backup, OperationLock

pytestmark = pytest.mark.django_db(transaction=True)


def test_cancelling_a_pending_backup_ends_it_and_frees_the_lock(a4c, capsys, cli_actor):
    pending = operations.request_backup(
        operations.BackupRequest(name="queued", include_elasticsearch=False), cli_actor
    )

    ran = manage(capsys, "cancel", "backup", "queued")

    assert ran.code == 0, ran.err
    assert ran.out == "backup queued cancelled before it started\n"
    assert Backup.objects.get(pk=pending.pk).status == Backup.Status.CANCELLED
    assert OperationLock.objects.get(pk=1).kind == ""
    assert AuditEvent.objects.filter(action="backup.cancel", source="cli").exists()


def test_cancelling_a_running_backup_asks_it_to_stop(a4c, capsys, cli_actor):
    running = operations.request_backup(
        operations.BackupRequest(name="running", include_elasticsearch=False), cli_actor
    )
    Backup.objects.filter(pk=running.pk).update(status=Backup.Status.RUNNING)

    ran = manage(capsys, "cancel", "backup", str(running.pk))

    assert ran.code == 0
    assert "asked backup running to stop" in ran.out
    assert Backup.objects.get(pk=running.pk).cancel_requested


def test_cancelling_a_finished_backup_is_a_usage_error(a4c, capsys):
    Backup.objects.create(name="done", status="succeeded")

    ran = manage(capsys, "cancel", "backup", "done")

    assert ran.code == arguments.USAGE
    assert "only a pending or running backup can be cancelled" in ran.err


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["restore", "first"], arguments.USAGE),
        (["restore", "424242"], arguments.NOT_FOUND),
        (["backup", "never"], arguments.NOT_FOUND),
        (["everything", "1"], arguments.USAGE),
    ],
)
def test_what_cannot_be_cancelled_is_one_line_and_the_right_code(a4c, capsys, argv, code):
    ran = manage(capsys, "cancel", *argv)

    assert ran.code == code
    assert ran.err.startswith("error: ") and ran.err.count("\n") == 1
