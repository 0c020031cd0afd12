"""The backup storage as a repository: blobs, manifests, and their collection.

The only module that lays out backup file storage (the A4C_BACKUP_DIR root):

    blobs/<2 hex>/<sha256>       each file's bytes, kept once by content hash
    manifests/<name>.manifest    JSON lines in walk order: header, entries, trailer with a hash
    tmp/<name>/                  temp names of a running backup, renamed into place when whole
    leases/<holder>.json         runs in flight on any console sharing the storage
                                 (backups/storage/leases.py)

A ``Store`` takes a backup of a tree in, checks its blobs and collects the blobs no manifest
names, but never while another run's lease is live (the rule: leases.py); its manifests
are read and written through ``Store.manifests`` (backups/storage/manifest.py). It must
not change the data dir: restoring into it is the working tree's (backups/storage/
working_tree.py). The work lives beside it (backup, manifest, walk, pipeline, fileio,
results, leases); callers outside backups/storage/ import only ``backups.storage``.
It takes plain paths and arguments and must not import Django. Memory stays flat whatever
the tree size: manifests and trees are streamed and merged in walk order, never held whole.
Paths are str from os.fsdecode (surrogateescape): names that are not UTF-8 round-trip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from backups.errors import Cancelled, DamagedBackup, StorageError
from backups.signing import SigningKey
from backups.storage.backup import BackupRun
from backups.storage.catalog import Catalog
from backups.storage.fileio import buffer, check_name, fill, os_error, rmtree, show
from backups.storage.leases import HeldLease, Leases
from backups.storage.manifest import HEX64, Entry, Manifests
from backups.storage.pipeline import Meter, Pipeline
from backups.storage.results import BlobCheckReport, FileProgress, GcSummary, TreeSummary

DEFAULT_EXCLUDES = ("work", "tmp", "upload")


@dataclass(frozen=True)
class CopyOptions:
    """How the data dir's files are copied, the same for a backup, a plan and a restore (the
    operations read them from the settings once: operations/places.copy_options())."""

    exclude_dirs: tuple[str, ...] = DEFAULT_EXCLUDES  # top-level dirs of the data dir left alone
    workers: int = 4  # threads hashing and copying
    bandwidth: int = 0  # bytes per second read or written, 0 for no limit


MAX_PROBLEMS = 1000
STALE_TMP_SECONDS = 3600

ProgressFn = Callable[[FileProgress], None] | None
CheckFn = Callable[[], None] | None


class Store:
    """Backup file storage under one root directory (the A4C_BACKUP_DIR setting).

    progress callbacks get a FileProgress at least every 0.5 s and at the end. check() is called
    at every entry (keep it cheap, e.g. look at the database at most once a second): if it
    raises (Cancelled, or anything), the operation stops and its error propagates.
    """

    def __init__(self, root: Path, signer: SigningKey | None = None):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        self.manifests = Manifests(self.root / "manifests")
        # records/: what a new console needs to list the sets, signed with ``signer``
        self.records = Catalog(self.root, signer)
        self.leases = Leases(self.root / "leases")

    # -- storage layout -------------------------------------------------------------------

    def _ensure_layout(self) -> None:
        for path in (self.blobs, self.manifests.directory, self.tmp):
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise os_error(exc, "creating", path) from exc

    def blob_path(self, sha256: str) -> str:
        return f"{self.blobs}/{sha256[:2]}/{sha256}"

    def blob_ok(self, sha256: str, size: int) -> bool:
        """The blob exists with the right size (a cheap check; verify() re-hashes)."""
        try:
            return os.stat(self.blob_path(sha256)).st_size == size
        except OSError:
            return False

    def free_bytes(self) -> int:
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        return shutil.disk_usage(path).free

    # -- partial backups -------------------------------------------------------------------

    def discard_partial(self, name: str) -> None:
        """Removes the temp files an interrupted backup of that name left."""
        check_name(name)
        try:
            rmtree(self.tmp / name)
        except OSError as exc:
            raise os_error(exc, "deleting", self.tmp / name) from exc

    # -- backup and verify ----------------------------------------------------------------

    def backup_tree(
        self,
        name: str,
        data_dir: Path,
        *,
        exclude_dirs: Iterable[str] = DEFAULT_EXCLUDES,
        previous: str | None = None,
        progress: ProgressFn = None,
        check: CheckFn = None,
        workers: int = 4,
        bandwidth: int = 0,
        counted: tuple[int, int] | None = None,
    ) -> TreeSummary:
        """Stores the data dir's files as blobs, then writes manifests/<name>.manifest.

        Files unchanged since `previous` (same size, mtime, inode, ctime) are not re-read.
        With no previous backup the progress totals are ``counted`` (WorkingTree.count's, taken
        earlier), or counted first.
        If it fails or is cancelled, no manifest is written and its temp files are removed
        (blobs already stored stay until collect_garbage). A manifest of the same name is
        replaced. ``bandwidth`` (bytes per second, 0 for none) caps the bytes read.
        """
        check_name(name)
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise StorageError(f"data dir {show(data_dir)} does not exist or is not a directory")
        if Path(os.path.realpath(self.root)).is_relative_to(os.path.realpath(data_dir)):
            raise StorageError(
                f"the backup storage {show(self.root)} is inside the data dir {show(data_dir)}: "
                "set A4C_BACKUP_DIR to a directory outside it"
            )
        self._ensure_layout()
        self.discard_partial(name)
        work = self.tmp / name
        try:
            work.mkdir()
        except OSError as exc:
            raise os_error(exc, "creating", work) from exc
        try:
            run = BackupRun(self, work, Meter(progress, check, bandwidth), workers)
            return run.run(name, data_dir, frozenset(exclude_dirs), previous, counted)
        finally:
            rmtree(work)

    def verify(
        self,
        name: str,
        *,
        progress: ProgressFn = None,
        check: CheckFn = None,
        workers: int = 4,
        contents: bool = True,
    ) -> BlobCheckReport:
        """Checks the manifest whole and re-hashes every blob it names; with contents=False
        only that each blob is there with its size (a stat each, nothing read)."""
        report = BlobCheckReport(name)
        meter = Meter(progress, check)
        if not contents:
            workers = 0  # a stat is cheaper than handing it to a thread
        try:
            totals = self.manifests.summary(name)
            meter.files_total, meter.bytes_total = totals.files, totals.bytes
            with Pipeline(workers, meter) as pipe:
                for entry in self.manifests.checked_entries(name):
                    meter.beat()
                    if entry.type == "file":
                        checker = self._check_blob if contents else self._check_blob_size
                        work = (checker, (entry, pipe.stop))
                        ready = pipe.add(entry, *work, weight=entry.size)
                        self._note(report, meter, ready)
                self._note(report, meter, pipe.finish())
        except DamagedBackup as exc:
            report.problems.append(str(exc))
        meter.report()
        return report

    @staticmethod
    def _note(report: BlobCheckReport, meter: Meter, ready: list) -> None:
        for entry, problem in ready:
            report.files += 1
            report.bytes += entry.size
            meter.files_done, meter.bytes_done = report.files, report.bytes
            if problem and len(report.problems) < MAX_PROBLEMS:
                report.problems.append(problem)

    def _check_blob_size(self, entry: Entry, _stop: threading.Event) -> str | None:
        if self.blob_ok(entry.sha256, entry.size):
            return None
        return f"blob {entry.sha256[:12]}.. for {show(entry.path)} is missing or of the wrong size"

    def _check_blob(self, entry: Entry, stop: threading.Event) -> str | None:
        blob = self.blob_path(entry.sha256)
        what = f"blob {entry.sha256[:12]}.. for {show(entry.path)}"
        try:
            fd = os.open(blob, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return f"{what} is missing"
        except OSError as exc:
            return f"{what} cannot be read: {exc.strerror}"
        digest, size, view = hashlib.sha256(), 0, buffer()
        try:
            while got := fill(fd, view):
                if stop.is_set():
                    raise Cancelled("verify stopped")
                digest.update(view[:got])
                size += got
        except OSError as exc:
            return f"{what} cannot be read: {exc.strerror}"
        finally:
            os.close(fd)
        if digest.hexdigest() != entry.sha256:
            return f"{what} is corrupt (hash {digest.hexdigest()[:12]}..)"
        if size != entry.size:
            return f"{what} is corrupt (size {size}, expected {entry.size})"
        return None

    # -- garbage collection ---------------------------------------------------------------

    def collect_garbage(
        self,
        *,
        keep: Iterable[str] | None = None,
        own: HeldLease | None = None,
        now: datetime | None = None,
    ) -> GcSummary:
        """Removes blobs no kept manifest names (all manifests if keep is None), and temp
        files older than an hour; removes nothing while a lease other than ``own`` (the
        collecting run's) is live, and says which (the rule: backups/storage/leases.py).

        On this console the caller holds the operations lock, so no backup of its own is
        being written; the leases stand for the runs of other consoles sharing the storage.
        Expired leases and files that are not leases are ignored and named in the summary. A
        manifest that cannot be read whole stops the collection before anything is removed.
        """
        result = GcSummary()
        leases = self.leases.read(now=now)
        result.ignored = [f"{lease.describe()} has expired" for lease in leases.expired]
        result.ignored += [f"{lease.describe()}: its process is gone" for lease in leases.dead]
        result.ignored += [f"{problem} (not a lease)" for problem in leases.malformed]
        result.held_by = [
            lease.describe() for lease in leases.live if own is None or lease.holder != own.holder
        ]
        if result.held_by:
            return result
        used: set[bytes] = set()
        for name in self.manifests.names() if keep is None else keep:
            if self.manifests.exists(name):
                used.update(
                    bytes.fromhex(e.sha256) for e in self.manifests.entries(name) if e.sha256
                )
        try:
            prefixes = sorted(e.path for e in os.scandir(self.blobs) if e.is_dir())
        except FileNotFoundError:
            prefixes = []
        for prefix in prefixes:
            with os.scandir(prefix) as it:
                for blob in it:
                    if not HEX64.match(blob.name) or bytes.fromhex(blob.name) in used:
                        result.blobs_kept += 1
                        continue
                    try:
                        size = blob.stat(follow_symlinks=False).st_size
                        os.unlink(blob.path)
                    except FileNotFoundError:
                        continue
                    except OSError as exc:
                        raise os_error(exc, "deleting", blob.path) from exc
                    result.blobs_removed += 1
                    result.bytes_freed += size
        result.tmp_removed = self._remove_stale_tmp()
        return result

    def _remove_stale_tmp(self) -> int:
        removed, cutoff = 0, time.time() - STALE_TMP_SECONDS
        for top, dirs, files in os.walk(self.tmp, topdown=False):
            for name in files:
                path = os.path.join(top, name)
                try:
                    if os.lstat(path).st_mtime < cutoff:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    pass
            for name in dirs:
                path = os.path.join(top, name)
                try:
                    if os.lstat(path).st_mtime < cutoff:
                        os.rmdir(path)  # only succeeds once it is empty
                except OSError:
                    pass
        return removed
