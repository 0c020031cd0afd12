"""Restore drills against the real Elasticsearch and real files: a healthy set passes and leaves
everything Alien4Cloud reads byte-identical; a damaged set fails naming the damage; a dead
drill's leftovers go with the recovery; the command's exit codes and --json."""

from __future__ import annotations

import json
import os
import shutil
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from commands import manage
from django.utils import timezone
from fault_support import wait_for

from backups import operations, selectors, tasks
from backups.demo import generator as demo
from backups.elastic import drills as elastic_drills
from backups.elastic import repository as repository_files
from backups.errors import Cancelled, ConfigError
from backups.management import arguments
from backups.models import (
    AuditEvent,
    Backup,
    Job,
    NotificationDelivery,
    OperationLock,
    RunKind,
)
from backups.operations import drill_scratch, records
from backups.operations.places import store
from backups.operations.recovery import recover_stale_runs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backup(small_a4c, drill_place, cli_actor) -> Backup:
    return operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="nightly"), cli_actor).pk
    )


def files_state(root: Path) -> dict[str, tuple]:
    """Every path under root: its type, mode, times and bytes (or link target)."""
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top) / name
            st = path.lstat()
            if path.is_symlink():
                body = os.readlink(path)
            elif path.is_file():
                body = path.read_bytes()
            else:
                body = None
            found[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, st.st_uid, body)
    return found


def drill(backup: Backup, actor, progress=None) -> tuple[Job, operations.DrillReport]:
    job = operations.request_drill(backup.pk, actor)
    report = operations.drill_now(job.pk, progress)
    job.refresh_from_db()
    return job, report


def leftovers(a4c, job: Job) -> tuple[list[str], bool]:
    """The drill's indices still in the cluster, and whether its scratch dir is still there."""
    names = elastic_drills.indices_named(a4c.cluster, drill_scratch.index_prefix(job.pk))
    return names, drill_scratch.scratch_dir(job.pk).exists()


def test_a_healthy_set_passes_and_leaves_what_alien4cloud_reads_byte_identical(
    backup, small_a4c, cli_actor
):
    a4c = small_a4c
    es_before, files_before = a4c.state(), files_state(a4c.data_dir)
    alias = a4c.index("apps")
    seen = {}

    def watch(row) -> None:
        if row.phase == "elasticsearch: check" and "indices" not in seen:
            seen["indices"] = elastic_drills.indices_named(
                a4c.cluster, drill_scratch.index_prefix(row.pk)
            )
            seen["alias"] = sorted(a4c.cluster.client.indices.get_alias(name=alias))
            # what "*" names (A4C_INDEX_INCLUDE's default); not counted: other tests'
            # indices come and go in this shared cluster
            listed = a4c.cluster.client.cat.indices(index="*", h="index", format="json")
            seen["listed"] = sorted(row["index"] for row in listed)

    job, report = drill(backup, cli_actor, watch)

    assert report.passed, report.problems
    assert job.status == Job.Status.SUCCEEDED and job.result["outcome"] == "passed"
    assert (report.indices, report.documents) == (2, 41)
    assert (report.files, report.file_bytes) == (2, 5009)
    assert report.elasticsearch_seconds > 0 and report.files_seconds > 0
    assert job.result["restore_seconds"] == pytest.approx(report.restore_seconds, abs=0.01)
    # listed from the snapshot's own metadata, not restored
    assert report.aliases == {a4c.index("application"): [alias], a4c.index("user"): []}
    assert report.aliases_unread == ""
    prefix = drill_scratch.index_prefix(job.pk)
    # while it ran: its indices were there, under hidden names, and no alias moved to them
    assert seen["indices"] == [prefix + a4c.index("application"), prefix + a4c.index("user")]
    assert seen["alias"] == [a4c.index("application")]
    assert not any(name.startswith(prefix) for name in seen["listed"])
    # after it: everything as before, and nothing of the drill left
    assert a4c.state() == es_before
    assert files_state(a4c.data_dir) == files_before
    assert leftovers(a4c, job) == ([], False)
    assert not OperationLock.objects.get(pk=1).kind
    assert selectors.last_drill(backup) == job
    assert selectors.newest_proven_backup() == job
    assert selectors.drill_outcome(job) == "passed"
    # read back through the one seam for records: signed, and its schema takes the evidence
    evidence = records.read_signed_record("nightly").record.last_drill
    assert evidence["outcome"] == "passed" and evidence["by"] == job.actor
    assert evidence["restore_seconds"] == job.result["restore_seconds"]
    outcomes = list(
        AuditEvent.objects.filter(action="drill.run", backup=backup).values_list(
            "outcome", flat=True
        )
    )
    assert sorted(outcomes) == ["started", "succeeded"]


