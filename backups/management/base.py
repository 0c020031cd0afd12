"""What the management commands share: errors and exit codes, output, confirmation, running.

Commands are thin: they parse arguments, call backups/operations and print. This module
holds the parts every command needs so each stays a screen long:

* ``Command``: a BaseCommand whose failures are ONE line on stderr ("error: ...") and an exit
  code a script can test (OK ... VERIFY_FAILED), never a traceback for a person's mistake;
* ``Reporter``: progress as a bar on a terminal, plain lines in a log, JSON lines with --json;
* ``carry_out``: runs a requested backup or restore in this process, or hands it to a Celery
  worker (--queue) and follows its row (--wait);
* summaries of rows as plain dicts, for --json and for the human-readable lines.

It must not do the work itself: that lives in backups/operations, for the web and the worker too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.core import checks as django_checks
from django.core.management.base import BaseCommand, CommandError, handle_default_options
from django.db import DatabaseError, connection, connections
from django.utils import timezone

from backups import operations
from backups.audit import Actor
from backups.errors import BackupError, QueueUnavailable
from backups.management.progress import Reporter, label
from backups.models import Backup, RestoreRun

# The exit codes every command uses; the README lists them for script writers.
OK = 0
FAILED = 1  # the operation failed (Elasticsearch, storage, a run that ended badly)
USAGE = 2  # bad input or configuration: nothing was done
BUSY = 3  # another operation holds the lock
NOT_FOUND = 4  # no such backup or restore
VERIFY_FAILED = 5  # a backup or the audit chain is not what it claims to be
INTERRUPTED = 130  # Ctrl-C twice: stopped at once, as any program stopped by SIGINT


def actor() -> Actor:
    """The OS user running the command: the name every row and audit event records."""
    return Actor.command_line()


def fail(message: str, code: int = FAILED) -> CommandError:
    return CommandError(message, returncode=code)


# --- the base command ------------------------------------------------------------------------


class Command(BaseCommand):
    """A command whose errors are one stderr line and one of the exit codes above.

    Django's own system checks run before ``handle`` but only errors stop the command, as a
    usage error; warnings (a data dir not created yet) would otherwise be printed on every run
    and mailed by cron every night. ``manage.py doctor`` shows them all.
    """

    requires_system_checks: list = []

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        prog = parser.prog

        def one_line_error(message: str):
            text = f"{message} (see `{prog} --help`)"
            if parser.called_from_command_line:
                parser.exit(USAGE, f"error: {text}\n")
            raise CommandError(text, returncode=USAGE)

        parser.error = one_line_error
        return parser

    def run_from_argv(self, argv):
        # Django's version prints "CommandError: ..."; scripts and people read "error: ...".
        self._called_from_command_line = True
        parser = self.create_parser(argv[0], argv[1])
        options = parser.parse_args(argv[2:])
        cmd_options = vars(options)
        args = cmd_options.pop("args", ())
        handle_default_options(options)
        try:
            self.execute(*args, **cmd_options)
        except CommandError as exc:
            if options.traceback:
                raise
            self.stderr.write(f"error: {exc}")
            sys.exit(exc.returncode)
        finally:
            connections.close_all()

    def execute(self, *args, **options):
        try:
            self.check_configuration()
            return super().execute(*args, **options)
        except BackupError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from exc
        except DatabaseError as exc:
            new = "no such table" in str(exc) or "does not exist" in str(exc)
            raise CommandError(
                f"the database {settings.DATABASES['default']['NAME']} failed: {exc}"
                + ("; run `manage.py migrate` to create its tables" if new else ""),
                returncode=FAILED,
            ) from exc

    def check_configuration(self) -> None:
        """Stops at a setting the system checks call an error, before anything runs."""
        errors = [
            m
            for m in django_checks.run_checks()
            if m.level >= django_checks.ERROR and not m.is_silenced()
        ]
        if errors:
            first = errors[0]
            more = (
                f" (and {len(errors) - 1} more: run `manage.py doctor`)" if len(errors) > 1 else ""
            )
            hint = f" {first.hint}" if first.hint else ""
            raise CommandError(f"configuration: {first.msg}{hint}{more}", returncode=USAGE)

    # --- output -----------------------------------------------------------------------------
    def add_json_argument(self, parser, what: str = "the result") -> None:
        parser.add_argument("--json", action="store_true", help=f"Print {what} as JSON.")

    def emit_json(self, value) -> None:
        self.stdout.write(json.dumps(value, default=str, ensure_ascii=False))

    def say(self, text: str = "") -> None:
        self.stdout.write(text)

    def can_confirm(self, options: dict, what: str) -> None:
        """Refuses before any work when a confirmation is needed and nobody can give it."""
        if not options.get("yes") and not sys.stdin.isatty():
            raise fail(
                f"{what} needs confirmation and there is no terminal to ask on: "
                "pass --yes to go ahead without a prompt",
                USAGE,
            )

    def confirm(self, options: dict, *, question: str, expected: str, what: str) -> None:
        """Asks on a terminal, unless --yes; refuses when there is nobody to ask."""
        self.can_confirm(options, what)
        if options.get("yes"):
            return
        self.stderr.write(question, ending="")
        self.stderr.flush()
        answer = sys.stdin.readline().strip()
        if answer != expected:
            raise fail(f"not confirmed ({answer or 'no answer'}): nothing was changed")


def add_yes_argument(parser, what: str) -> None:
    parser.add_argument(
        "--yes",
        "--noinput",
        "--no-input",
        dest="yes",
        action="store_true",
        help=f"{what} without asking (needed when no terminal is attached).",
    )


def add_run_arguments(parser) -> None:
    """--queue, --wait and --json, shared by the commands that start a backup or restore."""
    parser.add_argument(
        "--queue",
        action="store_true",
        help="Hand the work to a Celery worker instead of running it in this process.",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="With --queue: follow the run until it ends, with its progress and exit code.",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="Progress as JSON lines, then the summary as one JSON object.",
    )


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a number of seconds cannot be negative")
    return value


def resolve_backup(name_or_id: str) -> Backup:
    """A backup by exact name first, then by id: a name made of digits stays a name."""
    found = Backup.objects.filter(name=name_or_id).first()
    return found or operations.get_backup(name_or_id)


def restore_id(text: str) -> int:
    if not text.isdigit():
        raise fail(f"{text!r} is not a restore number: `manage.py show BACKUP` lists them", USAGE)
    return int(text)


# --- sizes, times, summaries -----------------------------------------------------------------


def local_time(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _seconds(value: timedelta | None) -> float | None:
    return round(value.total_seconds(), 3) if value is not None else None


def backup_summary(backup: Backup) -> dict:
    return {
        "kind": "backup",
        "id": backup.pk,
        "name": backup.name,
        "status": backup.status,
        "description": backup.description,
        "trigger": backup.trigger,
        "actor": backup.actor,
        "source": backup.source,
        "pinned": backup.pinned,
        "created_at": _iso(backup.created_at),
        "started_at": _iso(backup.started_at),
        "finished_at": _iso(backup.finished_at),
        "duration_seconds": _seconds(backup.duration),
        "phase": backup.phase,
        "elasticsearch": backup.include_elasticsearch,
        "files": backup.include_files,
        "index_patterns": backup.index_patterns,
        "index_count": backup.index_count,
        "document_count": backup.document_count,
        "indices": backup.indices,
        "file_count": backup.file_count,
        "file_bytes": backup.file_bytes,
        "new_bytes": backup.new_bytes,
        "snapshot": backup.snapshot_name,
        "repository": backup.repository,
        "es_version": backup.es_version,
        "es_cluster_name": backup.es_cluster_name,
        "verified_at": _iso(backup.verified_at),
        "verify_ok": backup.verify_ok,
        "warnings": backup.warnings,
        "error": backup.error_message,
    }


def restore_summary(run: RestoreRun) -> dict:
    return {
        "kind": "restore",
        "id": run.pk,
        "backup": run.backup.name,
        "status": run.status,
        "scope": run.scope,
        "indices": run.chosen_indices,
        "file_mode": run.file_mode,
        "rename": [run.rename_pattern, run.rename_replacement] if run.rename_pattern else None,
        "safety_backup": run.safety_backup.name if run.safety_backup_id else None,
        "rollback_of": run.rollback_of_id,
        "rolled_back": run.rolled_back,
        "actor": run.actor,
        "source": run.source,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_seconds": _seconds(run.duration),
        "phase": run.phase,
        "phases": run.phases,
        "error": run.error_message,
    }


def summary(run) -> dict:
    return backup_summary(run) if isinstance(run, Backup) else restore_summary(run)


# --- running ---------------------------------------------------------------------------------


@contextlib.contextmanager
def cancel_on_interrupt(kind: str, run_id: int, err) -> Iterator[None]:
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


def carry_out(kind: str, run, options: dict, reporter: Reporter, err) -> Backup | RestoreRun:
    """Runs a requested backup or restore here, or queues it (and follows it with --wait)."""
    if not options.get("queue"):
        try:
            with cancel_on_interrupt(kind, run.pk, err):
                if kind == "backup":
                    run = operations.run_backup(run.pk, progress=reporter)
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


def follow(run, reporter: Reporter, poll: float | None = None, hint_after: float = 15.0):
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


def report_outcome(command: Command, run, options: dict, done: Callable[[object], str]) -> None:
    """The last words of a run: the summary, and the exit code its status means."""
    run = type(run).objects.get(pk=run.pk)
    queued_only = options.get("queue") and not options.get("wait")
    if options.get("json"):
        command.emit_json(summary(run))
    elif queued_only:
        command.say(
            f"{label(run)} is {run.status}; follow it with `manage.py show {backup_name_of(run)}`"
        )
    elif run.status == "succeeded":
        command.say(done(run))
    if queued_only or run.status in type(run).ACTIVE:
        return
    for warning in getattr(run, "warnings", None) or []:
        command.stderr.write(f"warning: {warning}")
    if run.status != "succeeded":
        raise fail(
            f"{label(run)} {run.status.replace('_', ' ')}: {run.error_message or 'no detail'}"
        )


def backup_name_of(run) -> str:
    return run.name if isinstance(run, Backup) else run.backup.name


# --- time filters ----------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'7d', '12h', '30m', '2w', a date (2025-01-31) or a date and time, in local time."""
    now = now or timezone.now()
    match = _RELATIVE.match(text.strip().lower())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        return now - timedelta(**{unit: int(match.group(1))})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise fail(
            f"--since {text!r} is neither a date (2025-01-31), a date and time "
            "(2025-01-31T08:00) nor an age (30m, 12h, 7d, 2w)",
            USAGE,
        ) from None
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value
