"""Issue 25, items 1 and 2, in Chromium with a real worker, the real Elasticsearch and real
files: a console that stays honest when the data grows and when a part is missing.

A backup of a data dir grown by 30,000 small files since the last one is watched every 0.5 s:
its percent, files and bytes never fall, its files total is either the count (once the count
running ahead of the copy has ended) or a floor that says "still counting", never the files
done plus a constant, and an estimate of the time left is always shown. A backup asked while
no worker serves says "queued: no worker …; start it with …" in the flash and on its page
(no worker is running, or those on the broker take other queues' tasks), and starts
once a worker does. With Elasticsearch unreachable, the form says so before it is sent and
what cannot work is disabled with its reason beside it.
"""

from __future__ import annotations

import re
import time

import pytest
from browsing import shot, sign_in, start_files_backup
from django.core.cache import cache
from people import member

from backups import operations
from backups.elastic import client as elastic
from backups.models import Backup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SLOW = 180  # s: a loaded machine is slow, never this slow
GROWN_BY = 30_000

# What the page shows of the run now, read from the DOM (None once the run has ended).
SAMPLE = r"""() => {
  const block = document.querySelector(".progress-block");
  if (!block || document.querySelector("#outcome")) return null;
  const text = (s) => { const el = block.querySelector(s); return el ? el.innerText : ""; };
  return {
    percent: Number(block.querySelector(".bar").getAttribute("aria-valuenow")),
    phase: text(".phase"), files: text("dd.files"), bytes: text("dd.bytes"),
    eta: text("dd.eta"),
  };
}"""
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def number(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text) or 0)


def size(text: str) -> float:
    value, unit = text.strip().split()[:2]
    return float(value.replace(",", "")) * UNITS[unit]


def grow(root, folders: int, per_folder: int) -> None:
    for d in range(folders):
        folder = root / "grown" / f"d{d:03}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_folder):
            (folder / f"f{i:03}.bin").write_bytes(b"%08d" % i * 64)


def watch(page, every: float = 0.5) -> list[dict]:
    """The page's progress, every ``every`` seconds, until the run's outcome shows."""
    samples, deadline = [], time.monotonic() + SLOW
    while time.monotonic() < deadline:
        sample = page.evaluate(SAMPLE)
        if sample is None and page.query_selector("#outcome"):
            return samples
        if sample:
            samples.append(sample)
        page.wait_for_timeout(every * 1000)  # the sampling pace itself, not a wait for a state
    pytest.fail(f"the backup did not end within {SLOW} s: {samples[-3:]}")


