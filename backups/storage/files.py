"""What the filestore modules share: result types, manifest entries, and file primitives.

Walking a tree in manifest order, reading and writing with large buffers, the bounded thread
pool, copying and removing trees, and turning OSError into a StorageError a person can act
on. Only backups.storage.store and its filestore_* helpers use this module; no Django here.
"""

import dataclasses
import errno
import fcntl
import os
import re
import shutil
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from json.encoder import encode_basestring_ascii as _json_str
from pathlib import Path

from backups.errors import ConfigError, InvalidInput, StorageError

DEFAULT_EXCLUDES = ("work", "tmp", "upload")
STORAGE = "the backup storage (A4C_BACKUP_DIR)"
DATA = "the filesystem of the A4C data dir"
CHUNK = 1 << 20
MAX_EXAMPLES = 200
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_BATCH_FILES = 32  # small files go to the pool in batches: a hand-off costs more than a read
_BATCH_BYTES = 4 << 20
_FICLONE = 0x40049409
_INT_FIELDS = ("size", "mode", "mtime_ns", "uid", "gid")
# os.fsencode's codec, called directly: it runs for every path of a walk or a manifest
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()

Node = tuple[str, tuple[bytes, ...], str, os.stat_result, str]  # rel, key, path, lstat, kind


@dataclasses.dataclass(frozen=True)
class Progress:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


@dataclasses.dataclass(slots=True)
class Entry:
    """One manifest line: a file, dir or symlink, by its path relative to the data dir."""

    path: str
    type: str  # "file", "dir" or "symlink"
    size: int = 0
    mode: int = 0
    mtime_ns: int = 0
    uid: int = 0
    gid: int = 0
    sha256: str | None = None
    inode: int | None = None
    ctime_ns: int | None = None
    target: str | None = None

    @property
    def key(self) -> tuple[bytes, ...]:
        """Sorts like the walk: by the path's components, as bytes."""
        return tuple(self.path.encode(_FS_ENCODING, _FS_ERRORS).split(b"/"))

    def line(self) -> bytes:
        """The JSON line, built by hand: json.dumps of a dict costs too much at 200k entries.

        Strings are escaped to ASCII, which also keeps the surrogates that stand for bytes
        that are not UTF-8 (os.fsdecode) as \\udcXX escapes that json.loads gives back.
        """
        text = (
            f'{{"path":{_json_str(self.path)},"type":"{self.type}","size":{self.size:d},'
            f'"mode":{self.mode:d},"mtime_ns":{self.mtime_ns:d},"uid":{self.uid:d},'
            f'"gid":{self.gid:d}'
        )
        if self.sha256 is not None:
            text += f',"sha256":{_json_str(self.sha256)}'
        if self.inode is not None:
            text += f',"inode":{self.inode:d},"ctime_ns":{self.ctime_ns:d}'
        if self.target is not None:
            text += f',"target":{_json_str(self.target)}'
        return (text + "}\n").encode("ascii")

    @classmethod
    def from_json(cls, data: dict) -> "Entry":
        """Raises ValueError for anything that is not a well-formed entry."""
        path, kind = data.get("path"), data.get("type")
        if not isinstance(path, str) or kind not in ("file", "dir", "symlink"):
            raise ValueError("path or type")
        get = data.get
        values = (get("size", 0), get("mode", 0), get("mtime_ns", 0), get("uid", 0), get("gid", 0))
        for name, value in zip(_INT_FIELDS, values, strict=True):
            if type(value) is not int:
                raise ValueError(name)
        entry = cls(path, kind, *values)
        if kind == "file":
            entry.sha256 = data.get("sha256")
            if not isinstance(entry.sha256, str) or not HEX64.match(entry.sha256):
                raise ValueError("sha256")
            entry.inode, entry.ctime_ns = data.get("inode"), data.get("ctime_ns")
        elif kind == "symlink":
            entry.target = data.get("target")
            if not isinstance(entry.target, str):
                raise ValueError("target")
        return entry

    @classmethod
    def from_stat(cls, rel: str, kind: str, st: os.stat_result) -> "Entry":
        entry = cls(rel, kind, 0, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_uid, st.st_gid)
        if kind == "file":
            entry.size, entry.inode, entry.ctime_ns = st.st_size, st.st_ino, st.st_ctime_ns
        return entry


@dataclasses.dataclass
class TreeSummary:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0  # sum of file sizes
    new_blobs: int = 0
    new_bytes: int = 0  # bytes newly written to blobs/
    reused: int = 0  # unchanged files whose hash came from the previous manifest
    read: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)
    manifest_sha256: str = ""


@dataclasses.dataclass(frozen=True)
class ManifestSummary:
    name: str
    created: str
    source: str
    entries: int
    files: int
    bytes: int
    sha256: str


