"""manage.py delete: removes a backup, after a confirmation a script gives with --yes."""

from __future__ import annotations

import pytest
from commands import manage

from backups import operations
from backups.management import arguments
from backups.models import Backup

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backup(a4c, cli_actor) -> Backup:
    index = a4c.index("user")
    a4c.cluster.create_index(index, mappings={}, settings={"number_of_replicas": 0})
    a4c.cluster.bulk_index(index, [("admin", {"username": "admin"})])
    (a4c.data_dir / "artifacts").mkdir()
    (a4c.data_dir / "artifacts" / "only-here.bin").write_bytes(b"unique content")
    return operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="old"), cli_actor).pk
    )


def test_delete_with_yes_removes_the_snapshot_and_the_manifest(backup, a4c, capsys, settings):
    ran = manage(capsys, "delete", "old", "--yes")

    assert ran.code == 0, ran.err
    assert ran.out == "deleted backup old\n"
    assert Backup.objects.get(name="old").status == Backup.Status.DELETED
    assert a4c.cluster.snapshot(settings.A4C_ES_REPOSITORY, "old") is None
    assert not operations.store().manifests.exists("old")


def test_delete_without_a_terminal_or_yes_is_refused(backup, capsys):
    ran = manage(capsys, "delete", "old")

    assert ran.code == arguments.USAGE and "pass --yes" in ran.err
    assert Backup.objects.get(name="old").status == Backup.Status.SUCCEEDED


def test_deleting_a_deleted_backup_is_a_usage_error_and_an_unknown_one_not_found(backup, capsys):
    assert manage(capsys, "delete", "old", "--yes").code == 0

    again = manage(capsys, "delete", "old", "--yes")
    unknown = manage(capsys, "delete", "never", "--yes")

    assert again.code == arguments.USAGE and "already deleted" in again.err
    assert unknown.code == arguments.NOT_FOUND
