"""File primitives of the backup storage: syscalls with large buffers, trees, OS errors.

Opening data dir files without following links, reading and writing whole buffers, fsync of
a dir, removing and copying files, setting attributes without following links, and turning
an OSError into a StorageError a person can act on. Module functions, so that tests can watch
or break them. Imports nothing else from backups.storage; no Django here.
"""

import ctypes
import errno
import fcntl
import hashlib
import os
import shutil
import stat
import sys
import threading

from backups.errors import InvalidInput, StorageError

STORAGE = "the backup storage (A4C_BACKUP_DIR)"
DATA = "the filesystem of the A4C data dir"
CHUNK = 1 << 20
FICLONE = 0x40049409
# os.fsencode's codec, called directly: it runs for every path of a walk or a manifest
FS_ENCODING, FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


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
_libc = ctypes.CDLL(None, use_errno=True)


def buffer() -> memoryview:
    """This thread's 1 MiB read buffer."""
    view = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(CHUNK))
    return view


# statfs(2) f_type of the filesystems whose files are all in memory
MEMORY_FILESYSTEMS = {0x01021994, 0x858458F6}  # tmpfs, ramfs


class PageCache:
    """Tells, per file, whether its bytes can be read now, without waiting on the device.

    A file whose read would not wait is best read by the thread that found it: the work is
    then Python holding the GIL, and handing it to a worker costs more than the read. A file
    whose read would wait goes to a worker, so that reads from a cold disk overlap. On tmpfs
    everything is in memory; elsewhere preadv2(RWF_NOWAIT) reads what the page cache holds
    and fails with EAGAIN instead of waiting (having started the read from the device, which
    a worker then finds under way). Where the filesystem cannot say (EOPNOTSUPP), every file
    goes to the workers, as before.
    """

    def __init__(self, root):
        self.memory = filesystem_type(root) in MEMORY_FILESYSTEMS
        self.nowait = not self.memory and hasattr(os, "RWF_NOWAIT")

    def serves(self, size: int) -> bool:
        """Worth trying here: anything in memory; elsewhere a file read with one call."""
        return self.memory or (self.nowait and size < CHUNK)

    def read(self, fd: int, view: memoryview, size: int) -> int | None:
        """Reads the file into view if that does not wait; None if it would.

        Only a read of exactly the size the walk saw is taken as the whole file: a shorter
        one may be the part the cache holds (RWF_NOWAIT reads stop where the cache does).
        """
        if self.memory:
            return os.readv(fd, [view])
        if not self.nowait:
            return None
        try:
            got = os.preadv(fd, [view[: size + 1]], 0, os.RWF_NOWAIT)
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                self.nowait = False  # this filesystem cannot say: the workers read it all
            elif exc.errno != errno.EAGAIN:
                raise
            return None
        return got if got == size else None


def filesystem_type(path) -> int | None:
    """The f_type of statfs(2) for path; None where it cannot be read."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    statfs = getattr(_libc, "statfs", None)
    if statfs is None or statfs(os.fsencode(os.fspath(path)), buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def hash_file(path: str) -> str:
    digest, view = hashlib.sha256(), buffer()
    fd = open_source(path)
    try:
        while got := fill(fd, view):
            digest.update(view[:got])
    finally:
        os.close(fd)
    return digest.hexdigest()


def fsync_dir(path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path) -> None:
    """Every write to the filesystem that holds path reaches the disk (syncfs(2)).

    Not sync(2): that would also wait for every other filesystem's writes, which on a busy
    machine costs more than our own.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syncfs = getattr(_libc, "syncfs", None)
        if syncfs is None:
            os.sync()
        elif syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), os.fspath(path))
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask, read without setting it (os.umask would race other threads)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o077  # unknown: assume the strictest usual mask, so modes are always set


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


def copy_file(src: str, dst: str, st: os.stat_result, as_root: bool) -> None:
    """A real copy (a reflink where the filesystem can): later edits never touch the source."""
    source = open_source(src)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        target = os.open(dst, flags, 0o600)
        try:
            try:
                fcntl.ioctl(target, FICLONE, source)
            except OSError:
                copy_data(source, target)
            if as_root:
                os.fchown(target, st.st_uid, st.st_gid)
            os.fchmod(target, stat.S_IMODE(st.st_mode))
            os.utime(target, ns=(st.st_mtime_ns, st.st_mtime_ns))
        finally:
            os.close(target)
    finally:
        os.close(source)


def copy_data(source: int, target: int) -> None:
    """All of source into target: in the kernel where it can, through a buffer where not."""
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
