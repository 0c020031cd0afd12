"""The steps of a backup, shared by backups and by the safety backup a restore takes first:
the Elasticsearch snapshot, the files, and ending a run that did not succeed."""

from __future__ import annotations

import logging
import os

from django.conf import settings
from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.elastic import client as elastic
from backups.elastic import drills as elastic_drills
from backups.errors import (
    BackupError,
    Cancelled,
    ElasticError,
    InvalidInput,
)
from backups.models import Backup, RestoreRun
from backups.operations import records, running
from backups.operations.names import default_backup_name
from backups.operations.places import a4c_indices, copy_options, data_dir, store, working_tree
from backups.operations.running import short_trace
from backups.progress import Stage
from backups.selectors import previous_backup
from backups.storage import HeldLease

log = logging.getLogger("backups.operations")


def finish_set(backup: Backup, runner: running.ProgressWriter) -> None:
    """Writes the set's record into the storage, the last step before the backup may be
    called succeeded: a set that the storage cannot describe is not one a new machine could
    restore."""
    runner.phase("record")
    runner.update(finished_at=timezone.now(), set_id=backup.set_id or records.new_set_id())
    records.write_record(backup)


def plan_backup_stages(backup: Backup, runner: running.ProgressWriter) -> tuple[int, int] | None:
    """The stages a backup passes through, weighed by the previous backup's figures (the live
    index sizes replace them once listed). With no previous backup of the files, they are
    counted now, before the snapshot, so that its share of the bar is right: the count (files,
    bytes) is returned for the files phase, which does not walk for it again."""
    stages = []
    if backup.include_elasticsearch:
        last = previous_backup(backup, include_elasticsearch=True)
        size = sum(i.get("size", 0) for i in last.indices.values()) if last else None
        stages.append(Stage("elasticsearch", size))
    counted = None
    if backup.include_files:
        last = last_backup_with_files(backup)
        if last is None and data_dir().is_dir():
            runner.phase("counting files")
            excludes = copy_options().exclude_dirs
            counted = working_tree().count(excludes, runner.check)
        stages.append(Stage("files", last.file_bytes if last else counted and counted[1]))
    runner.plan_stages(stages)
    return counted


def discard_backup(
    backup: Backup,
    message: str,
    detail: str = "",
    *,
    free_blobs: bool = False,
    own: HeldLease | None = None,
) -> dict:
    """Removes what a failed or cancelled backup had half written; the fields its row ends
    with (its status is the caller's transition).

    With free_blobs (only while this process holds the lock for it), the blobs it stored that
    no other backup names are removed too (``own``: the lease of the run it is part of, which
    does not hold them back; other runs' leases do): a backup that filled the disk must not leave it
    full for the next one, or for the safety backup of a restore.
    """
    cleanup = []
    if backup.snapshot_name:
        try:
            elastic.cluster().delete_snapshot(backup.repository, backup.snapshot_name)
        except BackupError as exc:
            cleanup.append(f"the partial snapshot could not be removed: {exc}")
    try:
        store().discard_partial(backup.name)
        store().manifests.delete(backup.name)
        records.forget_record(backup.name)
    except BackupError as exc:
        cleanup.append(f"the partial manifest could not be removed: {exc}")
    if free_blobs and backup.include_files:
        try:
            freed = store().collect_garbage(own=own)
            for note in freed.notes():
                log.warning("freeing the blobs of %s: %s", backup.name, note)
        except BackupError as exc:
            cleanup.append(f"the blobs it stored could not be freed: {exc}")
    if cleanup:
        message = f"{message} Also, {'; '.join(cleanup)}."
    return {
        "finished_at": timezone.now(),
        "error_message": message,
        "error_detail": detail,
        "snapshot_name": "",
        # the figures shown while it ran: it holds none of it now
        "file_count": 0,
        "file_bytes": 0,
        "new_bytes": 0,
    }


