"""Secrets this installation makes for itself on first start, kept in files only it can read.

An install that forgets to set DJANGO_SECRET_KEY must not fall back to a string printed in the
source (anyone could forge its sessions), so a random one is generated once under VAR_DIR with
mode 0600, like the admin password, and read back on every later start by the web server, the
worker and the command line alike.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def private_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes of ``path``, a file only this user may read, made once by ``make()`` when
    missing (two processes starting at once agree on one). Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once agree on one key instead of overwriting.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "wb") as file:
            file.write(make())
            file.flush()
            os.fsync(file.fileno())
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)  # a copy or an editor widened it: only we may read it
    return path.read_bytes()


def read_or_create(path: Path, variable: str) -> str:
    """The secret in ``path``; made (random, mode 0600) if missing. ``variable`` is the setting
    that replaces the file, named in the error when the file can be neither read nor made."""
    try:
        made = private_file(path, lambda: (secrets.token_urlsafe(48) + "\n").encode())
        value = made.decode(errors="replace").strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"Cannot keep a generated secret in {path} ({exc.strerror}): make that directory "
            f"writable (A4C_VAR_DIR), or set {variable}."
        ) from exc
    if not value:
        raise ImproperlyConfigured(
            f"{path} is empty: delete it to have a new secret made, or set {variable}."
        )
    return value