def test_it_runs_as_a_job_of_its_kind(backup, cli_actor):
    job = operations.request_drill(backup.pk, cli_actor)

    ended = operations.run_job(job.pk)

    assert ended.kind == RunKind.DRILL and ended.status == Job.Status.SUCCEEDED
    assert ended.result["indices"] == 2


def test_a_flipped_byte_in_a_stored_blob_fails_naming_the_file(
    backup, small_a4c, cli_actor, settings, mailoutbox
):
    settings.A4C_NOTIFY_EMAILS = ["ops@example.org"]
    entry = next(e for e in store().manifests.entries("nightly") if e.path == "images/logo.png")
    blob = Path(store().blob_path(entry.sha256))
    data = bytearray(blob.read_bytes())
    data[100] ^= 0x01
    blob.write_bytes(bytes(data))

    job, report = drill(backup, cli_actor)

    assert not report.passed
    assert len(report.problems) == 1 and "images/logo.png" in report.problems[0]
    assert "corrupt" in report.problems[0]
    assert report.elasticsearch_seconds is not None, "the indices were still drilled"
    assert job.status == Job.Status.FAILED and "images/logo.png" in job.error_message
    assert selectors.drill_outcome(job) == "failed"
    assert selectors.newest_proven_backup() is None
    assert leftovers(small_a4c, job) == ([], False)
    delivery = NotificationDelivery.objects.get(event="backup.drill_failed")
    assert delivery.ok and delivery.payload["data"] == {"backup": "nightly", "problems": 1}
    assert mailoutbox[0].subject.endswith("Backup nightly failed its restore drill")
    assert "images/logo.png" in mailoutbox[0].body


def test_a_deleted_snapshot_fails_the_drill(backup, small_a4c, cli_actor):
    where = backup.snapshot_location
    assert small_a4c.cluster.delete_snapshot(where.repository, where.snapshot)

    job, report = drill(backup, cli_actor)

    assert not report.passed
    assert report.problems == (f"{where} is missing: none of the set's indices can be restored",)
    assert report.files_seconds is not None, "the files were still drilled"
    assert job.status == Job.Status.FAILED


def test_an_index_missing_from_the_snapshot_or_short_of_documents_fails_naming_it(
    backup, small_a4c, cli_actor
):
    a4c = small_a4c
    recorded = dict(backup.indices)
    recorded[a4c.index("ghost")] = {"docs": 3, "size": 100}
    recorded[a4c.index("application")] = {**recorded[a4c.index("application")], "docs": 39}
    Backup.objects.filter(pk=backup.pk).update(indices=recorded)

    job, report = drill(backup, cli_actor)

    assert sorted(report.problems) == [
        f"index {a4c.index('application')}: 40 documents restored, the backup recorded 39",
        f"index {a4c.index('ghost')}: the backup recorded it (3 documents) but its snapshot "
        "does not hold it",
    ]
    assert job.status == Job.Status.FAILED
    assert leftovers(a4c, job) == ([], False)


def test_a_changed_mapping_fails_the_drill(backup, small_a4c, cli_actor):
    recorded = dict(backup.indices)
    name = small_a4c.index("user")
    recorded[name] = {**recorded[name], "mapping": "0" * 64}
    Backup.objects.filter(pk=backup.pk).update(indices=recorded)

    _, report = drill(backup, cli_actor)

    assert report.problems == (
        f"index {name}: its restored mapping is not the one the backup recorded",
    )


def test_aliases_the_snapshot_does_not_hold_as_recorded_fail_naming_the_index(
    backup, small_a4c, cli_actor
):
    recorded = dict(backup.indices)
    name = small_a4c.index("user")
    recorded[name] = {**recorded[name], "aliases": ["t-everyone"]}
    Backup.objects.filter(pk=backup.pk).update(indices=recorded)

    _, report = drill(backup, cli_actor)

    assert report.problems == (
        f"index {name}: the backup recorded the aliases t-everyone but its snapshot holds (none)",
    )


