"""The whole run's percentage (backups/progress.py) and how the Runner keeps it on the row:
weighed by the bytes each stage moves, never going back, never 100 before the end."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone
from fault_support import wait_for

from backups import operations, progress
from backups.models import Backup, RestoreRun
from backups.operations import running
from backups.progress import Stage
from backups.storage import Store
from backups.storage.results import FileProgress
from backups.storage.walk import CountAhead, count_files
from backups.web.queries import progress_of


def counters(**given) -> SimpleNamespace:
    names = [f"{n}_{e}" for n in ("bytes", "files", "shards") for e in ("done", "total")]
    return SimpleNamespace(**{**dict.fromkeys(names, 0), **given})


def counted(done: int, total: int) -> float | None:
    return progress.phase_fraction(counters(bytes_done=done, bytes_total=total))


def test_a_stage_weighs_what_it_moves():
    stages = [Stage("elasticsearch", 100), Stage("files", 300)]

    assert progress.overall(stages, "elasticsearch: snapshot", counted(50, 100), 0) == 12
    assert progress.overall(stages, "files", counted(0, 10), 0) == 25
    assert progress.overall(stages, "files", counted(5, 10), 0) == 62
    assert progress.completed(stages, "elasticsearch: snapshot", 0) == 25


def test_the_figure_never_goes_back_and_never_reads_100_while_running():
    stages = [Stage("files", 10)]

    assert progress.overall(stages, "files", counted(10, 10), 0) == progress.RUNNING_CEILING
    assert progress.overall(stages, "files", counted(1, 10), 40) == 40, "a total learned late"
    assert progress.overall(stages, "record", None, 40) == 40, "a phase outside every stage"
    assert progress.completed(stages, "files", 0) == progress.RUNNING_CEILING


def test_a_stage_not_yet_weighed_counts_as_the_mean_of_the_others():
    stages = [Stage("elasticsearch", 200), Stage("files", None)]

    assert progress.completed(stages, "elasticsearch", 0) == 50
    assert progress.overall([Stage("a", 0), Stage("b", 0)], "b", 0.5, 0) == 75, "alike"


def test_a_phase_counts_bytes_before_files_and_files_before_shards():
    fraction = progress.phase_fraction(
        counters(bytes_done=1, bytes_total=4, files_done=9, files_total=10, shards_total=3)
    )
    only_shards = progress.phase_fraction(counters(shards_done=1, shards_total=4))

    assert fraction == 0.25 and only_shards == 0.25
    assert counted(0, 0) is None


def test_the_step_names_the_stage_and_how_many_there_are():
    stages = [Stage("safety backup", 1), Stage("elasticsearch", 1), Stage("files", 1)]

    assert progress.stage_position(stages, "safety backup: files") == (1, 3)
    assert progress.stage_position(stages, "files: swap") == (3, 3)
    assert progress.stage_position(stages, "verify") is None
    assert not Stage("files", 1).covers("filesystem"), "a stage covers its own phases only"


def test_the_step_counter_counts_the_phases_begun_and_the_stages_to_come():
    """Issue 25.1: "step 2 of 3" beside a list of 8 phases. The counter counts the list the
    page shows: the phases begun so far, then the stages no phase has reached yet."""
    stages = [Stage("checking the backup", 1), Stage("elasticsearch", 1), Stage("files", 1)]
    history = ["plan", "checking the backup", "safety backup", "pre-command"]

    assert progress.steps_to_come(stages, history) == ["elasticsearch", "files"]
    assert progress.step_position(stages, history) == (4, 6)
    assert progress.step_position(stages, [*history, "elasticsearch", "files: swap"]) == (6, 6)
    assert progress.step_position(stages, []) is None


def test_a_total_still_being_counted_holds_the_figure():
    floor = counters(files_done=5, files_total=9, bytes_done=5, bytes_total=9, totals_known=False)

    assert progress.phase_fraction(floor) is None
    assert progress.overall([Stage("files", 9)], "files", None, 30) == 30


@pytest.mark.django_db
def test_the_runner_writes_a_figure_that_goes_on_from_stage_to_stage():
    backup = Backup.objects.create(name="weighed", actor="t", status=Backup.Status.RUNNING)
    runner = running.ProgressWriter(backup)
    seen = []

    runner.plan_stages([Stage("elasticsearch", 100), Stage("files", 100)])
    runner.phase("elasticsearch: snapshot", reset_counters=True)
    runner.flush(bytes_done=50, bytes_total=100)
    seen.append(Backup.objects.get(pk=backup.pk).percent)
    runner.phase("files", reset_counters=True)  # the counters restart: the figure does not
    seen.append(Backup.objects.get(pk=backup.pk).percent)
    runner.flush(bytes_done=50, bytes_total=100, files_done=1, files_total=2)
    seen.append(Backup.objects.get(pk=backup.pk).percent)
    runner.phase("record")
    seen.append(Backup.objects.get(pk=backup.pk).percent)
    runner.finish(status=Backup.Status.SUCCEEDED, phase="done")
    seen.append(Backup.objects.get(pk=backup.pk).percent)

    assert seen == [25, 50, 75, 99, 100]


@pytest.mark.django_db
def test_a_stage_weighed_late_takes_the_total_its_files_report():
    backup = Backup.objects.create(name="late", actor="t", status=Backup.Status.RUNNING)
    runner = running.ProgressWriter(backup)
    runner.plan_stages([Stage("elasticsearch", 300), Stage("files", None)])
    runner.phase("files", reset_counters=True)

    runner.file_progress(progress_report(files=(1, 4), size=(25, 100)))

    row = Backup.objects.get(pk=backup.pk)
    assert row.stages == [
        {"name": "elasticsearch", "weight": 300},
        {"name": "files", "weight": 100},
    ]
    held = runner.run  # written with the next update, at most every half second
    assert (held.file_count, held.file_bytes, held.new_bytes) == (1, 25, 7), "the tiles fill in"


def progress_report(files, size):
    return FileProgress(files[0], files[1], size[0], size[1], new_bytes=7)


def grow(root, prefix: str, count: int, size: int = 1024) -> None:
    for top in ("artifacts", "csar", "plugins"):
        (root / top).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / top / f"{prefix}-{i:04}.bin").write_bytes(os.urandom(size))


def test_a_grown_data_dir_is_counted_ahead_of_the_copy_not_held_at_done_plus_a_constant(
    tmp_path,
):
    """Issues 15.5 and 25.1: the previous backup held 801 files, the data dir now 1,884. The
    totals start from the previous backup's; once the walk has met more files than it held,
    the data dir is counted on a thread of its own, ahead of the copy: until that count ends
    the totals are a floor and say so, then they are the count, long before the copy ends."""
    data, store = tmp_path / "data", Store(tmp_path / "storage")
    grow(data, "old", 267)
    store.backup_tree("first", data)
    grow(data, "new", 361)  # "new-*" sorts before "old-*": met in every directory
    seen: list[FileProgress] = []

    # a cap on the bytes read, so the copy lasts long enough for several reports
    store.backup_tree("second", data, previous="first", progress=seen.append, bandwidth=300_000)

    assert (seen[0].files_done, seen[0].files_total) == (0, 801), "the previous count at first"
    assert (seen[-1].files_done, seen[-1].files_total) == (1884, 1884), "exact at the end"
    assert seen[-1].total_known
    for field in ("files_done", "bytes_done"):
        figures = [getattr(p, field) for p in seen]
        assert figures == sorted(figures), f"{field} only rises"
    assert all(p.files_done <= p.files_total and p.bytes_done <= p.bytes_total for p in seen)
    during = [p for p in seen[1:-1] if 0 < p.files_done < 1884]
    assert len(during) >= 3, f"reports while copying: {during}"
    known = [p for p in during if p.total_known]
    assert all(p.files_done < p.files_total for p in known), "never at 100% before the end"
    counted = [p for p in during if p.files_total == 1884 and p.bytes_total == 1884 * 1024]
    assert counted and counted[0].files_done < 1200, f"counted ahead of the copy: {seen}"
    floors = [p.files_total for p in during if not p.total_known]
    assert floors == sorted(floors), "a floor still being counted never falls"
    assert all(p.new_bytes <= p.bytes_done for p in during) and during[-1].new_bytes > 0


def test_a_count_ahead_holds_what_it_has_counted_so_far_and_says_when_it_is_done(tmp_path):
    grow(tmp_path, "f", 100, size=10)
    ahead = CountAhead(tmp_path, frozenset({"plugins"}))

    wait_for(lambda: ahead.tally.finished, 30, "the count to end")

    assert (ahead.tally.files, ahead.tally.bytes) == (200, 2000), "excluded dirs left out"
    assert count_files(tmp_path, frozenset(), lambda: None) == (300, 3000)
    ahead.stop()


def watched(run_fn, pk: int, pause_points, stops: dict[str, int]):
    """Runs an operation on a thread, keeping (phase, percent) at every report it makes, and
    lets it go on from each of its ``stops`` (pause point: how many stops) in turn."""
    seen: list[tuple[str, int]] = []
    ended: dict = {}

    def run() -> None:
        try:
            ended["run"] = run_fn(pk, lambda row: seen.append((row.phase, row.percent)))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    for point, count in stops.items():
        for stop in range(1, count + 1):
            pause_points.reached(point, stop, timeout=60)
            pause_points.go(point, stop)
    thread.join(timeout=120)
    assert "run" in ended, "the operation ended"
    return ended["run"], seen


def rises(seen: list[tuple[str, int]]) -> bool:
    figures = [percent for _, percent in seen]
    return figures == sorted(figures)


@pytest.mark.django_db(transaction=True)
def test_a_backup_and_a_restore_report_one_figure_that_only_rises_to_100(
    small_a4c, cli_actor, pause_points
):
    """Against the real Elasticsearch and real files: each operation's figure goes up through
    its stages (the snapshot, the files; the check, the staging, the safety backup, the
    indices), is below 100 while it runs, and the safety backup's phase shows its own steps."""
    # more files than the copy holds in flight (the counters follow the files written down)
    grow(small_a4c.data_dir, "blob", 200, size=2_000)
    # held three times on its way through the files: each stop writes the row, and the figure
    pause_points.arm("backup-files", 0.25, 0.5, 0.75)
    backup = operations.request_backup(operations.BackupRequest(name="watched"), cli_actor)

    backup, seen = watched(operations.run_backup, backup.pk, pause_points, {"backup-files": 3})

    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    assert [s["name"] for s in backup.stages] == ["elasticsearch", "files"]
    assert backup.stages[0]["weight"] == sum(i["size"] for i in backup.indices.values())
    assert rises(seen) and seen[-1] == ("done", 100)
    assert all(percent < 100 for phase, percent in seen if phase != "done")
    in_files = [percent for phase, percent in seen if phase == "files"]
    assert len(set(in_files)) >= 3, f"the files phase moves the figure: {in_files}"

    run = operations.request_restore(
        operations.RestoreRequest(backup.pk), cli_actor, confirm=backup.name
    )
    pause_points.arm("restorerun-files", 0.5)
    pause_points.arm("backup-files", 0.5)  # the safety backup, half-way
    run, seen = watched(
        operations.run_restore,
        run.pk,
        pause_points,
        {"restorerun-files": 1, "backup-files": 1},
    )

    assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message
    assert [s["name"] for s in run.stages] == [
        "checking the backup",
        "files",
        "safety backup",
        "elasticsearch",
    ] or [s["name"] for s in run.stages] == ["files", "safety backup", "elasticsearch"]
    assert rises(seen) and seen[-1] == ("done", 100)
    assert all(percent < 100 for phase, percent in seen if phase != "done")
    safety_steps = {phase for phase, _ in seen if phase.startswith("safety backup: ")}
    assert {"safety backup: elasticsearch: snapshot", "safety backup: files"} <= safety_steps
    during_safety = [percent for phase, percent in seen if phase.startswith("safety backup")]
    assert during_safety[-1] > during_safety[0], "the safety backup moves the figure too"


