"""The dashboard never contradicts itself and does not hide trouble (issue 15.9)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from people import member

from backups.models import Backup, Policy, RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def own_storage(settings, tmp_path):
    settings.A4C_BACKUP_DIR = tmp_path / "storage"


def finished_restore(backup: Backup, minutes_ago: int, **fields) -> RestoreRun:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return RestoreRun.objects.create(
        backup=backup, status="succeeded", actor="rita", started_at=at, finished_at=at, **fields
    )


def test_a_policy_whose_last_run_failed_turns_health_yellow_naming_it(client, vic):
    Policy.objects.create(
        name="nodate",
        schedule="* * * * *",
        last_failure_at=timezone.now(),
        last_failure_message="Another operation is running",
    )

    html = client.get(reverse("backups:health")).content.decode()

    assert "check-warning" in html
    assert "policy nodate failed its last run: Another operation is running" in html


def test_a_policy_that_succeeded_since_its_failure_is_not_trouble(client, vic):
    now = timezone.now()
    Policy.objects.create(
        name="nightly",
        schedule="0 2 * * *",
        last_failure_at=now - timedelta(days=1),
        last_success_at=now,
    )

    html = client.get(reverse("backups:health")).content.decode()

    assert "1 active, none failing" in html


def test_the_lock_is_shown_once_by_running_now_not_by_a_slower_health_panel(client, vic):
    html = client.get(reverse("backups:health")).content.decode()

    assert "Operation lock" not in html
    assert "Running now" in client.get(reverse("backups:dashboard_live")).content.decode()


def test_after_a_restore_the_dashboard_says_which_backup_the_live_data_comes_from(client, vic):
    older = Backup.objects.create(name="monday", status="succeeded")
    newer = Backup.objects.create(name="tuesday", status="succeeded")
    finished_restore(older, 60)
    last = finished_restore(newer, 5)

    html = client.get(reverse("backups:dashboard_live")).content.decode()

    assert 'id="live-data"' in html and "Comes from backup" in html
    assert "tuesday" in html and f"restore #{last.pk}" in html


def test_nothing_restored_yet_means_no_live_data_claim(client, vic):
    html = client.get(reverse("backups:dashboard_live")).content.decode()

    assert 'id="live-data"' not in html


def test_rolling_back_an_old_restore_warns_that_it_undoes_the_newer_ones(
    client, settings, tmp_path
):
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    client.force_login(member("rita", "restorers"))
    safety = Backup.objects.create(name="safety-1", status="succeeded", trigger="safety")
    old = finished_restore(Backup.objects.create(name="monday", status="succeeded"), 60)
    RestoreRun.objects.filter(pk=old.pk).update(safety_backup=safety)
    newer = finished_restore(Backup.objects.create(name="tuesday", status="succeeded"), 5)

    html = client.get(reverse("backups:restore_detail", args=[old.pk])).content.decode()
    latest = client.get(reverse("backups:restore_detail", args=[newer.pk])).content.decode()

    assert 'id="newer-restores"' in html and f"restore #{newer.pk}" in html
    assert f"1 later restore (#{newer.pk}) would be undone too." in html
    assert 'id="newer-restores"' not in latest