@dataclasses.dataclass
class VerifyReport:
    name: str
    files: int = 0
    bytes: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclasses.dataclass
class FilePlan:
    mode: str
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    added_bytes: int = 0
    changed_bytes: int = 0
    removed_bytes: int = 0
    unchanged_bytes: int = 0
    added_paths: list[str] = dataclasses.field(default_factory=list)
    changed_paths: list[str] = dataclasses.field(default_factory=list)
    removed_paths: list[str] = dataclasses.field(default_factory=list)

    def count(self, kind: str, path: str, size: int) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        setattr(self, f"{kind}_bytes", getattr(self, f"{kind}_bytes") + size)
        examples = getattr(self, f"{kind}_paths", None)
        if examples is not None and len(examples) < MAX_EXAMPLES:
            examples.append(show(path))


@dataclasses.dataclass
class RestoreResult:
    files: int  # files written from blobs
    bytes: int
    old_tree: Path | None  # the kept previous tree: undo_restore() or drop_old_tree() it
    staging: Path


@dataclasses.dataclass
class GcSummary:
    blobs_removed: int = 0
    bytes_freed: int = 0
    blobs_kept: int = 0
    tmp_removed: int = 0


def check_name(name: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or name[0] == ".":
        raise InvalidInput(
            f"backup name {name!r} cannot be used as a file name: "
            "it must not be empty, contain '/' or NUL, or start with '.'"
        )


def safe_relpath(path: str) -> bool:
    if not path or "\0" in path or path[0] == "/":
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def show(path) -> str:
    """A path fit for a message: bytes that are not UTF-8 shown as \\xNN."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def os_error(exc: OSError, doing: str, path, place: str = STORAGE) -> StorageError:
    where = show(path)
    code = exc.errno
    if code == errno.ENOSPC:
        message = f"No space left on device while {doing} {where}: free space in {place}"
    elif code == errno.EDQUOT:
        message = f"Disk quota exceeded while {doing} {where}: raise the quota of {place}"
    elif code in (errno.EACCES, errno.EPERM):
        message = (
            f"Permission denied while {doing} {where}: "
            f"let the user running a4c-backup read and write {place}"
        )
    elif code == errno.EROFS:
        message = f"Read-only file system while {doing} {where}: mount {place} read-write"
    elif code == errno.EIO:
        message = f"Input/output error while {doing} {where}: check the disk behind {place}"
    else:
        message = f"{exc.strerror or exc} while {doing} {where}"
    return StorageError(message, detail=f"{type(exc).__name__}: {exc}")


# -- reading and writing: module functions so tests can watch or break them ----------------


def open_source(path: str) -> int:
    """Opens a data dir file to read; a file swapped for a symlink since the walk fails (ELOOP)."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


def write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fill(fd: int, view: memoryview) -> int:
    """Reads until the buffer is full or the file ends; returns the bytes read."""
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if not n:
            break
        got += n
    return got


_local = threading.local()


def buffer() -> memoryview:
    """This thread's 1 MiB read buffer."""
    view = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(CHUNK))
    return view


def fsync_dir(path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rmtree(path) -> None:
    """Removes a tree, a file or a link (never following it); missing is fine."""
    path = os.fspath(path)
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            return
    except FileNotFoundError:
        return

    def make_writable_and_retry(func, failed, _exc):
        os.chmod(os.path.dirname(failed), 0o700)  # a read-only dir inside the tree
        func(failed)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=make_writable_and_retry)


def set_attrs(path, uid: int, gid: int, mode: int | None, mtime_ns: int, as_root: bool) -> None:
    """Owner (when root), permission bits (None for a symlink) and mtime, never following."""
    if as_root:
        os.chown(path, uid, gid, follow_symlinks=False)
    if mode is not None:
        os.chmod(path, mode)
    os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


# -- walking ---------------------------------------------------------------------------------


def walk(root, exclude=frozenset(), warn: Callable[[str], None] | None = None) -> Iterator[Node]:
    """Depth-first, parent before children, children sorted by name bytes; links not followed.

    This order equals sorting paths by their components, so a walk and a manifest merge in
    one streaming pass. Top-level names in exclude are left out. Nodes that vanish, and nodes
    that are not files, dirs or symlinks, are skipped with a warning.
    """
    return _walk_dir(os.fspath(root), "", (), exclude, warn or _ignore)


