"""When drills run by themselves (issue 26.2) and the alarm when none passed (26.3), against the
real Elasticsearch and real files: a policy's "drill every Nth backup / daily / weekly /
never" requests a drill after its backup and hands it to a worker (the broker stands in as
conftest's `queued`; the drill itself then runs for real); a busy lock defers it;
A4C_DRILL_MAX_AGE_DAYS turns Health red and notifies once per crossing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from commands import manage
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from backups import operations, tasks
from backups.doctor.drills import drills_check
from backups.doctor.settings_checks import check_settings
from backups.errors import InvalidInput
from backups.models import AuditEvent, Backup, Job, OperationLock, Policy, RunKind
from backups.operations.drill_schedule import mark_drill_due
from backups.web.policy_forms import PolicyForm

pytestmark = pytest.mark.django_db(transaction=True)


def policy_backup(policy: Policy, actor) -> Backup:
    """The policy's backup, run as the worker runs it (the task, in this process)."""
    backup = operations.run_policy_now(policy.pk, actor)
    tasks.run_backup(backup.pk)
    backup.refresh_from_db()
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    return backup


def test_a_policy_drilling_every_second_backup_gets_a_drill_after_its_second(
    small_a4c, drill_place, cli_actor, queued
):
    policy = operations.save_policy(
        cli_actor, name="nightly", schedule="0 2 * * *", drill_every="2"
    )

    policy_backup(policy, cli_actor)
    assert queued == [], "the first backup is not drilled"
    second = policy_backup(policy, cli_actor)

    [(kind, job_id)] = [q for q in queued if q[0] == RunKind.DRILL]
    job = Job.objects.get(pk=job_id)
    assert kind == RunKind.DRILL and job.backup == second and job.status == Job.Status.PENDING
    assert job.task_id == f"queued-drill-{job_id}", "handed to a worker, not run in the backup"
    policy.refresh_from_db()
    assert policy.backups_since_drill == 0 and policy.drill_due_at is None

    report = operations.drill_now(job_id)

    assert report.passed, report.problems
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert AuditEvent.objects.filter(action="drill.request", actor="policy nightly").exists()
    policy_backup(policy, cli_actor)
    assert len([q for q in queued if q[0] == RunKind.DRILL]) == 1, "the third waits for a fourth"


def test_a_busy_lock_defers_the_drill_and_the_policy_says_so(
    small_a4c, drill_place, cli_actor, queued
):
    policy = operations.save_policy(
        cli_actor, name="hourly", schedule="0 * * * *", include_files=False, drill_every="1"
    )
    done = operations.run_backup(operations.run_policy_now(policy.pk, cli_actor).pk)
    assert done.status == Backup.Status.SUCCEEDED
    holder = operations.request_backup(operations.BackupRequest(name="by-hand"), cli_actor)

    assert tasks.dispatch_due_drills() == []

    policy.refresh_from_db()
    assert policy.drill_due_at is not None, "still due"
    assert "waits for the operation lock" in policy.drill_waiting
    assert "by-hand" in policy.drill_waiting
    done.refresh_from_db()
    assert done.status == Backup.Status.SUCCEEDED, "the backup is never failed for it"
    assert not Job.objects.filter(kind=RunKind.DRILL).exists()
    assert not AuditEvent.objects.filter(outcome="refused").exists()

    operations.cancel(RunKind.BACKUP, holder.pk, cli_actor)
    [job_id] = tasks.dispatch_due_drills()

    assert queued[-1] == (RunKind.DRILL, job_id)
    policy.refresh_from_db()
    assert policy.drill_due_at is None and policy.drill_waiting == ""
    assert operations.drill_now(job_id).passed


def test_a_policy_that_never_drills_never_drills(small_a4c, drill_place, cli_actor, queued):
    policy = operations.save_policy(
        cli_actor, name="plain", schedule="0 2 * * *", include_elasticsearch=False
    )
    assert policy.drill_every == "never"

    for _ in range(2):
        policy_backup(policy, cli_actor)

    assert [q for q in queued if q[0] == RunKind.DRILL] == []
    policy.refresh_from_db()
    assert policy.drill_due_at is None
    assert not Job.objects.filter(kind=RunKind.DRILL).exists()


def test_daily_drills_the_newest_backup_when_the_last_verdict_is_a_day_old(cli_actor):
    policy = operations.save_policy(
        cli_actor, name="daily", schedule="0 2 * * *", drill_every="daily"
    )
    now = timezone.now()
    first = Backup.objects.create(
        name="b1", status=Backup.Status.SUCCEEDED, actor="t", policy=policy, finished_at=now
    )
    assert mark_drill_due(first, now) is True, "never drilled: due"
    Policy.objects.filter(pk=policy.pk).update(drill_due_at=None)
    Job.objects.create(
        kind=RunKind.DRILL, backup=first, status=Job.Status.SUCCEEDED, actor="t", finished_at=now
    )

    assert mark_drill_due(first, now + timedelta(hours=23)) is False
    assert mark_drill_due(first, now + timedelta(hours=25)) is True
    policy.refresh_from_db()
    assert policy.drill_due_at == now + timedelta(hours=25)


