"""manage.py backups: the list, as a table or as JSON."""

from __future__ import annotations

import json

import pytest
from commands import manage

from backups import operations
from backups.management import arguments
from backups.models import Backup

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def three(a4c, cli_actor):
    """Three files-only backups: one kept, one deleted, one failed."""
    (a4c.data_dir / "plugins").mkdir()
    (a4c.data_dir / "plugins" / "p.yml").write_text("id: p\n")
    for name in ("monday", "tuesday"):
        operations.run_backup(
            operations.request_backup(
                operations.BackupRequest(name=name, include_elasticsearch=False), cli_actor
            ).pk
        )
    operations.delete_backup("monday", cli_actor)
    Backup.objects.create(
        name="wednesday", status="failed", error_message="disk full", include_elasticsearch=False
    )
    return a4c


def test_the_list_shows_backups_newest_first_and_hides_deleted_ones(three, capsys):
    ran = manage(capsys, "backups")

    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "STATUS", "CREATED"]
    assert [line.split()[1] for line in lines[1:]] == ["wednesday", "tuesday"]
    assert "failed" in lines[1] and "succeeded" in lines[2]


def test_all_shows_deleted_ones_too(three, capsys):
    ran = manage(capsys, "backups", "--all")

    assert [line.split()[1] for line in ran.out.splitlines()[1:]] == [
        "wednesday",
        "tuesday",
        "monday",
    ]


def test_the_json_list_parses_and_filters_by_status(three, capsys):
    ran = manage(capsys, "backups", "--json", "--status", "succeeded")

    assert ran.code == 0
    listed = json.loads(ran.out)
    assert [b["name"] for b in listed] == ["tuesday"]
    assert listed[0]["file_count"] == 1 and listed[0]["status"] == "succeeded"


def test_an_unknown_status_is_a_usage_error(a4c, capsys):
    ran = manage(capsys, "backups", "--status", "lost")

    assert ran.code == arguments.USAGE and "invalid choice: 'lost'" in ran.err
    assert ran.err.count("\n") == 1


def test_an_empty_list_says_how_to_take_a_backup(a4c, capsys):
    ran = manage(capsys, "backups")

    assert ran.code == 0 and "manage.py backup" in ran.out
