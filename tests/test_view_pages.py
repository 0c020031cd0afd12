"""Every page and fragment of the console renders, with real backups of a real installation."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from fault_support import wait_for
from people import member

from backups import operations
from backups.audit import Actor
from backups.models import AuditEvent, Backup, Job, RestoreRun, RunKind, Source

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo_backup(installed, rita) -> Backup:
    """A succeeded backup, nightly-1, of the demo installation, taken by rita on the console."""
    actor = Actor(name="rita", source=Source.WEB, user=rita)
    requested = operations.request_backup(
        operations.BackupRequest(name="nightly-1", description="before the upgrade"), actor
    )
    done = operations.run_backup(requested.pk)
    assert done.status == Backup.Status.SUCCEEDED, done.error_message
    return done


def test_a_visitor_who_has_not_signed_in_is_sent_to_the_sign_in_page(client):
    for name in (
        "backups:dashboard",
        "backups:backup_list",
        "backups:audit",
        "backups:restore_new",
    ):
        response = client.get(reverse(name))

        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_the_sign_in_page_renders_and_signs_a_person_in(client, django_user_model):
    django_user_model.objects.create_user("vera", password="pw-vera-12345")

    page = client.get(reverse("login"))
    signed_in = client.post(reverse("login"), {"username": "vera", "password": "pw-vera-12345"})

    assert page.status_code == 200 and b"Sign in" in page.content
    assert signed_in.status_code == 302 and signed_in["Location"] == reverse("backups:dashboard")


def test_a_wrong_password_says_so_on_the_sign_in_page(client, django_user_model):
    django_user_model.objects.create_user("vera", password="pw-vera-12345")

    response = client.post(reverse("login"), {"username": "vera", "password": "nope"})

    assert "did not match" in response.content.decode()


def test_the_dashboard_shows_the_last_good_backup_and_the_latest_runs(client, demo_backup):
    response = client.get(reverse("backups:dashboard"))
    html = response.content.decode()

    assert response.status_code == 200
    assert "Last good backup" in html and "nightly-1" in html
    assert "Nothing is running" in html


def test_the_dashboard_says_when_no_backup_ever_succeeded(client, rita):
    html = client.get(reverse("backups:dashboard")).content.decode()

    assert "No successful backup yet" in html


def test_the_last_good_backup_turns_red_when_older_than_the_setting(client, demo_backup, settings):
    settings.A4C_LAST_BACKUP_MAX_AGE_HOURS = 26
    Backup.objects.filter(pk=demo_backup.pk).update(
        finished_at=timezone.now() - timedelta(hours=27)
    )

    html = client.get(reverse("backups:dashboard_live")).content.decode()

    assert "card-bad" in html and "A4C_LAST_BACKUP_MAX_AGE_HOURS" in html


def test_the_health_panel_lists_each_check_with_its_state(client, installed, rita, celery_app):
    # celery_app points the app at the test broker before the panel pings the workers: a
    # connection made first to the default broker would be reused by later tests.
    html = client.get(reverse("backups:health")).content.decode()

    for name in (
        "Elasticsearch",
        "Snapshot repository",
        "Data dir",
        "Backup storage",
        "Celery workers",
    ):
        assert name in html
    assert "check-ok" in html


def test_the_backup_list_shows_counts_sizes_and_filters(client, demo_backup):
    html = client.get(reverse("backups:backup_list")).content.decode()
    filtered = client.get(reverse("backups:backup_list"), {"status": "failed"}).content.decode()

    assert "nightly-1" in html and "succeeded" in html
    assert "nightly-1" not in filtered and "No backup matches" in filtered


def test_the_backup_page_shows_indices_files_and_actions(client, demo_backup, installed):
    html = client.get(reverse("backups:backup_detail", args=[demo_backup.pk])).content.decode()

    assert installed.index("application") in html
    assert f"{demo_backup.file_count:,}" in html
    assert "Verify" in html and "Restore…" in html and "Download manifest" in html
    assert "Delete…" in html
    assert "status-card" not in html, "a finished backup has no live status panel"


def test_the_live_fragment_of_a_running_backup_asks_to_be_polled_again(client, rita):
    running = Backup.objects.create(
        name="in-flight",
        status=Backup.Status.RUNNING,
        actor="rita",
        phase="files",
        files_done=5,
        files_total=20,
        percent=25,  # the whole run's, as the Runner writes it
    )

    html = client.get(reverse("backups:backup_live", args=[running.pk])).content.decode()

    assert "data-running" in html and "25%" in html and "files" in html


def test_a_failed_backup_shows_its_message_and_the_detail_one_click_away(client, rita):
    failed = Backup.objects.create(
        name="broken",
        status=Backup.Status.FAILED,
        actor="rita",
        error_message="The snapshot ended FAILED.",
        error_detail="Traceback: line 1",
    )

    html = client.get(reverse("backups:backup_detail", args=[failed.pk])).content.decode()

    assert "The snapshot ended FAILED." in html
    assert "<details><summary>Technical detail</summary><pre>Traceback: line 1" in html


def test_the_manifest_downloads_as_json_lines(client, demo_backup):
    response = client.get(reverse("backups:backup_manifest", args=[demo_backup.pk]))
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]

    assert response["Content-Disposition"] == 'attachment; filename="nightly-1.manifest.jsonl"'
    assert lines[0]["backup"] == "nightly-1"
    assert sum(1 for entry in lines[1:] if entry["type"] == "file") == demo_backup.file_count


def test_the_new_backup_form_offers_a_dated_name_and_the_live_indices(client, installed, rita):
    html = client.get(reverse("backups:backup_new")).content.decode()

    assert 'value="backup-' in html
    assert installed.index("application") in html


def test_starting_a_backup_queues_it_and_opens_its_status_page(client, installed, queued):
    client.force_login(member("opal", "operators"))

    response = client.post(
        reverse("backups:backup_new"),
        {
            "name": "before-upgrade",
            "description": "",
            "include_elasticsearch": "on",
            "include_files": "on",
        },
    )

    backup = Backup.objects.get(name="before-upgrade")
    assert response.status_code == 302
    assert response["Location"] == reverse("backups:backup_detail", args=[backup.pk])
    assert queued == [("backup", backup.pk)]
    assert backup.status == Backup.Status.PENDING and backup.actor == "opal"


def test_the_restore_page_shows_the_plan_with_counts_and_warnings(client, demo_backup, installed):
    installed.cluster.client.indices.create(index=installed.index("added-later"))

    response = client.get(
        reverse("backups:restore_new"),
        {
            "backup": demo_backup.pk,
            "scope": "all",
            "file_mode": "mirror",
            "safety_backup": "on",
        },
    )
    html = response.content.decode()

    assert response.status_code == 200
    assert "The plan: restore nightly-1" in html
    assert "badge-action-replace" in html and "badge-action-remove" in html
    assert installed.index("added-later") in html
    assert "Stop Alien4Cloud or keep it idle" in html and "Elasticsearch must stay up" in html
    assert 'Type <strong class="mono">nightly-1</strong> to confirm' in html


def test_confirming_a_restore_queues_it_and_opens_its_status_page(client, demo_backup, queued):
    response = client.post(
        reverse("backups:restore_new"),
        {
            "backup": demo_backup.pk,
            "scope": "all",
            "file_mode": "mirror",
            "safety_backup": "on",
            "confirm": "nightly-1",
        },
    )

    run = RestoreRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("backups:restore_detail", args=[run.pk])
    assert queued == [("restore", run.pk)]
    assert run.actor == "rita" and run.take_safety_backup

    page = client.get(reverse("backups:restore_detail", args=[run.pk])).content.decode()
    assert f"Restore #{run.pk} of" in page and "data-running" in page


def test_a_finished_restore_offers_the_safety_backup_and_a_rollback(client, demo_backup, rita):
    safety = Backup.objects.create(
        name="safety-before-restore-1",
        status="succeeded",
        trigger=Backup.Trigger.SAFETY,
        actor="rita",
    )
    run = RestoreRun.objects.create(
        backup=demo_backup,
        status=RestoreRun.Status.SUCCEEDED,
        actor="rita",
        safety_backup=safety,
        phases=[{"name": "plan", "started": "x", "finished": "y"}],
    )

    html = client.get(reverse("backups:restore_live", args=[run.pk])).content.decode()

    assert "safety-before-restore-1" in html and 'id="rollback"' in html
    assert "Restore succeeded" in html and "data-running" not in html


def test_the_restores_list_renders(client, demo_backup, rita):
    RestoreRun.objects.create(backup=demo_backup, status=RestoreRun.Status.FAILED, actor="rita")

    html = client.get(reverse("backups:restore_list")).content.decode()

    assert "of nightly-1" in html and "failed" in html


def test_the_audit_history_shows_who_did_what_and_the_chain_verdict(client, demo_backup):
    html = client.get(reverse("backups:audit")).content.decode()
    chain = client.get(reverse("backups:audit_chain")).content.decode()

    assert "backup.create" in html and "backup.run" in html and "rita" in html
    assert "The hash chain is intact" in chain


def test_the_audit_history_exports_the_filtered_events_as_csv(client, demo_backup):
    response = client.get(reverse("backups:audit_export"), {"action": "backup.run"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert list(rows[0])[:4] == ["id", "at", "actor", "source"]
    assert {row["action"] for row in rows} == {"backup.run"}
    assert {row["outcome"] for row in rows} == {"started", "succeeded"}


def test_a_download_names_its_file_by_rfc_6266_whatever_the_backup_is_called(client, demo_backup):
    # An imported set's name came from another host's record.
    Backup.objects.filter(pk=demo_backup.pk).update(name='a";filename="evil.html')

    response = client.get(reverse("backups:backup_manifest", args=[demo_backup.pk]))

    assert response["Content-Disposition"] == (
        'attachment; filename="a\\";filename=\\"evil.html.manifest.jsonl"'
    )


def test_the_admin_link_and_sign_out_are_in_the_top_bar(client, demo_backup):
    html = client.get(reverse("backups:backup_list")).content.decode()

    assert 'action="/accounts/logout/"' in html and "csrfmiddlewaretoken" in html


def test_verifying_a_sound_backup_goes_to_a_worker_and_its_page_shows_the_result(
    client, demo_backup, queued
):
    asked = client.post(reverse("backups:backup_verify", args=[demo_backup.pk]), follow=True)
    html = asked.content.decode()

    job = Job.objects.get(kind=RunKind.VERIFY, backup=demo_backup)
    assert queued == [("verify", job.pk)]
    assert "Verifying backup nightly-1: this page shows the result when it ends." in html
    assert 'id="verifying"' in html and "Asked by <strong>rita</strong>" in html
    assert "data-running" in html, "the page keeps polling until the result"

    operations.run_verify(job.pk)  # what the worker does
    html = client.get(reverse("backups:backup_live", args=[demo_backup.pk])).content.decode()

    assert 'id="verifying"' not in html and 'id="verification"' in html and "msg-success" in html
    events = AuditEvent.objects.filter(action="backup.verify").order_by("pk")
    assert [(e.actor, e.outcome) for e in events] == [("rita", "requested"), ("rita", "succeeded")]


def test_a_verification_the_broker_cannot_take_says_so_and_is_not_left_waiting(
    client, demo_backup, monkeypatch
):
    def refuse(pk):
        raise ConnectionRefusedError("Connection refused")

    monkeypatch.setattr("backups.tasks.run_job.delay", refuse)

    html = client.post(reverse("backups:backup_verify", args=[demo_backup.pk]), follow=True)
    html = html.content.decode()

    assert "The verification could not be handed to a worker" in html and "start Redis" in html
    assert 'id="verifying"' not in html
    page = client.get(reverse("backups:backup_detail", args=[demo_backup.pk])).content.decode()
    assert "The verification asked by rita" in page and "could not run: The verification" in page
    demo_backup.refresh_from_db()
    assert not demo_backup.is_verifying
    assert AuditEvent.objects.filter(action="backup.verify", outcome="failed").exists()


def test_a_real_worker_verifies_a_backup_asked_from_the_console(
    client, demo_backup, start_worker, worker_env
):
    start_worker(**worker_env)

    client.post(reverse("backups:backup_verify", args=[demo_backup.pk]))

    wait_for(
        lambda: not Backup.objects.get(pk=demo_backup.pk).is_verifying,
        what=lambda: f"the worker's verification result; its log:\n{start_worker.log(0)}",
    )
    demo_backup.refresh_from_db()
    assert demo_backup.verify_ok is True and demo_backup.verify_problems == []


def test_deleting_a_backup_asks_first_then_removes_its_snapshot(client, demo_backup, installed):
    confirm = client.get(reverse("backups:backup_delete", args=[demo_backup.pk])).content.decode()
    response = client.post(reverse("backups:backup_delete", args=[demo_backup.pk]), follow=True)

    assert "Delete backup nightly-1?" in confirm
    assert "Backup nightly-1 deleted." in response.content.decode()
    demo_backup.refresh_from_db()
    assert demo_backup.status == Backup.Status.DELETED
    assert installed.cluster.snapshot(demo_backup.repository, "nightly-1") is None


def test_pinning_a_backup_is_shown_and_recorded(client, demo_backup):
    client.post(reverse("backups:backup_pin", args=[demo_backup.pk]), {"pinned": "1"})

    demo_backup.refresh_from_db()
    assert demo_backup.pinned
    event = AuditEvent.objects.get(action="backup.pin")
    assert (event.actor, event.target, event.parameters) == ("rita", "nightly-1", {"pinned": True})
    assert (
        "pinned: kept by retention" in client.get(reverse("backups:backup_list")).content.decode()
    )
