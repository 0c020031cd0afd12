"""Restoring a backup: safety backup, indices, files, verification, rollback."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from backups import audit
from backups.alien4cloud.client import is_maintenance_index
from backups.audit import Actor, Outcome
from backups.elastic import client as elastic
from backups.errors import BackupError, Busy, Cancelled, DamagedBackup, InvalidInput
from backups.models import Backup, RestoreRun, RunKind
from backups.operations import lifecycle, notify, running
from backups.operations.backup_steps import (
    safety_backup,
)
from backups.operations.hooks import run_hook
from backups.operations.locking import create_claimed
from backups.operations.lookup import get_backup, get_restore
from backups.operations.maintenance_mode import MaintenanceWindow, end_of_restore
from backups.operations.places import copy_options, data_dir, working_tree
from backups.operations.plan import (
    IndexStep,
    Plan,
    plan_indices,
    plan_restore,
    recheck_confirmed_plan,
    restore_stages,
    scope_touches,
)
from backups.operations.recovery import recover_stale_runs, rollback_hint
from backups.operations.requests import RestoreRequest
from backups.operations.restore_checks import (
    OwnCalls,
    check_backup_is_whole,
    damaged,
    verify_restored,
)
from backups.operations.restore_state import RestoreState, note
from backups.operations.retention import prune_safety_backups
from backups.operations.running import ProgressCallback, short_trace
from backups.operations.signing import foreign_reason
from backups.storage import InPlaceStaged, StagedRestore

log = logging.getLogger("backups.operations")

# --- restore: request and run --------------------------------------------------------------


def request_restore(
    request: RestoreRequest,
    actor: Actor,
    *,
    plan: Plan | None = None,
    confirm: str | None = None,
    wait: float = 0.0,
    rollback_of: RestoreRun | None = None,
) -> RestoreRun:
    """Creates the pending run of the plan the person confirmed, and takes the lock.

    ``plan`` is the plan shown and confirmed: its Elasticsearch half is asked again (cheap), its
    file half is not (the data dir is walked once per plan). Without one, the plan is made now.
    A backup taken on another cluster (a new machine after a disaster) is restored only with
    ``request.other_cluster``: the person says they mean it, and the audit keeps that they did.
    """
    backup = get_backup(request.backup_id)
    if confirm is not None and confirm != backup.name:
        raise InvalidInput(f"Type the backup's name ({backup.name}) to confirm the restore.")
    if plan is None:
        plan = plan_restore(request)
    else:
        plan = recheck_confirmed_plan(backup, request, plan)
    if plan.other_cluster and not request.other_cluster:
        raise InvalidInput(
            f"{plan.other_cluster} Confirm that you restore into another cluster "
            "(--other-cluster on the command line, the checkbox in the console)."
        )
    if why := foreign_reason(backup):
        if not request.foreign:
            raise InvalidInput(
                f"{why} Confirm that you restore it all the same (--foreign on the command "
                "line, the checkbox in the console)."
            )
    params = {
        "other_cluster": bool(plan.other_cluster),
        "foreign": backup.foreign,
        "scope": request.scope,
        "indices": list(request.indices),
        "file_mode": request.file_mode,
        "safety_backup": request.safety_backup,
        "rename": list(plan.rename) if plan.rename else None,
        "file_owners": plan.file_owners if plan.files is not None else None,
        "rollback_of": rollback_of.pk if rollback_of else None,
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

    fields = _run_fields(backup, request, plan, rollback_of)
    run = create_claimed(
        RunKind.RESTORE,
        f"of {backup.name}",
        actor,
        RestoreRun,
        fields,
        wait=wait,
        refused=refused,
        recover=recover_stale_runs,
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


def _run_fields(
    backup: Backup, request: RestoreRequest, plan: Plan, rollback_of: RestoreRun | None
) -> dict:
    """The run's columns: the request as asked, and the plan as confirmed."""
    return {
        "backup": backup,
        "scope": request.scope,
        "chosen_indices": list(request.indices),
        "file_mode": request.file_mode,
        "rename_pattern": request.rename_pattern,
        "rename_replacement": request.rename_replacement,
        "take_safety_backup": request.safety_backup,
        "plan": plan.to_json(),
        "rollback_of": rollback_of,
    }


