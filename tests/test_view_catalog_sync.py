"""Disaster recovery in the console (issue 25, item 6): "Sync now" on the Backups page for
restorers, its report and its audit event, and the right a refusal names (real files: the
records a backup wrote into the backup storage, then a console that lost its database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browsing import sign_in
from django.urls import reverse
from fault_support import lose_the_console_database
from people import member

from backups.models import AuditEvent, Backup
from backups.operations.record_schema import parse_record
from backups.signing import load_or_create_key
from backups.storage import Catalog

pytestmark = pytest.mark.django_db(transaction=True)

PLANTED = "<img src=x onerror=alert(1)>"


def written_by_another_installation(settings, tmp_path, source: str, name: str):
    """The record of ``name``, a copy of ``source``'s set, written and signed by another
    installation sharing the storage; returns that installation's key."""
    other = load_or_create_key(tmp_path / "other-installation.key", "a4c-backup@other")
    storage = Path(settings.A4C_BACKUP_DIR)
    data = json.loads((storage / "records" / f"{source}.json").read_text())
    data.pop("signature")
    data["record"] = {
        **data["record"],
        "name": name,
        "set_id": "b" * 32,
        "written_by": "a4c-backup@other",
    }
    path = storage / "records" / f"{name}.json"
    path.write_text(json.dumps(data))
    manifests = storage / "manifests"
    (manifests / f"{name}.manifest").write_bytes((manifests / f"{source}.manifest").read_bytes())
    Catalog(storage, signer=other).rewrite(parse_record(path.read_bytes(), name))
    return other


def test_a_restorer_syncs_now_and_reads_what_came_in_from_where_and_what_was_refused(
    client, a4c, rita, settings, tmp_path, take
):
    take("files-1", rita, include_elasticsearch=False)
    other = written_by_another_installation(settings, tmp_path, "files-1", "theirs")
    settings.A4C_TRUSTED_KEYS = [other.public.line]
    (Path(settings.A4C_BACKUP_DIR) / "records" / f"{PLANTED}.json").write_text("{not json")
    lose_the_console_database()  # a new console: the storage is all that is left
    before = client.get(reverse("backups:backup_list")).content.decode()

    response = client.post(reverse("backups:catalog_sync"), follow=True)

    html = response.content.decode()
    assert 'id="sync-now"' in before and "Catalog never synced" in before
    assert response.redirect_chain == [(reverse("backups:backup_list"), 302)]
    report = html[html.index('id="sync-report"') : html.index("</section>")]
    imported = report[report.index('id="sync-imported"') : report.index('id="sync-refused"')]
    assert "Imported: 2 sets" in imported and ">files-1</a>" in imported
    assert f"came from backup storage {settings.A4C_BACKUP_DIR}" in imported
    assert "taken by a4c-backup@other" in imported and "signed by <span" in imported
    assert other.key_id in imported
    refused = report[report.index('id="sync-refused"') : report.index('id="sync-unchanged"')]
    assert "Refused or not imported: 1" in refused
    assert "&lt;img src=x onerror=alert(1)&gt;" in refused and PLANTED not in html
    assert "Unchanged: 0 sets already listed" in report
    assert 'id="catalog-sync"' not in html, "one message per event: the report says when"
    theirs = Backup.objects.get(name="theirs")
    assert theirs.signed_by == other.key_id and not theirs.foreign
    assert "taken by a4c-backup@other" in theirs.imported_from
    event = AuditEvent.objects.get(action="catalog.sync", actor="rita")
    assert event.source == "web" and event.outcome == "failed"
    assert sorted(event.parameters["imported"]) == ["files-1", "theirs"]
    assert event.parameters["refused"] == [PLANTED] and PLANTED[:4] in event.message

    reloaded = client.get(reverse("backups:backup_list")).content.decode()
    client.post(reverse("backups:catalog_sync"))
    again = client.get(reverse("backups:backup_list")).content.decode()

    assert 'id="sync-report"' not in reloaded, "a reload shows the list, and syncs nothing"
    assert "Catalog last synced with the backup storage" in reloaded
    assert reloaded.count("imported: came from backup storage") == 2
    assert "Imported: none" in again and "Unchanged: 2 sets already listed" in again
    assert AuditEvent.objects.filter(action="catalog.sync", actor="rita").count() == 2