def count_files(root, exclude, beat: Callable[[], None]) -> tuple[int, int]:
    """Files and bytes under root for progress totals: scandir and lstat, nothing read.

    Depth first with the listings open, so memory follows the depth, not the tree's width.
    """
    files = total = 0

    def visit(path: str, top: bool) -> None:
        nonlocal files, total
        try:
            with os.scandir(path) as it:
                for entry in it:
                    beat()
                    if top and entry.name in exclude:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        visit(entry.path, False)
                    elif entry.is_file(follow_symlinks=False):
                        try:
                            total += entry.stat(follow_symlinks=False).st_size
                            files += 1
                        except OSError:
                            pass  # vanished: the walk that follows says so
        except OSError:
            return

    visit(os.fspath(root), True)
    return files, total


def _ignore(_message: str) -> None:
    pass


def _walk_dir(path: str, rel: str, key: tuple, exclude, warn) -> Iterator[Node]:
    try:
        # The names as bytes, sorted, and nothing else: a dir of 100k entries is held until
        # its walk ends, at ~80 bytes an entry (DirEntry objects caching their stat: ~1 KB).
        with os.scandir(path.encode(_FS_ENCODING, _FS_ERRORS)) as it:
            children = sorted(e.name for e in it)
    except FileNotFoundError:
        if not rel:
            raise StorageError(f"data dir {show(path)} does not exist") from None
        warn(f"{show(rel)} vanished during the walk and was skipped")
        return
    except OSError as exc:
        raise os_error(exc, "listing", path, DATA) from exc
    prefix = path if path.endswith("/") else path + "/"
    for name_bytes in children:
        name = name_bytes.decode(_FS_ENCODING, _FS_ERRORS)
        if not rel and name in exclude:
            continue
        child_rel = f"{rel}/{name}" if rel else name
        child_path = prefix + name
        try:
            st = os.lstat(child_path)
        except FileNotFoundError:
            warn(f"{show(child_rel)} vanished during the walk and was skipped")
            continue
        except OSError as exc:
            raise os_error(exc, "reading", child_path, DATA) from exc
        mode = st.st_mode
        if stat.S_ISREG(mode):
            kind = "file"
        elif stat.S_ISDIR(mode):
            kind = "dir"
        elif stat.S_ISLNK(mode):
            kind = "symlink"
        else:
            warn(f"{show(child_rel)} is not a file, directory or symlink and was skipped")
            continue
        child_key = (*key, name_bytes)
        yield child_rel, child_key, child_path, st, kind
        if kind == "dir":
            yield from _walk_dir(child_path, child_rel, child_key, exclude, warn)


# -- progress and the worker pool -----------------------------------------------------------


class Meter:
    """Calls check() at every step and progress() at least every 0.5 s; holds the throttle."""

    def __init__(
        self,
        progress: Callable[[Progress], None] | None,
        check: Callable | None,
        bandwidth: int = 0,
    ):
        self.progress, self.check = progress, check
        self.files_total = self.bytes_total = self.files_done = self.bytes_done = 0
        self.throttle = Throttle(bandwidth)
        self._last = time.monotonic()

    def beat(self) -> None:
        if self.check is not None:
            self.check()
        if self.progress is not None and time.monotonic() - self._last >= 0.5:
            self.report()

    def report(self) -> None:
        self._last = time.monotonic()
        if self.progress is not None:
            # Totals can be estimates (a backup takes the previous one's): never below done.
            files_total = max(self.files_total, self.files_done)
            bytes_total = max(self.bytes_total, self.bytes_done)
            done = Progress(self.files_done, files_total, self.bytes_done, bytes_total)
            self.progress(done)


