"""Restoring a backup: safety backup, indices, files, verification, rollback."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from backups import audit
from backups.audit import Actor
from backups.elastic import client as elastic
from backups.errors import BackupError, Busy, Cancelled, IntegrityError, InvalidInput
from backups.models import Backup, RestoreRun
from backups.operations import notify, running
from backups.operations.backup import _backup_elasticsearch, _backup_files, _end_backup
from backups.operations.common import (
    Outcome,
    ProgressCallback,
    _data_dir,
    _get_backup,
    _get_restore,
    _run_hook,
    _short_trace,
    create_claimed,
    default_backup_name,
    file_bandwidth,
    log,
    store,
)
from backups.operations.plan import _scope_touches, plan_restore

# --- restore: request and run --------------------------------------------------------------


def request_restore(
    backup_id: int | str,
    actor: Actor,
    *,
    scope: str = RestoreRun.Scope.ALL,
    indices: Iterable[str] = (),
    file_mode: str = RestoreRun.FileMode.MIRROR,
    rename_pattern: str = "",
    rename_replacement: str = "",
    safety_backup: bool = True,
    confirm: str | None = None,
    wait: float = 0.0,
    rollback_of: RestoreRun | None = None,
    remove_indices: Iterable[str] | None = None,
) -> RestoreRun:
    """Plans, checks the typed confirmation, creates the pending run and takes the lock."""
    backup = _get_backup(backup_id)
    if confirm is not None and confirm != backup.name:
        raise InvalidInput(f"Type the backup's name ({backup.name}) to confirm the restore.")
    chosen = [i.strip() for i in indices if i and i.strip()]
    plan = plan_restore(
        backup.pk,
        scope=scope,
        indices=chosen,
        file_mode=file_mode,
        rename_pattern=rename_pattern,
        rename_replacement=rename_replacement,
        remove_indices=remove_indices,
    )
    params = {
        "scope": scope,
        "indices": chosen,
        "file_mode": file_mode,
        "safety_backup": safety_backup,
        "rename": plan["rename"],
        "rollback_of": rollback_of.pk if rollback_of else None,
    }

    fields = {
        "backup": backup,
        "scope": scope,
        "chosen_indices": chosen,
        "file_mode": file_mode,
        "rename_pattern": rename_pattern,
        "rename_replacement": rename_replacement,
        "take_safety_backup": safety_backup,
        "plan": plan,
        "rollback_of": rollback_of,
    }

    def refused(busy: Busy) -> None:
        audit.record(
            actor,
            "restore.request",
            target=backup.name,
            outcome=Outcome.REFUSED,
            message=str(busy),
            parameters=params,
            backup=backup,
        )

    run = create_claimed(
        "restore", f"of {backup.name}", actor, RestoreRun, fields, wait=wait, refused=refused
    )
    audit.record(
        actor,
        "restore.request",
        target=backup.name,
        outcome=Outcome.REQUESTED,
        parameters=params,
        backup=backup,
        restore=run,
    )
    return run


def run_restore(restore_id: int, progress: ProgressCallback = None) -> RestoreRun:
    """Runs a pending restore; a failure after data changed rolls back from the safety backup."""
    run = _get_restore(restore_id)
    now = timezone.now()
    if (
        RestoreRun.objects.filter(pk=run.pk, status=RestoreRun.Status.PENDING).update(
            status=RestoreRun.Status.RUNNING, started_at=now, heartbeat_at=now, phase="starting"
        )
        != 1
    ):
        return run
    run.refresh_from_db()
    actor = Actor(name=run.actor, source=run.source)
    audit.record(
        actor,
        "restore.run",
        target=run.backup.name,
        outcome=Outcome.STARTED,
        backup=run.backup,
        restore=run,
    )
    notify.notify(
        "restore.started",
        f"Restore of {run.backup.name} started",
        f"{run.actor} started restore #{run.pk} of {run.backup.name} ({run.get_scope_display()}).",
        {"restore": run.pk, "backup": run.backup.name, "actor": run.actor, "scope": run.scope},
    )
    try:
        with running.Runner(run, progress) as runner:
            try:
                _perform_restore(run, runner)
            except Exception as exc:
                _after_failed_restore(run, runner, exc, actor)
            else:
                audit.record(
                    actor,
                    "restore.run",
                    target=run.backup.name,
                    outcome=Outcome.SUCCEEDED,
                    backup=run.backup,
                    restore=run,
                    parameters={
                        "safety_backup": run.safety_backup.name if run.safety_backup else None
                    },
                )
    finally:
        # Released only once the row is final: an interrupted process (Ctrl-C, SystemExit)
        # leaves its run and the lock to recover_stale_runs, so nothing starts over it.
        if not type(run).objects.filter(pk=run.pk, status__in=type(run).ACTIVE).exists():
            running.release("restore", run.pk)
    run.refresh_from_db()
    event = "restore.finished" if run.status == RestoreRun.Status.SUCCEEDED else "restore.failed"
    notify.notify(
        event,
        f"Restore of {run.backup.name} {run.get_status_display().lower()}",
        run.error_message or f"Restore #{run.pk} of {run.backup.name} by {run.actor} succeeded.",
        {"restore": run.pk, "backup": run.backup.name, "actor": run.actor, "status": run.status},
    )
    if run.status == RestoreRun.Status.SUCCEEDED:
        from backups.operations.policies import prune_safety_backups

        try:  # safety backups have their own limit, kept after every good restore
            prune_safety_backups(actor)
        except BackupError as exc:
            log.warning("pruning safety backups after restore #%s failed: %s", run.pk, exc)
    return run


def _after_failed_restore(
    run: RestoreRun, runner: running.Runner, exc: Exception, actor: Actor
) -> None:
    cancelled = isinstance(exc, Cancelled)
    detail = getattr(exc, "detail", "") or _short_trace()
    failed_phase = run.phase
    if not run.state.get("changed"):
        status = RestoreRun.Status.CANCELLED if cancelled else RestoreRun.Status.FAILED
        message = str(exc) + " Nothing had been changed yet."
        runner.update(
            status=status, finished_at=timezone.now(), error_message=message, error_detail=detail
        )
        audit.record(
            actor,
            "restore.run",
            target=run.backup.name,
            restore=run,
            backup=run.backup,
            outcome=Outcome.CANCELLED if cancelled else Outcome.FAILED,
            message=message,
        )
        return
    runner.cancellable = False
    try:
        runner.phase("rolling back")
        _roll_back(run, runner)
    except Exception as rollback_exc:
        message = (
            f"{exc} (during {failed_phase}). The automatic rollback failed too: {rollback_exc}. "
            + _rollback_hint(run)
        )
        runner.update(
            status=RestoreRun.Status.FAILED,
            finished_at=timezone.now(),
            error_message=message,
            error_detail=detail + "\n--- rollback ---\n" + _short_trace(),
        )
        audit.record(
            actor,
            "restore.run",
            target=run.backup.name,
            restore=run,
            backup=run.backup,
            outcome=Outcome.FAILED,
            message=message,
        )
        return
    what = "Cancelled" if cancelled else f"Restore failed during {failed_phase}: {exc}"
    message = f"{what}. The data was put back as it was before the restore" + (
        f", from safety backup {run.safety_backup.name}." if run.safety_backup else "."
    )
    runner.update(
        status=RestoreRun.Status.ROLLED_BACK,
        rolled_back=True,
        finished_at=timezone.now(),
        error_message=message,
        error_detail=detail,
        phase="rolled back",
    )
    audit.record(
        actor,
        "restore.rollback",
        target=run.backup.name,
        restore=run,
        backup=run.backup,
        outcome=Outcome.ROLLED_BACK,
        message=message,
    )


def _rollback_hint(run: RestoreRun) -> str:
    if run.safety_backup_id:
        return f"Restore safety backup {run.safety_backup.name} to return to the state before."
    return "No safety backup was taken: restore an earlier backup."


def _perform_restore(run: RestoreRun, runner: running.Runner) -> None:
    backup = run.backup
    es_part, files_part = _scope_touches(run.scope)
    es_part = es_part and backup.include_elasticsearch
    files_part = files_part and backup.include_files
    runner.phase("plan")
    remove = [r["name"] for r in (run.plan.get("indices") or []) if r["action"] == "remove"]
    plan = plan_restore(
        backup.pk,
        scope=run.scope,
        indices=run.chosen_indices,
        file_mode=run.file_mode,
        rename_pattern=run.rename_pattern,
        rename_replacement=run.rename_replacement,
        remove_indices=remove if run.rollback_of_id else None,
    )
    rows = plan["indices"]
    touched = [r["target"] for r in rows if r["action"] in ("replace", "remove")]
    created = [r["target"] for r in rows if r["action"] == "create"]
    runner.update(state={**run.state, "existing_touched": touched, "created": created})
    _check_backup(backup, rows if es_part else [], files_part, runner)

    if run.take_safety_backup:
        runner.phase("safety backup")
        safety = _safety_backup(run, touched if es_part else None, files_part, runner)
        runner.update(safety_backup=safety)

    runner.phase("pre-command")
    _run_hook(settings.A4C_PRE_RESTORE_COMMAND, "pre-restore")
    try:
        if es_part:
            runner.phase("elasticsearch", reset_counters=True)
            runner.update(state={**run.state, "changed": True})
            _restore_indices(backup, rows, runner, plan["rename"])
        if files_part:
            runner.phase("files", reset_counters=True)
            _restore_files(run, runner)
    finally:
        _run_hook(settings.A4C_POST_RESTORE_COMMAND, "post-restore")

    runner.phase("verify")
    problems = _verify_restored(backup, rows if es_part else [], files_part, run.file_mode)
    if problems:
        raise BackupError(
            "After the restore, the data does not match the backup: " + "; ".join(problems[:5])
        )
    if run.state.get("old_tree"):
        store().drop_old_tree(Path(run.state["old_tree"]))
    runner.update(status=RestoreRun.Status.SUCCEEDED, finished_at=timezone.now(), phase="done")


def _check_backup(backup: Backup, rows: list[dict], files: bool, runner: running.Runner) -> None:
    """Refuses a damaged backup before anything is changed, even the safety backup.

    The snapshot must be there and whole, with the indices to restore; the manifest whole and
    every blob it names present with the right hash. The files step re-hashes while copying,
    but by then Elasticsearch would already have been restored.
    """
    problems: list[str] = []
    wanted = [r["name"] for r in rows if r["action"] in ("replace", "create")]
    if wanted:
        repository = backup.repository or settings.A4C_ES_REPOSITORY
        snapshot = backup.snapshot_name or backup.name
        found = elastic.cluster().snapshot(repository, snapshot)
        if found is None:
            problems.append(f"snapshot {snapshot} is missing from repository {repository}")
        elif found.get("state") != "SUCCESS":
            problems.append(f"snapshot {snapshot} is {found.get('state')}, not SUCCESS")
        else:
            missing = sorted(set(wanted) - set(found.get("indices", [])))
            if missing:
                problems.append(f"snapshot {snapshot} lacks indices {', '.join(missing)}")
    if files:

        def on_progress(p) -> None:
            runner.progress(files_done=p.files_done, files_total=p.files_total)

        report = store().verify(backup.name, progress=on_progress, check=runner.check)
        problems.extend(report.problems)
    if problems:
        raise IntegrityError(
            f"Backup {backup.name} is damaged, so nothing was restored: "
            + "; ".join(problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            + ". Verify it for the full list, and restore another backup."
        )


def _safety_backup(run: RestoreRun, indices: list[str] | None, files: bool, runner) -> Backup:
    """Backs up exactly what the restore is about to overwrite, inside the restore's lock."""
    safety = Backup.objects.create(
        name=default_backup_name(f"safety-before-restore-{run.pk}"),
        description=f"Taken automatically before restore #{run.pk} of {run.backup.name}.",
        trigger=Backup.Trigger.SAFETY,
        include_elasticsearch=indices is not None,
        include_files=files,
        index_patterns=indices or [],
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
    sub = running.Runner(safety)
    sub.check = runner.check  # cancelling the restore cancels its safety backup
    try:
        if indices is not None:
            _backup_elasticsearch(safety, sub, indices=indices)
        if files:
            _backup_files(safety, sub)
    except Exception as exc:
        _end_backup(
            safety,
            Backup.Status.CANCELLED if isinstance(exc, Cancelled) else Backup.Status.FAILED,
            str(exc),
            _short_trace(),
            free_blobs=True,
        )
        raise BackupError(f"The safety backup failed, so nothing was restored: {exc}") from exc
    sub.update(status=Backup.Status.SUCCEEDED, finished_at=timezone.now(), phase="done")
    audit.record(
        actor,
        "backup.safety",
        target=safety.name,
        outcome=Outcome.SUCCEEDED,
        backup=safety,
        restore=run,
    )
    return safety


def _restore_indices(
    backup: Backup, rows: list[dict], runner: running.Runner, rename: list | None = None
) -> None:
    """Replaces, creates and removes indices as the plan's rows say, and waits for every shard."""
    cluster = elastic.cluster()
    restore_rows = [r for r in rows if r["action"] in ("replace", "create")]
    cluster.delete_indices([r["target"] for r in rows if r["action"] == "replace"])
    if restore_rows:
        single_node = cluster.info()["data_nodes"] <= 1
        cluster.start_restore(
            backup.repository or settings.A4C_ES_REPOSITORY,
            backup.snapshot_name or backup.name,
            [r["name"] for r in restore_rows],
            rename_pattern=rename[0] if rename else "",
            rename_replacement=rename[1] if rename else "",
            index_settings={"index.number_of_replicas": 0} if single_node else {},
        )
        cluster.wait_for_recovery(
            [r["target"] for r in restore_rows],
            on_progress=lambda done, total: runner.progress(shards_done=done, shards_total=total),
            poll=settings.A4C_POLL_SECONDS,
        )
    cluster.delete_indices([r["target"] for r in rows if r["action"] == "remove"])


def _restore_files(run: RestoreRun, runner: running.Runner) -> None:
    runner.update(state={**run.state, "changed": True})

    def on_progress(p) -> None:
        runner.progress(
            files_done=p.files_done,
            files_total=p.files_total,
            bytes_done=p.bytes_done,
            bytes_total=p.bytes_total,
        )

    result = store().restore_tree(
        run.backup.name,
        _data_dir(),
        exclude_dirs=tuple(settings.A4C_EXCLUDE_DIRS),
        mode=run.file_mode,
        progress=on_progress,
        check=runner.check,
        workers=settings.A4C_FILE_WORKERS,
        bandwidth=file_bandwidth(),
    )
    runner.update(state={**run.state, "old_tree": str(result.old_tree) if result.old_tree else ""})


def _verify_restored(backup: Backup, rows: list[dict], files: bool, file_mode: str) -> list[str]:
    problems = []
    if rows:
        # one listing (a refresh and a multi-search) for all, not two requests per index
        now = elastic.cluster().indices(include=[row["target"] for row in rows])
        approximate = any("approximate" in w for w in backup.warnings)
        for row in rows:
            found = now.get(row["target"])
            if row["action"] == "remove":
                if found:
                    problems.append(f"index {row['target']} should have been removed")
            elif found is None:
                problems.append(f"index {row['target']} is missing")
            elif found["docs"] != row["docs_in_backup"] and not approximate:
                problems.append(
                    f"index {row['target']} holds {found['docs']} documents, "
                    f"the backup {row['docs_in_backup']}"
                )
    if files:
        plan = store().plan_restore(
            backup.name, _data_dir(), exclude_dirs=tuple(settings.A4C_EXCLUDE_DIRS), mode=file_mode
        )
        plan_dict = dataclasses.asdict(plan)
        for key in ("added", "changed", "removed"):
            if plan_dict.get(key):
                problems.append(f"{plan_dict[key]} files would still be {key}")
    return problems


def _roll_back(run: RestoreRun, runner: running.Runner) -> None:
    """Puts back what the restore changed: the kept old tree, then the safety snapshot."""
    run.refresh_from_db()
    state = run.state
    # restore_tree swaps the data dir in one rename after staging and checking everything: when
    # it raised, the data dir is wholly old; when it returned, the old tree is kept beside it.
    if state.get("old_tree"):
        store().undo_restore(_data_dir(), Path(state["old_tree"]))
        runner.update(state={**state, "old_tree": ""})
    if _scope_touches(run.scope)[0] and state.get("changed"):
        cluster = elastic.cluster()
        created = [n for n in state.get("created", []) if cluster.indices(include=[n])]
        touched = state.get("existing_touched", [])
        if touched and not (run.safety_backup and run.safety_backup.include_elasticsearch):
            raise BackupError("indices were changed and no safety backup of them exists")
        cluster.delete_indices(created)
        if touched:
            rows = [
                {
                    "name": n,
                    "target": n,
                    "action": "replace" if cluster.indices(include=[n]) else "create",
                }
                for n in touched
            ]
            _restore_indices(run.safety_backup, rows, runner)


def request_rollback(restore_id: int, actor: Actor, *, wait: float = 0.0) -> RestoreRun:
    """A new restore that puts back the safety backup taken before ``restore_id``."""
    run = _get_restore(restore_id)
    if run.is_active:
        raise InvalidInput(
            f"Restore #{run.pk} is still {run.status}; cancel it instead (it rolls back)."
        )
    if run.rolled_back:
        raise InvalidInput(f"Restore #{run.pk} was already rolled back.")
    safety = run.safety_backup
    if safety is None or not safety.is_restorable:
        raise InvalidInput(f"Restore #{run.pk} has no safety backup left to roll back to.")
    if safety.include_elasticsearch and safety.include_files:
        scope = RestoreRun.Scope.ALL
    elif safety.include_elasticsearch:
        scope = RestoreRun.Scope.ELASTICSEARCH
    else:
        scope = RestoreRun.Scope.FILES
    # Everything the safety backup holds goes back; indices the restore created are removed;
    # nothing else is touched.
    rollback = request_restore(
        safety.pk,
        actor,
        scope=scope,
        safety_backup=True,
        wait=wait,
        rollback_of=run,
        remove_indices=run.state.get("created", []),
    )
    RestoreRun.objects.filter(pk=run.pk).update(rolled_back=True)
    audit.record(
        actor,
        "restore.rollback",
        target=run.backup.name,
        outcome=Outcome.REQUESTED,
        restore=rollback,
        backup=safety,
        parameters={"restore": run.pk},
    )
    return rollback
