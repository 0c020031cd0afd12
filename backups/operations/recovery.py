"""Ending honestly the runs whose worker died, and freeing a lock nobody holds any more.

Called by the beat schedule, when a worker starts, and before giving up on a held lock. One
loop over the kinds of run: each kind says only what its dead runs leave behind (DeadRuns);
the end is the lifecycle's pieces: RunRow.transition(), the lock released, the audit."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.elastic import client as elastic
from backups.errors import (
    BackupError,
)
from backups.models import (
    Backup,
    Job,
    RestoreRun,
    RunKind,
)
from backups.operations import drill_scratch, locking
from backups.operations.archives import discard_import_leftovers
from backups.operations.backup_steps import discard_backup
from backups.operations.maintenance_mode import UNSAFE, release_for_dead_run
from backups.operations.places import working_tree
from backups.operations.restore_state import RestoreState

# How long the recovery waits for the shards a dead restore left recovering.
RECOVERY_WAIT_SECONDS = 300.0


class DeadRuns:
    """What one kind of run leaves behind when its worker dies, or when none starts it."""

    kind: RunKind  # the lock's kind, and the audit's "<kind>.recover"
    model = Backup
    unstarted = ""  # the message of a run no worker started in time
    audit_unstarted = True

    def rows(self):
        """The rows of this kind of run."""
        return self.model.objects.all()

    def target(self, row) -> str:
        return row.name

    def links(self, row) -> dict:
        return {"backup": row}

    def named(self, row) -> str:
        return f"{self.kind} {row.name}"

    def examine(self, row) -> tuple[str, str, str]:
        """Before the claim: what is put right at once; the status and message it ends with,
        and why Alien4Cloud's maintenance stays on (empty: it is ended)."""
        raise NotImplementedError

    def clean_up(self, row, message: str, keep: str) -> str:
        """Once the dead run is ours: what it left behind removed; its final message."""
        return _release_maintenance(row, keep)

    def unstarted_note(self, row, message: str) -> str:
        return message


class DeadBackups(DeadRuns):
    kind = RunKind.BACKUP
    model = Backup
    unstarted = "No worker started this backup in time; is the Celery worker running?"

    def examine(self, backup: Backup) -> tuple[str, str, str]:
        message = (
            "The worker running this backup stopped answering during "
            f"{backup.phase or 'its start'} (killed or lost); the partial snapshot and "
            "manifest were removed."
        )
        return Backup.Status.FAILED, message, ""

    def clean_up(self, backup: Backup, message: str, keep: str) -> str:
        Backup.objects.filter(pk=backup.pk).update(**discard_backup(backup, message))
        return _release_maintenance(backup, keep)


class DeadRestores(DeadRuns):
    kind = RunKind.RESTORE
    model = RestoreRun
    unstarted = "No worker started this restore in time; nothing was changed."
    audit_unstarted = False  # nothing was done, and the request's audit says who asked

    def target(self, run: RestoreRun) -> str:
        return run.backup.name

    def links(self, run: RestoreRun) -> dict:
        return {"restore": run, "backup": run.backup}

    def named(self, run: RestoreRun) -> str:
        return f"restore #{run.pk}"

    def unstarted_note(self, run: RestoreRun, message: str) -> str:
        return "never started"

    def examine(self, run: RestoreRun) -> tuple[str, str, str]:
        changed = RestoreState.of(run).changed
        message = (
            f"The worker running this restore stopped answering during {run.phase or 'its start'}. "
            + (rollback_hint(run) if changed else "Nothing had been changed yet.")
        )
        shards_back = True
        if changed:
            shards_back, said = _await_restored_shards(run)
            message += said
        if RestoreState.of(run).old_tree:
            try:  # the data dir goes back to wholly old at once; the rollback does the rest
                working_tree().undo(Path(RestoreState.of(run).old_tree))
            except BackupError as exc:
                message += f" The kept previous data dir could not be put back: {exc}."
        if RestoreState.of(run).created_data_dir:
            try:  # there was no data dir before it (a new machine): there is none again
                working_tree().remove_created()
            except BackupError as exc:
                message += f" The data dir it created could not be removed: {exc}."
        try:  # a half-built staging tree beside the data dir: as big as the data, and useless
            working_tree().discard_staging()
        except BackupError as exc:
            message += f" Its staging tree could not be removed: {exc}."
        status = RestoreRun.Status.INTERRUPTED if changed else RestoreRun.Status.FAILED
        # Half-restored data stays closed to Alien4Cloud's users until the operator
        # restores again; a restore that changed nothing opens it again.
        return status, message, UNSAFE if changed or not shards_back else ""

    def clean_up(self, run: RestoreRun, message: str, keep: str) -> str:
        safety = run.safety_backup
        if safety is not None and safety.status == Backup.Status.RUNNING:
            safety.transition(
                Backup.Status.FAILED, **discard_backup(safety, "Interrupted with its restore.")
            )
        return _release_maintenance(run, keep)


