"""Issue 25, item 2: the console says at once what is missing. A run no worker will take is
"queued", never "started", on its page and in the flash, and the forms say so before they
are sent; with Elasticsearch unreachable the forms say so and what cannot work is disabled
with its reason; an archive without recipients and a plan without backups are not offered;
an operator refused an archive reads the right it takes.

Against the real Redis (the test's own queue, which no worker serves here) and the real
Elasticsearch, or none at a port where nothing listens."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.urls import reverse

from backups.elastic import client as elastic
from backups.models import Backup
from backups.web import worker

pytestmark = pytest.mark.django_db

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers there


@pytest.fixture
def no_worker(celery_app):
    cache.clear()  # a worker seen by an earlier test is not believed here
    assert worker.worker_missing(), "a worker serves this test's queue"
    yield
    cache.clear()


@pytest.fixture
def es_down(settings):
    elastic.cluster.cache_clear()
    settings.A4C_ES_URLS = [NOWHERE]
    yield
    elastic.cluster.cache_clear()


def test_a_backup_no_worker_takes_is_queued_on_its_page_and_in_the_flash(
    client, a4c, files, otto, no_worker
):
    form = client.get(reverse("backups:backup_new")).content.decode()
    sent = client.post(
        reverse("backups:backup_new"),
        {"name": "no-worker", "include_files": "on"},
        follow=True,
    )
    html = sent.content.decode()

    assert "it would only be queued: no worker" in form, "warned before it is sent"
    assert "Backup no-worker queued: no worker" in html
    assert "bash scripts/services.sh start worker" in html
    assert "Backup no-worker started" not in html
    assert 'id="queued-no-worker"' in html, "the page says why it waits"
    live = client.get(reverse("backups:backup_live", args=[Backup.objects.get().pk]))
    assert "Queued: no worker" in live.content.decode(), "and keeps saying it"


def test_with_elasticsearch_down_the_backup_form_offers_the_files_only(
    client, a4c, files, otto, es_down
):
    html = client.get(reverse("backups:backup_new")).content.decode()
    sent = client.post(
        reverse("backups:backup_new"),
        {"name": "files-now", "include_elasticsearch": "on", "include_files": "on"},
    )

    assert 'id="es-down"' in html and "only the files can" in html
    box = re.search(r'<input[^>]*name="include_elasticsearch"[^>]*>', html).group(0)
    assert "disabled" in box and "checked" not in box, "the Elasticsearch box cannot be ticked"
    assert "(not now: Elasticsearch cannot be reached)" in html
    assert sent.status_code == 302
    backup = Backup.objects.get(name="files-now")
    assert (backup.include_elasticsearch, backup.include_files) == (False, True)


def test_with_elasticsearch_down_the_restore_form_says_so_before_it_is_sent(
    client, a4c, rita, take, es_down
):
    take("files-1", rita, include_elasticsearch=False)

    html = client.get(reverse("backups:restore_new")).content.decode()

    assert 'id="es-down"' in html and "Restoring its indices cannot work now" in html


def test_the_plan_is_not_offered_without_a_backup_to_plan_from(client, a4c, rita):
    html = client.get(reverse("backups:restore_new")).content.decode()

    assert 'disabled aria-describedby="plan-why">Show the plan</button>' in html
    assert "No succeeded backup to plan from: take one first." in html


def test_the_archive_is_not_offered_without_recipients_and_says_why(
    client, a4c, rita, take, settings
):
    settings.A4C_EXPORT_RECIPIENTS = []
    backup = take("files-1", rita, include_elasticsearch=False)

    html = client.get(reverse("backups:backup_detail", args=[backup.pk])).content.decode()

    assert 'id="download-archive" disabled' in html
    assert "A4C_EXPORT_RECIPIENTS is empty" in html
    assert reverse("backups:backup_archive", args=[backup.pk]) not in html


def test_an_operator_refused_an_archive_reads_the_right_it_takes(client, a4c, otto, take):
    backup = take("files-1", otto, include_elasticsearch=False)

    refused = client.get(reverse("backups:backup_archive", args=[backup.pk]))
    html = refused.content.decode()

    assert refused.status_code == 403
    assert "may not download backup archives" in html
    assert "may not restore backups" not in html


def test_the_dashboard_says_a_queued_run_was_asked_for_not_started(
    client, a4c, files, otto, no_worker
):
    client.post(reverse("backups:backup_new"), {"name": "waits", "include_files": "on"})

    html = client.get(reverse("backups:dashboard_live")).content.decode()

    assert "asked by otto" in html and "not started yet" in html
    assert "started by otto" not in html
    assert "Queued: no worker" in html
