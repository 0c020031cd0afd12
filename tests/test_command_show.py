"""manage.py show: one backup, what it holds and the restores that used it."""

from __future__ import annotations

import json

import pytest
from commands import manage

from backups import operations
from backups.management import arguments

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def restored_once(a4c, cli_actor):
    index = a4c.index("user")
    a4c.cluster.create_index(index, mappings={}, settings={"number_of_replicas": 0})
    a4c.cluster.bulk_index(index, [("admin", {"username": "admin"})])
    (a4c.data_dir / "images").mkdir()
    (a4c.data_dir / "images" / "logo.png").write_bytes(b"\x89PNG")
    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="shown", description="kept for the audit"), cli_actor
        ).pk
    )
    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest(backup.pk), cli_actor).pk
    )
    return backup, run


def test_show_prints_what_a_backup_holds_and_the_restores_that_used_it(restored_once, capsys):
    backup, run = restored_once

    ran = manage(capsys, "show", "shown")

    assert ran.code == 0, ran.err
    assert "status:         succeeded" in ran.out
    assert "description:    kept for the audit" in ran.out
    assert "elasticsearch:  1 indices, 1 documents, snapshot shown" in ran.out
    assert "files:          1 files" in ran.out
    assert f"#{run.pk} restored it: succeeded" in ran.out


def test_show_json_parses_and_can_find_a_backup_by_id(restored_once, capsys):
    backup, run = restored_once

    ran = manage(capsys, "show", str(backup.pk), "--json")

    shown = json.loads(ran.out)
    assert shown["name"] == "shown" and shown["index_count"] == 1
    assert [r["id"] for r in shown["restores"]] == [run.pk]
    assert shown["restores"][0]["safety_backup"] == run.safety_backup.name


def test_a_backup_whose_name_is_digits_is_found_by_its_name(a4c, capsys, cli_actor):
    (a4c.data_dir / "f").write_text("x")
    operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="20250101", include_elasticsearch=False), cli_actor
        ).pk
    )

    ran = manage(capsys, "show", "20250101", "--json")

    assert ran.code == 0 and json.loads(ran.out)["name"] == "20250101"


def test_an_unknown_backup_exits_4_in_one_line(a4c, capsys):
    ran = manage(capsys, "show", "nope")

    assert ran.code == arguments.NOT_FOUND
    assert ran.err.startswith("error: No backup 'nope'") and ran.err.count("\n") == 1
