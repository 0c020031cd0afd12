"""A cancel is honoured at every phase boundary and inside long phases, or refused with the
reason; never accepted and then ignored (issue 15.2). Real files, real backup storage, and a
real Elasticsearch for the restore."""

from __future__ import annotations

import pytest

from backups import operations
from backups.errors import InvalidInput
from backups.models import Backup, RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)


def cancel_when(model, phase: str, *, after_files: int = 0):
    """A progress callback that asks for the cancel the first time the run reaches ``phase``
    (with at least ``after_files`` files done): what a person clicking at that moment does."""
    asked = []

    def on_progress(run) -> None:
        if not asked and run.phase == phase and (run.files_done or 0) >= after_files:
            asked.append(run.phase)
            model.objects.filter(pk=run.pk).update(cancel_requested=True)

    return on_progress, asked


@pytest.fixture
def forty_files(a4c):
    """Forty files of 20 kB in four folders."""
    for n in range(40):
        folder = a4c.data_dir / "csar" / f"app-{n % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file-{n}.yml").write_bytes(b"x" * 20_000)
    return a4c


def test_a_cancel_asked_in_the_last_phase_ends_the_backup_cancelled_not_succeeded(
    forty_files, cli_actor, settings
):
    """The heartbeat notices a cancel every few seconds; this backup ends long before that."""
    settings.A4C_POST_BACKUP_COMMAND = "true"
    settings.A4C_HEARTBEAT_SECONDS = 60
    backup = operations.request_backup(
        operations.BackupRequest(name="late-cancel", include_elasticsearch=False), cli_actor
    )
    on_progress, asked = cancel_when(Backup, "post-command")

    done = operations.run_backup(backup.pk, on_progress)

    assert asked == ["post-command"]
    assert done.status == Backup.Status.CANCELLED, done.error_message
    assert "Cancelled" in done.error_message
    assert "late-cancel" not in operations.store().manifests.names()


def test_a_cancel_asked_inside_the_files_phase_stops_it_there(forty_files, cli_actor, settings):
    settings.A4C_HEARTBEAT_SECONDS = 60
    backup = operations.request_backup(
        operations.BackupRequest(name="mid-files", include_elasticsearch=False), cli_actor
    )
    on_progress, asked = cancel_when(Backup, "files", after_files=1)

    done = operations.run_backup(backup.pk, on_progress)

    assert asked == ["files"]
    assert done.status == Backup.Status.CANCELLED
    assert "Cancelled at the files phase" in done.error_message
    assert "mid-files" not in operations.store().manifests.names(), "nothing of it is kept"


def test_a_cancel_after_the_end_is_refused_with_the_reason(forty_files, cli_actor):
    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="done", include_elasticsearch=False), cli_actor
        ).pk
    )

    with pytest.raises(InvalidInput, match="The backup is succeeded; only a pending or running"):
        operations.cancel("backup", backup.pk, cli_actor)


def test_a_cancel_asked_while_a_restore_verifies_puts_everything_back(
    forty_files, cli_actor, settings
):
    settings.A4C_HEARTBEAT_SECONDS = 60
    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="source", include_elasticsearch=False), cli_actor
        ).pk
    )
    added = forty_files.data_dir / "csar" / "added-after.yml"
    added.write_text("kept\n")
    run = operations.request_restore(
        operations.RestoreRequest(backup.pk, scope="files"), cli_actor, confirm="source"
    )
    on_progress, asked = cancel_when(RestoreRun, "verify")

    run = operations.run_restore(run.pk, on_progress)

    assert asked == ["verify"]
    assert run.status in (RestoreRun.Status.CANCELLED, RestoreRun.Status.ROLLED_BACK)
    assert added.read_text() == "kept\n", "the restore's changes were put back"
