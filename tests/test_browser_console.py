"""The console's own behaviour in a real Chromium against the live server: confirmations that
hold after a live refresh, banners that leave when the outcome arrives, layouts that survive long
names on a desktop and on a 390 px phone (measured by element geometry), and the pages a person
lands on after a wrong address, a stale form or signing out.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from browsing import DESKTOP, PHONE, inside_viewport, overflow, shot, sign_in, start_files_backup
from django.utils import timezone
from people import member

from backups import audit
from backups.audit import Actor
from backups.models import Backup, Policy, RestoreRun, Source

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait_for_a_live_refresh(page, selector: str) -> None:
    """Marks the element now drawn and waits until the page's polling has drawn a new one."""
    page.eval_on_selector(selector, "el => { el.dataset.firstDrawn = '1'; }")
    page.wait_for_function(
        "s => { const el = document.querySelector(s); return el && !el.dataset.firstDrawn; }",
        arg=selector,
    )


def answer_dialogs(page, accept: bool) -> list[str]:
    asked: list[str] = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", answer)
    return asked


@pytest.fixture
def storage(settings, tmp_path):
    settings.A4C_BACKUP_DIR = tmp_path / "storage"


def test_cancel_asks_first_even_after_the_status_page_refreshed_itself(
    browser, live_server, storage
):
    now = timezone.now()
    backup = Backup.objects.create(
        name="long-running",
        status=Backup.Status.RUNNING,
        actor="rita",
        phase="files",
        started_at=now,
        heartbeat_at=now,
        include_elasticsearch=False,
    )
    member("rita", "restorers")
    page = sign_in(browser, live_server, "rita")
    page.goto(f"{live_server.url}/backups/{backup.pk}/")

    wait_for_a_live_refresh(page, "form[data-confirm]")
    asked = answer_dialogs(page, accept=False)
    page.click("button:has-text('Cancel backup')")

    assert asked and "Cancel backup long-running?" in asked[0]
    backup.refresh_from_db()
    assert not backup.cancel_requested, "a dismissed confirmation sends nothing"

    wait_for_a_live_refresh(page, "form[data-confirm]")
    answer_dialogs(page, accept=True)
    page.click("button:has-text('Cancel backup')")
    page.wait_for_selector("[data-while-running]:has-text('Cancel requested')")
    backup.refresh_from_db()
    assert backup.cancel_requested
    shot(page, "20-cancel-requested")

    # The worker stops; the banner about the request leaves when the outcome arrives.
    Backup.objects.filter(pk=backup.pk).update(
        status=Backup.Status.CANCELLED, finished_at=timezone.now(), error_message="Cancelled."
    )
    page.wait_for_selector("#outcome.outcome-bad")
    page.wait_for_selector("[data-while-running]", state="detached")


def test_roll_back_drawn_by_a_live_refresh_asks_before_it_starts(browser, live_server, storage):
    now = timezone.now()
    restored = Backup.objects.create(
        name="nightly", status=Backup.Status.SUCCEEDED, actor="rita", finished_at=now
    )
    safety = Backup.objects.create(
        name="safety-1",
        status=Backup.Status.SUCCEEDED,
        trigger=Backup.Trigger.SAFETY,
        actor="rita",
        finished_at=now,
    )
    run = RestoreRun.objects.create(
        backup=restored,
        status=RestoreRun.Status.RUNNING,
        actor="rita",
        safety_backup=safety,
        phase="files",
        started_at=now,
        heartbeat_at=now,
    )
    member("rita", "restorers")
    page = sign_in(browser, live_server, "rita")
    page.goto(f"{live_server.url}/restores/{run.pk}/")
    page.evaluate("window.notReloaded = true")
    assert page.locator("#rollback").count() == 0

    RestoreRun.objects.filter(pk=run.pk).update(
        status=RestoreRun.Status.SUCCEEDED, finished_at=now + timedelta(seconds=5)
    )
    page.wait_for_selector("#rollback")
    assert page.evaluate("window.notReloaded") is True, "drawn by the live refresh"
    asked = answer_dialogs(page, accept=False)
    page.click("#rollback")

    assert asked and "Put back the data as it was before restore" in asked[0]
    assert not RestoreRun.objects.filter(rollback_of=run).exists()


LONG_BACKUP = "nightly-" + "0123456789" * 19  # 198 characters, no break opportunity
LONG_POLICY = "policy-" + "abcdefghij" * 9  # 97 characters


@pytest.fixture
def long_names(storage):
    now = timezone.now()
    backup = Backup.objects.create(
        name=LONG_BACKUP,
        description="d" * 400,
        status=Backup.Status.SUCCEEDED,
        actor="rita",
        started_at=now - timedelta(minutes=3),
        finished_at=now,
        include_elasticsearch=False,
        file_count=1604,
        file_bytes=1_050_000_000,
    )
    Policy.objects.create(name=LONG_POLICY, schedule="0 2 * * *", name_pattern="p-{date}")
    run = RestoreRun.objects.create(
        backup=backup, status=RestoreRun.Status.SUCCEEDED, actor="rita", finished_at=now
    )
    audit.record(
        Actor("rita", Source.WEB),
        "backup.create",
        target=LONG_BACKUP,
        parameters={"name": LONG_BACKUP, "indices": [LONG_POLICY]},
        backup=backup,
    )
    member("rita", "restorers")
    return backup, run


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_long_names_keep_every_page_inside_the_screen(browser, live_server, long_names, viewport):
    backup, run = long_names
    policy = Policy.objects.get()
    page = sign_in(browser, live_server, "rita", viewport)
    where = f"{viewport['width']}px"

    for path in (
        "/",
        "/backups/",
        f"/backups/{backup.pk}/",
        f"/backups/{backup.pk}/delete/",
        "/restores/",
        f"/restores/{run.pk}/",
        "/policies/",
        f"/policies/{policy.pk}/",
        "/audit/",
        f"/restore/?backup={backup.pk}",
    ):
        page.goto(live_server.url + path)
        if path == "/":
            page.wait_for_selector("#health .checks, #health .msg-error", timeout=30_000)
        assert overflow(page) == [], f"{path} overflows at {where}"
        assert inside_viewport(page, ".who button"), f"Sign out is off screen on {path}"
        shot(page, f"30-long-names-{where}-{path.strip('/').replace('/', '-') or 'dashboard'}")

    page.goto(f"{live_server.url}/backups/{backup.pk}/")
    assert inside_viewport(page, "a:has-text('Delete…')")
    assert LONG_BACKUP in page.inner_text("h1"), "the full name wraps in the heading"

    page.goto(f"{live_server.url}/backups/")
    wrap = "#backups >> xpath=.."
    assert inside_viewport(page, wrap)
    if viewport is PHONE:
        sideways = page.eval_on_selector(wrap, "w => w.scrollWidth > w.clientWidth")
        assert sideways, "the table scrolls inside its box instead of widening the page"


