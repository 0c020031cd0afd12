"""manage.py delete: removes a backup, after a confirmation a script gives with --yes."""

from __future__ import annotations

import pytest
from commands import manage

from backups import operations
from backups.management import arguments
from backups.models import Backup

pytestmark = pytest.mark.django_db(transaction=True)


def test_delete_with_yes_removes_the_snapshot_and_the_manifest(backup, a4c, capsys, settings):
    ran = manage(capsys, "delete", "nightly-1", "--yes")

    assert ran.code == 0, ran.err
    assert ran.out == "deleted backup nightly-1\n"
    assert Backup.objects.get(name="nightly-1").status == Backup.Status.DELETED
    assert a4c.cluster.snapshot(settings.A4C_ES_REPOSITORY, "nightly-1") is None
    assert not operations.store().manifests.exists("nightly-1")


def test_delete_without_a_terminal_or_yes_is_refused(backup, capsys):
    ran = manage(capsys, "delete", "nightly-1")

    assert ran.code == arguments.USAGE and "pass --yes" in ran.err
    assert Backup.objects.get(name="nightly-1").status == Backup.Status.SUCCEEDED


def test_deleting_a_deleted_backup_is_a_usage_error_and_an_unknown_one_not_found(backup, capsys):
    assert manage(capsys, "delete", "nightly-1", "--yes").code == 0

    again = manage(capsys, "delete", "nightly-1", "--yes")
    unknown = manage(capsys, "delete", "never", "--yes")

    assert again.code == arguments.USAGE and "already deleted" in again.err
    assert unknown.code == arguments.NOT_FOUND
