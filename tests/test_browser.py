"""The console in a real Chromium, against the live server, a real worker, Redis and Elasticsearch.

A person signs in, takes a backup and watches it succeed without reloading, changes the data,
restores with the typed confirmation and watches that finish, then finds the restore in the
audit history under their name. A viewer is refused the restore. Screenshots of the main pages
land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import shutil

import pytest
from browsing import shot, sign_in
from people import member

from backups.models import AuditEvent, Backup, RestoreRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SLOW = 120_000  # ms: a backup or restore of the small demo takes seconds; leave room on slow CI


@pytest.fixture
def worker(installed, start_worker, worker_env):
    """A real Celery worker for the installed demo."""
    return start_worker(**worker_env)


def test_a_restorer_backs_up_restores_and_finds_it_in_the_audit(
    browser, live_server, installed, worker
):
    a4c = installed
    member("rita", "restorers")
    page = sign_in(browser, live_server, "rita")

    page.wait_for_selector("#health .checks", timeout=30_000)
    assert "No successful backup yet" in page.inner_text("#last-good")
    shot(page, "01-dashboard-empty")

    # A new backup: the name is checked as it is typed, then the status page updates itself.
    page.click("text=+ New backup")
    assert page.input_value("input[name=name]").startswith("backup-")
    page.fill("input[name=name]", "Before Upgrade")
    page.wait_for_selector("#name-check .error")
    assert "may not contain space" in page.inner_text("#name-check")
    page.fill("input[name=name]", "before-upgrade")
    page.wait_for_selector("#name-check .ok")
    page.fill("textarea[name=description]", "taken from the browser test")
    shot(page, "02-new-backup")
    page.click("button:has-text('Start backup')")
    page.wait_for_url("**/backups/*/")
    page.evaluate("window.notReloaded = true")
    shot(page, "03-backup-status-running")
    page.wait_for_selector("#outcome.outcome-good", timeout=SLOW)
    assert page.evaluate("window.notReloaded") is True, "the outcome arrived without a reload"
    assert "Backup before-upgrade succeeded" in page.inner_text("#outcome")
    assert a4c.index("application") in page.inner_text("#indices")
    backup = Backup.objects.get(name="before-upgrade")
    assert backup.status == "succeeded" and backup.actor == "rita"
    shot(page, "04-backup-detail")

    page.click("nav.mainnav >> text=Backups")
    page.wait_for_selector("#backups")
    assert "before-upgrade" in page.inner_text("#backups")
    shot(page, "05-backups-list")

    # Weeks of use later...
    original = a4c.documents("application")
    victim = sorted(original)[0]
    a4c.cluster.client.delete(index=a4c.index("application"), id=victim, refresh=True)
    (a4c.data_dir / "artifacts" / "added-later.bin").write_bytes(b"x" * 2048)
    shutil.rmtree(a4c.data_dir / "plugins")

    # The restore: plan first, then the typed name, then a live status page.
    page.goto(f"{live_server.url}/backups/{backup.pk}/")
    page.click("a:has-text('Restore…')")
    page.click("button:has-text('Show the plan')")
    page.wait_for_selector("#plan")
    plan = page.inner_text("#plan")
    assert "Stop Alien4Cloud or keep it idle" in plan
    assert "replace" in plan and a4c.index("application") in plan
    shot(page, "06-restore-plan")
    page.fill("#confirm", "before-upgrad")
    page.click("button:has-text('Restore now')")
    page.wait_for_selector("#start-error")
    assert "Type the backup's name (before-upgrade) to confirm" in page.inner_text("#start-error")
    page.fill("#confirm", "before-upgrade")
    page.click("button:has-text('Restore now')")
    page.wait_for_url("**/restores/*/")
    page.evaluate("window.notReloaded = true")
    shot(page, "07-restore-status-running")
    page.wait_for_selector("#outcome.outcome-good", timeout=SLOW)
    assert page.evaluate("window.notReloaded") is True
    assert "Restore succeeded" in page.inner_text("#outcome")
    assert page.is_visible("#safety-link") and page.is_visible("#rollback")
    shot(page, "08-restore-status-done")

    run = RestoreRun.objects.get(rollback_of=None)
    assert run.status == "succeeded" and run.actor == "rita"
    assert a4c.documents("application") == original
    assert (a4c.data_dir / "plugins").is_dir()
    assert not (a4c.data_dir / "artifacts" / "added-later.bin").exists()

    # The audit history names the person who restored.
    page.click("nav.mainnav >> text=Audit")
    page.wait_for_selector("#chain-ok", timeout=30_000)
    page.click(".quick a:has-text('restores')")
    page.wait_for_selector("#events")
    rows = page.locator("#events tbody tr").filter(has_text="restore.request")
    assert rows.count() == 1
    assert "rita" in rows.first.inner_text() and "before-upgrade" in rows.first.inner_text()
    assert "succeeded" in page.inner_text("#events")
    shot(page, "09-audit")

    # Changed their mind: one click puts back what the restore overwrote.
    page.goto(f"{live_server.url}/restores/{run.pk}/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#rollback")
    page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1] != str(run.pk))
    page.wait_for_selector("#outcome.outcome-good", timeout=SLOW)
    assert "Rollback #" in page.inner_text("h1")
    rollback = RestoreRun.objects.get(rollback_of=run)
    assert rollback.status == "succeeded" and rollback.actor == "rita"
    assert victim not in a4c.documents("application"), "the state before the restore is back"
    assert (a4c.data_dir / "artifacts" / "added-later.bin").exists()
    page.goto(f"{live_server.url}/restores/{run.pk}/")
    assert page.locator("#rollback").count() == 0, "a restore is rolled back once"

    page.click("nav.mainnav >> text=Dashboard")
    page.wait_for_selector("#health .checks", timeout=30_000)
    assert "before-upgrade" in page.inner_text("#last-good")
    shot(page, "10-dashboard")


def test_a_viewer_sees_the_backups_but_is_refused_the_restore(
    browser, live_server, settings, tmp_path
):
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    backup = Backup.objects.create(
        name="nightly-1", status="succeeded", actor="rita", include_elasticsearch=False
    )
    member("vic", "viewers")
    page = sign_in(browser, live_server, "vic")

    page.goto(f"{live_server.url}/backups/{backup.pk}/")
    assert page.is_visible("text=nightly-1")
    assert page.locator("a:has-text('Restore…')").count() == 0, "no restore button for a viewer"
    assert page.locator("nav >> text=Restore…").count() == 0

    response = page.goto(f"{live_server.url}/restore/?backup={backup.pk}")

    assert response.status == 403
    assert "may not restore backups" in page.inner_text("main")
    shot(page, "11-viewer-refused")
    denied = AuditEvent.objects.get(outcome="denied")
    assert (denied.actor, denied.action) == ("vic", "restore.request")
    assert not RestoreRun.objects.exists()