class DeadJobs(DeadRuns):
    """The smaller kinds of run on a backup, each a Job row of its own kind."""

    model = Job

    def rows(self):
        return Job.objects.select_related("backup").filter(kind=self.kind)

    def target(self, job: Job) -> str:
        return job.backup.name

    def links(self, job: Job) -> dict:
        return {"backup": job.backup}

    def named(self, job: Job) -> str:
        return f"{self.kind} #{job.pk} of {job.backup.name}"


class DeadVerifications(DeadJobs):
    kind = RunKind.VERIFY
    unstarted = "No worker started this verification in time; is the Celery worker running?"

    def examine(self, job: Job) -> tuple[str, str, str]:
        message = (
            "The worker verifying this backup stopped answering during "
            f"{job.phase or 'its start'} (killed or lost); nothing was changed: verify it again."
        )
        return Job.Status.FAILED, message, ""


class DeadDeletions(DeadJobs):
    kind = RunKind.DELETE
    unstarted = "This deletion never started; nothing was deleted."

    def examine(self, job: Job) -> tuple[str, str, str]:
        message = (
            "The process deleting this backup stopped answering during "
            f"{job.phase or 'its start'} (killed or lost)."
        )
        return Job.Status.FAILED, message, ""

    def clean_up(self, job: Job, message: str, keep: str) -> str:
        backup = job.backup
        if backup.status == Backup.Status.DELETING:
            if job.phase in ("", "starting"):  # it had removed nothing yet
                backup.transition(job.parameters["status_before"])
                message += " Nothing had been removed: the backup is as it was."
            else:
                backup.transition(
                    Backup.Status.FAILED,
                    error_message=f"Its deletion was interrupted during {job.phase}: part of "
                    "it may be gone. Delete it again to remove the rest.",
                )
                message += " Part of the backup may be gone: it is marked failed; delete it again."
        elif backup.status == Backup.Status.DELETED:
            message += (
                " The backup was deleted; the stored files only it used go with the next "
                "deletion or retention."
            )
        Job.objects.filter(pk=job.pk).update(error_message=message)
        return message


class DeadDrills(DeadJobs):
    kind = RunKind.DRILL
    unstarted = "No worker started this drill in time; is the Celery worker running?"

    def examine(self, job: Job) -> tuple[str, str, str]:
        message = (
            "The worker running this restore drill stopped answering during "
            f"{job.phase or 'its start'} (killed or lost); nothing Alien4Cloud reads was "
            "changed: run the drill again."
        )
        return Job.Status.FAILED, message, ""

    def clean_up(self, job: Job, message: str, keep: str) -> str:
        left = drill_scratch.remove_all(job.pk)
        if left:
            message += " Its leftovers: " + "; ".join(left)
        else:
            message += " What it had restored (indices, scratch dir) was removed."
        Job.objects.filter(pk=job.pk).update(error_message=message)
        return message


class DeadOffsiteCopies(DeadJobs):
    kind = RunKind.OFFSITE
    unstarted = "No worker started this off-site copy in time; is the Celery worker running?"

    def examine(self, job: Job) -> tuple[str, str, str]:
        message = (
            "The worker copying this backup off-site stopped answering during "
            f"{job.phase or 'its start'} (killed or lost); the backup is good and the bucket "
            "holds no marker for a copy not finished: push it again, and what was sent is kept."
        )
        return Job.Status.FAILED, message, ""


KINDS = (
    DeadBackups,
    DeadRestores,
    DeadVerifications,
    DeadDeletions,
    DeadDrills,
    DeadOffsiteCopies,
)


