"""One lifecycle for every run: claimed, audited, reported, ended, unlocked and told.

This module owns what every kind of run does around its work: the claim (pending -> running,
a conditional update), the audit of its start and of its outcome, the heartbeat and progress
writer its steps are given, the lease on the backup storage held around its steps
(operations/storage_leases.py), mapping an exception to a status and an error on the row, the
end written last (after everything the run does has ended), the lock released with it, and the
notification. It must not do any run's work, and it never claims the lock: a run's lock is
taken with its row (locking.create_claimed), by the request. A status is written here and in
RunRow.transition() only (tests/test_layout.py holds that).

A new kind of run writes its steps alone; a small one runs on a Job row (models/runs.py), with
a RunKind of its own and its entry in operations/jobs.py and recovery's KINDS::

    class Drill(lifecycle.JobKind):  # its audit names and links the job's backup
        name = RunKind.DRILL  # declared with it: the lock's kind, the audit's "drill.run"

        def steps(self, job: Job, runner: ProgressWriter) -> dict:
            runner.phase("restoring into the scratch cluster")
            restore_into_scratch(job.backup, runner)  # raise to fail; runner.check() honours
            job.result = {"indices": job.backup.index_count}  # a cancel
            return job.result  # the parameters of the success audit

        def succeeded(self, job: Job, parameters: dict) -> Ending:
            ending = super().succeeded(job, parameters)
            ending.fields["result"] = job.result  # written with the status
            return ending

    def run_drill(job_id: int, progress: ProgressCallback = None) -> Job:
        return lifecycle.run(get_job(job_id, RunKind.DRILL), Drill(), progress)

operations/verify.py and operations/delete.py are two such kinds.
"""

from __future__ import annotations

import dataclasses
import logging

from django.db import transaction
from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.errors import Cancelled
from backups.models import RunKind
from backups.operations import locking, notify, storage_leases
from backups.operations.heartbeat import Heartbeat
from backups.operations.running import ProgressCallback, ProgressWriter, short_trace

log = logging.getLogger("backups.operations")


@dataclasses.dataclass
class Ending:
    """How a run ends: the status its row moves to, with what, and what the audit says."""

    status: str
    outcome: str  # the audit's
    fields: dict = dataclasses.field(default_factory=dict)  # written with the status
    message: str = ""  # the audit's
    parameters: dict = dataclasses.field(default_factory=dict)  # the audit's
    action: str = ""  # the audit's action, when not the kind's "<name>.run"


@dataclasses.dataclass(frozen=True)
class Notice:
    event: str
    subject: str
    text: str
    payload: dict


class Kind:
    """A kind of run: its steps, and what it does differently around them (all optional)."""

    name: RunKind  # the lock's kind and the audit action's prefix
    # The audit action of its outcome, when not "<name>.run" (an Ending may name another).
    outcome_action = ""
    # What its steps raised, for a caller that runs it in its own process and must say why.
    raised: Exception | None = None

    def target(self, row) -> str:
        return str(row)

    def links(self, row) -> dict:
        """The rows the audit events link to (backup=, restore=)."""
        return {}

    def begin(self, row, runner: ProgressWriter) -> None:
        """Once the run is claimed and its start audited, before its steps."""

    def steps(self, row, runner: ProgressWriter) -> dict:
        """The work; raises to fail. Returns the parameters of the success audit."""
        raise NotImplementedError

    def succeeded(self, row, parameters: dict) -> Ending:
        fields = {"phase": "done", "percent": 100, "finished_at": row.finished_at or timezone.now()}
        return Ending(row.Status.SUCCEEDED, Outcome.SUCCEEDED, fields, parameters=parameters)

    def failed(self, row, runner: ProgressWriter, exc: Exception) -> Ending:
        """The ending of a run whose steps raised ``exc`` (Cancelled: someone asked it)."""
        cancelled = isinstance(exc, Cancelled)
        fields = {
            "finished_at": timezone.now(),
            "error_message": str(exc),
            "error_detail": getattr(exc, "detail", "") or short_trace(),
        }
        return Ending(
            row.Status.CANCELLED if cancelled else row.Status.FAILED,
            Outcome.CANCELLED if cancelled else Outcome.FAILED,
            fields,
            message="" if cancelled else str(exc),
        )

    def closing(self, row, runner: ProgressWriter, ending: Ending) -> None:
        """What ends with the run, told how it ends before the row says it; never raises."""

    def notice(self, row) -> Notice | None:
        """Who is told of the run's end, read from its final row."""
        return None

    def after(self, row, actor: Actor) -> None:
        """Work that follows a run once it has ended and the lock is free (retention)."""


