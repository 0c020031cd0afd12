"""One backup of the data dir into the store: blobs by content hash, then the manifest.

Used by backups.storage.store.Store.backup_tree(); see there for the contract. The walk, the
previous manifest and the manifest being written all advance in the same order, so memory
stays flat; file reads and hashing run on a small thread pool.
"""

import errno
import hashlib
import itertools
import json
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from backups.errors import BackupError, Cancelled
from backups.storage.fileio import (
    DATA,
    PageCache,
    buffer,
    fill,
    open_source,
    os_error,
    show,
    write_all,
)
from backups.storage.manifest import (
    FORMAT,
    HEX64,
    VERSION,
    Entry,
    ManifestWriter,
    file_tail,
    path_prefix,
)
from backups.storage.pipeline import LATER, Meter, Pipeline
from backups.storage.results import TreeSummary
from backups.storage.walk import CountAhead, count_files, walk

MAX_WARNINGS = 100


class Cursor:
    """Finds a node's line in the previous manifest while both advance in walk order.

    Most lines are matched by their bytes: the line of a path starts with that path, escaped
    as Entry.line() escapes it. Only a line that does not match is parsed, to learn whether
    it comes before the node (a removed path: skipped) or after it (the node is new).
    """

    def __init__(self, lines: Iterator[bytes]):
        self._lines, self._line, self._key = lines, None, None
        self.passed = -1  # lines of the previous manifest behind the walk: a progress estimate
        self.start = 0  # where the path ends in the line find() returned
        self._advance()

    def _advance(self) -> None:
        try:
            self._line = next(self._lines, None)
        except OSError:
            self._line = None  # stop matching: the remaining files are simply re-read
        self._key = None
        self.passed += 1

    def find(self, key: tuple[bytes, ...], rel: str) -> bytes | None:
        if self._line is None:
            return None  # no previous backup, or past its end
        prefix = path_prefix(rel)
        while self._line is not None:
            if self._line.startswith(prefix):
                line, self.start = self._line, len(prefix)
                self._advance()
                return line
            if self._key is None:
                try:
                    self._key = Entry.from_json(json.loads(self._line)).key
                except (ValueError, AttributeError):
                    self._line = None  # a line we cannot read: stop matching
                    return None
            if self._key >= key:
                return None
            self._advance()
        return None


