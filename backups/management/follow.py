"""Running a backup or restore from the command line, and following it to its end.

A requested run is carried out in this process, or handed to a Celery worker (--queue) and
followed through its row (--wait). While it runs here, Ctrl-C or SIGTERM asks it to cancel
cleanly (a restore puts the data back); a second Ctrl-C stops at once. It must not do the
work: backups/operations does, for the web and the worker too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

from django.conf import settings
from django.core.management.base import OutputWrapper
from django.db import connection

from backups import operations
from backups.errors import BackupError, QueueUnavailable
from backups.management.arguments import INTERRUPTED, actor, fail
from backups.management.progress import Reporter, label
from backups.models import Backup, Job, RestoreRun, RunKind


@contextlib.contextmanager
def cancel_on_interrupt(kind: str, run_id: int, err: OutputWrapper) -> Iterator[None]:
    """Ctrl-C or SIGTERM asks the running operation to stop cleanly (a restore rolls back).

    A second Ctrl-C stops the process at once, leaving the run for recovery to end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked: list[int] = []

    def ask(signum, _frame) -> None:
        if asked and signum == signal.SIGINT:
            raise KeyboardInterrupt
        asked.append(signum)
        err.write(
            f"\nstopping the {kind} cleanly (a restore puts the data back); "
            "Ctrl-C again stops at once and leaves it to the recovery"
        )
        threading.Thread(target=_request_cancel, args=(kind, run_id), daemon=True).start()

    previous = {sig: signal.signal(sig, ask) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _request_cancel(kind: str, run_id: int) -> None:
    try:
        operations.cancel(kind, run_id, actor())
    except BackupError:
        pass  # it ended meanwhile
    finally:
        connection.close()


def carry_out(
    kind: RunKind, run: Backup | RestoreRun, options: dict, reporter: Reporter, err: OutputWrapper
) -> Backup | RestoreRun:
    """Runs a requested backup or restore here, or queues it (and follows it with --wait)."""
    if not options.get("queue"):
        try:
            with cancel_on_interrupt(kind, run.pk, err):
                if kind == RunKind.BACKUP:
                    run = operations.run_backup(run.pk, progress=reporter)
                    copy_here(run, reporter)
                else:
                    run = operations.run_restore(run.pk, progress=reporter)
        except KeyboardInterrupt:
            reporter.finish()
            raise fail(
                f"stopped at once: {label(run)} is left as it was, for the recovery to end "
                "(`manage.py doctor` shows the lock until then)",
                INTERRUPTED,
            ) from None
        reporter.finish()
        return run
    from backups import tasks  # the command line runs without Celery unless --queue asks for it

    try:
        tasks.enqueue(kind, run.pk, actor())
    except QueueUnavailable as exc:
        raise BackupError(f"{exc} Or run it here, without --queue.") from exc
    reporter.message(f"queued {label(run)} for a Celery worker")
    if not options.get("wait"):
        run.refresh_from_db()
        return run
    return follow(run, reporter)


def copy_here(backup: Backup, reporter: Reporter) -> None:
    """The off-site copy a backup run here asked for (A4C_OFFSITE_URL), run here after it; a
    copy that fails leaves the backup good and says so."""
    job = Job.objects.filter(
        kind=RunKind.OFFSITE, backup=backup, status=Job.Status.PENDING, task_id=""
    ).first()
    if job is None:
        return
    reporter.finish()
    reporter.message(f"copying {backup.name} off-site")
    job = operations.run_copy(job.pk)
    if job.status == Job.Status.SUCCEEDED:
        reporter.message(f"copied {backup.name} off-site")
    else:
        reporter.message(
            f"the off-site copy of {backup.name} {job.status}: {job.error_message} "
            f"(the backup is good; `manage.py offsite push {backup.name}` tries again)"
        )


def follow(
    run: Backup | RestoreRun,
    reporter: Reporter,
    poll: float | None = None,
    hint_after: float = 15.0,
) -> Backup | RestoreRun:
    """Polls the row until the run ends, reporting its progress; Ctrl-C only stops following."""
    poll = poll or max(0.2, min(1.0, float(settings.A4C_POLL_SECONDS)))
    model = type(run)
    started = time.monotonic()
    hinted = False
    try:
        while True:
            run = model.objects.get(pk=run.pk)
            reporter(run)
            if run.status not in model.ACTIVE:
                reporter.finish()
                return run
            if run.status == "pending" and not hinted and time.monotonic() - started > hint_after:
                reporter.message(
                    f"{label(run)} is still waiting for a worker: is one running? "
                    "(`manage.py doctor` checks)"
                )
                hinted = True
            time.sleep(poll)
    except KeyboardInterrupt:
        reporter.finish()
        raise fail(
            f"stopped following {label(run)}; it goes on in the worker: "
            f"`manage.py show {run.name if model is Backup else run.backup.name}` tells how it ends"
        ) from None