def run_restore(restore_id: int, progress: ProgressCallback = None) -> RestoreRun:
    """Runs a pending restore; a failure after data changed rolls back from the safety backup."""
    return lifecycle.run(get_restore(restore_id), RestoreKind(), progress)


class RestoreKind(lifecycle.Kind):
    """A restore's steps inside Alien4Cloud's maintenance; its failure rolls back."""

    name = RunKind.RESTORE

    def __init__(self) -> None:
        self.window: MaintenanceWindow | None = None

    def target(self, run: RestoreRun) -> str:
        return run.backup.name

    def links(self, run: RestoreRun) -> dict:
        return {"backup": run.backup, "restore": run}

    def begin(self, run: RestoreRun, runner: running.ProgressWriter) -> None:
        notify.notify(
            "restore.started",
            f"Restore of {run.backup.name} started",
            f"{run.actor} started restore #{run.pk} of {run.backup.name} "
            f"({run.get_scope_display()}).",
            {"restore": run.pk, "backup": run.backup.name, "actor": run.actor, "scope": run.scope},
        )
        self.window = MaintenanceWindow(run, f"restore #{run.pk} of {run.backup.name}")

    def steps(self, run: RestoreRun, runner: running.ProgressWriter) -> dict:
        self.window.open()  # before the safety backup: it and the restore see one moment
        self.window.follow(runner)
        _perform_restore(run, runner, self.window)
        return {"safety_backup": run.safety_backup.name if run.safety_backup else None}

    def failed(
        self, run: RestoreRun, runner: running.ProgressWriter, exc: Exception
    ) -> lifecycle.Ending:
        return _after_failed_restore(run, runner, exc)

    def closing(
        self, run: RestoreRun, runner: running.ProgressWriter, ending: lifecycle.Ending
    ) -> None:
        # whatever the outcome, within the lock, and before the row says how it ended
        end_of_restore(run, self.window, ending.status)

    def notice(self, run: RestoreRun) -> lifecycle.Notice:
        succeeded = run.status == RestoreRun.Status.SUCCEEDED
        return lifecycle.Notice(
            "restore.finished" if succeeded else "restore.failed",
            f"Restore of {run.backup.name} {run.get_status_display().lower()}",
            (
                run.error_message
                or f"Restore #{run.pk} of {run.backup.name} by {run.actor} succeeded."
            )
            + (f" {run.state['restart']}" if run.state.get("restart") else ""),
            {
                "restore": run.pk,
                "backup": run.backup.name,
                "actor": run.actor,
                "status": run.status,
            },
        )

    def after(self, run: RestoreRun, actor: Actor) -> None:
        if run.status == RestoreRun.Status.SUCCEEDED:
            try:  # safety backups have their own limit, kept after every good restore
                prune_safety_backups(actor)
            except BackupError as exc:
                log.warning("pruning safety backups after restore #%s failed: %s", run.pk, exc)


def _after_failed_restore(
    run: RestoreRun, runner: running.ProgressWriter, exc: Exception
) -> lifecycle.Ending:
    """A failed restore's ending: failed or cancelled if nothing was changed yet; else the
    data is put back (the rollback, which nothing cancels) and it ends rolled back, or failed
    when the rollback failed too."""
    cancelled = isinstance(exc, Cancelled)
    detail = getattr(exc, "detail", "") or short_trace()
    failed_phase = run.phase
    if not RestoreState.of(run).changed:
        message = str(exc) + " Nothing had been changed yet."
        return lifecycle.Ending(
            RestoreRun.Status.CANCELLED if cancelled else RestoreRun.Status.FAILED,
            Outcome.CANCELLED if cancelled else Outcome.FAILED,
            {"finished_at": timezone.now(), "error_message": message, "error_detail": detail},
            message=message,
        )
    runner.cancellable = False
    try:
        runner.phase("rolling back")
        _roll_back(run, runner)
    except Exception as rollback_exc:
        message = (
            f"{exc} (during {failed_phase}). The automatic rollback failed too: {rollback_exc}. "
            + rollback_hint(run)
        )
        fields = {
            "finished_at": timezone.now(),
            "error_message": message,
            "error_detail": detail + "\n--- rollback ---\n" + short_trace(),
        }
        return lifecycle.Ending(RestoreRun.Status.FAILED, Outcome.FAILED, fields, message=message)
    what = "Cancelled" if cancelled else f"Restore failed during {failed_phase}: {exc}"
    message = f"{what}. The data was put back as it was before the restore" + (
        f", from safety backup {run.safety_backup.name}." if run.safety_backup else "."
    )
    fields = {
        "rolled_back": True,
        "finished_at": timezone.now(),
        "error_message": message,
        "error_detail": detail,
        "phase": "rolled back",
    }
    return lifecycle.Ending(
        RestoreRun.Status.ROLLED_BACK,
        Outcome.ROLLED_BACK,
        fields,
        message=message,
        action="restore.rollback",
    )