def recover_stale_runs(now=None) -> list[str]:
    """Finds runs whose worker died and ends them honestly; frees a lock nobody holds."""
    now = now or timezone.now()
    stale = now - timezone.timedelta(seconds=settings.A4C_STALE_AFTER_SECONDS)
    never_started = now - timezone.timedelta(seconds=settings.A4C_PENDING_TIMEOUT_SECONDS)
    notes = []
    for dead in (kind() for kind in KINDS):
        model = dead.model
        for row in dead.rows().filter(status=model.Status.RUNNING, heartbeat_at__lt=stale):
            status, message, keep = dead.examine(row)
            if _claim(row, status, message, now, {"heartbeat_at__lt": stale}):
                message = dead.clean_up(row, message, keep)
                notes.append(_ended(dead, row, message, audited=True))
        for row in dead.rows().filter(status=model.Status.PENDING, created_at__lt=never_started):
            if _claim(row, model.Status.FAILED, dead.unstarted, now, None):
                notes.append(_ended(dead, row, dead.unstarted, audited=dead.audit_unstarted))
    notes.extend(_free_orphan_lock())
    notes.extend(_import_leftovers())
    return notes


def _import_leftovers() -> list[str]:
    """The staging dirs of imports that were killed (a live import's lock keeps its own)."""
    try:
        removed = discard_import_leftovers()
    except BackupError as exc:
        return [f"what a killed import left could not be removed: {exc}"]
    return [f"left over by a killed import, removed: {name}" for name in removed]


def _claim(row, status: str, message: str, now, only_if: dict | None) -> bool:
    """The dead run made recovery's by its transition (False: it moved meanwhile)."""
    return row.transition(status, only_if=only_if, finished_at=now, error_message=message)


def _ended(dead: DeadRuns, row, message: str, *, audited: bool) -> str:
    """The lock of a run recovery ended released, the end audited; the note that says it."""
    locking.release(dead.kind, row.pk)
    if not audited:
        return f"{dead.named(row)}: {dead.unstarted_note(row, message)}"
    audit.record(
        Actor.system("recovery"),
        f"{dead.kind}.recover",
        target=dead.target(row),
        outcome=Outcome.FAILED,
        message=message,
        **dead.links(row),
    )
    return f"{dead.named(row)}: {message}"


def _await_restored_shards(run: RestoreRun) -> tuple[bool, str]:
    """Waits for the shards a dead restore had Elasticsearch recover: Elasticsearch goes on
    without the worker, and a node stopped (Alien4Cloud restarted) before they are back loses
    them. Whether they came back, and what to add to the run's message."""
    state = RestoreState.of(run)
    try:
        cluster = elastic.cluster()
        present = list(cluster.indices(include=state.existing_touched + state.created))
        cluster.wait_for_recovery(present, timeout=RECOVERY_WAIT_SECONDS)
    except BackupError as exc:
        return False, (
            f" Its indices have not all recovered ({exc}): do not restart Alien4Cloud before "
            "they have."
        )
    return True, " Every shard it had begun restoring has finished recovering."


def _release_maintenance(run, keep: str = "") -> str:
    """Ends the Alien4Cloud maintenance the dead run had enabled (or, with ``keep``, leaves it
    on, saying why); its final message."""
    note = release_for_dead_run(run, keep=keep)
    message = type(run).objects.filter(pk=run.pk).values_list("error_message", flat=True)[0]
    if note:
        message += note
        type(run).objects.filter(pk=run.pk).update(error_message=message)
    return message


def _free_orphan_lock() -> list[str]:
    lock = locking.lock_holder()
    if lock is None:
        return []
    model = {dead.kind: dead.model for dead in KINDS}.get(lock.kind)
    alive = (
        model is not None and model.objects.filter(pk=lock.run_id, status__in=model.ACTIVE).exists()
    )
    if alive:
        return []
    locking.release(lock.kind, lock.run_id)
    return [f"lock held by finished {lock.kind} {lock.label} released"]


def record_worker_heartbeat() -> None:
    """A worker ran a scheduled task just now: the dashboard and /metrics read this."""
    from backups.models import SystemState

    SystemState.objects.update_or_create(
        key="worker-heartbeat", defaults={"value": {"at": timezone.now().isoformat()}}
    )


def rollback_hint(run: RestoreRun) -> str:
    if run.safety_backup_id:
        return f"Restore safety backup {run.safety_backup.name} to return to the state before."
    return "No safety backup was taken: restore an earlier backup."