def test_a_drill_cancelled_while_restoring_files_leaves_nothing_behind(
    backup, small_a4c, cli_actor
):
    job = operations.request_drill(backup.pk, cli_actor)
    seen = {}

    def cancel_during_files(row) -> None:
        if row.phase == "files: restore" and not seen:
            seen["indices"] = leftovers(small_a4c, row)[0]
            operations.cancel(RunKind.DRILL, row.pk, cli_actor)

    with pytest.raises(Cancelled):
        operations.drill_now(job.pk, cancel_during_files)

    job.refresh_from_db()
    assert len(seen["indices"]) == 2, "its indices were restored when it was cancelled"
    assert job.status == Job.Status.CANCELLED
    assert leftovers(small_a4c, job) == ([], False)
    assert not OperationLock.objects.get(pk=1).kind
    assert selectors.newest_proven_backup() is None


def test_a_dead_drill_leaves_no_index_and_no_scratch_dir_after_the_recovery(
    backup, small_a4c, cli_actor, settings
):
    a4c = small_a4c
    job = operations.request_drill(backup.pk, cli_actor)
    started = timezone.now()
    assert job.transition(Job.Status.RUNNING, started_at=started, heartbeat_at=started)
    Job.objects.filter(pk=job.pk).update(phase="files: restore")
    # what it had done when its worker died: its indices restored, its files half copied
    where = backup.snapshot_location
    names = elastic_drills.restore_renamed(
        a4c.cluster,
        where.repository,
        where.snapshot,
        [a4c.index("user")],
        drill_scratch.index_prefix(job.pk),
    )
    a4c.cluster.wait_for_recovery(names)
    scratch = drill_scratch.scratch_dir(job.pk) / "data" / "csar"
    scratch.mkdir(parents=True)
    (scratch / "half.yml").write_text("tosca")
    assert leftovers(a4c, job) == (names, True)

    later = started + timedelta(seconds=settings.A4C_STALE_AFTER_SECONDS + 60)
    notes = recover_stale_runs(now=later)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "indices, scratch dir" in job.error_message
    assert any(note.startswith(f"drill #{job.pk} of nightly") for note in notes)
    assert leftovers(a4c, job) == ([], False)
    assert not OperationLock.objects.get(pk=1).kind
    assert AuditEvent.objects.filter(action="drill.recover", backup=backup).exists()


def test_a_drill_killed_in_a_real_worker_is_cleaned_up_by_the_recovery(
    a4c, drill_place, start_worker, worker_env, settings, cli_actor
):
    """The worker copies under a 1 MiB/s cap (A4C_FILE_BANDWIDTH), so 16 MiB of files take 15 s
    at least: the kill lands while the drill restores them, its indices already restored."""
    demo.generate(a4c.data_dir, prefix=a4c.prefix, cluster=a4c.cluster, size=16 << 20, files=400)
    backup = operations.run_backup(
        operations.request_backup(operations.BackupRequest(name="big"), cli_actor).pk
    )
    assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
    worker = start_worker(
        **worker_env,
        A4C_FILE_BANDWIDTH="1M",
        A4C_DRILL_INDEX_PREFIX=settings.A4C_DRILL_INDEX_PREFIX,
        A4C_DRILL_DIR=settings.A4C_DRILL_DIR,
    )
    job = operations.request_drill(backup.pk, cli_actor)
    tasks.enqueue(RunKind.DRILL, job.pk, cli_actor)
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, phase="files: restore", bytes_done__gt=0).exists(),
        timeout=120,
        what="the drill restoring files",
    )
    start_worker.kill(worker)
    job.refresh_from_db()
    indices, scratch = leftovers(a4c, job)
    assert job.status == Job.Status.RUNNING and indices and scratch, "it left them behind"

    settings.A4C_STALE_AFTER_SECONDS = 1
    notes = recover_stale_runs(now=timezone.now() + timedelta(seconds=1.5))

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "stopped answering during files: restore" in job.error_message
    assert any(note.startswith(f"drill #{job.pk} of big") for note in notes)
    assert leftovers(a4c, job) == ([], False)
    assert not OperationLock.objects.get(pk=1).kind


def test_a_prefix_that_alien4cloud_would_take_is_refused(
    backup, small_a4c, settings, capsys, cli_actor
):
    settings.A4C_DRILL_INDEX_PREFIX = f"{small_a4c.prefix}drill-"

    with pytest.raises(ConfigError, match="A4C_DRILL_INDEX_PREFIX"):
        operations.request_drill(backup.pk, cli_actor)
    ran = manage(capsys, "drill", "nightly")

    assert ran.code == arguments.USAGE
    assert "A4C_INDEX_INCLUDE" in ran.err
    assert not Job.objects.filter(kind=RunKind.DRILL).exists()


