"""Schedules, retention, notifications and metrics, against the real services."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone
from fault_support import wait_for
from prometheus_client.parser import text_string_to_metric_families

from backups import operations
from backups.demo import generator as demo
from backups.errors import InvalidInput
from backups.models import AuditEvent, Backup, NotificationDelivery, Policy
from backups.operations.retention import Candidate, Rule, select
from backups.operations.schedules import next_run_after, validate_schedule

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_schedule_needs_five_valid_cron_fields():
    assert validate_schedule("0  2 * * *") == "0 2 * * *"
    with pytest.raises(InvalidInput, match="five cron fields"):
        validate_schedule("every night")
    with pytest.raises(InvalidInput, match="not a valid cron"):
        validate_schedule("61 2 * * *")


def test_the_next_run_follows_the_cron_expression():
    after = datetime(2026, 11, 23, 23, 50, tzinfo=UTC)

    assert next_run_after("0 2 * * *", after) == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    assert next_run_after("*/15 * * * *", after) == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def test_saving_a_policy_checks_it_and_records_who_changed_what(cli_actor):
    policy = operations.save_policy(
        cli_actor, name="nightly", name_pattern="nightly-{date}", keep_last=7
    )

    assert policy.next_run_at > timezone.now()
    with pytest.raises(InvalidInput, match="only {policy} and {date}"):
        operations.save_policy(cli_actor, policy.pk, name_pattern="nightly-{when}")
    with pytest.raises(InvalidInput, match="cannot be more than"):
        operations.save_policy(cli_actor, policy.pk, keep_min=9)
    with pytest.raises(InvalidInput, match="'../etc' is not an index name or pattern"):
        operations.save_policy(cli_actor, policy.pk, index_patterns=["user", "../etc"])
    with pytest.raises(InvalidInput, match="Elasticsearch is left out"):
        operations.save_policy(
            cli_actor, policy.pk, index_patterns=["user"], include_elasticsearch=False
        )
    operations.save_policy(cli_actor, policy.pk, keep_last=14)
    change = AuditEvent.objects.filter(action="policy.update").get()
    assert change.parameters == {"keep_last": [7, 14]} and change.actor == cli_actor.name


def make_backups(policy: Policy, ages_in_days: list[float], now: datetime) -> list[Backup]:
    return [
        Backup.objects.create(
            name=f"{policy.name}-{i}",
            status=Backup.Status.SUCCEEDED,
            policy=policy,
            actor="t",
            created_at=now - timedelta(days=age),
            finished_at=now - timedelta(days=age),
        )
        for i, age in enumerate(ages_in_days)
    ]


def kept_names(verdicts) -> set[str]:
    return {v.backup.name for v in verdicts if not v.delete}


def retention_verdicts(policy, backups, newest_good_id, now):
    candidates = [Candidate.of(b) for b in backups]
    return select(candidates, Rule.of_policy(policy), now=now, newest_good_id=newest_good_id)


def test_retention_keeps_the_newest_of_each_day_week_and_month_and_what_is_pinned():
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    policy = Policy.objects.create(
        name="tiers", keep_daily=3, keep_weekly=2, keep_monthly=2, keep_min=1
    )
    backups = make_backups(policy, [0, 0.2, 1, 2, 3, 4, 9, 16, 40, 70], now)
    Backup.objects.filter(name="tiers-9").update(pinned=True)
    backups = list(policy.backups.all())

    verdicts = retention_verdicts(policy, backups, newest_good_id=backups[0].pk, now=now)

    # 2026-11-23 is a Monday. Days: Mon 23, Sun 22, Sat 21 -> tiers-0, -2, -3; ISO weeks 48 and
    # 47 -> tiers-0, -2; months November and October -> tiers-0, -8; pinned -> tiers-9.
    assert kept_names(verdicts) == {"tiers-0", "tiers-2", "tiers-3", "tiers-8", "tiers-9"}
    assert all(v.reason for v in verdicts)


def test_retention_expires_old_backups_but_keeps_at_least_m_and_at_most_n():
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    policy = Policy.objects.create(name="ages", max_age_days=10, keep_last=3, keep_min=2)
    make_backups(policy, [1, 2, 3, 5, 12, 30], now)

    verdicts = retention_verdicts(policy, list(policy.backups.all()), None, now)
    assert kept_names(verdicts) == {"ages-0", "ages-1", "ages-2"}

    old_only = Policy.objects.create(name="old", max_age_days=10, keep_min=2)
    make_backups(old_only, [20, 30, 40], now)
    verdicts = retention_verdicts(old_only, list(old_only.backups.all()), None, now)
    assert kept_names(verdicts) == {"old-0", "old-1"}, "keep at least M even when all expired"


def test_a_time_travelled_retention_run_deletes_exactly_the_previewed_set(a4c, cli_actor, settings):
    demo.generate(a4c.data_dir, size="small", prefix=a4c.prefix, cluster=a4c.cluster)
    policy = operations.save_policy(cli_actor, name="daily")  # keeps everything, for now
    names = []
    for day in range(4):
        for old in (a4c.data_dir / "artifacts").glob("day-*.bin"):
            old.unlink()  # each day's file lives in that day's backup only
        (a4c.data_dir / "artifacts" / f"day-{day}.bin").write_bytes(bytes([day]) * 50_000)
        backup = operations.run_policy_now(policy.pk, cli_actor)
        names.append(operations.run_backup(backup.pk).name)
    # Move the first three into the past, as if they had run on earlier days.
    for age, name in zip([3, 2, 1], names[:3], strict=True):
        Backup.objects.filter(name=name).update(created_at=timezone.now() - timedelta(days=age))
    operations.save_policy(cli_actor, policy.pk, keep_last=2, keep_min=1)
    later = timezone.now() + timedelta(days=1)
    storage = Path(settings.A4C_BACKUP_DIR) / "blobs"
    blobs_before = sum(1 for p in storage.rglob("*") if p.is_file())

    preview = {v.backup.name for v in operations.retention_preview(policy.pk, later) if v.delete}
    deleted = operations.apply_retention(policy.pk, cli_actor, later)

    assert preview == set(names[:2]) == set(deleted)
    for name in deleted:
        assert Backup.objects.get(name=name).status == Backup.Status.DELETED
        assert a4c.cluster.snapshot(settings.A4C_ES_REPOSITORY, name) is None
    assert sum(1 for p in storage.rglob("*") if p.is_file()) == blobs_before - 2, "their blobs went"
    for name in names[2:]:
        assert operations.verify_backup(name, cli_actor).ok
    assert AuditEvent.objects.filter(action="retention.apply").count() == 1
    assert AuditEvent.objects.filter(action="backup.delete", outcome="succeeded").count() == 2


@pytest.fixture
def webhook_server():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_a_failed_backup_sends_an_email_and_a_webhook_and_records_both(
    a4c, cli_actor, settings, webhook_server
):
    url, received = webhook_server
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.A4C_NOTIFY_EMAILS = ["ops@example.org"]
    settings.A4C_NOTIFY_WEBHOOK_URL = url
    settings.A4C_DATA_DIR = a4c.data_dir / "missing"

    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="doomed", include_elasticsearch=False), cli_actor
        ).pk
    )

    assert backup.status == Backup.Status.FAILED
    assert len(mail.outbox) == 1 and "doomed" in mail.outbox[0].subject
    assert mail.outbox[0].to == ["ops@example.org"]
    assert (
        received
        and received[0]["event"] == "backup.failed"
        and received[0]["data"]["backup"] == "doomed"
    )
    assert set(NotificationDelivery.objects.values_list("channel", "ok")) == {
        ("email", True),
        ("webhook", True),
    }


def test_a_webhook_that_cannot_be_reached_is_recorded_as_failed_and_harms_nothing(
    a4c, cli_actor, settings
):
    settings.A4C_NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/nothing-listens-here"
    settings.A4C_DATA_DIR = a4c.data_dir / "missing"

    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="quiet", include_elasticsearch=False), cli_actor
        ).pk
    )

    assert backup.status == Backup.Status.FAILED
    delivery = NotificationDelivery.objects.get()
    assert not delivery.ok and "refused" in delivery.error.lower()


def test_the_no_recent_backup_alert_fires_once_per_period(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.A4C_NOTIFY_EMAILS = ["ops@example.org"]
    settings.A4C_LAST_BACKUP_MAX_AGE_HOURS = 24
    old = timezone.now() - timedelta(hours=30)
    Backup.objects.create(name="old", status=Backup.Status.SUCCEEDED, actor="t", finished_at=old)

    assert operations.check_recent_backup() is True
    assert operations.check_recent_backup() is False, "not again within the period"
    assert len(mail.outbox) == 1 and "No recent good backup" in mail.outbox[0].subject
    Backup.objects.create(
        name="fresh", status=Backup.Status.SUCCEEDED, actor="t", finished_at=timezone.now()
    )
    assert operations.check_recent_backup(timezone.now() + timedelta(hours=25)) is True


def test_healthz_answers_up_without_signing_in(client):
    answer = client.get("/healthz")

    assert answer.status_code == 200 and answer.content == b"up\n"


def test_metrics_need_the_token_and_parse_as_prometheus_text(client, settings):
    settings.A4C_METRICS_TOKEN = "s3cret"
    policy = Policy.objects.create(
        name="nightly", last_success_at=timezone.now(), last_duration_seconds=12.5
    )
    Backup.objects.create(
        name="b1",
        status=Backup.Status.SUCCEEDED,
        actor="t",
        policy=policy,
        finished_at=timezone.now(),
        file_count=42,
        file_bytes=1000,
    )
    Backup.objects.create(name="b2", status=Backup.Status.FAILED, actor="t")

    assert client.get("/metrics").status_code == 403
    answer = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")

    assert answer.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(answer.content.decode())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("a4c_backup_policy_last_duration_seconds", (("policy", "nightly"),))] == 12.5
    assert samples[("a4c_backup_last_files", (("backup", "b1"),))] == 42
    assert samples[("a4c_backups", (("status", "failed"),))] == 1
    assert samples[("a4c_lock_held", (("kind", ""),))] == 0


def test_a_policy_fires_on_its_own_from_a_real_beat_and_worker(
    a4c, start_worker, worker_env, cli_actor
):
    policy = operations.save_policy(
        cli_actor, name="every-minute", schedule="* * * * *", include_elasticsearch=False
    )
    (a4c.data_dir / "csar").mkdir()
    (a4c.data_dir / "csar" / "one.yaml").write_text("tosca_definitions_version: x")
    start_worker(beat=True, A4C_SCHEDULER_TICK_SECONDS="1", **worker_env)

    done = wait_for(
        lambda: Backup.objects.filter(policy=policy, status=Backup.Status.SUCCEEDED).first(),
        timeout=100,
        what=lambda: f"a backup of the policy succeeding; worker log:\n{start_worker.log(0)}",
    )

    assert done.trigger == Backup.Trigger.SCHEDULE and done.name.startswith("every-minute-")
    assert done.actor == "policy every-minute"
    policy.refresh_from_db()
    assert policy.last_success_at is not None and policy.next_run_at > done.created_at
    Policy.objects.filter(pk=policy.pk).update(paused=True)  # no second run while the test ends


def test_safety_backups_beyond_their_limit_go_after_a_good_restore(a4c, cli_actor, settings):
    settings.A4C_SAFETY_BACKUPS_KEEP = 1
    (a4c.data_dir / "csar").mkdir()
    (a4c.data_dir / "csar" / "a.yaml").write_text("a")
    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="base", include_elasticsearch=False), cli_actor
        ).pk
    )
    for _ in range(2):
        run = operations.request_restore(
            operations.RestoreRequest(backup.pk, scope="files"), cli_actor
        )
        assert operations.run_restore(run.pk).status == "succeeded"

    safety = Backup.objects.filter(trigger=Backup.Trigger.SAFETY)
    assert safety.filter(status=Backup.Status.SUCCEEDED).count() == 1
    assert safety.filter(status=Backup.Status.DELETED).count() == 1
    newest = safety.order_by("-created_at", "-id").first()
    assert newest.status == Backup.Status.SUCCEEDED, "the newest one is kept for a rollback"


def test_metrics_read_back_exactly_what_the_rows_hold_to_the_second_and_the_byte(client, settings):
    settings.A4C_METRICS_TOKEN = "s3cret"
    # A timestamp of ten digits and byte counts past 2**40: "%g" once printed 1.73295e+09.
    succeeded = datetime(2024, 11, 30, 7, 2, 3, 456789, tzinfo=UTC)
    failed = datetime(2024, 12, 1, 1, 0, 59, tzinfo=UTC)
    policy = Policy.objects.create(
        name="exact", last_success_at=succeeded, last_failure_at=failed, last_duration_seconds=61.25
    )
    newest = Backup.objects.create(
        name="exact-1",
        status=Backup.Status.SUCCEEDED,
        actor="t",
        policy=policy,
        finished_at=succeeded,
        file_count=123_456_789,
        file_bytes=5 * 2**40 + 12_345,
        new_bytes=2**40 + 1,
    )
    Backup.objects.create(
        name="exact-0", status=Backup.Status.SUCCEEDED, actor="t", new_bytes=987_654_321_123
    )

    answer = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")

    assert answer.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.content.decode())
        for s in family.samples
    }
    on_policy = (("policy", "exact"),)
    assert samples[("a4c_backup_policy_last_success_timestamp_seconds", on_policy)] == (
        policy.last_success_at.timestamp()
    )
    assert samples[("a4c_backup_policy_last_failure_timestamp_seconds", on_policy)] == (
        failed.timestamp()
    )
    assert samples[("a4c_backup_policy_last_duration_seconds", on_policy)] == 61.25
    assert samples[("a4c_backup_last_success_timestamp_seconds", ())] == succeeded.timestamp()
    on_backup = (("backup", newest.name),)
    assert samples[("a4c_backup_last_files", on_backup)] == 123_456_789
    assert samples[("a4c_backup_last_bytes", on_backup)] == 5 * 2**40 + 12_345
    assert samples[("a4c_backup_last_new_bytes", on_backup)] == 2**40 + 1
    assert samples[("a4c_backup_stored_bytes", ())] == 2**40 + 1 + 987_654_321_123
    assert samples[("a4c_backup_failures_total", ())] == 0


def test_no_door_lets_a_person_without_the_delete_right_delete_a_backup(settings, tmp_path):
    """Issue 15.3: the console hid the Delete button, but a policy's retention deleted anyway.
    The rule lives in the operation every door calls, so the refusal holds wherever it starts."""
    from people import member

    from backups.audit import Actor
    from backups.errors import NotAllowed
    from backups.models import Source

    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    otto = Actor("otto", Source.WEB, user=member("otto", "operators"))
    backup = Backup.objects.create(name="kept", status="succeeded", include_elasticsearch=False)
    policy = operations.save_policy(
        Actor.command_line(), name="nightly", include_elasticsearch=False
    )

    with pytest.raises(NotAllowed, match="otto may not delete backups"):
        operations.delete_backup(backup.pk, otto)
    with pytest.raises(NotAllowed, match="retention of policy nightly would delete backups"):
        operations.save_policy(otto, policy.pk, keep_last=1)

    backup.refresh_from_db()
    policy.refresh_from_db()
    assert backup.status == "succeeded" and policy.keep_last is None
    denied = AuditEvent.objects.filter(outcome="denied", actor="otto", action="backup.delete")
    assert denied.count() == 2 and denied.filter(backup=backup).exists()
    # The same person may still change what deletes nothing.
    assert operations.save_policy(otto, policy.pk, schedule="0 4 * * *").schedule == "0 4 * * *"


def test_a_webhook_url_that_is_not_http_is_named_by_the_check_and_never_opened(
    a4c, cli_actor, settings, tmp_path
):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for a webhook")
    settings.A4C_NOTIFY_WEBHOOK_URL = f"file://{secret}"
    settings.A4C_DATA_DIR = a4c.data_dir / "missing"

    from django.core import checks as django_checks

    found = [m for m in django_checks.run_checks() if m.id == "a4c.E020"]
    assert found and "give an http:// or https:// URL" in found[0].msg
    operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="quiet", include_elasticsearch=False), cli_actor
        ).pk
    )
    delivery = NotificationDelivery.objects.get()
    assert not delivery.ok and "nothing was sent" in delivery.error
