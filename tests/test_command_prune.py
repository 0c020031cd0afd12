"""manage.py prune and the retention rules of backups/operations/retention.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from commands import manage
from django.utils import timezone as django_timezone

from backups import operations, selectors
from backups.errors import InvalidInput
from backups.management import arguments
from backups.models import Backup, RestoreRun
from backups.operations import retention

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
with_database = pytest.mark.django_db(transaction=True)  # the rules themselves need none


def day(n: int) -> datetime:
    """n days before NOW."""
    return NOW - timedelta(days=n)


def nightly(*ages: int, status: str = "succeeded", **fields) -> list[retention.Candidate]:
    return [
        retention.Candidate(
            id=1000 * (fields.get("safety", False) + 1) + age,
            name=f"b-{age}",
            status=status,
            created_at=day(age),
            **fields,
        )
        for age in ages
    ]


def prune(candidates, keep_last=None, older_than=None):
    """The engine as `manage.py prune` calls it, the newest good backup found among candidates."""
    good = sorted((c for c in candidates if c.good), key=lambda c: c.created_at, reverse=True)
    return retention.select(
        candidates,
        retention.Rule.of_prune(keep_last, older_than),
        now=NOW,
        newest_good_id=good[0].id if good else None,
    )


def going(verdicts) -> list[str]:
    return [v.backup.name for v in retention.to_delete(verdicts)]


# --- the rules -------------------------------------------------------------------------------


def test_keep_last_keeps_the_n_newest_succeeded_backups():
    verdicts = prune(nightly(1, 2, 3, 4, 5), keep_last=3)

    assert going(verdicts) == ["b-5", "b-4"]  # oldest first, the order they are deleted in


def test_older_than_deletes_only_what_is_older():
    verdicts = prune(nightly(1, 10, 40, 50), older_than=timedelta(days=30))

    assert going(verdicts) == ["b-50", "b-40"]


def test_with_both_rules_a_backup_goes_only_when_both_allow_it():
    verdicts = prune(nightly(1, 2, 3, 40, 50), keep_last=4, older_than=timedelta(days=30))

    assert going(verdicts) == ["b-50"]  # b-40 is one of the 4 newest


def test_the_newest_succeeded_backup_is_kept_even_when_everything_is_old():
    verdicts = prune(nightly(100, 200), older_than=timedelta(days=1))

    assert going(verdicts) == ["b-200"]
    assert next(v for v in verdicts if not v.delete).reason == "the newest good backup"


def test_pinned_and_protected_backups_are_never_deleted():
    backups = [
        *nightly(1),
        *nightly(50, pinned=True),
        *nightly(60, protected="safety backup of the newest restore"),
        *nightly(70),
    ]

    verdicts = prune(backups, keep_last=1)

    assert going(verdicts) == ["b-70"]
    reasons = {v.backup.name: v.reason for v in verdicts}
    assert reasons["b-50"] == "pinned" and reasons["b-60"].startswith("safety backup")


def test_failures_never_push_good_backups_out():
    backups = nightly(1, 2, 3, status="failed") + nightly(10, 11, 12)

    verdicts = prune(backups, keep_last=2)

    assert going(verdicts) == ["b-12"]  # failures newer than the kept ones stay, for the record


def test_safety_backups_neither_count_as_kept_nor_as_the_newest():
    backups = nightly(1, safety=True) + nightly(5, 6)

    verdicts = prune(backups, keep_last=1)

    assert going(verdicts) == ["b-6"]
    newest = next(v for v in verdicts if v.backup.name == "b-5")
    assert newest.reason == "the newest good backup"


def test_running_and_deleted_backups_are_not_considered():
    backups = nightly(1) + nightly(50, status="running") + nightly(60, status="deleted")

    verdicts = prune(backups, keep_last=1)

    assert [v.backup.name for v in verdicts] == ["b-1"]


@pytest.mark.parametrize(
    ("keep_last", "older_than", "message"),
    [(None, None, "say what to keep"), (0, None, "1 or more"), (None, timedelta(0), "more than 0")],
)
def test_a_rule_that_cannot_be_applied_says_why(keep_last, older_than, message):
    with pytest.raises(InvalidInput, match=message):
        retention.Rule.of_prune(keep_last, older_than)


# --- the command -----------------------------------------------------------------------------


@with_database
def test_retention_keeps_the_very_backup_the_dashboard_names_the_newest_good_one():
    """One definition (selectors.newest_good_backup): the good backup that finished last. A set
    imported later finishes its row after one asked for since; a row with no finish time
    cannot be the newest."""
    rows = {}
    for name, created, finished in (
        ("imported", day(5), day(0)),
        ("asked-later", day(1), day(1)),
        ("never-finished", day(0), None),
    ):
        rows[name] = Backup.objects.create(name=name, status="succeeded", actor="t")
        Backup.objects.filter(pk=rows[name].pk).update(created_at=created, finished_at=finished)

    assert selectors.newest_good_backup().name == "imported"
    assert selectors.last_good_backup(now=NOW).backup.name == "imported"
    assert retention.newest_good_backup_id() == rows["imported"].pk
    verdicts = {v.backup.name: v for v in retention.prune_preview(keep_last=1, older_than=None)}
    assert not verdicts["imported"].delete
    assert verdicts["imported"].reason == "the newest good backup"


@pytest.fixture
def weeks(a4c, cli_actor):
    """Five files-only backups taken 0, 10, 20, 30 and 40 days ago; the 30-day one pinned."""
    (a4c.data_dir / "csar").mkdir()
    now = django_timezone.now()
    for age in (40, 30, 20, 10, 0):
        (a4c.data_dir / "csar" / f"day-{age}.yml").write_text(f"written {age} days ago")
        backup = operations.request_backup(
            operations.BackupRequest(name=f"day-{age}", include_elasticsearch=False), cli_actor
        )
        operations.run_backup(backup.pk)
        Backup.objects.filter(pk=backup.pk).update(created_at=now - timedelta(days=age))
    Backup.objects.filter(name="day-30").update(pinned=True)
    return a4c


@with_database
def test_a_dry_run_lists_exactly_what_would_go_and_deletes_nothing(weeks, capsys):
    ran = manage(capsys, "prune", "--keep-last", "2", "--dry-run")

    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0] == "would delete 2 backups:"
    assert [line.split()[0] for line in lines[1:3]] == ["day-40", "day-20"]
    assert "older than the 2 newest succeeded backups" in lines[1]
    assert "day-30  pinned" in ran.out
    assert Backup.objects.filter(status="succeeded").count() == 5


@with_database
def test_prune_deletes_what_the_rule_selects_and_keeps_the_rest(weeks, capsys):
    blobs_before = sum(1 for p in (operations.store().root / "blobs").rglob("*") if p.is_file())

    ran = manage(capsys, "prune", "--older-than", "15", "--yes", "--json")

    assert ran.code == 0, ran.err
    result = json.loads(ran.out)
    assert result["deleted"] == ["day-40", "day-20"] and result["failed"] == []
    assert {v["name"] for v in result["kept"]} == {"day-0", "day-10", "day-30"}
    left = set(Backup.objects.filter(status="succeeded").values_list("name", flat=True))
    assert left == {"day-0", "day-10", "day-30"}
    blobs_after = sum(1 for p in (operations.store().root / "blobs").rglob("*") if p.is_file())
    assert blobs_after == blobs_before  # every file is still in a kept backup


@with_database
def test_the_safety_backup_of_the_newest_restore_is_kept(weeks, capsys, cli_actor):
    run = operations.run_restore(
        operations.request_restore(operations.RestoreRequest("day-0", scope="files"), cli_actor).pk
    )
    Backup.objects.filter(pk=run.safety_backup_id).update(
        created_at=django_timezone.now() - timedelta(days=50)
    )
    assert RestoreRun.objects.get().safety_backup_id == run.safety_backup_id

    ran = manage(capsys, "prune", "--older-than", "15", "--dry-run", "--json")

    kept = {v["name"]: v["reason"] for v in json.loads(ran.out)["keep"]}
    assert kept[run.safety_backup.name].startswith("safety backup of the newest restore")


@with_database
def test_prune_without_a_rule_or_without_yes_is_refused(weeks, capsys):
    no_rule = manage(capsys, "prune")
    no_yes = manage(capsys, "prune", "--keep-last", "1")

    assert no_rule.code == arguments.USAGE and "--keep-last N, --older-than DAYS" in no_rule.err
    assert no_yes.code == arguments.USAGE and "pass --yes" in no_yes.err
    assert no_yes.out == ""
    assert Backup.objects.filter(status="succeeded").count() == 5