def backup_elasticsearch(
    backup: Backup, runner: running.ProgressWriter, indices: list[str] | None = None
) -> None:
    cluster = elastic.cluster()
    runner.phase("elasticsearch: preparing")
    info = cluster.info()
    repository = settings.A4C_ES_REPOSITORY
    cluster.ensure_repository(repository, settings.A4C_ES_REPOSITORY_PATH)
    if indices is None:
        found = a4c_indices(cluster, backup.index_patterns or None)
        if backup.index_patterns and not found:
            raise InvalidInput(f"No index matches {', '.join(backup.index_patterns)}.")
    else:  # a safety backup: exactly the indices a restore is about to overwrite
        found = cluster.indices(include=indices) if indices else {}
        lost = sorted(n for n, i in found.items() if i.lost_a_primary)
        if lost:  # a primary is gone (the node died mid-restore): nothing in it to save
            found = {n: i for n, i in found.items() if n not in lost}
            backup.warnings = [
                *backup.warnings,
                f"Left out, having lost a primary shard (nothing in them to save): "
                f"{', '.join(lost)}.",
            ]
    # what a restore drill checks besides the counts (operations/drill.py)
    facts = elastic_drills.recorded_facts(cluster, list(found))
    runner.update(
        es_version=info.version,
        es_cluster_name=info.cluster_name,
        es_cluster_uuid=info.cluster_uuid,
        repository=repository,
        indices={
            name: {"docs": i.docs, "size": i.size, **facts.get(name, {})}
            for name, i in found.items()
        },
        warnings=backup.warnings,
    )
    runner.weigh_stage("elasticsearch", sum(i.size for i in found.values()))
    if not found:
        return
    runner.phase("elasticsearch: snapshot", reset_counters=True)
    metadata = {"a4c_backup": backup.name, "requested_by": backup.actor, "trigger": backup.trigger}
    cluster.start_snapshot(
        repository, backup.name, list(found), metadata, settings.A4C_INCLUDE_GLOBAL_STATE
    )
    runner.update(snapshot_name=backup.name)

    def on_progress(status: elastic.SnapshotStatus) -> None:
        runner.progress(
            shards_done=status.shards_done,
            shards_total=status.shards_total,
            bytes_done=status.bytes_done,
            bytes_total=status.bytes_total,
        )

    final = cluster.wait_for_snapshot(repository, backup.name, on_progress)
    if final is None or not final.succeeded:
        failures = "; ".join(str(f) for f in final.failures) if final else ""
        raise ElasticError(
            f"The snapshot ended {final.state if final else 'missing'}, not SUCCESS"
            + (f": {failures}" if failures else "")
            + ". The partial snapshot is not kept.",
        )
    after = cluster.indices(include=list(found))
    changed = [n for n in found if (after[n].docs if n in after else None) != found[n].docs]
    if changed:
        runner.update(
            warnings=[
                *backup.warnings,
                "Documents were written while the snapshot ran in: "
                + ", ".join(changed)
                + "; their counts are approximate.",
            ]
        )
    runner.flush(shards_done=final.shards_successful, shards_total=final.shards_total)


def last_backup_with_files(backup: Backup) -> Backup | None:
    """The newest other succeeded backup of the files: its manifest tells the unchanged
    files, and its bytes weigh the files stage of the progress."""
    return previous_backup(backup, include_files=True)


def previous_manifest(backup: Backup) -> str | None:
    last = last_backup_with_files(backup)
    return last.name if last else None


def backup_files(
    backup: Backup, runner: running.ProgressWriter, counted: tuple[int, int] | None = None
) -> None:
    root = data_dir()
    if not root.is_dir():
        raise InvalidInput(
            f"The A4C data dir {root} does not exist "
            f"(A4C_DATA_DIR, from {settings.A4C_DATA_DIR_SOURCE})."
        )
    runner.phase("files", reset_counters=True)
    options = copy_options()
    summary = store().backup_tree(
        backup.name,
        root,
        exclude_dirs=options.exclude_dirs,
        previous=previous_manifest(backup),
        progress=runner.file_progress,
        check=runner.check,
        workers=options.workers,
        bandwidth=options.bandwidth,
        counted=counted,
    )
    runner.update(
        file_count=summary.files,
        file_bytes=summary.bytes,
        new_bytes=summary.new_bytes,
        files_reused=summary.reused,
        manifest_sha256=summary.manifest_sha256,
        warnings=[*backup.warnings, *summary.warnings[:20]],
    )
    runner.flush(
        totals_known=True,
        files_done=summary.files,
        files_total=summary.files,
        bytes_done=summary.bytes,
        bytes_total=summary.bytes,
    )


def safety_backup(run: RestoreRun, indices: list[str] | None, files: bool, runner) -> Backup:
    """Backs up exactly what the restore is about to overwrite, inside the restore's lock.

    A data dir that does not exist yet (a new machine) has no files to save: the safety backup
    holds none, says so in its warnings, and the restore creates the data dir."""
    warnings = []
    if files and not os.path.lexists(data_dir()):
        files = False
        warnings.append(
            f"The A4C data dir {data_dir()} did not exist: this safety backup holds no files; "
            "the restore creates the data dir (its rollback removes it)."
        )
    safety = Backup.objects.create(
        name=default_backup_name(f"safety-before-restore-{run.pk}"),
        description=f"Taken automatically before restore #{run.pk} of {run.backup.name}.",
        trigger=Backup.Trigger.SAFETY,
        include_elasticsearch=indices is not None,
        include_files=files,
        index_patterns=indices or [],
        warnings=warnings,
        requested_by=run.requested_by,
        actor=run.actor,
        source=run.source,
        status=Backup.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    actor = Actor(name=run.actor, source=run.source)
    audit.record(
        actor,
        "backup.safety",
        target=safety.name,
        outcome=Outcome.STARTED,
        backup=safety,
        restore=run,
    )
    # cancelling the restore cancels its safety backup: they share the restore's heartbeat
    sub = running.ProgressWriter(safety, outer=runner)
    try:
        counted = plan_backup_stages(safety, sub)
        if indices is not None:
            backup_elasticsearch(safety, sub, indices=indices)
        if files:
            backup_files(safety, sub, counted)
        finish_set(safety, sub)
        sub.finish(Backup.Status.SUCCEEDED, phase="done")  # a cancel asked wins
    except Exception as exc:
        safety.transition(
            Backup.Status.CANCELLED if isinstance(exc, Cancelled) else Backup.Status.FAILED,
            **discard_backup(
                safety, str(exc), short_trace(), free_blobs=True, own=runner.heartbeat.lease
            ),
        )
        raise BackupError(f"The safety backup failed, so nothing was restored: {exc}") from exc
    audit.record(
        actor,
        "backup.safety",
        target=safety.name,
        outcome=Outcome.SUCCEEDED,
        backup=safety,
        restore=run,
    )
    return safety
