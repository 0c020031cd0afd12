"""The operator's own commands run around a backup: A4C_PRE_BACKUP_COMMAND and
A4C_POST_BACKUP_COMMAND."""

from __future__ import annotations

import shlex
import subprocess

from django.conf import settings

from backups.errors import (
    BackupError,
)


def run_hook(command: str, what: str) -> None:
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