def test_a_backup_of_a_data_dir_grown_by_30000_files_shows_figures_that_only_rise(
    browser, live_server, a4c, cli_actor, start_worker, worker_env
):
    first = operations.request_backup(
        operations.BackupRequest(name="before", include_elasticsearch=False), cli_actor
    )
    assert operations.run_backup(first.pk).status == Backup.Status.SUCCEEDED
    held = Backup.objects.get(name="before").file_count
    grow(a4c.data_dir, folders=300, per_folder=GROWN_BY // 300)
    # a cap on the bytes read, so that a fast machine still shows the copy at several looks
    start_worker(**worker_env, A4C_FILE_BANDWIDTH="4M", A4C_FILE_WORKERS="2")
    member("otto", "operators")
    page = sign_in(browser, live_server, "otto")

    start_files_backup(page, live_server, "grown")
    samples = watch(page)

    assert "Backup grown succeeded" in page.inner_text("#outcome")
    backup = Backup.objects.get(name="grown")
    assert backup.file_count == held + GROWN_BY
    shot(page, "43-backup-grown-30000-done")
    percents = [s["percent"] for s in samples]
    assert percents == sorted(percents), f"the percent never falls: {percents}"
    copying = [s for s in samples if s["phase"] == "files" and s["files"]]
    assert len(copying) >= 4, f"the copy was seen at several looks: {samples}"
    done = [number(s["files"].split("/")[0]) for s in copying]
    assert done == sorted(done), f"the files done never fall: {done}"
    copied = [size(s["bytes"].split("/")[0]) for s in copying if s["bytes"]]
    assert copied == sorted(copied), f"the bytes done never fall: {copied}"
    counted = [s for s in copying if "still counting" not in s["files"]]
    floors = [s for s in copying if "still counting" in s["files"]]
    for s in floors:
        assert "at least" in s["files"], f"a floor says so: {s}"
    for s in counted:
        done_now, total = (number(part) for part in s["files"].split("/"))
        if done_now > held:  # past the previous backup's count: the count, not done + k
            assert total == held + GROWN_BY, f"the total is the count: {s['files']}"
    assert any(number(s["files"].split("/")[0]) > held for s in counted), "seen counted"
    assert all(s["eta"] for s in copying), f"an estimate at every look: {copying}"
    assert any(s["eta"].startswith("about") for s in copying), "a measured estimate"
    assert len({s["percent"] for s in copying}) >= 3, "the bar moves while files are copied"


def test_a_backup_no_worker_takes_says_queued_on_its_page_and_starts_with_the_worker(
    browser, live_server, a4c, files, start_worker, worker_env
):
    cache.clear()  # a worker seen by an earlier test is not believed here
    member("otto", "operators")
    page = sign_in(browser, live_server, "otto")
    page.goto(f"{live_server.url}/backups/new/")
    warned = page.inner_text("#no-worker")

    start_files_backup(page, live_server, "no-worker")

    assert "only be queued: no worker" in warned, "warned before it is sent"
    flash = page.inner_text(".messages")
    assert "Backup no-worker queued: no worker" in flash
    assert "Backup no-worker started" not in flash
    assert "bash scripts/services.sh start worker" in page.inner_text("#queued-no-worker")
    # still said once the live part of the page was fetched again
    page.evaluate("() => { document.querySelector('#queued-no-worker').dataset.seen = '1'; }")
    page.wait_for_function(
        "() => { const el = document.querySelector('#queued-no-worker');"
        " return el && !el.dataset.seen; }",
        timeout=SLOW * 1000,
    )
    shot(page, "44-backup-queued-no-worker")
    start_worker(**worker_env)
    page.wait_for_selector("#outcome", timeout=SLOW * 1000)
    assert "Backup no-worker succeeded" in page.inner_text("#outcome")


def test_with_elasticsearch_down_what_cannot_work_is_disabled_with_its_reason(
    browser, live_server, a4c, settings
):
    elastic.cluster.cache_clear()
    settings.A4C_ES_URLS = ["http://127.0.0.1:9"]  # the discard port: nothing answers
    settings.A4C_EXPORT_RECIPIENTS = []
    member("rita", "restorers")
    page = sign_in(browser, live_server, "rita")
    try:
        page.goto(f"{live_server.url}/backups/new/")
        assert "Elasticsearch cannot be reached" in page.inner_text("#es-down")
        assert page.is_disabled("input[name=include_elasticsearch]")
        assert not page.is_checked("input[name=include_elasticsearch]")
        assert "not now: Elasticsearch cannot be reached" in page.inner_text("#es-why")
        shot(page, "45-backup-form-elasticsearch-down")

        page.goto(f"{live_server.url}/restore/")
        assert page.is_disabled("button:has-text('Show the plan')"), "no backup to plan from"
        assert "take one first" in page.inner_text("#plan-why")
        assert "Restoring its indices cannot work now" in page.inner_text("#es-down")

        page.goto(f"{live_server.url}/backups/new/")
        page.fill("input[name=name]", "files-only")
        page.click("button:has-text('Start backup')")
        page.wait_for_url("**/backups/*/")
        backup = Backup.objects.get(name="files-only")
        assert (backup.include_elasticsearch, backup.include_files) == (False, True)
        assert operations.run_backup(backup.pk).status == Backup.Status.SUCCEEDED
        page.reload()
        assert page.is_disabled("#download-archive"), "no archive without recipients"
        assert "A4C_EXPORT_RECIPIENTS is empty" in page.inner_text("#archive-why")
    finally:
        elastic.cluster.cache_clear()
