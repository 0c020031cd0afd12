"""Issue 15.5 in Chromium, with a real worker: the progress a person watches means something.

The data dir grew from 801 files to 1,884 since the last backup (the issue's own figures). The
backup's bar moves through the files phase instead of sitting at 100% from the 801st file, its
counters never claim the end before it, the tiles fill in as files are stored, an estimate of
the time left shows, and the bar's drawn width is the figure it prints. The restore's figure
never restarts at a new phase, and its safety backup shows what it is doing.

The worker copies at full speed: the runs are held at pause points part of the way through
their files (A4C_TEST_PAUSE_DIR, conftest's pause_points), and the page is read at each stop,
once it shows what the run's row says.
"""

from __future__ import annotations

import os
import re

import pytest
from browsing import shot, sign_in, start_files_backup
from fault_support import wait_for
from people import member

from backups import operations
from backups.models import Backup, RestoreRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SLOW = 120  # s: a loaded machine is slow, never this slow

# What the page shows of the run now, read from the DOM (None once the run has ended).
SAMPLE = r"""() => {
  const block = document.querySelector(".progress-block");
  if (!block) return null;
  const bar = block.querySelector(".bar"), fill = block.querySelector(".bar .fill");
  const text = (s) => { const el = block.querySelector(s); return el ? el.innerText : ""; };
  let tile = "";
  for (const stat of document.querySelectorAll(".stat")) {
    if (stat.querySelector(".label").innerText.trim() === "files") {
      tile = stat.querySelector(".value").innerText;
    }
  }
  return {
    percent: Number(bar.getAttribute("aria-valuenow")),
    drawn: fill.getBoundingClientRect().width / bar.getBoundingClientRect().width,
    phase: text(".phase"), files: text("dd.files"), eta: text("dd.eta"), tile: tile,
  };
}"""


def seen_at_stop(page, pause_points, point: str, stop: int, row, picture: str = "") -> dict:
    """What the page shows while the run is held at its ``stop``-th stop at ``point``, once
    it shows the phase and files the run's row holds (and a screenshot of it); then lets the
    run go on."""
    pause_points.reached(point, stop, timeout=SLOW)
    row.refresh_from_db()

    def shown() -> dict | None:
        sample = page.evaluate(SAMPLE)
        if sample and sample["phase"] == row.phase and sample["files"]:
            if number(sample["files"].split("/")[0]) == row.files_done:
                return sample
        return None

    what = f"the page showing {row.phase} at {row.files_done} files"
    sample = wait_for(shown, SLOW, what, every=0.2)
    if picture:
        shot(page, picture)
    pause_points.go(point, stop)
    return sample


def number(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text) or 0)


def grow(root, prefix: str, per_dir: int, size: int) -> None:
    for top in ("artifacts", "csar", "plugins"):
        (root / top).mkdir(parents=True, exist_ok=True)
        for i in range(per_dir):
            (root / top / f"{prefix}-{i:04}.bin").write_bytes(os.urandom(size))


@pytest.fixture
def grown(a4c, cli_actor, start_worker, worker_env, pause_points):
    """801 files backed up, then 1,083 more; a worker that stops at the pause points."""
    grow(a4c.data_dir, "old", 267, 1024)
    first = operations.request_backup(
        operations.BackupRequest(name="last-week", include_elasticsearch=False), cli_actor
    )
    assert operations.run_backup(first.pk).status == Backup.Status.SUCCEEDED
    grow(a4c.data_dir, "new", 361, 1024)  # "new-*" sorts before "old-*" in every directory
    start_worker(**worker_env, **pause_points.env)
    return a4c


def test_a_backup_of_a_grown_data_dir_shows_progress_that_means_something(
    browser, live_server, grown, pause_points
):
    member("otto", "operators")
    page = sign_in(browser, live_server, "otto")
    pause_points.arm("backup-files", 0.2, 0.4, 0.6, 0.8)
    start_files_backup(page, live_server, "grown")
    backup = Backup.objects.get(name="grown")

    samples = [
        seen_at_stop(page, pause_points, "backup-files", n, backup, picture)
        for n, picture in ((1, ""), (2, "40-backup-progress-running"), (3, ""), (4, ""))
    ]
    page.wait_for_selector("#outcome", timeout=SLOW * 1000)

    assert "Backup grown succeeded" in page.inner_text("#outcome")
    # the files phase before its last file (1,884 in all) was written down
    copying = [
        s for s in samples if s["phase"] == "files" and 0 < number(s["files"].split("/")[0]) < 1884
    ]
    assert len(copying) == 4, f"the files phase was seen at each stop: {samples}"
    figures = [s["percent"] for s in samples]
    assert figures == sorted(figures), f"the figure never goes back: {figures}"
    assert len({s["percent"] for s in copying}) >= 3, "the bar moves while files are copied"
    assert all(s["percent"] < 100 for s in copying), "not 100% before the end"
    for s in copying:
        done, total = (number(part) for part in s["files"].split("/"))
        assert done < total, f"the counters claim the end before it: {s['files']}"
        assert abs(s["drawn"] - s["percent"] / 100) < 0.02, f"the bar is drawn as it reads: {s}"
    assert max(number(s["files"].split("/")[1]) for s in copying) > 801, "the total grew"
    tiles = [number(s["tile"]) for s in copying]
    assert len(set(tiles)) >= 2 and 0 < max(tiles) < 1884, f"the tiles fill in: {tiles}"
    assert any(s["eta"].startswith("about") for s in copying), "an estimate of the time left"
    backup.refresh_from_db()
    assert (backup.file_count, backup.percent) == (1884, 100)
    shot(page, "42-backup-progress-done")


def test_a_restore_keeps_one_figure_through_its_phases_and_details_its_safety_backup(
    browser, live_server, grown, cli_actor, pause_points
):
    backup = operations.run_backup(
        operations.request_backup(
            operations.BackupRequest(name="to-restore", include_elasticsearch=False), cli_actor
        ).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED
    grow(grown.data_dir, "since", 100, 8192)  # new data the safety backup must read
    member("rita", "restorers")
    page = sign_in(browser, live_server, "rita")
    page.goto(f"{live_server.url}/restore/?backup={backup.pk}")
    page.click("button:has-text('Show the plan')")
    page.wait_for_selector("#plan")
    page.fill("#confirm", "to-restore")
    pause_points.arm("restorerun-files", 0.5)  # staging the backup's files
    pause_points.arm("backup-files", 0.5)  # its safety backup reading what it overwrites
    page.click("button:has-text('Restore now')")
    page.wait_for_url("**/restores/*/")
    run = RestoreRun.objects.get()

    samples = [
        seen_at_stop(page, pause_points, "restorerun-files", 1, run),
        seen_at_stop(page, pause_points, "backup-files", 1, run, "41-restore-progress-running"),
    ]
    page.wait_for_selector("#outcome", timeout=SLOW * 1000)

    assert "Restore succeeded" in page.inner_text("#outcome")
    figures = [s["percent"] for s in samples]
    assert figures == sorted(figures), f"the figure never restarts at a phase: {figures}"
    phases = [s["phase"] for s in samples]
    assert "files" in phases and "safety backup: files" in phases, phases
    safety = [s for s in samples if s["phase"] == "safety backup: files"]
    assert any(s["files"] for s in safety), "the safety backup's counters are shown"
    staged = max(s["percent"] for s in samples if s["phase"] == "files")
    assert all(s["percent"] >= staged for s in safety), "it goes on from the staging"
    assert RestoreRun.objects.get().percent == 100
