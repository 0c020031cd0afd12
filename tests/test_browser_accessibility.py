"""Issue 25, item 3: the console for keyboards and screen readers, checked in a real Chromium.

axe-core (the npm package, installed by scripts/setup.sh into tests/a11y/node_modules) is
injected by Playwright into each page a person uses on a bad day: the dashboard, the backups, a
backup's page, the restore form with its plan, a restore held mid-run by a real worker (at a
pause point), the policies and the audit. None may have a serious or critical violation. The
keyboard journeys of the restore form are walked with the keyboard alone.
"""

from __future__ import annotations

import os

import pytest
from browsing import AXE, serious_violations, sign_in
from people import member

from backups.models import Policy, RestoreRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SLOW = 120  # s: a loaded machine is slow, never this slow


@pytest.fixture
def console(backup, a4c):
    """A backup of the small installation, a few more files since (for the plan's path list),
    a policy; the audit holds the backup's events."""
    for n in range(30):
        (a4c.data_dir / "csar" / f"since-{n:02}.yml").write_text("tosca: 2\n" * 200)
    Policy.objects.create(name="nightly", schedule="0 2 * * *", name_pattern="nightly-{date}")
    member("rita", "restorers")
    return backup


def test_the_pages_of_a_bad_day_have_no_serious_accessibility_violation(
    browser, live_server, console, start_worker, worker_env, pause_points
):
    page = sign_in(browser, live_server, "rita")
    found: dict[str, list[str]] = {}
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the page"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main", "the skip link leads past the bar"
    page.wait_for_selector("#health .checks")
    found["dashboard"] = serious_violations(page)
    for name, path in (
        ("backups", "/backups/"),
        ("a backup's page", f"/backups/{console.pk}/"),
        ("policies", "/policies/"),
        ("audit", "/audit/"),
    ):
        page.goto(live_server.url + path)
        found[name] = serious_violations(page)

    page.goto(f"{live_server.url}/restore/?backup={console.pk}")
    page.click("button:has-text('Show the plan')")
    page.wait_for_selector("#plan-paths")
    paths = page.locator("#plan-paths .paths")
    assert paths.get_attribute("tabindex") == "0" and paths.get_attribute("aria-label")
    found["the restore form with its plan"] = serious_violations(page)

    start_worker(**worker_env, **pause_points.env)
    pause_points.arm("restorerun-files")
    page.fill("#confirm", console.name)
    page.click("button:has-text('Restore now')")
    page.wait_for_url("**/restores/*/")
    pause_points.reached("restorerun-files", timeout=SLOW)
    page.wait_for_selector(".progress-block")
    found["a running restore"] = serious_violations(page)
    pause_points.disarm("restorerun-files")
    page.wait_for_selector("#outcome", timeout=SLOW * 1000)
    assert RestoreRun.objects.get().status == RestoreRun.Status.SUCCEEDED

    problems = {name: lines for name, lines in found.items() if lines}
    assert not problems, "serious or critical axe-core violations:\n" + "\n".join(
        f"{name}:\n  " + "\n  ".join(lines) for name, lines in problems.items()
    )
    assert len(found) == 7 and os.path.getsize(AXE) > 100_000, "every page was checked"


def test_choosing_another_backup_with_the_keyboard_keeps_the_page_and_the_focus(
    browser, live_server, backup, take
):
    take("files-1", include_elasticsearch=False)  # the newest: chosen first, no indices
    member("rita", "restorers")
    page = sign_in(browser, live_server, "rita")
    page.goto(f"{live_server.url}/restore/?backup={backup.pk}")
    assert page.is_visible("#index-choice"), "nightly-1's indices are offered"
    page.evaluate("window.notReloaded = true")

    page.focus("#id_backup")
    page.keyboard.press("ArrowUp")  # files-1, listed first

    assert page.evaluate("window.notReloaded") is True, "one arrow key reloads nothing"
    assert page.evaluate("document.activeElement.id") == "id_backup", "focus stays on the list"
    assert page.is_hidden("#index-choice"), "the other backup's indices are put away"
    assert page.is_visible("#index-choice-stale")
    assert page.locator("#index-choice input[name=indices]").first.is_disabled()

    page.keyboard.press("ArrowDown")  # back to the backup the page was drawn for
    assert page.is_visible("#index-choice") and page.is_hidden("#index-choice-stale")
    page.keyboard.press("ArrowUp")
    page.click("button:has-text('Show the plan')")
    page.wait_for_selector("#plan")
    assert "restore files-1" in page.inner_text("#plan-heading")


def test_a_refused_confirmation_puts_the_focus_on_its_error_beside_the_field(
    browser, live_server, files_backup
):
    member("rita", "restorers")
    page = sign_in(browser, live_server, "rita", viewport={"width": 1280, "height": 600})
    page.goto(f"{live_server.url}/restore/?backup={files_backup.pk}")
    page.click("button:has-text('Show the plan')")
    page.wait_for_selector("#plan")
    page.fill("#confirm", "not-the-name")
    page.press("#confirm", "Enter")
    page.wait_for_selector("#start-error")

    focused = page.evaluate(
        "[document.activeElement.id, document.activeElement.getAttribute('aria-describedby'),"
        " document.activeElement.getAttribute('aria-invalid')]"
    )
    assert focused == ["confirm", "start-error", "true"], focused
    assert page.locator("#confirm").evaluate(
        "el => el.closest('.field').contains(document.getElementById('start-error'))"
    ), "the error is drawn beside the field"
    top = page.locator("#start-error").bounding_box()
    assert top and 0 <= top["y"] and top["y"] + top["height"] <= 600, "the error is on screen"
    assert RestoreRun.objects.count() == 0
