"""Issue 25, item 5, in Chromium: the dashboard's tables fit a 1280 px screen and a phone, with
every time on one line and in its zone; on a phone the cards a person came for come first; a
long description wraps instead of pushing the page aside.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from browsing import PHONE, overflow, serious_violations, shot, sign_in
from django.utils import timezone
from people import member

from backups.models import Backup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LAPTOP = {"width": 1280, "height": 800}

# Each table wider than the box it sits in, and each time drawn over more than one line.
_CRAMPED = r"""() => {
  const out = [];
  document.querySelectorAll(".table-wrap").forEach((wrap) => {
    if (wrap.scrollWidth > wrap.clientWidth + 1) {
      out.push("table in #" + wrap.closest("section, main").id + " is " + wrap.scrollWidth +
               " px in a box of " + wrap.clientWidth + " px");
    }
  });
  document.querySelectorAll(".table .when time, .table .when .abs").forEach((el) => {
    if (el.getClientRects().length > 1) out.push("a time over lines: " + el.textContent);
  });
  return out;
}"""


@pytest.fixture
def busy_console(settings, tmp_path):
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
    settings.TIME_ZONE = "Europe/Paris"
    now = timezone.now()
    for n in range(8):
        Backup.objects.create(
            name=f"nightly-20261207-0{n}1500",
            status=Backup.Status.SUCCEEDED,
            actor="scheduler-of-policy-nightly",
            started_at=now - timedelta(hours=n, minutes=3),
            finished_at=now - timedelta(hours=n),
            indices={f"a4c-index-{i}": {"docs": 10} for i in range(31)},
            file_count=1_234_567,
        )
    member("rita", "restorers")


def test_the_dashboard_tables_fit_a_1280_px_screen_with_times_on_one_line_in_their_zone(
    browser, live_server, busy_console
):
    page = sign_in(browser, live_server, "rita", LAPTOP)
    page.wait_for_selector("#health .checks, #health .msg-error", timeout=30_000)

    assert page.evaluate(_CRAMPED) == []
    assert overflow(page) == []
    files = page.locator("#latest-backups td.num").last
    assert files.inner_text() == "1,234,567", "the FILES column is whole, with separators"
    when = page.locator("#latest-backups .when .abs").first.inner_text()
    assert when.endswith(" CET"), f"the time names its zone: {when!r}"
    zone = page.locator("#latest-backups .when time").first.get_attribute("title")
    assert "Europe/Paris" in zone
    shot(page, "50-dashboard-1280")

    for path in ("/backups/", "/restores/", "/policies/", "/audit/"):
        page.goto(live_server.url + path)
        assert page.evaluate(_CRAMPED) == [], f"{path} at 1280 px"


def test_on_a_phone_the_last_good_backup_comes_before_the_health_lines(
    browser, live_server, busy_console
):
    page = sign_in(browser, live_server, "rita", PHONE)
    page.wait_for_selector("#health .checks, #health .msg-error", timeout=30_000)

    def top(selector: str) -> float:
        return page.locator(selector).bounding_box()["y"]

    assert top("#last-good") < top("#running") < top("#health") < top("#latest-backups")
    assert page.evaluate(_CRAMPED) == []
    assert overflow(page) == []
    assert serious_violations(page) == [], "the phone's layout is as accessible"
    shot(page, "51-dashboard-phone")


def test_a_long_description_is_refused_and_a_long_one_shown_wraps(browser, live_server, storage):
    now = timezone.now()
    backup = Backup.objects.create(
        name="described",
        description="word" * 125,  # 500 characters without a space
        status=Backup.Status.SUCCEEDED,
        actor="otto",
        started_at=now,
        finished_at=now,
        include_elasticsearch=False,
    )
    member("otto", "operators")
    page = sign_in(browser, live_server, "otto", PHONE)

    page.goto(f"{live_server.url}/backups/{backup.pk}/")
    assert overflow(page) == []
    assert page.locator(".description").bounding_box()["height"] > 100, "it wraps"

    page.goto(f"{live_server.url}/backups/new/")
    assert "at most 500 characters" in page.inner_text("#new-backup")
    page.fill("textarea[name=description]", "x" * 501)
    page.uncheck("input[name=include_elasticsearch]")
    page.click("button:has-text('Start backup')")
    error = page.inner_text("#new-backup .has-error .error")
    assert "501 characters long; at most 500" in error
    assert Backup.objects.count() == 1


@pytest.fixture
def storage(settings, tmp_path):
    settings.A4C_BACKUP_DIR = tmp_path / "storage"
