"""What a command line gives and gets back: its arguments turned into values (names, restore
numbers, seconds, ages), the person running it, and the exit codes that answer it.

The shared argparse options live here, so that --yes, --queue, --wait and --json mean the same
in every command. It parses and refuses; it must not run, print or prompt.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.utils import timezone

from backups import operations
from backups.audit import Actor
from backups.models import Backup

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
    """The error a command raises: one stderr line, and ``code`` as its exit code."""
    return CommandError(message, returncode=code)


# --- shared options --------------------------------------------------------------------------


def add_json_argument(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"Print {what} as JSON.")


def add_yes_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--yes",
        "--noinput",
        "--no-input",
        dest="yes",
        action="store_true",
        help=f"{what} without asking (needed when no terminal is attached).",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
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


# --- values ----------------------------------------------------------------------------------


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
