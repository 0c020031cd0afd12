"""Names, small helpers and the lock, shared by every operation."""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups.audit import Actor
from backups.elastic import client as elastic
from backups.errors import BackupError, Busy, InvalidInput, NotFound
from backups.models import AuditEvent, Backup, OperationLock, RestoreRun
from backups.operations import running
from backups.storage.store import Store, parse_bandwidth

log = logging.getLogger("backups.operations")
Outcome = AuditEvent.Outcome
ProgressCallback = Callable[[object], None] | None

# --- names ---------------------------------------------------------------------------------

NAME_MAX = 200
_FORBIDDEN = set(' \\/*?"<>|,#:')
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._+\-]*$")


def validate_backup_name(name: str) -> str:
    """Elasticsearch's snapshot naming rules, and safe as a file name; returns the name."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("A backup name is required.")
    if len(name) > NAME_MAX:
        raise InvalidInput(
            f"The backup name is {len(name)} characters long; the limit is {NAME_MAX}."
        )
    if "\0" in name or any(ord(c) < 32 for c in name):
        raise InvalidInput(
            "The backup name contains a control character; use letters, digits and - _ ."
        )
    bad = sorted({c for c in name if c in _FORBIDDEN})
    if bad:
        shown = " ".join("space" if c == " " else c for c in bad)
        raise InvalidInput(
            f"The backup name may not contain {shown}; use letters, digits and - _ ."
        )
    if name != name.lower():
        raise InvalidInput(
            f"Backup names are lowercase (Elasticsearch requires it): try {name.lower()!r}."
        )
    if name[0] in "_-.+":
        raise InvalidInput("A backup name may not start with _ - . or +.")
    if name in (".", "..") or not _NAME_RE.match(name):
        raise InvalidInput(
            "A backup name uses lowercase ASCII letters, digits and - _ . + only, "
            f"and starts with a letter or digit; {name!r} does not."
        )
    return name


def index_name_problem(text: str, *, pattern: bool = False) -> str:
    """Why text cannot be an index name (or, with pattern, a pattern of them); "" if it can.

    Elasticsearch's rules, plus ":" (a remote cluster) and "," (a second name smuggled in).
    """
    if not text:
        return "it is empty"
    if len(text.encode("utf-8", "surrogatepass")) > 255:
        return "it is longer than 255 bytes"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "it holds a control character"
    if text.startswith((".", "-", "_", "+")):
        return "it starts with . - _ or + (hidden, system or excluded indices)"
    bad = sorted(set(text) & set(' \\/"<>|,#:?' + ("" if pattern else "*")))
    if bad:
        return "it holds " + " ".join("space" if c == " " else c for c in bad)
    if text != text.lower():
        return "index names are lowercase"
    return ""


def default_backup_name(prefix: str = "backup", now=None) -> str:
    now = timezone.localtime(now or timezone.now())
    base = f"{prefix}-{now:%Y%m%d-%H%M%S}"
    name, n = base, 1
    while Backup.objects.filter(name=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


# --- small helpers -------------------------------------------------------------------------


def store() -> Store:
    return Store(Path(settings.A4C_BACKUP_DIR))


def file_bandwidth() -> int:
    """A4C_FILE_BANDWIDTH in bytes per second (0: no limit); ConfigError if it is not one."""
    return parse_bandwidth(settings.A4C_FILE_BANDWIDTH)


def _data_dir() -> Path:
    return Path(settings.A4C_DATA_DIR)


def _short_trace() -> str:
    return "".join(traceback.format_exc(limit=8))[-6000:]


def _get_backup(backup_id: int | str) -> Backup:
    # A name first: "20250101" is a valid name, and a number only when no backup is named so.
    text = str(backup_id)
    # No name holds a control character (and PostgreSQL refuses NUL in a query) nor is longer.
    if len(text) <= NAME_MAX and not any(ord(c) < 32 for c in text):
        found = Backup.objects.filter(name=text).first()
        if found is not None:
            return found
    try:
        pk = int(backup_id)
        if not 0 < pk < 2**63:  # beyond a bigint, the database would fail, not answer
            raise ValueError(pk)
        return Backup.objects.get(pk=pk)
    except (Backup.DoesNotExist, ValueError, TypeError):
        raise NotFound(
            f"No backup {backup_id!r}: list them with `manage.py backups` or on the Backups page."
        ) from None


def get_backup(backup_id: int | str) -> Backup:
    """A backup by id or name, or NotFound with what to do."""
    return _get_backup(backup_id)


def _get_restore(restore_id: int) -> RestoreRun:
    try:
        return RestoreRun.objects.select_related("backup", "safety_backup").get(pk=restore_id)
    except RestoreRun.DoesNotExist:
        raise NotFound(f"No restore run #{restore_id}.") from None


def _a4c_indices(
    cluster: elastic.Cluster, patterns: Iterable[str] | None = None
) -> dict[str, dict]:
    include = list(patterns or settings.A4C_INDEX_INCLUDE)
    return cluster.indices(include=include, exclude=settings.A4C_INDEX_EXCLUDE)


def _run_hook(command: str, what: str) -> None:
    if not command:
        return
    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=settings.A4C_HOOK_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"The {what} command {command!r} could not run: {exc}.") from exc
    if done.returncode != 0:
        raise BackupError(
            f"The {what} command {command!r} exited with {done.returncode}: "
            f"{(done.stderr or done.stdout).strip()[-300:]}"
        )


# --- the lock ------------------------------------------------------------------------------


def lock_holder() -> OperationLock | None:
    return running.lock_holder()


def _claim(kind: str, run, label: str, actor: Actor, wait: float) -> None:
    from backups.operations.maintenance import recover_stale_runs

    running.acquire(kind, run.pk, label, actor.name, wait=wait, recover=recover_stale_runs)


def create_claimed(
    kind: str,
    label: str,
    actor: Actor,
    model,
    fields: dict,
    *,
    wait: float,
    refused: Callable[[Busy], None],
):
    """Creates the run row (fields, and who asked) and takes the lock for it, or neither.

    While the lock is held by another operation, tries again until ``wait`` seconds are up;
    then calls ``refused`` (to audit the refusal) and raises Busy naming the holder.
    """
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            with transaction.atomic():
                run = model.objects.create(
                    **fields,
                    requested_by=actor.user,
                    actor=actor.name,
                    source=actor.source,
                    heartbeat_at=timezone.now(),
                )
                _claim(kind, run, label, actor, 0)
            return run
        except Busy as busy:
            if time.monotonic() >= deadline:
                refused(busy)
                raise
        while running.lock_holder() is not None and time.monotonic() < deadline:
            time.sleep(0.5)