class BackupRun:
    """The state of one backup: counters, blobs being written, temp names."""

    def __init__(self, store, work: Path, meter: Meter, workers: int):
        self.store, self.work, self.meter, self.workers = store, work, meter, workers
        self.summary = TreeSummary()
        self.warning_count = 0
        self.in_flight: dict[str, object] = {}
        self.temp_names = itertools.count()
        self.blob_dirs: set[str] = set()
        self.stop = threading.Event()
        self.previous = None  # the previous backup's ManifestSummary, when it is used
        self.known = Cursor(iter(()))  # and its lines, as the walk passes them
        self.walked = [0, 0]  # files and bytes the walk has met (ahead of those written down)
        self.count_ahead: CountAhead | None = None  # once the tree outgrew the previous backup
        self.tree: tuple[Path, frozenset] | None = None  # the data dir and its excludes
        self.cache: PageCache | None = None  # what the data dir's files hold in memory

    def warn(self, message: str) -> None:
        self.warning_count += 1
        if len(self.summary.warnings) < MAX_WARNINGS:
            self.summary.warnings.append(message)

    def run(self, name: str, data_dir: Path, exclude, previous: str | None, counted=None):
        meter, summary = self.meter, self.summary
        self.previous = self._estimate(previous)
        if self.previous is None or not self.previous.files:
            totals = counted or count_files(data_dir, exclude, meter.beat)
            meter.files_total, meter.bytes_total = totals
        else:
            # A walk only to count costs as much as the scan of an unchanged tree: what the
            # walk has done plus what the previous backup held beyond it stands in.
            meter.estimate = self._totals
        meter.report()
        root = os.stat(data_dir)
        self.tree = (data_dir, exclude)
        header = {
            "format": FORMAT,
            "version": VERSION,
            "name": name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": str(data_dir),
            "root": {"mode": stat.S_IMODE(root.st_mode), "uid": root.st_uid, "gid": root.st_gid},
        }
        writer = ManifestWriter(self.work / "manifest", header)
        try:
            self._store_tree(writer, data_dir, exclude, previous)
            meter.estimate, meter.total_known = None, True
            meter.files_total, meter.bytes_total = meter.files_done, meter.bytes_done
            meter.beat()  # the last chance to cancel: after this the manifest is committed
            if self.warning_count > MAX_WARNINGS:
                summary.warnings[-1] = f"... and {self.warning_count - MAX_WARNINGS + 1} more"
            trailer = {"end": True, "entries": writer.count, "files": summary.files}
            summary.manifest_sha256 = writer.finish({**trailer, "bytes": summary.bytes})
            writer.commit(self.store.manifests.path(name), self.store.blobs)
        finally:
            writer.close()
            if self.count_ahead is not None:
                self.count_ahead.stop()
        meter.report()
        return summary

    def _estimate(self, previous: str | None):
        if previous is None or not self.store.manifests.exists(previous):
            return None
        try:
            return self.store.manifests.summary(previous)
        except BackupError:
            return None  # previous_lines says why it is not used

    def _totals(self) -> tuple[int, int, bool]:
        """Files and bytes in all, and whether that is known or only a floor.

        While the walk has met no more files than the previous backup held: those it has met,
        and the previous backup's beyond the point it has reached (its paths are in walk
        order): exact at the end, close when little changed. Once it has met more, the data
        dir grew past anything known of it: a count starts on a thread of its own, running
        ahead of the copy; until it ends its figures are a floor, never done plus a constant."""
        prev = self.previous
        if self.count_ahead is None and self.walked[0] > prev.files and self.tree:
            self.count_ahead = CountAhead(*self.tree)
        if self.count_ahead is not None:
            # a floor: what is counted, and never below what the walk met or was shown before
            tally, meter = self.count_ahead.tally, self.meter
            files = max(tally.files, self.walked[0], 0 if tally.finished else meter.files_total)
            size = max(tally.bytes, self.walked[1], 0 if tally.finished else meter.bytes_total)
            return files, size, tally.finished
        ahead = max(0.0, 1 - self.known.passed / prev.entries) if prev.entries else 0.0
        return (
            self.walked[0] + round(prev.files * ahead),
            self.walked[1] + round(prev.bytes * ahead),
            True,
        )

    def _store_tree(self, writer, data_dir: Path, exclude, previous: str | None) -> None:
        self.known = known = Cursor(self.store.manifests.previous_lines(previous, self.warn))
        self.cache = cache = PageCache(data_dir)
        with Pipeline(self.workers, self.meter) as pipe:
            self.stop = pipe.stop
            for rel, key, path, st, kind in walk(data_dir, exclude, self.warn):
                self.meter.beat()
                old = known.find(key, rel)
                work, line, now, sha = (), None, False, None
                if kind == "file":
                    self.walked[0] += 1
                    self.walked[1] += st.st_size
                    if old is not None and (sha := self._unchanged(old, known.start, st)):
                        self.summary.reused += 1
                        line = old  # the same bytes: not built again
                        if not pipe.pending:  # nothing ahead of it: written down at once
                            self._count_file(st.st_size)
                            writer.add(line)
                            continue
                entry = Entry.from_stat(rel, kind, st)
                if kind == "symlink":
                    try:
                        entry.target = os.readlink(path)
                    except FileNotFoundError:
                        self.warn(f"{show(rel)} vanished during the backup and was skipped")
                        continue
                    except OSError as exc:
                        raise os_error(exc, "reading", path, DATA) from exc
                elif sha:
                    entry.sha256 = sha
                elif kind == "file":
                    work = (self.store_file, (rel, path, entry.size))
                    now = cache.serves(entry.size)
                ready = pipe.add((entry, line), *work, weight=entry.size, now=now)
                self._write(writer, ready)
            self._write(writer, pipe.finish())

    def _unchanged(self, old: bytes, start: int, st: os.stat_result) -> str | None:
        """The hash of the old line (the path ending at start) when it is the line this lstat
        gives, byte for byte (same size, mode, owner, mtime, inode and ctime), and its blob
        is still there; None when the file must be read."""
        at = old.find(b'"sha256":"', start)
        sha = old[at + 10 : at + 74].decode("ascii", "replace") if at > 0 else ""
        if not HEX64.match(sha) or old[start:] != file_tail(st, sha):
            return None
        return sha if self.store.blob_ok(sha, st.st_size) else None

    def _write(self, writer: ManifestWriter, ready: list) -> None:
        summary, meter = self.summary, self.meter
        for (entry, line), result in ready:
            if entry.type == "file":
                if entry.sha256 is None:
                    if result is None:
                        continue  # vanished before we could read it; already warned
                    entry.sha256, size, new_bytes = result
                    summary.read += 1
                    if size != entry.size:
                        self.warn(f"{show(entry.path)} changed size while it was read")
                        entry.size = size
                    if new_bytes is not None:
                        summary.new_blobs += 1
                        summary.new_bytes += new_bytes
                        meter.new_bytes = summary.new_bytes
                self._count_file(entry.size)
            elif entry.type == "dir":
                summary.dirs += 1
            else:
                summary.symlinks += 1
            writer.add(line or entry.line())

    def _count_file(self, size: int) -> None:
        self.summary.files += 1
        self.summary.bytes += size
        self.meter.files_done += 1
        self.meter.bytes_done += size

    # The methods below run on the worker threads, or on the walk's when the file is in memory.

    def store_file(self, rel: str, path: str, expected: int, now: bool = False):
        """Reads a data dir file once, into a blob: (sha256, size read, bytes newly stored).

        None when it vanished; with now, LATER when reading it would wait on the device.
        """
        if self.stop.is_set():
            raise Cancelled("backup stopped")
        try:
            fd = open_source(path)
        except FileNotFoundError:
            self.warn(f"{show(rel)} vanished during the backup and was skipped")
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.warn(f"{show(rel)} became a symlink during the backup and was skipped")
                return None
            raise os_error(exc, "reading", path, DATA) from exc
        throttle = self.meter.throttle
        try:
            view = buffer()
            try:
                if now:
                    got = self.cache.read(fd, view, expected)
                    if got is None:
                        return LATER
                else:  # short from a regular file: it ended (no 2nd read)
                    got = os.readv(fd, [view])
            except OSError as exc:
                raise os_error(exc, "reading", path, DATA) from exc
            throttle.take(got, self.stop)
            if got < len(view):  # the whole file is in memory: write it only if it is new
                sha = hashlib.sha256(view[:got]).hexdigest()
                return sha, got, self._place(sha, got, data=view[:got])
            digest, size = hashlib.sha256(), 0
            temp_fd, temp = self._create()
            try:
                while got:
                    if self.stop.is_set():
                        raise Cancelled("backup stopped")
                    digest.update(view[:got])
                    self._store_write(temp_fd, view[:got])
                    size += got
                    got = self._read(fd, view, path)
                    throttle.take(got, self.stop)
            finally:
                os.close(temp_fd)
            sha = digest.hexdigest()
            return sha, size, self._place(sha, size, temp=temp)
        finally:
            os.close(fd)

    @staticmethod
    def _read(fd: int, view: memoryview, path: str) -> int:
        try:
            return fill(fd, view)
        except OSError as exc:
            raise os_error(exc, "reading", path, DATA) from exc

    def _create(self) -> tuple[int, str]:
        temp = f"{self.work}/{next(self.temp_names)}"
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444), temp
        except OSError as exc:
            raise os_error(exc, "writing to", self.store.blobs) from exc

    def _store_write(self, fd: int, data: memoryview) -> None:
        try:
            write_all(fd, data)
        except OSError as exc:
            raise os_error(exc, "writing to", self.store.blobs) from exc

    def _place(self, sha: str, size: int, data=None, temp: str | None = None) -> int | None:
        """Puts a blob into place unless it is there already; returns the bytes stored.

        A file read whole (data) is written under its final name, created exclusively: no
        temp name, no rename. If that is cut short, the blob is left shorter than its size,
        which blob_ok() refuses, and the next backup replaces it; a failed write removes it.
        A streamed file (temp) is renamed into place once its hash is known.
        """
        token = object()  # two identical files in flight: one writes, the other just counts
        mine = self.in_flight.setdefault(sha, token) is token  # atomic under the GIL
        try:
            if not mine:
                return None
            blob = self.store.blob_path(sha)
            try:
                if sha[:2] not in self.blob_dirs:
                    os.makedirs(os.path.dirname(blob), exist_ok=True)
                    self.blob_dirs.add(sha[:2])
                if temp is None:
                    return self._create_blob(blob, sha, size, data)
                if self.store.blob_ok(sha, size):
                    return None
                os.rename(temp, blob)
                temp = None
                return size
            except OSError as exc:
                raise os_error(exc, "writing to", self.store.blobs) from exc
        finally:
            if mine:
                del self.in_flight[sha]
            if temp is not None:
                try:
                    os.unlink(temp)
                except OSError:
                    pass

    def _create_blob(self, blob: str, sha: str, size: int, data) -> int | None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(blob, flags, 0o444)
        except FileExistsError:
            if self.store.blob_ok(sha, size):
                return None
            # left short by an interrupted backup: replaced whole, through a temp name
            fd, temp = self._create()
            try:
                self._store_write(fd, data)
            finally:
                os.close(fd)
            os.replace(temp, blob)
            return size
        try:
            write_all(fd, data)
        except BaseException:
            os.close(fd)
            fd = -1
            os.unlink(blob)  # never leave a part of a file under a blob's name
            raise
        finally:
            if fd >= 0:
                os.close(fd)
        return size