@pytest.mark.django_db
def test_the_page_estimates_the_whole_run_from_its_pace_once_it_has_one():
    """Issue 25.1: the estimate line vanished at 99%. It says "estimating" for the first
    seconds and while the totals are still counted, then the time left at the measured pace,
    down to "less than a second"."""
    now = timezone.now()
    run = Backup(name="paced", actor="t", status=Backup.Status.RUNNING, percent=20)

    run.started_at = now - timedelta(seconds=1)
    assert progress_of(run).estimating, "no pace yet in the first seconds"
    run.started_at = now - timedelta(seconds=10)
    shown = progress_of(run)
    assert not shown.estimating and shown.remaining_text == "40 s", "the rest at the pace"
    run.totals_known = False
    assert progress_of(run).estimating, "no promise while the totals are counted"
    run.totals_known, run.percent = True, 99
    assert progress_of(run).remaining_text == "less than a second"
    run.finished_at = now
    assert not progress_of(run).estimating and progress_of(run).remaining is None


@pytest.mark.django_db
def test_shards_restored_move_the_figure_only_once_every_index_is_there():
    run = RestoreRun.objects.create(
        backup=Backup.objects.create(name="shards", actor="t", status=Backup.Status.SUCCEEDED),
        actor="t",
        status=RestoreRun.Status.RUNNING,
    )
    runner = running.ProgressWriter(run)
    runner.plan_stages([Stage("files", 100), Stage("elasticsearch", 100)])
    runner.phase("elasticsearch", reset_counters=True)
    floor = runner.run.percent

    runner.shard_progress(SimpleNamespace(done=8, total=8, missing=22))
    runner.flush()  # counters are written at most twice a second: now, here
    held = RestoreRun.objects.get(pk=run.pk)
    runner.shard_progress(SimpleNamespace(done=8, total=30, missing=0))
    runner.flush()
    row = RestoreRun.objects.get(pk=run.pk)

    assert held.percent == floor and not held.totals_known, "8 of 8 present is not the whole"
    assert row.percent == 63, "half for the files, and 8 of 30 of the other half"
    assert (row.shards_done, row.shards_total, row.totals_known) == (8, 30, True)