def test_the_setting_is_checked_the_same_by_the_engine_the_form_and_the_command(cli_actor, capsys):
    with pytest.raises(InvalidInput, match="never, daily, weekly, or a number"):
        operations.save_policy(cli_actor, name="p", schedule="0 2 * * *", drill_every="often")
    form = PolicyForm(
        {
            "name": "p",
            "name_pattern": "{policy}-{date}",
            "schedule": "0 2 * * *",
            "include_files": "on",
            "keep_min": 1,
            "drill_every": "0",
        }
    )
    assert not form.is_valid() and "a number" in str(form.errors["drill_every"])

    ran = manage(
        capsys,
        "policy",
        "create",
        "weekly",
        "--schedule",
        "0 2 * * *",
        "--drill",
        "Weekly",
        "--json",
    )

    assert ran.code == 0, ran.err
    assert Policy.objects.get(name="weekly").drill_every == "weekly"
    bad = manage(capsys, "policy", "edit", "weekly", "--drill", "sometimes")
    assert bad.code == 2 and "'Drill every' is 'sometimes'" in bad.err


def test_a_negative_max_age_is_named_by_the_settings_check(settings):
    settings.A4C_DRILL_MAX_AGE_DAYS = -1
    assert "a4c.E024" in {problem.id for problem in check_settings()}


def test_no_passing_drill_for_n_days_turns_health_red_and_notifies_once(
    small_a4c, drill_place, cli_actor, settings, client, vic
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.A4C_NOTIFY_EMAILS = ["ops@example.org"]
    settings.A4C_DRILL_MAX_AGE_DAYS = 7
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="weekly-1"), cli_actor).pk
    )
    job = operations.request_drill(backup.pk, cli_actor)
    assert operations.drill_now(job.pk).passed

    assert drills_check().level == "ok"
    assert operations.check_drill_age() is False and mail.outbox == []

    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=8))
    check = drills_check()

    assert check.level == "error"
    assert "weekly-1" in check.summary and "8.0 days ago" in check.summary
    html = client.get(reverse("backups:health")).content.decode()
    assert "check-error" in html and "Restore drills" in html and "weekly-1" in html
    assert operations.check_drill_age() is True
    assert operations.check_drill_age() is False, "once per crossing"
    assert len(mail.outbox) == 1 and "No passing restore drill" in mail.outbox[0].subject
    assert "weekly-1" in mail.outbox[0].body

    again = operations.request_drill(backup.pk, cli_actor)
    assert operations.drill_now(again.pk).passed
    assert drills_check().level == "ok" and operations.check_drill_age() is False
    later = timezone.now() + timedelta(days=8)
    assert operations.check_drill_age(later) is True, "a new crossing is news again"
    assert len(mail.outbox) == 2


def test_with_no_limit_set_health_stays_green_without_any_drill(settings):
    settings.A4C_DRILL_MAX_AGE_DAYS = 0
    check = drills_check()
    assert check.ok and "none has passed yet" in check.summary
    assert operations.check_drill_age() is False


def test_an_operator_sets_drills_on_the_policy_form_and_its_page_says_why_one_waits(
    client, otto, a4c
):
    data = {
        "name": "weekly",
        "name_pattern": "{policy}-{date}",
        "schedule": "0 3 * * 0",
        "include_files": "on",
        "keep_min": "1",
        "drill_every": " 3 ",
    }
    response = client.post(reverse("policies:new"), data)

    policy = Policy.objects.get(name="weekly")
    assert response.status_code == 302 and policy.drill_every == "3"
    Policy.objects.filter(pk=policy.pk).update(drill_waiting="A drill of weekly-1 is due and waits")
    html = client.get(reverse("policies:detail", args=[policy.pk])).content.decode()
    assert "after every 3 backups" in html and "A drill of weekly-1 is due and waits" in html
    refused = client.post(reverse("policies:new"), {**data, "name": "other", "drill_every": "x"})
    assert refused.status_code == 200 and "never, daily, weekly, or a number" in (
        refused.content.decode().replace("&#x27;", "'")
    )


def test_a_drill_the_queue_cannot_take_is_given_back_and_due_again(
    small_a4c, drill_place, cli_actor, monkeypatch
):
    policy = operations.save_policy(
        cli_actor, name="nightly", schedule="0 2 * * *", include_files=False, drill_every="1"
    )
    done = operations.run_backup(operations.run_policy_now(policy.pk, cli_actor).pk)
    assert done.status == Backup.Status.SUCCEEDED

    def broker_down(pk):
        raise ConnectionError("Redis is not there")

    monkeypatch.setattr("backups.tasks.run_job.delay", broker_down)

    assert tasks.dispatch_due_drills() == []

    job = Job.objects.get(kind=RunKind.DRILL)
    assert job.status == Job.Status.FAILED and "start Redis" in job.error_message
    assert not OperationLock.objects.exclude(kind="").exists(), "the lock is free again"
    policy.refresh_from_db()
    assert policy.drill_due_at is not None, "the next tick asks again"
