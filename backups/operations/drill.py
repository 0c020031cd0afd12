"""Restore drills: a backup set restored where Alien4Cloud never reads it, checked against what
the backup recorded, timed, and removed, so that the set is proven restorable and the time a
restore takes is measured.

A drill is a Job of kind drill run by the lifecycle (operations/lifecycle.py) under the lock:
its steps below do the work, the lifecycle claims, audits (drill.run), beats, honours a cancel
and notifies. Its indices are restored under the drill's own hidden names (drill_scratch.py)
without aliases or global state, its files into a scratch dir; both are removed at its end,
whatever the end, and by the recovery when its worker dies. Nothing Alien4Cloud reads changes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from django.conf import settings

from backups import audit, progress
from backups.audit import Actor, Outcome
from backups.elastic import client as elastic
from backups.elastic import drills as elastic_drills
from backups.elastic import repository as repository_files
from backups.errors import BackupError, Busy, DamagedBackup, InvalidInput
from backups.models import Backup, Job, RunKind
from backups.operations import drill_cluster, drill_scratch, lifecycle, locking, records
from backups.operations.lookup import get_backup, get_job, succeeded_backup
from backups.operations.places import copy_options, store
from backups.operations.recovery import recover_stale_runs
from backups.operations.running import ProgressCallback, ProgressWriter
from backups.storage import IndexCount, WorkingTree

log = logging.getLogger("backups.operations")

DRILL_REQUEST = "drill.request"
# The longest a drill waits for the shards it restored to start.
RECOVERY_TIMEOUT_SECONDS = 3600.0
MAX_PROBLEMS = 100


@dataclasses.dataclass(frozen=True)
class DrillReport:
    """What a drill found and measured: the Job's result, and the command's report."""

    backup: str
    passed: bool
    problems: tuple[str, ...]
    # The measured time to restore each part (None: the part was not restored).
    elasticsearch_seconds: float | None = None
    files_seconds: float | None = None
    indices: int = 0
    documents: int = 0
    index_bytes: int = 0
    files: int = 0
    file_bytes: int = 0
    # Each index's aliases, listed from the snapshot's own metadata: a drill restores none.
    aliases: dict = dataclasses.field(default_factory=dict)
    aliases_unread: str = ""  # why they could not be listed
    restored_in: str = ""  # "live cluster", or "scratch cluster <its A4C_DRILL_ES_URLS>"

    @property
    def restore_seconds(self) -> float:
        return (self.elasticsearch_seconds or 0.0) + (self.files_seconds or 0.0)

    def as_result(self) -> dict:
        found = dataclasses.asdict(self)
        found["problems"] = list(self.problems[:MAX_PROBLEMS])
        found["problem_count"] = len(self.problems)
        found["restore_seconds"] = round(self.restore_seconds, 3)
        found["outcome"] = "passed" if self.passed else "failed"
        return found


class DrillFailed(BackupError):
    """The set did not restore as recorded: the drill did its work, and this is its verdict."""

    exit_code = 5

    def __init__(self, report: DrillReport):
        self.report = report
        count = len(report.problems)
        super().__init__(
            f"backup {report.backup} failed its restore drill: {count} problem"
            f"{'s' if count != 1 else ''}, first: {report.problems[0]}"
        )


def drillable(backup_id: int | str) -> Backup:
    backup = get_backup(backup_id)
    succeeded_backup(backup, "drilled")
    drill_scratch.check_prefix()
    return backup


def request_drill(backup_id: int | str, actor: Actor, *, wait: float = 0.0) -> Job:
    """Asks for a drill of a backup: its row is created with the lock (one operation at a
    time: a drill's restore must not race a backup or a restore), or Busy names the holder."""
    backup = drillable(backup_id)

    def refused(busy: Busy) -> None:
        audit.record(
            actor,
            DRILL_REQUEST,
            target=backup.name,
            backup=backup,
            outcome=Outcome.REFUSED,
            message=str(busy),
        )

    job = locking.create_claimed(
        RunKind.DRILL,
        backup.name,
        actor,
        Job,
        {"kind": RunKind.DRILL, "backup": backup},
        wait=wait,
        refused=refused,
        recover=recover_stale_runs,
    )
    audit.record(actor, DRILL_REQUEST, target=backup.name, backup=backup, outcome=Outcome.REQUESTED)
    return job


def run_drill(job_id: int, progress: ProgressCallback = None) -> Job:
    """The drill request_drill asked for (a worker's door); the row says how it ended."""
    return lifecycle.run(get_job(job_id, RunKind.DRILL), DrillRun(), progress)


def drill_now(job_id: int, progress: ProgressCallback = None) -> DrillReport:
    """Runs a requested drill in this process (the command line): its report, passed or not;
    raises what stopped the drill itself (Elasticsearch, no room on disk, a cancel)."""
    kind = DrillRun()
    lifecycle.run(get_job(job_id, RunKind.DRILL), kind, progress)
    if isinstance(kind.raised, DrillFailed):
        return kind.raised.report
    if kind.raised is not None:
        raise kind.raised
    return kind.report


class DrillRun(lifecycle.JobKind):
    """A drill's steps; its verdict on the Job's result. Problems found fail the run (the set
    does not restore as recorded) and say which index or file."""

    name = RunKind.DRILL
    report: DrillReport

    def steps(self, job: Job, runner: ProgressWriter) -> dict:
        backup = job.backup
        succeeded_backup(backup, "drilled")  # deleted since it was asked
        drill_scratch.check_prefix()
        with_indices = backup.include_elasticsearch and bool(backup.indices)
        stages = []
        if with_indices:
            size = sum(int(i.get("size") or 0) for i in backup.indices.values())
            stages.append(progress.Stage("elasticsearch", size or None))
        if backup.include_files:
            stages.append(progress.Stage("files", backup.file_bytes or None))
        runner.plan_stages(stages)
        problems: list[str] = []
        figures: dict = {"backup": backup.name}
        if with_indices:
            figures.update(elasticsearch_part(job, backup, runner, problems))
        if backup.include_files:
            figures.update(files_part(job, backup, runner, problems))
        self.report = DrillReport(passed=not problems, problems=tuple(problems), **figures)
        job.result = self.report.as_result()
        if problems:
            raise DrillFailed(self.report)
        return {"restore_seconds": job.result["restore_seconds"]}

    def succeeded(self, job: Job, parameters: dict) -> lifecycle.Ending:
        ending = super().succeeded(job, parameters)
        ending.fields["result"] = job.result
        return ending

    def failed(self, job: Job, runner: ProgressWriter, exc: Exception) -> lifecycle.Ending:
        ending = super().failed(job, runner, exc)
        if isinstance(exc, DrillFailed):
            problems = exc.report.problems
            ending.fields["result"] = job.result
            ending.fields["error_detail"] = "\n".join(problems[:MAX_PROBLEMS])
            ending.message = "; ".join(problems[:5])
            ending.parameters = {"problems": len(problems)}
        return ending

    def closing(self, job: Job, runner: ProgressWriter, ending: lifecycle.Ending) -> None:
        """Whatever the end, what the drill restored goes; what could not, is said."""
        try:
            left = drill_scratch.remove_all(job.pk)
        except Exception as exc:  # closing never raises: the run must still end
            left = [f"what it restored could not be removed: {exc}"]
        if left:
            note = "The drill's leftovers: " + "; ".join(left)
            ending.message = f"{ending.message} {note}".strip()
            ending.fields["error_message"] = (
                f"{ending.fields.get('error_message', '')} {note}".strip()
            )

    def after(self, job: Job, actor: Actor) -> None:
        """The set's record in the storage keeps the evidence of its last drill."""
        try:
            records.rewrite_record(job.backup)
        except BackupError as exc:
            log.warning("the record of %s could not keep its drill: %s", job.backup.name, exc)

    def notice(self, job: Job) -> lifecycle.Notice | None:
        if job.status != Job.Status.FAILED or not job.result:
            return None  # only a verdict is news; a drill that could not run is not
        return lifecycle.Notice(
            "backup.drill_failed",
            f"Backup {job.backup.name} failed its restore drill",
            job.error_message,
            {"backup": job.backup.name, "problems": job.result.get("problem_count", 0)},
        )


def elasticsearch_part(
    job: Job, backup: Backup, runner: ProgressWriter, problems: list[str]
) -> dict:
    """The set's indices restored under the drill's names (in the live cluster, or on the
    scratch cluster), timed, and read back against what the backup recorded: the figures of
    the part (its problems appended to ``problems``)."""
    recorded = {name: IndexCount.of(i) for name, i in backup.indices.items()}
    where = backup.snapshot_location
    runner.phase("elasticsearch: snapshot")
    target = drill_cluster.drill_target(job, backup)
    cluster = target.cluster
    if target.scratch:
        snap = drill_cluster.scratch_snapshot(target, backup)
    else:
        snap = cluster.snapshot(target.repository, where.snapshot)
    if snap is None:
        problems.append(f"{where} is missing: none of the set's indices can be restored")
        return {}
    if not snap.succeeded:
        problems.append(f"{where} is {snap.state}, not a whole snapshot: it cannot be restored")
        return {}
    cannot = cluster.cannot_restore(snap.version)
    if cannot and target.scratch:  # the scratch cluster's shortcoming, not the set's
        drill_cluster.too_old(cannot, where)
    if cannot:
        problems.append(f"{where} cannot be restored here: {cannot}")
        return {}
    for name in sorted(set(recorded) - set(snap.indices)):
        problems.append(
            f"index {name}: the backup recorded it ({recorded[name].docs} documents) but its "
            "snapshot does not hold it"
        )
    present = sorted(set(recorded) & set(snap.indices))
    described, unread = snapshot_metadata(target.location, where)
    for name in present:
        problems.extend(alias_problems(name, recorded[name], described.get(name)))
    needed = sum(recorded[name].size for name in present)
    check_room(cluster, needed)
    prefix = drill_scratch.index_prefix(job.pk)
    runner.phase("elasticsearch: restore", reset_counters=True)
    started = time.monotonic()
    names = elastic_drills.restore_renamed(
        cluster, target.repository, where.snapshot, present, prefix
    )
    cluster.wait_for_recovery(
        names,
        on_progress=runner.shard_progress,
        timeout=RECOVERY_TIMEOUT_SECONDS,
    )
    runner.flush()
    seconds = time.monotonic() - started
    runner.phase("elasticsearch: check")
    found = elastic_drills.read_back(cluster, names, settings.A4C_DRILL_SAMPLE_DOCS)
    for name in present:
        got = found.get(prefix + name)
        problems.extend(index_problems(name, recorded[name], got))
        if got is not None and name in described:
            problems.extend(as_described(name, described[name], got, bool(recorded[name].mapping)))
    figures = {
        "elasticsearch_seconds": round(seconds, 3),
        "indices": len(present),
        "documents": sum(i.docs for i in found.values()),
        "index_bytes": needed,
        "aliases": {n: list(described[n].aliases) for n in present if n in described},
        "restored_in": (
            "scratch cluster " + ", ".join(settings.A4C_DRILL_ES_URLS)
            if target.scratch
            else "live cluster"
        ),
    }
    if unread:
        figures["aliases_unread"] = unread
    return figures


def snapshot_metadata(
    location: str, where
) -> tuple[dict[str, repository_files.SnapshotIndex], str]:
    """Each index as the snapshot's own metadata describes it (its aliases, its primaries),
    read from the repository's files; or, when this machine cannot read them, why."""
    if not location:
        return {}, f"the cluster does not say where repository {where.repository} is"
    try:
        return repository_files.snapshot_indices(Path(location), where.snapshot), ""
    except BackupError as exc:
        return {}, f"the snapshot's metadata could not be read on this machine: {exc}"


def shaping(settings: dict) -> dict:
    """The settings that shape how an index's data was written and is read: its primaries and
    its analysis (what a restore must keep; replicas, names and ids it may change)."""
    return {
        key: value
        for key, value in settings.items()
        if key == "index.number_of_shards" or key.startswith("index.analysis.")
    }


def as_described(
    name: str,
    described: repository_files.SnapshotIndex,
    got: elastic_drills.RestoredIndex,
    mapping_recorded: bool,
) -> list[str]:
    """How a restored index differs from the snapshot's own description of it: the settings
    that shape its data, and (when the backup recorded none) its mapping."""
    problems = []
    want, have = shaping(described.settings), shaping(got.settings)
    differing = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
    if differing:
        problems.append(
            f"index {name}: its restored settings {', '.join(differing)} differ from its snapshot's"
        )
    if not mapping_recorded and got.mapping_sha256 != elastic_drills.mapping_digest(
        described.mapping
    ):
        problems.append(f"index {name}: its restored mapping is not the one its snapshot holds")
    return problems


def alias_problems(
    name: str, recorded: IndexCount, described: repository_files.SnapshotIndex | None
) -> list[str]:
    """The aliases the backup recorded against those its snapshot holds (a backup taken before
    drills recorded none: nothing to compare)."""
    if described is None or not recorded.mapping:
        return []
    if tuple(sorted(recorded.aliases)) == described.aliases:
        return []
    return [
        f"index {name}: the backup recorded the aliases {', '.join(recorded.aliases) or '(none)'}"
        f" but its snapshot holds {', '.join(described.aliases) or '(none)'}"
    ]


def index_problems(
    name: str, recorded: IndexCount, got: elastic_drills.RestoredIndex | None
) -> list[str]:
    """How one restored index differs from what the backup recorded of it."""
    if got is None:
        return [f"index {name}: it was not restored"]
    problems = []
    if recorded.docs is not None and got.docs != recorded.docs:
        problems.append(
            f"index {name}: {got.docs} documents restored, the backup recorded {recorded.docs}"
        )
    if recorded.mapping and got.mapping_sha256 != recorded.mapping:
        problems.append(f"index {name}: its restored mapping is not the one the backup recorded")
    if got.read_back < got.sampled:
        problems.append(
            f"index {name}: {got.read_back} of {got.sampled} sampled documents read back whole"
        )
    return problems


def check_room(cluster: elastic.Cluster, needed: int) -> None:
    """Refuses, with the figures, a drill whose indices would take a data node past its high
    disk watermark (Elasticsearch would stop allocating shards there, Alien4Cloud's too)."""
    for room in elastic_drills.disk_rooms(cluster):
        if not room.fits(needed):
            raise InvalidInput(
                f"A drill of this set needs {needed:,} bytes on Elasticsearch node {room.node}, "
                f"which has {room.available:,} bytes available and must keep {room.keep_free:,} "
                f"free (high disk watermark {room.watermark}): free space there first."
            )


def files_part(job: Job, backup: Backup, runner: ProgressWriter, problems: list[str]) -> dict:
    """The set's files restored into the drill's scratch dir, timed, then every file re-hashed
    and its mode, owner, times and link compared with the manifest."""
    runner.phase("files: restore", reset_counters=True)
    if not store().manifests.exists(backup.name):
        problems.append(f"the file manifest of {backup.name} is missing")
        return {}
    options = copy_options()
    tree = WorkingTree(store(), drill_scratch.scratch_dir(job.pk) / "data")
    started = time.monotonic()
    try:
        restored = tree.restore(
            backup.name, options=options, progress=runner.file_progress, check=runner.check
        )
    except DamagedBackup as exc:
        problems.append(str(exc))
        return {}
    seconds = time.monotonic() - started
    runner.phase("files: check")
    problems.extend(tree.differences(backup.name, exclude_dirs=options.exclude_dirs))
    return {
        "files_seconds": round(seconds, 3),
        "files": restored.files,
        "file_bytes": restored.bytes,
    }