def test_a_sync_that_finds_the_list_up_to_date_says_so_and_is_recorded(client, a4c, rita, take):
    take("files-1", rita, include_elasticsearch=False)

    html = client.post(reverse("backups:catalog_sync"), follow=True).content.decode()

    assert "Unchanged: 1 set already listed; the list was up to date" in html
    assert "Refused or not imported: none" in html
    event = AuditEvent.objects.get(action="catalog.sync")
    assert event.actor == "rita" and event.outcome == "succeeded"
    assert event.parameters["unchanged"] == 1 and event.parameters["imported"] == []


def test_an_operator_is_refused_a_sync_told_which_right_it_takes_and_the_refusal_recorded(
    client, a4c, otto
):
    member("ruth", "restorers")  # the group as migration 0002 made it (a flush removes it)
    page = client.get(reverse("backups:backup_list")).content.decode()

    response = client.post(reverse("backups:catalog_sync"))

    assert 'id="sync-now"' not in page
    refusal = " ".join(response.content.decode().split())
    assert response.status_code == 403
    assert (
        "may not sync the list of backups with the backup storage: that takes the right "
        "“Can restore backups” (<code>backups.restore_backup</code>), which the group "
        "restorers gives." in refusal
    )
    event = AuditEvent.objects.get(action="catalog.sync")
    assert event.actor == "otto" and event.outcome == "denied"
    assert not AuditEvent.objects.filter(action="catalog.sync", outcome="succeeded").exists()


def test_a_sync_the_storage_cannot_answer_says_why_on_the_page_and_is_recorded_as_failed(
    client, a4c, rita, settings
):
    storage = Path(settings.A4C_BACKUP_DIR)
    storage.mkdir(parents=True, exist_ok=True)
    (storage / "records").write_text("a file where the records folder should be")

    html = client.post(reverse("backups:catalog_sync"), follow=True).content.decode()

    assert "The sync did not run to its end: the backup storage could not be read" in html
    assert f"{storage}/records" in html and 'id="sync-report"' not in html
    event = AuditEvent.objects.get(action="catalog.sync")
    assert event.actor == "rita" and event.outcome == "failed"
    assert "did not run to its end" in event.message


def test_a_sync_is_only_asked_for_with_a_post(client, a4c, rita):
    response = client.get(reverse("backups:catalog_sync"))

    assert response.status_code == 405
    assert not AuditEvent.objects.filter(action="catalog.sync").exists()


@pytest.mark.browser
def test_in_chromium_a_restorer_clicks_sync_now_and_follows_an_imported_set_to_its_origin(
    browser, live_server, a4c, take
):
    rita = member("rita", "restorers")
    take("files-1", rita, include_elasticsearch=False)
    lose_the_console_database()
    page = sign_in(browser, live_server, "rita")
    page.goto(f"{live_server.url}/backups/")
    assert "Catalog never synced" in page.inner_text("#catalog-sync")

    page.click("#sync-now button")

    page.wait_for_selector("#sync-report")
    report = page.inner_text("#sync-report")
    assert "Imported: 1 set" in report and "Unchanged: 0 sets already listed" in report
    assert "Refused or not imported: none" in report
    page.click("#sync-imported a:has-text('files-1')")
    page.wait_for_selector("#signed-by")
    assert "Came from backup storage" in page.inner_text("#signed-by")
    page.goto(f"{live_server.url}/backups/")
    assert page.locator("#sync-report").count() == 0
    assert "imported: came from backup storage" in page.inner_text("#backups")