def _perform_restore(
    run: RestoreRun, runner: running.ProgressWriter, window: MaintenanceWindow
) -> None:
    backup = run.backup
    es_part, files_part = scope_touches(run.scope)
    es_part = es_part and backup.include_elasticsearch
    files_part = files_part and backup.include_files
    runner.phase("plan")
    if files_part:  # refused before anything is touched, even the safety backup
        working_tree().check_writable()
    plan = _still_true(run, Plan.from_json(run.plan), es_part, runner)
    rows = plan.indices if es_part else []
    touched = plan.targets("replace", "remove")
    note(run, runner, existing_touched=touched, created=plan.targets("create"))
    # A mirror restore stages what differs before anything else (it reads only the blobs it
    # needs, and re-hashes each as it copies it): a damaged blob it needs stops it before the
    # safety backup, without reading every blob twice. A merge starts from the current
    # tree, so it is built once A4C is quiet (after the pre-command), and checked in full now.
    early = files_part and run.file_mode == RestoreRun.FileMode.MIRROR
    early = early and not os.path.ismount(data_dir())  # there, staging is inside the data dir
    runner.plan_stages(restore_stages(run, rows, files_part, early))
    if files_part:
        runner.phase("checking the backup", reset_counters=True)
    # Staged early, the files need no check of their own: staging checks the manifest whole
    # and re-hashes every blob it reads, and it reads those of the files that differ (the
    # others are the backup's already); so the blobs are neither read nor listed twice.
    check_backup_is_whole(backup, rows, files_part and not early, runner)
    staged = _stage_files(run, runner, plan) if early else None
    try:
        if run.take_safety_backup:
            runner.phase("safety backup")
            safety = safety_backup(run, touched if es_part else None, files_part, runner)
            runner.update(safety_backup=safety)

        runner.phase("pre-command")
        restored_at = timezone.now()  # what Alien4Cloud writes of our calls from here is ours
        run_hook(settings.A4C_PRE_RESTORE_COMMAND, "pre-restore")
        try:
            if es_part:
                runner.phase("elasticsearch", reset_counters=True)
                note(run, runner, changed=True)
                _restore_indices(backup, rows, runner, plan.rename)
            if files_part:
                if staged is None:
                    staged = _stage_files(run, runner, plan)
                else:
                    runner.phase("files: swap")
                _swap_files(run, runner, staged)
                staged = None
        finally:
            run_hook(settings.A4C_POST_RESTORE_COMMAND, "post-restore")
    finally:
        if staged is not None:
            staged.discard()

    runner.phase("verify")
    # While maintenance is on, Alien4Cloud rewrites its maintenance index at each update, and
    # keeps an audit trace of each call we make to it.
    rewritten = [r.target for r in rows if is_maintenance_index(r.target)] if window.on else []
    own_calls = OwnCalls(window.server.username, restored_at) if window.held and rows else None
    problems = verify_restored(backup, rows, rewritten, own_calls)
    if problems:
        raise BackupError(
            "After the restore, the data does not match the backup: " + "; ".join(problems[:5])
        )
    # The last moment a cancel can still put everything back (the old tree is still there).
    runner.check(fresh=True)
    if RestoreState.of(run).old_tree:
        working_tree().drop_old_tree(Path(RestoreState.of(run).old_tree))
    runner.cancellable = False  # from here it succeeds: the lifecycle writes that, last