class JobKind(Kind):
    """A kind of run whose row is a Job on one backup (verify, delete, drill): its audit
    names the backup and links to it."""

    def target(self, job) -> str:
        return job.backup.name

    def links(self, job) -> dict:
        return {"backup": job.backup}


def record(actor: Actor, kind: Kind, row, action: str, outcome: str, **extra) -> None:
    """One audit event about a run of ``kind``."""
    audit.record(
        actor, action, target=kind.target(row), outcome=outcome, **kind.links(row), **extra
    )


def run(row, kind: Kind, progress: ProgressCallback = None):
    """Runs a pending row of ``kind`` to its end; the row says how it ended. Never raises for
    the run's failure. An interrupted process (Ctrl-C, SystemExit) leaves the row running and
    the lock held, for recovery (operations/recovery.py), so nothing starts over it."""
    now = timezone.now()
    if row.status != row.Status.PENDING or not row.transition(
        row.Status.RUNNING, started_at=now, heartbeat_at=now, phase="starting"
    ):
        log.info("%s %s is %s, not pending: nothing to run", kind.name, row.pk, row.status)
        return row
    actor = Actor(name=row.actor, source=row.source)
    record(actor, kind, row, f"{kind.name}.run", Outcome.STARTED)
    try:
        with Heartbeat(row) as heartbeat:
            runner = ProgressWriter(row, progress, heartbeat)
            kind.begin(row, runner)
            ending = end(row, kind, runner, outcome_of(row, kind, runner))
    finally:
        if not type(row).objects.filter(pk=row.pk, status__in=type(row).ACTIVE).exists():
            locking.release(kind.name, row.pk)  # a row ended, its lock left held by a crash
    extra = {"message": ending.message} if ending.message else {}
    if ending.parameters:
        extra["parameters"] = ending.parameters
    action = ending.action or kind.outcome_action or f"{kind.name}.run"
    record(actor, kind, row, action, ending.outcome, **extra)
    row.refresh_from_db()
    notice = kind.notice(row)
    if notice:
        notify.notify(notice.event, notice.subject, notice.text, notice.payload)
    kind.after(row, actor)
    return row


def outcome_of(row, kind: Kind, runner: ProgressWriter) -> Ending:
    """The steps run, under a lease on the backup storage that keeps what they write or read
    from every console's collector until their ending (a rollback is part of it) is known."""
    try:
        lease = storage_leases.take(f"{kind.name.value} {kind.target(row)} ({row.pk})")
    except Exception as exc:
        kind.raised = exc
        return kind.failed(row, runner, exc)
    runner.heartbeat.lease = lease  # renewed with each beat
    try:
        return steps_outcome(row, kind, runner)
    finally:
        runner.heartbeat.lease = None
        storage_leases.release(lease)


def steps_outcome(row, kind: Kind, runner: ProgressWriter) -> Ending:
    """The steps run; their success, or their failure's ending (a rollback is part of it)."""
    try:
        parameters = kind.steps(row, runner)
        runner.check(fresh=True)  # the last moment a cancel asked is honoured
    except Exception as exc:
        kind.raised = exc
        return kind.failed(row, runner, exc)
    return kind.succeeded(row, parameters or {})


def end(row, kind: Kind, runner: ProgressWriter, ending: Ending) -> Ending:
    """Ends what the run holds, then writes its ending and frees its lock at once.

    A success of a run still cancellable is written only if no cancel was asked meanwhile
    (a cancel is honoured or refused, never accepted and ignored): else it ends cancelled."""
    kind.closing(row, runner, ending)
    cancellable = runner.cancellable and ending.status == row.Status.SUCCEEDED
    if write(row, kind, runner, ending, {"cancel_requested": False} if cancellable else None):
        return ending
    row.refresh_from_db()
    if row.status not in type(row).ACTIVE:  # recovery took it meanwhile: its ending stands
        return dataclasses.replace(ending, outcome=Outcome.FAILED, message=row.error_message)
    try:
        runner.heartbeat.refused_to_end()
    except Cancelled as exc:
        ending = kind.failed(row, runner, exc)
    write(row, kind, runner, ending, None)
    return ending


def write(row, kind: Kind, runner: ProgressWriter, ending: Ending, only_if: dict | None) -> bool:
    """The ending's status and fields, and the lock freed, in one database transaction: a
    reader sees the run ended and the lock free together, or neither."""
    with transaction.atomic():
        won = runner.end(ending.status, only_if=only_if, **ending.fields)
        if won:
            locking.release(kind.name, row.pk)
    return won
