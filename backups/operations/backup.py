"""Taking a backup: the Elasticsearch snapshot and the files, between optional hooks."""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError as DbIntegrityError
from django.utils import timezone

from backups import audit
from backups.audit import Actor
from backups.elastic import client as elastic
from backups.errors import BackupError, Busy, Cancelled, ElasticError, InvalidInput
from backups.models import Backup
from backups.operations import notify, running
from backups.operations.common import (
    Outcome,
    ProgressCallback,
    _a4c_indices,
    _data_dir,
    _get_backup,
    _run_hook,
    _short_trace,
    create_claimed,
    default_backup_name,
    file_bandwidth,
    index_name_problem,
    log,
    store,
    validate_backup_name,
)

# --- backup --------------------------------------------------------------------------------


def request_backup(
    actor: Actor,
    *,
    name: str | None = None,
    description: str = "",
    include_elasticsearch: bool = True,
    include_files: bool = True,
    indices: Iterable[str] = (),
    trigger: str | None = None,
    wait: float = 0.0,
) -> Backup:
    """Validates, creates the pending row and takes the lock for it; the work is run_backup."""
    if not include_elasticsearch and not include_files:
        raise InvalidInput("Choose what to back up: Elasticsearch, files, or both.")
    name = validate_backup_name(name) if name else default_backup_name()
    patterns = [p.strip() for p in indices if p and p.strip()]
    for pattern in patterns:
        problem = index_name_problem(pattern, pattern=True)
        if problem:
            raise InvalidInput(f"{pattern!r} is not an index name or pattern A4C uses: {problem}.")
    if patterns and not include_elasticsearch:
        raise InvalidInput("Indices were chosen but Elasticsearch is left out of the backup.")
    trigger = trigger or {"web": "web", "cli": "cli", "schedule": "schedule"}.get(
        actor.source, "web"
    )

    fields = {
        "name": name,
        "description": description,
        "trigger": trigger,
        "include_elasticsearch": include_elasticsearch,
        "include_files": include_files,
        "index_patterns": patterns,
    }

    def refused(busy: Busy) -> None:
        audit.record(
            actor, "backup.create", target=name, outcome=Outcome.REFUSED, message=str(busy)
        )

    try:
        backup = create_claimed("backup", name, actor, Backup, fields, wait=wait, refused=refused)
    except DbIntegrityError:
        raise InvalidInput(
            f"A backup named {name!r} exists already; choose another name."
        ) from None
    audit.record(
        actor,
        "backup.create",
        target=name,
        outcome=Outcome.REQUESTED,
        backup=backup,
        parameters={
            "elasticsearch": include_elasticsearch,
            "files": include_files,
            "indices": patterns,
        },
    )
    return backup


