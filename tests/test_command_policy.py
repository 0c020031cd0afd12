"""manage.py policy: create, list, edit, run and retention against the real services."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from commands import Ran
from commands import manage as run_command
from django.core import mail
from django.utils import timezone

from backups import operations
from backups.demo import generator as demo
from backups.models import AuditEvent, Backup, NotificationDelivery, Policy

pytestmark = pytest.mark.django_db(transaction=True)


def manage(capsys, *argv: str) -> Ran:
    """`manage.py policy ...`, exit code and all, in this process."""
    return run_command(capsys, "policy", *argv)


def test_create_then_list_shows_the_policy_and_its_next_run(files, capsys):
    created = manage(
        capsys,
        "create",
        "nightly",
        "--schedule",
        "0 2 * * *",
        "--pattern",
        "nightly-{date}",
        "--keep-last",
        "7",
        "--daily",
        "7",
        "--weekly",
        "4",
        "--files-only",
    )
    listed = manage(capsys, "list")
    as_json = json.loads(manage(capsys, "list", "--json").out)

    assert created.code == 0, created.err
    policy = Policy.objects.get(name="nightly")
    assert created.out.startswith("policy nightly created: 0 2 * * *, next run ")
    assert (policy.keep_last, policy.keep_daily, policy.keep_weekly) == (7, 7, 4)
    assert not policy.include_elasticsearch and policy.include_files
    assert "nightly  0 2 * * *" in listed.out and "never" in listed.out
    assert as_json[0]["name"] == "nightly" and as_json[0]["next_run_at"]
    assert AuditEvent.objects.get(action="policy.create").source == "cli"


@pytest.mark.parametrize(
    "argv,sentence",
    [
        (["--schedule", "every night"], "needs five cron fields"),
        (["--schedule", "0 2 * * *", "--pattern", "x-{when}"], "only {policy} and {date}"),
        (["--schedule", "0 2 * * *", "--keep-last", "2", "--keep-min", "3"], "cannot be more"),
        (["--schedule", "0 2 * * *", "--files-only", "--index", "app"], "--index needs"),
        (["--schedule", "0 2 * * *", "--keep-last", "two"], "'two' is not a whole number"),
        ([], "the following arguments are required: --schedule"),
    ],
    ids=["cron", "pattern", "keep", "index", "number", "missing"],
)
def test_a_mistake_exits_2_with_one_line_and_creates_nothing(files, capsys, argv, sentence):
    ran = manage(capsys, "create", "nightly", *argv)

    assert ran.code == 2
    assert ran.err.startswith("error: ") and sentence in ran.err
    assert len(ran.err.strip().splitlines()) == 1
    assert not Policy.objects.exists()


def test_edit_changes_only_the_options_given_and_pauses(files, capsys):
    manage(capsys, "create", "nightly", "--schedule", "0 2 * * *", "--keep-last", "7")

    edited = manage(capsys, "edit", "nightly", "--keep-last", "14", "--max-age-days", "30")
    paused = manage(capsys, "edit", "nightly", "--pause")
    nothing = manage(capsys, "edit", "nightly")
    missing = manage(capsys, "edit", "weekly", "--pause")

    assert edited.code == 0, edited.err
    policy = Policy.objects.get(name="nightly")
    assert (policy.keep_last, policy.max_age_days, policy.schedule) == (14, 30, "0 2 * * *")
    assert AuditEvent.objects.get(action="policy.update").parameters == {
        "keep_last": [7, 14],
        "max_age_days": [None, 30],
    }
    assert paused.code == 0 and Policy.objects.get(pk=policy.pk).paused
    assert "paused" in manage(capsys, "list").out
    assert nothing.code == 2 and "nothing to change" in nothing.err
    assert missing.code == 4 and "no policy 'weekly'" in missing.err
    assert manage(capsys, "edit", "nightly", "--resume", "--keep-last", "0").code == 0
    policy.refresh_from_db()
    assert not policy.paused and policy.keep_last is None, "0 means no limit"


def test_run_takes_the_policys_backup_here_and_records_its_success(a4c, capsys):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    manage(capsys, "create", "nightly", "--schedule", "0 2 * * *")

    ran = manage(capsys, "run", "nightly")

    assert ran.code == 0, ran.err
    backup = Backup.objects.get(policy__name="nightly")
    assert backup.status == Backup.Status.SUCCEEDED and backup.name.startswith("nightly-")
    assert backup.index_count >= 25 and backup.file_count > 100
    assert f"backup {backup.name} of policy nightly succeeded" in ran.out
    policy = Policy.objects.get(name="nightly")
    assert policy.last_success_at == backup.finished_at
    assert AuditEvent.objects.get(action="policy.run_now").source == "cli"


def test_run_while_another_operation_runs_exits_3(files, capsys, cli_actor):
    manage(capsys, "create", "nightly", "--schedule", "0 2 * * *", "--files-only")
    operations.request_backup(
        operations.BackupRequest(name="holding", include_elasticsearch=False), cli_actor
    )

    ran = manage(capsys, "run", "nightly")

    assert ran.code == 3 and "holding" in ran.err
    assert not Backup.objects.filter(policy__name="nightly").exists()
    assert "holding" in Policy.objects.get(name="nightly").last_failure_message


def test_retention_previews_then_deletes_exactly_what_it_previewed(
    a4c, capsys, settings, cli_actor
):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    manage(capsys, "create", "daily", "--schedule", "0 2 * * *")
    names = []
    for _ in range(3):
        assert manage(capsys, "run", "daily").code == 0
        names.append(Backup.objects.filter(policy__name="daily").latest("id").name)
    for age, name in zip([2, 1], names[:2], strict=True):
        Backup.objects.filter(name=name).update(created_at=timezone.now() - timedelta(days=age))
    manage(capsys, "edit", "daily", "--keep-last", "1")

    preview = manage(capsys, "retention", "daily")
    as_json = json.loads(manage(capsys, "retention", "daily", "--json").out)
    unconfirmed = manage(capsys, "retention", "daily", "--apply")
    applied = manage(capsys, "retention", "daily", "--apply", "--yes")

    doomed = {v["name"] for v in as_json["delete"]}
    assert doomed == set(names[:2]) and "older than the 1 newest succeeded backup" in preview.out
    assert preview.out.startswith("policy daily: would delete 2:")
    assert unconfirmed.code == 2 and "--yes" in unconfirmed.err
    assert applied.code == 0, applied.err
    last = applied.out.strip().splitlines()[-1]
    assert last.startswith("deleted 2: ") and set(last[11:].split(", ")) == doomed
    for name in names:
        deleted = Backup.objects.get(name=name).status == Backup.Status.DELETED
        assert deleted == (name in doomed)
    remaining = {s.name for s in a4c.cluster.snapshots(settings.A4C_ES_REPOSITORY)}
    assert remaining == {names[2]}
    assert operations.verify_backup(names[2], cli_actor).ok
    assert manage(capsys, "retention", "daily").out.startswith("policy daily: would delete 0")


def test_notify_test_reports_each_channel_and_fails_when_one_does(capsys, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.A4C_NOTIFY_EMAILS = ["ops@example.org"]
    settings.A4C_NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/hooks/secret-path"

    ran = manage(capsys, "notify", "test")

    assert ran.code == 1 and "1 of 2 test notifications failed" in ran.err
    assert "email to ops@example.org: sent" in ran.out
    assert "webhook to http://127.0.0.1:9/…: failed:" in ran.out
    assert "secret-path" not in ran.out
    assert len(mail.outbox) == 1
    assert NotificationDelivery.objects.filter(event="test").count() == 2
    assert AuditEvent.objects.get(action="notify.test").outcome == "failed"


def test_notify_test_with_no_channel_exits_2_naming_the_settings(capsys, settings):
    settings.A4C_NOTIFY_EMAILS = []
    settings.A4C_NOTIFY_WEBHOOK_URL = ""

    ran = manage(capsys, "notify", "test")

    assert ran.code == 2 and "set A4C_NOTIFY_EMAILS" in ran.err


def test_delete_removes_the_policy_and_keeps_its_backups(files, capsys):
    manage(capsys, "create", "nightly", "--schedule", "0 2 * * *")
    policy = Policy.objects.get()
    kept = Backup.objects.create(name="nightly-1", status="succeeded", policy=policy)

    deleted = manage(capsys, "delete", "nightly", "--yes")

    assert deleted.code == 0 and "policy nightly deleted" in deleted.out
    assert not Policy.objects.exists() and Backup.objects.filter(pk=kept.pk).exists()
    assert AuditEvent.objects.filter(action="policy.delete", target="nightly").exists()


def test_deleting_an_unknown_policy_exits_4(files, capsys):
    assert manage(capsys, "delete", "nothing", "--yes").code == 4


def test_a_schedule_that_fires_every_minute_is_created_with_a_warning(files, capsys):
    created = manage(capsys, "create", "busy", "--schedule", "* * * * *")

    assert created.code == 0
    assert "warning: The schedule '* * * * *' starts a backup every 1 minute" in created.err
    assert "warning" not in manage(capsys, "create", "calm", "--schedule", "0 * * * *").err
