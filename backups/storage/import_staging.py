"""Where an import unpacks before it commits, and what an import that died there left behind.

An import unpacks into two staging dirs: ``.import-TOKEN`` in the storage's tmp dir (record,
manifest, blobs) and ``.a4c-import-TOKEN`` beside the snapshot repository (the snapshot's
files), each on the filesystem of its final place so that committing is a rename. While it
runs, the import holds an flock(2) on ``NAME.lock`` beside each (the repository's directory may
be shared with other consoles): the kernel drops it when the process dies, however it dies, so
a staging dir whose lock can be taken belongs to nobody and is removed by the next import and
by the recovery (``discard_import_leftovers``).
SIGTERM is turned into KeyboardInterrupt while an import runs (``terminated_as_interrupt``), so
that a stopped import, like one given Ctrl-C, removes what it unpacked. No Django here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from backups.storage.fileio import os_error, rmtree, show

# A dot first: a backup's own tmp dir is named after it, and no backup name starts with one.
PREFIX = ".import-"  # in the storage's tmp dir
REPOSITORY_PREFIX = ".a4c-import-"  # beside the snapshot repository
LOCK_SUFFIX = ".lock"
UNLOCKED_STALE_SECONDS = 3600


@dataclass(frozen=True)
class ImportStaging:
    """One import's staging dirs (not made yet: read_archive makes them)."""

    token: str
    staging: Path
    repository_staging: Path


@contextlib.contextmanager
def locked_staging(tmp: Path, repository_parent: Path) -> Iterator[ImportStaging]:
    """Holds a fresh token's locks for the import's whole run; whatever is left of its staging
    dirs is removed at the end (a commit has moved what it keeps). Left-overs of dead imports
    are removed first."""
    tmp, repository_parent = Path(tmp), Path(repository_parent)
    for directory in (tmp, repository_parent):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(exc, "creating", directory) from exc
    discard_import_leftovers(tmp, repository_parent)
    token = secrets.token_hex(8)
    staging = ImportStaging(
        token, tmp / f"{PREFIX}{token}", repository_parent / f"{REPOSITORY_PREFIX}{token}"
    )
    held: list[tuple[Path, int]] = []
    try:
        for path in (staging.staging, staging.repository_staging):
            lock = path.with_name(path.name + LOCK_SUFFIX)
            held.append((lock, _locked_lock_file(lock)))
        yield staging
    finally:
        for path in (staging.staging, staging.repository_staging):
            with contextlib.suppress(OSError):
                rmtree(path)
        for lock, fd in held:
            with contextlib.suppress(OSError):
                lock.unlink()
            os.close(fd)


def _locked_lock_file(lock: Path) -> int:
    """The lock file, locked before it appears under its name: another import's clean-up can
    never take a live import's lock in the moment between creating and locking it."""
    fresh = lock.with_name(f"{lock.name}.new-{secrets.token_hex(4)}")
    try:
        fd = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise os_error(exc, "creating", fresh) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(fresh, lock)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            fresh.unlink()
        raise os_error(exc, "locking", lock) from exc
    return fd


def discard_import_leftovers(
    tmp: Path, repository_parent: Path, now: float | None = None
) -> list[str]:
    """Removes the staging dirs (and lock files) of imports that are no longer running; the
    paths of the dirs removed. A running import holds a lock beside each of its staging dirs
    and is left alone; a staging dir without a lock (an import killed in the moment before it
    took one, or one by an a4c-backup that took none) is removed once it is an hour old."""
    now = time.time() if now is None else now
    removed: list[str] = []
    for directory, prefix in ((Path(tmp), PREFIX), (Path(repository_parent), REPOSITORY_PREFIX)):
        try:
            names = set(os.listdir(directory))
        except OSError:
            continue
        token = re.escape(prefix) + r"[0-9a-f]{8,32}"
        for name in sorted(n for n in names if re.fullmatch(token, n)):
            lock = directory / (name + LOCK_SUFFIX)
            fd = _take(lock)
            if fd is False or (fd is None and not _aged(directory / name, now)):
                continue  # a live import, or one about to take its lock
            try:
                _discard(directory / name)
                removed.append(show(directory / name))
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
            finally:
                if fd is not None:
                    os.close(fd)
        for name in sorted(names):  # locks whose dir is gone; half-made locks
            lone = re.fullmatch(token + re.escape(LOCK_SUFFIX), name) and name[:-5] not in names
            half = re.fullmatch(token + r"\.lock\.new-[0-9a-f]{8}", name)
            if (lone and _unused(directory / name)) or (half and _aged(directory / name, now)):
                with contextlib.suppress(FileNotFoundError):
                    (directory / name).unlink()
    return removed


def _aged(path: Path, now: float) -> bool:
    try:
        return now - os.lstat(path).st_mtime > UNLOCKED_STALE_SECONDS
    except FileNotFoundError:
        return False


def _discard(path: Path) -> None:
    try:
        rmtree(path)
    except OSError as exc:
        raise os_error(exc, "deleting", path) from exc


def _unused(lock: Path) -> bool:
    fd = _take(lock)
    if fd is not None and fd is not False:
        os.close(fd)
    return fd is not False


def _take(lock: Path) -> int | None | bool:
    """The lock's fd once taken (its import is dead); None when there is no lock file (a dead
    import, or one from before locks); False when a live import holds it."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    return fd


@contextlib.contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (once) in the main thread while the block runs, so the
    clean-up that Ctrl-C gets runs for a stop too; a second SIGTERM does not cut the clean-up
    short. Elsewhere than the main thread (no signal can be handled there) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = []

    def handler(signum, frame):
        if not raised:
            raised.append(signum)
            raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
