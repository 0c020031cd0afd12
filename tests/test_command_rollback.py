"""manage.py rollback: puts back the safety backup a restore took."""

from __future__ import annotations

import json

import pytest
from commands import manage

from backups import operations
from backups.management import arguments
from backups.models import RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def restored(a4c, cli_actor):
    """A small install backed up, changed, then restored: the restore a rollback undoes."""
    index = a4c.index("application")
    a4c.cluster.create_index(index, mappings={}, settings={"number_of_replicas": 0})
    a4c.cluster.bulk_index(index, [("a", {"name": "first"}), ("b", {"name": "second"})])
    (a4c.data_dir / "csar").mkdir()
    (a4c.data_dir / "csar" / "types.yml").write_text("as backed up")
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="base"), cli_actor).pk
    )
    a4c.cluster.bulk_index(index, [("c", {"name": "made after the backup"})])
    (a4c.data_dir / "csar" / "types.yml").write_text("changed after the backup")
    run = operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor)
    run = operations.run_restore(run.pk)
    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert set(a4c.documents("application")) == {"a", "b"}
    return run


def test_rollback_puts_back_what_the_restore_replaced(restored, a4c, capsys):
    ran = manage(capsys, "rollback", str(restored.pk), "--yes", "--json")

    assert ran.code == 0, ran.err
    result = json.loads(ran.out.splitlines()[-1])
    assert result["kind"] == "restore" and result["status"] == "succeeded"
    assert result["rollback_of"] == restored.pk
    assert result["backup"] == restored.safety_backup.name
    assert set(a4c.documents("application")) == {"a", "b", "c"}
    assert (a4c.data_dir / "csar" / "types.yml").read_text() == "changed after the backup"
    restored.refresh_from_db()
    assert restored.rolled_back
    again = manage(capsys, "rollback", str(restored.pk), "--yes")
    assert again.code == arguments.USAGE and "already rolled back" in again.err


def test_rollback_asks_for_confirmation_when_no_yes_is_given(restored, capsys):
    ran = manage(capsys, "rollback", str(restored.pk))

    assert ran.code == arguments.USAGE and "pass --yes" in ran.err
    assert RestoreRun.objects.count() == 1


@pytest.mark.parametrize(
    ("argument", "code"), [("999999", arguments.NOT_FOUND), ("last", arguments.USAGE)]
)
def test_an_unknown_or_malformed_restore_number_is_refused(a4c, capsys, argument, code):
    ran = manage(capsys, "rollback", argument, "--yes")

    assert ran.code == code and ran.err.startswith("error: ") and ran.err.count("\n") == 1