def run_backup(backup_id: int, progress: ProgressCallback = None) -> Backup:
    """Runs a pending backup to its end; the row says how it ended. Never raises for its failure."""
    backup = _get_backup(backup_id)
    now = timezone.now()
    started = Backup.objects.filter(pk=backup.pk, status=Backup.Status.PENDING).update(
        status=Backup.Status.RUNNING, started_at=now, heartbeat_at=now, phase="starting"
    )
    if started != 1:
        log.info("backup %s is %s, not pending: nothing to run", backup.name, backup.status)
        return backup
    backup.refresh_from_db()
    actor = Actor(name=backup.actor, source=backup.source)
    audit.record(actor, "backup.run", target=backup.name, outcome=Outcome.STARTED, backup=backup)
    try:
        with running.Runner(backup, progress) as runner:
            _perform_backup(backup, runner)
    except Cancelled as exc:
        _end_backup(backup, Backup.Status.CANCELLED, str(exc), free_blobs=True)
        audit.record(
            actor, "backup.run", target=backup.name, outcome=Outcome.CANCELLED, backup=backup
        )
    except Exception as exc:
        _end_backup(
            backup,
            Backup.Status.FAILED,
            str(exc),
            getattr(exc, "detail", "") or _short_trace(),
            free_blobs=True,
        )
        audit.record(
            actor,
            "backup.run",
            target=backup.name,
            outcome=Outcome.FAILED,
            message=str(exc),
            backup=backup,
        )
    else:
        audit.record(
            actor,
            "backup.run",
            target=backup.name,
            outcome=Outcome.SUCCEEDED,
            backup=backup,
            parameters={
                "indices": backup.index_count,
                "documents": backup.document_count,
                "files": backup.file_count,
                "bytes": backup.file_bytes,
                "new_bytes": backup.new_bytes,
            },
        )
    finally:
        # Released only once the row is final: an interrupted process (Ctrl-C, SystemExit)
        # leaves its run and the lock to recover_stale_runs, so nothing starts over it.
        if not type(backup).objects.filter(pk=backup.pk, status__in=type(backup).ACTIVE).exists():
            running.release("backup", backup.pk)
    backup.refresh_from_db()
    if backup.status == Backup.Status.FAILED:
        notify.notify(
            "backup.failed",
            f"Backup {backup.name} failed",
            backup.error_message,
            {"backup": backup.name, "trigger": backup.trigger, "actor": backup.actor},
        )
    if backup.policy_id:
        from backups.operations.policies import after_policy_backup

        try:
            after_policy_backup(backup.pk)
        except BackupError as exc:  # retention trouble never turns a good backup into a bad one
            log.warning("retention after %s failed: %s", backup.name, exc)
    return backup