def _still_true(run: RestoreRun, plan: Plan, es_part: bool, runner: running.ProgressWriter) -> Plan:
    """The stored plan, its index half asked of Elasticsearch again (cheap, and what changed
    since the plan was shown decides what the safety backup must hold). The file half is not
    planned again: the restore of the files walks the data dir itself."""
    if not es_part:
        return plan
    removed = plan.targets("remove") if run.rollback_of_id else None
    fresh = plan_indices(run.backup, RestoreRequest.of_run(run, removed), [])
    if fresh != plan.indices:
        changed = sorted({s.target for s in fresh} ^ {s.target for s in plan.indices}) or [
            s.target for s in fresh if s not in plan.indices
        ]
        plan = dataclasses.replace(
            plan,
            indices=fresh,
            warnings=[
                *plan.warnings,
                "Elasticsearch changed between the plan and the restore ("
                + ", ".join(changed[:10])
                + "): the restore followed what was there when it began.",
            ],
        )
        runner.update(plan=plan.to_json())
    return plan


def _restore_indices(
    backup: Backup,
    rows: list[IndexStep],
    runner: running.ProgressWriter,
    rename: tuple[str, str] | None = None,
) -> None:
    """Replaces, creates and removes indices as the plan's rows say, and waits for every shard."""
    cluster = elastic.cluster()
    restore_rows = [r for r in rows if r.action in ("replace", "create")]
    cluster.delete_indices([r.target for r in rows if r.action == "replace"])
    if restore_rows:
        single_node = cluster.data_nodes() <= 1
        cluster.start_restore(
            backup.snapshot_location.repository,
            backup.snapshot_location.snapshot,
            [r.name for r in restore_rows],
            rename_pattern=rename[0] if rename else "",
            rename_replacement=rename[1] if rename else "",
            index_settings={"index.number_of_replicas": 0} if single_node else {},
        )
        cluster.wait_for_recovery(
            [r.target for r in restore_rows],
            on_progress=runner.shard_progress,
            poll=settings.A4C_POLL_SECONDS,
        )
        runner.flush()  # the last look, not the one before it, stays on the page
    cluster.delete_indices([r.target for r in rows if r.action == "remove"])


def _stage_files(
    run: RestoreRun, runner: running.ProgressWriter, plan: Plan
) -> StagedRestore | InPlaceStaged:
    """The backup's tree built beside the data dir, every blob re-hashed, owned as the plan
    says; nothing changed. A plan this process made moments ago names what it found to differ
    (storage/findings.py): only those paths are looked at again."""
    runner.phase("files", reset_counters=True)
    try:
        return working_tree().stage(
            run.backup.name,
            options=copy_options(),
            mode=run.file_mode,
            progress=runner.file_progress,
            check=runner.check,
            owners=plan.file_owners,
            local=run.backup.made_here,
            findings=plan.files.findings if plan.files else "",
        )
    except DamagedBackup as exc:
        raise damaged(run.backup, [str(exc)]) from exc


def _swap_files(
    run: RestoreRun, runner: running.ProgressWriter, staged: StagedRestore | InPlaceStaged
) -> None:
    # the tree that undoes a change in place is named before the first change: a crash midway
    # is undone from it
    kept = str(staged.kept_tree) if staged.kept_tree else ""
    note(run, runner, changed=True, old_tree=kept)
    created = "" if staged.exists else str(data_dir())
    result = staged.swap()
    note(
        run,
        runner,
        old_tree=str(result.old_tree) if result.old_tree else "",
        created_data_dir=created,
    )


def _roll_back(run: RestoreRun, runner: running.ProgressWriter) -> None:
    """Puts back what the restore changed: the kept old tree, then the safety snapshot."""
    run.refresh_from_db()
    state = RestoreState.of(run)
    # The swap puts the data dir in place in one rename after staging and checking everything:
    # before it, the data dir is wholly old; after it, the old tree is kept beside it.
    if state.old_tree:
        working_tree().undo(Path(state.old_tree))
        state = note(run, runner, old_tree="")
    if state.created_data_dir:  # there was no data dir: there is none again
        working_tree().remove_created()
        state = note(run, runner, created_data_dir="")
    if scope_touches(run.scope)[0] and state.changed:
        cluster = elastic.cluster()
        created = [n for n in state.created if cluster.indices(include=[n])]
        touched = state.existing_touched
        if touched and not (run.safety_backup and run.safety_backup.include_elasticsearch):
            raise BackupError("indices were changed and no safety backup of them exists")
        cluster.delete_indices(created)
        if touched:
            rows = [
                IndexStep(n, n, "replace" if cluster.indices(include=[n]) else "create", None, None)
                for n in touched
            ]
            _restore_indices(run.safety_backup, rows, runner)
