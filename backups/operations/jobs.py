"""The smaller kinds of run on a backup (Job rows): which lifecycle Kind runs each RunKind, and
taking back a job no worker could be given. A new kind (a drill, an off-site copy) is one entry
here, a Kind with its steps, and its DeadRuns in operations/recovery.py."""

from __future__ import annotations

from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.models import Job, RunKind
from backups.operations import lifecycle, locking
from backups.operations.delete import DeleteRun
from backups.operations.drill import DrillRun
from backups.operations.lookup import get_job
from backups.operations.offsite import OffsiteRun
from backups.operations.running import ProgressCallback
from backups.operations.verify import VerifyRun

JOB_KINDS: dict[RunKind, type[lifecycle.Kind]] = {
    RunKind.VERIFY: VerifyRun,
    RunKind.DELETE: DeleteRun,
    RunKind.DRILL: DrillRun,
    RunKind.OFFSITE: OffsiteRun,
}


def run_job(job_id: int, progress: ProgressCallback = None) -> Job:
    """Runs a pending job to its end by its kind's steps; the row says how it ended."""
    job = get_job(job_id)
    return lifecycle.run(job, JOB_KINDS[RunKind(job.kind)](), progress)


def job_not_started(job_id: int, actor: Actor, reason: str) -> Job:
    """Takes back a pending job no worker could be given (it ends failed), and records why."""
    job = get_job(job_id)
    kind = JOB_KINDS[RunKind(job.kind)]()
    if job.status == Job.Status.PENDING:
        job.transition(Job.Status.FAILED, finished_at=timezone.now(), error_message=reason)
        locking.release(kind.name, job.pk)  # a drill's, taken with its row
    audit.record(
        actor,
        kind.outcome_action or f"{kind.name}.run",
        target=kind.target(job),
        outcome=Outcome.FAILED,
        message=reason,
        **kind.links(job),
    )
    return job