def test_the_top_bar_wraps_on_a_phone_and_every_link_stays_on_screen(browser, live_server, storage):
    member("rita", "restorers")
    page = sign_in(browser, live_server, "rita", PHONE)

    links = page.eval_on_selector_all(
        ".topbar a, .topbar button",
        "els => els.map(e => { const b = e.getBoundingClientRect(); "
        "return [e.textContent.trim(), b.left, b.right]; })",
    )

    assert len(links) >= 8
    offscreen = [name for name, left, right in links if left < 0 or right > PHONE["width"]]
    assert offscreen == [], json.dumps(links)
    shot(page, "31-phone-top-bar")


def test_a_wrong_address_a_stale_form_and_signing_out_land_on_console_pages(
    browser, live_server, storage
):
    member("vic", "viewers")
    page = sign_in(browser, live_server, "vic")

    response = page.goto(f"{live_server.url}/backups/99999/")
    assert response.status == 404
    assert page.inner_text("h1") == "Not found" and page.is_visible(".topbar")
    assert "DEBUG" not in page.content()
    shot(page, "32-not-found")

    response = page.goto(f"{live_server.url}/accounts/logout/")
    assert response.status == 200 and "Sign out?" in page.inner_text("h1")
    page.eval_on_selector(
        "#sign-out input[name=csrfmiddlewaretoken]", "i => { i.value = 'x'.repeat(64); }"
    )
    page.click("#sign-out button[type=submit]")
    page.wait_for_selector("#error-page")
    assert "This form has expired" in page.inner_text("h1") and page.is_visible(".topbar")
    shot(page, "33-stale-form")

    page.goto(f"{live_server.url}/accounts/logout/")
    page.click("#sign-out button[type=submit]")
    page.wait_for_url("**/accounts/login/")
    assert "You are signed out." in page.inner_text(".messages")
    shot(page, "34-signed-out")


def test_a_name_longer_than_kept_is_refused_as_typed_and_on_submit_not_cut(
    browser, live_server, storage, settings, tmp_path
):
    settings.A4C_DATA_DIR = tmp_path / "data"
    settings.A4C_DATA_DIR.mkdir()
    member("otto", "operators")
    page = sign_in(browser, live_server, "otto")
    page.goto(f"{live_server.url}/backups/new/")

    page.fill("input[name=name]", "n" * 300)
    assert page.input_value("input[name=name]") == "n" * 300, "the browser keeps all of it"
    page.wait_for_selector("#name-check .error")
    assert "the limit is 200" in page.inner_text("#name-check")
    page.click("button:has-text('Start backup')")
    page.wait_for_selector(".error:has-text('300 characters long; the limit is 200')")
    assert not Backup.objects.exists()


def test_a_restore_link_to_a_missing_backup_is_a_console_404(browser, live_server, storage):
    Backup.objects.create(name="newest", status=Backup.Status.SUCCEEDED, actor="rita")
    member("rita", "restorers")
    page = sign_in(browser, live_server, "rita")

    for asked in ("99999", "abc", "-1"):
        response = page.goto(f"{live_server.url}/restore/?backup={asked}")
        assert response.status == 404
        assert f"There is no backup number '{asked}'" in page.inner_text("#not-found-reason")
        assert page.locator("text=newest").count() == 0, "no other backup preselected"


def test_a_backup_cancelled_from_its_page_ends_cancelled_and_says_so(
    browser, live_server, a4c, start_worker, worker_env
):
    """Issue 15.2 in the browser, with a real worker: the pre-backup command holds the backup
    long enough to click Cancel (after a live refresh); the next phase boundary honours it."""
    (a4c.data_dir / "csar").mkdir()
    (a4c.data_dir / "csar" / "types.yml").write_text("tosca: 1.3\n")
    start_worker(**worker_env, A4C_PRE_BACKUP_COMMAND="sleep 4", A4C_HEARTBEAT_SECONDS="60")
    member("otto", "operators")
    page = sign_in(browser, live_server, "otto")
    start_files_backup(page, live_server, "to-cancel")
    page.wait_for_selector(".phase:has-text('pre-command')", timeout=30_000)

    wait_for_a_live_refresh(page, "form[data-confirm]")
    answer_dialogs(page, accept=True)
    page.click("button:has-text('Cancel backup')")
    page.wait_for_selector("#outcome.outcome-bad", timeout=60_000)

    assert "Cancelled" in page.inner_text("#outcome")
    assert Backup.objects.get(name="to-cancel").status == Backup.Status.CANCELLED
    page.wait_for_selector("[data-while-running]", state="detached")
    shot(page, "35-cancelled-backup")