def _end_backup(
    backup: Backup, status: str, message: str, detail: str = "", *, free_blobs: bool = False
) -> None:
    """Records a failed or cancelled backup and removes what it had half written.

    With free_blobs (only while this process holds the lock for it), the blobs it stored that
    no other backup names are removed too: a backup that filled the disk must not leave it
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
        store().delete_manifest(backup.name)
    except BackupError as exc:
        cleanup.append(f"the partial manifest could not be removed: {exc}")
    if free_blobs and backup.include_files:
        try:
            store().collect_garbage()
        except BackupError as exc:
            cleanup.append(f"the blobs it stored could not be freed: {exc}")
    if cleanup:
        message = f"{message} Also, {'; '.join(cleanup)}."
    Backup.objects.filter(pk=backup.pk).update(
        status=status,
        finished_at=timezone.now(),
        error_message=message,
        error_detail=detail,
        snapshot_name="",
    )


def _perform_backup(backup: Backup, runner: running.Runner) -> None:
    """Snapshot then files, between the optional pre and post commands."""
    runner.phase("pre-command")
    _run_hook(settings.A4C_PRE_BACKUP_COMMAND, "pre-backup")
    try:
        if backup.include_elasticsearch:
            _backup_elasticsearch(backup, runner)
        if backup.include_files:
            _backup_files(backup, runner)
    finally:
        if settings.A4C_POST_BACKUP_COMMAND:  # else the row keeps the phase a failure was in
            runner.phase("post-command")
            _run_hook(settings.A4C_POST_BACKUP_COMMAND, "post-backup")
    runner.update(status=Backup.Status.SUCCEEDED, finished_at=timezone.now(), phase="done")


def _backup_elasticsearch(
    backup: Backup, runner: running.Runner, indices: list[str] | None = None
) -> None:
    cluster = elastic.cluster()
    runner.phase("elasticsearch: preparing")
    info = cluster.info()
    repository = settings.A4C_ES_REPOSITORY
    cluster.ensure_repository(repository, settings.A4C_ES_REPOSITORY_PATH)
    if indices is None:
        found = _a4c_indices(cluster, backup.index_patterns or None)
        if backup.index_patterns and not found:
            raise InvalidInput(f"No index matches {', '.join(backup.index_patterns)}.")
    else:  # a safety backup: exactly the indices a restore is about to overwrite
        found = cluster.indices(include=indices) if indices else {}
        lost = sorted(n for n, i in found.items() if i["health"] == "red")
        if lost:  # a primary is gone (the node died mid-restore): nothing in it to save
            found = {n: i for n, i in found.items() if n not in lost}
            backup.warnings = [
                *backup.warnings,
                f"Left out, having lost a primary shard (nothing in them to save): "
                f"{', '.join(lost)}.",
            ]
    runner.update(
        es_version=info["version"],
        es_cluster_name=info["cluster_name"],
        es_cluster_uuid=info["cluster_uuid"],
        repository=repository,
        indices={name: {"docs": i["docs"], "size": i["size"]} for name, i in found.items()},
        warnings=backup.warnings,
    )
    if not found:
        return
    runner.phase("elasticsearch: snapshot", reset_counters=True)
    metadata = {"a4c_backup": backup.name, "requested_by": backup.actor, "trigger": backup.trigger}
    cluster.start_snapshot(
        repository, backup.name, list(found), metadata, settings.A4C_INCLUDE_GLOBAL_STATE
    )
    runner.update(snapshot_name=backup.name)

    while True:
        state = cluster.snapshot_progress(repository, backup.name)
        runner.progress(
            shards_done=state["shards_done"],
            shards_total=state["shards_total"],
            bytes_done=state["bytes_done"],
            bytes_total=state["bytes_total"],
        )
        if state["state"] not in ("STARTED", "IN_PROGRESS", "INIT"):
            break
        time.sleep(settings.A4C_POLL_SECONDS)
    final = cluster.snapshot(repository, backup.name)
    while final is not None and final.get("state") == "IN_PROGRESS":  # the status API can be ahead
        time.sleep(settings.A4C_POLL_SECONDS)
        final = cluster.snapshot(repository, backup.name)
    if final is None or final.get("state") != "SUCCESS" or final.get("shards", {}).get("failed"):
        failures = "; ".join(
            f"{f.get('index')}[{f.get('shard_id')}]: {f.get('reason')}"
            for f in (final or {}).get("failures", [])
        )
        raise ElasticError(
            f"The snapshot ended {final.get('state') if final else 'missing'}, not SUCCESS"
            + (f": {failures}" if failures else "")
            + ". The partial snapshot is not kept.",
        )
    after = cluster.indices(include=list(found))
    changed = [n for n in found if after.get(n, {}).get("docs") != found[n]["docs"]]
    if changed:
        runner.update(
            warnings=[
                *backup.warnings,
                "Documents were written while the snapshot ran in: "
                + ", ".join(changed)
                + "; their counts are approximate.",
            ]
        )
    runner.flush(shards_done=final["shards"]["successful"], shards_total=final["shards"]["total"])


def _previous_manifest(backup: Backup) -> str | None:
    previous = (
        Backup.objects.filter(status=Backup.Status.SUCCEEDED, include_files=True)
        .exclude(pk=backup.pk)
        .order_by("-finished_at")
        .values_list("name", flat=True)
        .first()
    )
    return previous


def _backup_files(backup: Backup, runner: running.Runner) -> None:
    data_dir = _data_dir()
    if not data_dir.is_dir():
        raise InvalidInput(
            f"The A4C data dir {data_dir} does not exist "
            f"(A4C_DATA_DIR, from {settings.A4C_DATA_DIR_SOURCE})."
        )
    runner.phase("files", reset_counters=True)

    def on_progress(p) -> None:
        runner.progress(
            files_done=p.files_done,
            files_total=p.files_total,
            bytes_done=p.bytes_done,
            bytes_total=p.bytes_total,
        )

    summary = store().backup_tree(
        backup.name,
        data_dir,
        exclude_dirs=tuple(settings.A4C_EXCLUDE_DIRS),
        previous=_previous_manifest(backup),
        progress=on_progress,
        check=runner.check,
        workers=settings.A4C_FILE_WORKERS,
        bandwidth=file_bandwidth(),
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
        files_done=summary.files,
        files_total=summary.files,
        bytes_done=summary.bytes,
        bytes_total=summary.bytes,
    )