def test_the_command_passes_with_exit_0_and_prints_the_measured_restore_time(backup, capsys):
    ran = manage(capsys, "drill", "nightly")

    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0].startswith("elasticsearch: 2 indices, 41 documents restored in ")
    assert lines[1].startswith("files: 2 files, 5,009 bytes restored in ")
    assert lines[-1].startswith("backup nightly passed its restore drill: measured restore time ")


def test_the_command_drills_the_latest_backup_as_json(backup, capsys):
    ran = manage(capsys, "drill", "--latest", "--json")

    assert ran.code == 0, ran.err
    report = json.loads(ran.out)
    assert report["backup"] == "nightly" and report["outcome"] == "passed"
    assert report["problems"] == [] and report["restore_seconds"] > 0
    assert Job.objects.get(pk=report["drill"]).status == Job.Status.SUCCEEDED


def test_the_command_exits_5_when_the_set_does_not_restore_as_recorded(backup, capsys):
    shutil.rmtree(Path(store().blob_path("0" * 64)).parent.parent)  # every stored blob

    ran = manage(capsys, "drill", "nightly", "--json")

    assert ran.code == arguments.VERIFY_FAILED
    report = json.loads(ran.out)
    assert report["outcome"] == "failed" and report["problem_count"] == 1
    assert "is missing" in report["problems"][0]
    assert ran.err.startswith("error: backup nightly failed its restore drill: 1 problem")


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["drill"], arguments.USAGE),
        (["drill", "nightly", "--latest"], arguments.USAGE),
        (["drill", "no-such-backup"], arguments.NOT_FOUND),
    ],
)
def test_the_command_says_what_is_wrong_with_its_arguments(backup, capsys, argv, code):
    ran = manage(capsys, *argv)

    assert ran.code == code
    assert ran.err.startswith("error: ")


def test_the_high_watermark_is_read_as_elasticsearch_states_it():
    gib = 2**30
    assert elastic_drills.watermark_free("90%", "150GB", 100 * gib) == 10 * gib
    assert elastic_drills.watermark_free("90%", "1gb", 100 * gib) == gib
    assert elastic_drills.watermark_free("0.95", "", 100 * gib) == 5 * gib
    assert elastic_drills.watermark_free("500mb", "", 100 * gib) == 500 * 2**20
    room = elastic_drills.DiskRoom("es-1", 100 * gib, 12 * gib, 10 * gib, "90%")
    assert room.fits(2 * gib) and not room.fits(2 * gib + 1)


def test_the_cluster_has_room_for_a_small_drill(backup, small_a4c):
    rooms = elastic_drills.disk_rooms(small_a4c.cluster)

    assert rooms and all(room.total > room.available > 0 for room in rooms)
    assert all(room.fits(10_000) for room in rooms)


def test_show_tells_the_last_drill(backup, capsys, cli_actor):
    _, report = drill(backup, cli_actor)

    shown = manage(capsys, "show", "nightly")
    as_json = json.loads(manage(capsys, "show", "nightly", "--json").out)

    line = next(x for x in shown.out.splitlines() if x.startswith("last drill:"))
    assert line.endswith(f": passed, measured restore time {report.restore_seconds:.1f} s")
    assert as_json["last_drill"]["outcome"] == "passed" and not as_json["last_drill"]["problems"]


def test_a_snapshot_s_mapping_and_settings_read_as_the_cluster_shows_them():
    typed = {"_doc": {"properties": {"a": {"type": "long"}}}}
    deflated = b"DFL\x00" + (lambda c: c.compress(json.dumps(typed).encode()) + c.flush())(
        zlib.compressobj(wbits=-15)
    )
    assert repository_files.typeless_mapping([typed]) == typed["_doc"]
    assert repository_files.typeless_mapping([deflated]) == typed["_doc"]
    assert repository_files.typeless_mapping([typed["_doc"]]) == typed["_doc"]
    assert repository_files.typeless_mapping([]) == {}
    nested = {"index": {"number_of_shards": 2, "analysis": {"analyzer": {"a": {"type": "x"}}}}}
    assert repository_files.flat_settings(nested) == {
        "index.number_of_shards": "2",
        "index.analysis.analyzer.a.type": "x",
    }