class Throttle:
    """Keeps the copying threads together under ``bandwidth`` bytes per second (0: no cap).

    take() counts bytes just read or written and sleeps the calling thread while the total is
    ahead of the cap. Time not spent copying (a scan of unchanged files) is credit for one
    second only, so the cap holds over any stretch longer than that.
    """

    def __init__(
        self,
        bandwidth: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.bandwidth, self.moved = bandwidth, 0
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._since = clock()

    def take(self, size: int, stop: threading.Event | None = None) -> None:
        with self._lock:
            self.moved += size
            if not self.bandwidth:
                return
            now = self._clock()
            idle = now - self._since - (self.moved - size) / self.bandwidth
            if idle > 1.0:
                self._since += idle - 1.0
            until = self._since + self.moved / self.bandwidth
        while (left := until - self._clock()) > 0 and not (stop is not None and stop.is_set()):
            self._sleep(min(left, 0.25))


def parse_bandwidth(text: str, setting: str = "A4C_FILE_BANDWIDTH") -> int:
    """'' or '0' (no limit), or bytes per second: '500K', '50M', '1.5G' (binary units)."""
    text = (text or "").strip()
    if text in ("", "0"):
        return 0
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = (text[:-1], units[text[-1].upper()]) if text[-1:].upper() in units else (text, 1)
    try:
        value = int(float(number) * unit)
    except (ValueError, OverflowError):
        value = 0
    if value < 1024:
        raise ConfigError(
            f"{setting} is {text!r}: give bytes per second of at least 1K, like 500K, 50M or "
            "1.5G, or 0 for no limit."
        )
    return value


class _Batch:
    __slots__ = ("calls", "weight", "future")

    def __init__(self):
        self.calls, self.weight, self.future = [], 0, None


def _run_calls(calls: list) -> list:
    return [fn(*args) for fn, args in calls]


class Pipeline:
    """Runs per-item work on a thread pool; hands items back in the order they were added.

    At most `window` items are held, so memory stays flat however many go through. Workers
    should give up when `stop` is set (on leaving the with block, normally or not).
    """

    def __init__(self, workers: int, meter: Meter, window: int | None = None):
        workers = max(1, workers)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="a4c-filestore")
        self.window = window or workers * _BATCH_FILES * 4
        self.meter = meter
        self.pending: deque = deque()
        self.batch: _Batch | None = None
        self.stop = threading.Event()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def add(self, item, fn: Callable | None = None, args: tuple = (), *, weight: int = 0) -> list:
        """Queues item (with fn(*args) to run for it); returns the (item, result) pairs ready."""
        if fn is None:
            self.pending.append((item, None, 0))
        else:
            batch = self.batch = self.batch or _Batch()
            self.pending.append((item, batch, len(batch.calls)))
            batch.calls.append((fn, args))
            batch.weight += weight
            if len(batch.calls) >= _BATCH_FILES or batch.weight >= _BATCH_BYTES:
                self._send()
        return self._drain(final=False)

    def finish(self) -> list:
        return self._drain(final=True)

    def _send(self) -> None:
        self.batch.future = self.pool.submit(_run_calls, self.batch.calls)
        self.batch = None

    def _drain(self, final: bool) -> list:
        ready, pending = [], self.pending
        while pending:
            item, batch, index = pending[0]
            result = None
            if batch is not None:
                may_wait = final or len(pending) > self.window
                if batch.future is None:
                    if not may_wait:
                        break
                    self._send()
                if not batch.future.done():
                    if not may_wait:
                        break
                    self._wait(batch.future)
                result = batch.future.result()[index]
            pending.popleft()
            ready.append((item, result))
        return ready

    def _wait(self, future) -> None:
        while True:
            try:
                future.result(timeout=0.25)
                return
            except FutureTimeout:
                self.meter.beat()


# -- copying trees (merge restores) ---------------------------------------------------------


def copy_file(src: str, dst: str, st: os.stat_result, as_root: bool) -> None:
    """A real copy (a reflink where the filesystem can): later edits never touch the source."""
    source = open_source(src)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        target = os.open(dst, flags, 0o600)
        try:
            try:
                fcntl.ioctl(target, _FICLONE, source)
            except OSError:
                _copy_data(source, target)
            if as_root:
                os.fchown(target, st.st_uid, st.st_gid)
            os.fchmod(target, stat.S_IMODE(st.st_mode))
            os.utime(target, ns=(st.st_mtime_ns, st.st_mtime_ns))
        finally:
            os.close(target)
    finally:
        os.close(source)


def _copy_data(source: int, target: int) -> None:
    try:
        while os.copy_file_range(source, target, 1 << 30):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(source, 0, os.SEEK_SET)
    os.lseek(target, 0, os.SEEK_SET)
    os.ftruncate(target, 0)
    view = buffer()
    while got := fill(source, view):
        write_all(target, view[:got])


def copy_tree(src: Path, dst: Path, exclude, meter: Meter, as_root: bool) -> None:
    """Copies src's contents into the existing dir dst; dir attributes are left to copy_dirs."""
    for rel, _, path, st, kind in walk(src, exclude):
        meter.beat()
        target = f"{dst}/{rel}"
        try:
            if kind == "dir":
                os.mkdir(target, 0o700)
            elif kind == "symlink":
                os.symlink(os.readlink(path), target)
                set_attrs(target, st.st_uid, st.st_gid, None, st.st_mtime_ns, as_root)
            else:
                copy_file(path, target, st, as_root)
        except FileNotFoundError:
            continue  # vanished from the current tree meanwhile
        except OSError as exc:
            raise os_error(exc, "copying the current tree to", target, DATA) from exc


def copy_dir_attrs(src: Path, dst: Path, exclude, as_root: bool) -> None:
    for rel, _, _, st, kind in walk(src, exclude):
        if kind == "dir":
            target = f"{dst}/{rel}"
            mode = stat.S_IMODE(st.st_mode)
            try:
                if not stat.S_ISDIR(os.lstat(target).st_mode):
                    continue  # replaced by a file or link from the backup
                set_attrs(target, st.st_uid, st.st_gid, mode, st.st_mtime_ns, as_root)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise os_error(exc, "setting attributes of", target, DATA) from exc
