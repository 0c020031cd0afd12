"""Verifying a backup: its snapshot is whole, and every stored file hashes to what its manifest
says. A verification is a Job of kind verify run by the lifecycle (operations/lifecycle.py):
the console asks for one and a worker runs it; the command line runs one in its own process."""

from __future__ import annotations

import dataclasses

from django.utils import timezone

from backups import audit, progress
from backups.audit import Actor, Outcome
from backups.elastic import client as elastic
from backups.errors import BackupError, Cancelled, DamagedBackup, ElasticError
from backups.models import Backup, Job, RunKind
from backups.operations import lifecycle, records
from backups.operations.lookup import get_backup, get_job, succeeded_backup
from backups.operations.places import store
from backups.operations.running import ProgressCallback, ProgressWriter

VERIFY_ACTION = "backup.verify"  # the audit's action for its request and its outcome


@dataclasses.dataclass
class VerifyReport:
    backup: str
    ok: bool
    problems: list[str]


class ProblemsFound(BackupError):
    """The backup failed its verification: the run did its work, and this is its verdict."""

    exit_code = 5

    def __init__(self, report: VerifyReport):
        self.report = report
        count = len(report.problems)
        super().__init__(
            f"backup {report.backup} failed verification: {count} problem"
            f"{'s' if count != 1 else ''}, first: {report.problems[0]}"
        )


def request_verify(backup_id: int | str, actor: Actor) -> Job:
    """Asks for a verification (the console hands it to a worker: it re-reads every file,
    which can outlast a web request); run_verify does it. A verification already asked and
    not ended is asked again, not doubled."""
    backup = verifiable(backup_id)
    job = backup.verification or new_verification(backup, actor)
    audit.record(actor, VERIFY_ACTION, target=backup.name, backup=backup, outcome=Outcome.REQUESTED)
    return job


def run_verify(job_id: int, progress: ProgressCallback = None) -> Job:
    """The verification request_verify asked for, in the name of who asked; the row says how
    it ended (the backup's verify_ok and verify_problems the verdict)."""
    return lifecycle.run(get_job(job_id, RunKind.VERIFY), VerifyRun(), progress)


def verify_backup(
    backup_id: int | str, actor: Actor, progress: ProgressCallback = None
) -> VerifyReport:
    """Verifies a backup now, in this process (the command line): the report, whether or not
    problems were found; raises what stopped the verification itself (Elasticsearch, a cancel)."""
    backup = verifiable(backup_id)
    kind = VerifyRun()
    lifecycle.run(new_verification(backup, actor), kind, progress)
    if isinstance(kind.raised, ProblemsFound):
        return kind.raised.report
    if kind.raised is not None:
        raise kind.raised
    return kind.report


def verifiable(backup_id: int | str) -> Backup:
    backup = get_backup(backup_id)
    succeeded_backup(backup, "verified")
    return backup


def new_verification(backup: Backup, actor: Actor) -> Job:
    now = timezone.now()
    return Job.objects.create(
        kind=RunKind.VERIFY,
        backup=backup,
        requested_by=actor.user,
        actor=actor.name,
        source=actor.source,
        created_at=now,
        heartbeat_at=now,
    )


class VerifyRun(lifecycle.JobKind):
    """A verification's steps; its outcome is audited as backup.verify, its verdict written on
    the backup. Found problems fail the run (the backup is damaged), and say which."""

    name = RunKind.VERIFY
    outcome_action = VERIFY_ACTION
    report: VerifyReport

    def steps(self, job: Job, runner: ProgressWriter) -> dict:
        backup = job.backup
        succeeded_backup(backup, "verified")  # deleted since it was asked
        problems = verify_steps(backup, runner)
        ok = not problems
        Backup.objects.filter(pk=backup.pk).update(
            verified_at=timezone.now(), verify_ok=ok, verify_problems=problems[:100]
        )
        self.report = VerifyReport(backup.name, ok, problems)
        job.result = {"ok": ok, "problems": len(problems)}
        if not ok:
            raise ProblemsFound(self.report)
        return {"problems": 0}

    def succeeded(self, job: Job, parameters: dict) -> lifecycle.Ending:
        ending = super().succeeded(job, parameters)
        ending.fields["result"] = job.result
        return ending

    def failed(self, job: Job, runner: ProgressWriter, exc: Exception) -> lifecycle.Ending:
        ending = super().failed(job, runner, exc)
        if isinstance(exc, ProblemsFound):
            problems = exc.report.problems
            ending.fields["result"] = job.result
            ending.fields["error_detail"] = "\n".join(problems[:100])
            ending.message = "; ".join(problems[:5])
            ending.parameters = {"problems": len(problems)}
        return ending

    def notice(self, job: Job) -> lifecycle.Notice | None:
        if job.status != Job.Status.FAILED or not job.result:
            return None  # only a verdict is news; a verification that could not run is not
        return lifecycle.Notice(
            "backup.verify_failed",
            f"Backup {job.backup.name} failed verification",
            job.error_message,
            {"backup": job.backup.name, "problems": job.result.get("problems", 0)},
        )


def verify_steps(backup: Backup, runner: ProgressWriter) -> list[str]:
    """The snapshot exists and is SUCCESS, the repository verifies, every blob hashes right:
    the problems found."""
    if backup.include_files:
        runner.plan_stages([progress.Stage("files", backup.file_bytes or None)])
    problems: list[str] = []
    if backup.include_elasticsearch and backup.indices:
        runner.phase("snapshot")
        problems.extend(snapshot_problems(backup))
    if backup.include_files:
        runner.phase("files", reset_counters=True)
        if not store().manifests.exists(backup.name):
            problems.append(f"the file manifest of {backup.name} is missing")
        else:
            try:
                report = store().verify(
                    backup.name, progress=runner.file_progress, check=runner.check
                )
                problems.extend(report.problems)
            except Cancelled:
                raise
            except BackupError as exc:
                problems.append(str(exc))
    return problems


def snapshot_problems(backup: Backup) -> list[str]:
    cluster = elastic.cluster()
    where = backup.snapshot_location
    try:
        records.ensure_repository_for(backup)
        cluster.verify_repository(where.repository)
        snap = cluster.snapshot(where.repository, where.snapshot)
    except (ElasticError, DamagedBackup) as exc:  # DamagedBackup: a record's claim refused
        return [str(exc)]
    if snap is None:
        return [f"snapshot {where.snapshot} is missing from repository {where.repository}"]
    problems = []
    if snap.state != "SUCCESS":
        problems.append(f"snapshot {backup.name} is {snap.state}, not SUCCESS")
    missing = sorted(set(backup.indices) - set(snap.indices))
    if missing:
        problems.append(f"snapshot {backup.name} lacks indices {', '.join(missing)}")
    return problems
