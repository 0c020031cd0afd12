"""The console's restore drills: an operator runs one from a backup's page, the page lists its
drills, the dashboard names the newest backup proven restorable, /metrics exports the last."""

from __future__ import annotations

import pytest
from django.urls import reverse
from people import member
from prometheus_client.parser import text_string_to_metric_families

from backups import operations
from backups.audit import Actor
from backups.models import Job, OperationLock, RunKind, Source

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(client):
    user = member("otto", "operators")
    client.force_login(user)
    return user


@pytest.fixture
def backup(small_a4c, settings, tmp_path, operator):
    settings.A4C_DRILL_INDEX_PREFIX = f".{small_a4c.tag}-drill-"
    settings.A4C_DRILL_DIR = str(tmp_path / "drills")
    actor = Actor(name="otto", source=Source.WEB, user=operator)
    done = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="nightly"), actor).pk
    )
    yield done
    small_a4c.cluster.client.indices.delete(
        index=f".{small_a4c.tag}-drill-*", expand_wildcards="all", ignore_unavailable=True
    )


def test_an_operator_runs_a_drill_and_the_backup_page_lists_it(client, backup, queued):
    page = client.get(reverse("backups:backup_detail", args=[backup.pk])).content.decode()
    assert 'id="run-drill"' in page and "Run a drill" in page

    response = client.post(reverse("backups:backup_drill", args=[backup.pk]))

    assert response.status_code == 302
    job = Job.objects.get(kind=RunKind.DRILL)
    assert queued == [(RunKind.DRILL, job.pk)]
    assert job.actor == "otto" and job.status == Job.Status.PENDING
    ended = operations.run_job(job.pk)  # what the worker does with it
    assert ended.status == Job.Status.SUCCEEDED, ended.error_message
    page = client.get(reverse("backups:backup_detail", args=[backup.pk])).content.decode()
    assert 'id="drills"' in page and f"#{job.pk}" in page and "passed" in page
    seconds = ended.result["restore_seconds"]
    assert f"{seconds:.1f} s" in page


def test_the_dashboard_names_the_newest_backup_proven_restorable(client, backup, cli_actor):
    page = client.get(reverse("backups:dashboard")).content.decode()
    assert "No backup proven restorable by a drill yet" in page

    operations.drill_now(operations.request_drill(backup.pk, cli_actor).pk)

    page = client.get(reverse("backups:dashboard")).content.decode()
    assert "Proven restorable by a drill:" in page and "nightly" in page
    assert "measured restore time" in page


def test_metrics_export_the_last_drill(client, backup, cli_actor, settings):
    settings.A4C_METRICS_TOKEN = "s3cret"
    job = operations.request_drill(backup.pk, cli_actor)
    operations.drill_now(job.pk)
    job.refresh_from_db()

    answer = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(answer.content.decode())
        for s in f.samples
    }
    passed = ("a4c_drill_last_passed", (("backup", "nightly"), ("outcome", "passed")))
    assert samples[passed] == 1
    assert samples[("a4c_drill_last_timestamp_seconds", ())] == pytest.approx(
        job.finished_at.timestamp(), abs=1e-3
    )
    restore = samples[("a4c_drill_last_restore_seconds", (("part", "restore"),))]
    assert restore == pytest.approx(job.result["restore_seconds"])
    assert samples[("a4c_drill_proven_timestamp_seconds", (("backup", "nightly"),))] > 0


def test_a_waiting_drill_shows_on_the_backup_page_and_can_be_cancelled(client, backup, queued):
    client.post(reverse("backups:backup_drill", args=[backup.pk]))
    job = Job.objects.get(kind=RunKind.DRILL)
    page = client.get(reverse("backups:backup_live", args=[backup.pk])).content.decode()
    assert 'id="drilling"' in page and "data-running" in page and "Cancel drill" in page

    response = client.post(reverse("backups:backup_drill_cancel", args=[backup.pk, job.pk]))

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert not OperationLock.objects.get(pk=1).kind
    page = client.get(reverse("backups:backup_live", args=[backup.pk])).content.decode()
    assert 'id="drilling"' not in page and "cancelled" in page
