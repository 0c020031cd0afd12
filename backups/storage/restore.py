"""Restoring a backup's files: plan, stage beside the data dir, swap in, undo.

Used by backups.storage.store.Store; see there for the contract. Nothing here writes outside
the staging dir until the manifest has been checked whole, and the data dir is only touched
by the renames of the swap.
"""

import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from backups.errors import Cancelled, IntegrityError, StorageError
from backups.storage.fileio import (
    DATA,
    buffer,
    fill,
    fsync_dir,
    open_source,
    os_error,
    rmtree,
    set_attrs,
    show,
    write_all,
)
from backups.storage.manifest import Entry
from backups.storage.pipeline import Meter, Pipeline
from backups.storage.results import FilePlan, RestoreResult
from backups.storage.walk import Node, copy_dir_attrs, copy_tree, walk


def outer_join(wanted: Iterator[Entry], found: Iterator[Node]) -> Iterator[tuple]:
    """Pairs manifest entries with walked nodes by path; both come in walk order."""
    want, have = next(wanted, None), next(found, None)
    want_key = want.key if want is not None else None
    while want is not None or have is not None:
        if have is None or (want is not None and want_key < have[1]):
            pair = (want, None)
        elif want is None or have[1] < want_key:
            pair = (None, have)
        else:
            pair = (want, have)
        yield pair
        if pair[0] is not None:
            want = next(wanted, None)
            want_key = want.key if want is not None else None
        if pair[1] is not None:
            have = next(found, None)


def hash_file(path: str) -> str:
    digest, view = hashlib.sha256(), buffer()
    fd = open_source(path)
    try:
        while got := fill(fd, view):
            digest.update(view[:got])
    finally:
        os.close(fd)
    return digest.hexdigest()


def _same(want: Entry, have: Node) -> bool:
    """Whether a walked node holds what the entry says; hashes only if size matches, mtime not."""
    _, _, path, st, kind = have
    if kind != want.type:
        return False
    if kind == "symlink":
        return os.readlink(path) == want.target
    if kind == "dir":
        return True
    if st.st_size != want.size:
        return False
    return st.st_mtime_ns == want.mtime_ns or hash_file(path) == want.sha256


def plan_restore(store, name: str, data_dir: Path, exclude, mode: str) -> FilePlan:
    plan = FilePlan(mode)
    found = walk(data_dir, exclude) if data_dir.is_dir() else iter(())
    for want, have in outer_join(store.checked_entries(name, exclude), found):
        if have is None:
            plan.count("added", want.path, want.size)
        elif want is None:
            if mode == "mirror":
                plan.count("removed", have[0], have[3].st_size if have[4] == "file" else 0)
        elif _same(want, have):
            plan.count("unchanged", want.path, want.size)
        else:
            plan.count("changed", want.path, want.size)
    return plan


def tree_differences(store, name: str, data_dir: Path, exclude) -> list[str]:
    """Every way the data dir differs from the manifest: content, mode, mtime, owner, links."""
    problems = []
    for want, have in outer_join(store.checked_entries(name, exclude), walk(data_dir, exclude)):
        if have is None:
            problems.append(f"{show(want.path)}: missing from the data dir")
            continue
        if want is None:
            problems.append(f"{show(have[0])}: not in the backup")
            continue
        _, _, path, st, kind = have
        got = Entry.from_stat(want.path, kind, st)
        got.inode, got.ctime_ns = want.inode, want.ctime_ns
        if kind == "file":
            got.sha256 = hash_file(path)
        elif kind == "symlink":
            got.target = os.readlink(path)
            got.mode = want.mode  # Linux cannot set a link's own permission bits
        if got != want:
            problems.append(f"{show(want.path)}: is {got}, backup has {want}")
    return problems


def _move(src: Path, dst: Path, names) -> list[str]:
    """Moves the named entries of src into dst (where dst lacks them); returns those moved."""
    moved = []
    for name in sorted(names):
        if os.path.lexists(src / name) and not os.path.lexists(dst / name):
            os.rename(src / name, dst / name)
            moved.append(name)
    return moved


class FileRestore:
    """One restore of a backup's files: check the manifest, stage the tree, swap it in."""

    def __init__(self, store, name: str, data_dir: Path, exclude, meter: Meter):
        self.store, self.name, self.data_dir = store, name, data_dir
        self.exclude, self.meter = exclude, meter
        self.as_root = os.geteuid() == 0
        self.token = secrets.token_hex(4)
        self.files = self.written = 0  # written from blobs (a merge keeps unchanged files)

    def __call__(self, mode: str, workers: int) -> RestoreResult:
        self._check_manifest()
        data_dir = self.data_dir
        exists = os.path.lexists(data_dir)
        on_mount = exists and os.path.ismount(data_dir)
        if on_mount:
            staging = data_dir / f".a4c-restore-{self.token}"
        else:
            staging = data_dir.parent / f".{data_dir.name}.restore-{self.token}"
        root = self.store.header(self.name).get("root") or {}
        if mode == "merge" and exists:
            now = os.stat(data_dir)
            root = {"mode": stat.S_IMODE(now.st_mode), "uid": now.st_uid, "gid": now.st_gid}
        try:
            try:
                data_dir.parent.mkdir(parents=True, exist_ok=True)
                os.mkdir(staging, 0o700)
            except OSError as exc:
                raise os_error(exc, "creating", staging, DATA) from exc
            skip = self.exclude | {staging.name}
            if mode == "merge" and exists:
                copy_tree(data_dir, staging, skip, self.meter.beat, self.as_root)
            files, written = self._build(staging, mode == "merge", workers)
            if mode == "merge" and exists:
                copy_dir_attrs(data_dir, staging, skip, self.as_root)
            self._set_dir_attrs(staging)
            if not on_mount:
                self._set_root(staging, root)
            self.meter.beat()  # the last chance to cancel: the swap is not interrupted
        except BaseException:
            _discard(staging)
            raise
        old_tree = self._swap(staging, exists, on_mount)
        if on_mount:
            self._set_root(data_dir, root)
        self.meter.report()
        return RestoreResult(files, written, old_tree, staging)

    def _check_manifest(self) -> None:
        """Reads the whole manifest before writing anything: paths, order, hash, blobs."""
        missing, count = [], 0
        for entry in self.store.checked_entries(self.name, self.exclude):
            self.meter.beat()
            if entry.type == "file":
                self.meter.files_total += 1
                self.meter.bytes_total += entry.size
                if not self.store.blob_ok(entry.sha256, entry.size):
                    count += 1
                    if len(missing) < 5:
                        missing.append(f"blob {entry.sha256[:12]}.. for {show(entry.path)}")
        if count:
            raise IntegrityError(
                f"backup {self.name} cannot be restored: {count} blob(s) missing or of the wrong "
                f"size ({'; '.join(missing)}); run verify on it for the full list"
            )
        self.meter.report()

    def _build(self, staging: Path, merge: bool, workers: int) -> tuple[int, int]:
        meter = self.meter
        with Pipeline(workers, meter) as pipe:
            for entry in self.store.checked_entries(self.name, self.exclude):
                meter.beat()
                target = f"{staging}/{entry.path}"
                work = ()
                try:
                    existing = os.lstat(target) if merge and os.path.lexists(target) else None
                    if entry.type == "dir":
                        if existing is not None and not stat.S_ISDIR(existing.st_mode):
                            rmtree(target)
                            existing = None
                        if existing is None:
                            os.mkdir(target, 0o700)  # its own mode is set once it is filled
                    elif (
                        existing is not None
                        and entry.type == "file"
                        and _unchanged(existing, entry)
                    ):
                        pass  # merge: the current copy is the same file
                    else:
                        if existing is not None:
                            rmtree(target)
                        if entry.type == "symlink":
                            os.symlink(entry.target, target)
                            args = (entry.uid, entry.gid, None, entry.mtime_ns, self.as_root)
                            set_attrs(target, *args)
                        else:
                            work = (self._write_file, (entry, target, pipe))
                except OSError as exc:
                    raise os_error(exc, "writing", target, DATA) from exc
                self._tally(pipe.add(entry, *work, weight=entry.size))
            self._tally(pipe.finish())
        return self.files, self.written

    def _tally(self, ready: list) -> None:
        for entry, size in ready:
            if entry.type == "file":
                self.meter.files_done += 1
                self.meter.bytes_done += entry.size
                if size is not None:
                    self.files += 1
                    self.written += size

    def _write_file(self, entry: Entry, target: str, pipe: Pipeline) -> int:
        """Copies a blob to its place in the staging tree, re-hashing it on the way."""
        blob = self.store.blob_path(entry.sha256)
        try:
            source = os.open(blob, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise IntegrityError(
                f"blob {entry.sha256[:12]}.. for {show(entry.path)} is missing"
            ) from None
        except OSError as exc:
            raise os_error(exc, "reading", blob) from exc
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            out = os.open(target, flags, 0o600)
            try:
                digest, size, view = hashlib.sha256(), 0, buffer()
                while True:
                    if pipe.stop.is_set():
                        raise Cancelled("restore stopped")
                    try:
                        got = fill(source, view)
                    except OSError as exc:
                        raise os_error(exc, "reading", blob) from exc
                    if not got:
                        break
                    digest.update(view[:got])
                    write_all(out, view[:got])
                    size += got
                    self.meter.throttle.take(got, pipe.stop)
                if digest.hexdigest() != entry.sha256 or size != entry.size:
                    raise IntegrityError(
                        f"blob {entry.sha256[:12]}.. for {show(entry.path)} is corrupt "
                        f"(hash {digest.hexdigest()[:12]}.., {size} bytes): nothing was restored"
                    )
                if self.as_root:
                    os.fchown(out, entry.uid, entry.gid)
                os.fchmod(out, entry.mode)
                os.utime(out, ns=(entry.mtime_ns, entry.mtime_ns))
            finally:
                os.close(out)
        except OSError as exc:
            raise os_error(exc, "writing", target, DATA) from exc
        finally:
            os.close(source)
        return size

    def _set_dir_attrs(self, staging: Path) -> None:
        """After all writes, since creating an entry changes its dir's mtime."""
        for entry in self.store.checked_entries(self.name, self.exclude):
            if entry.type == "dir":
                target = f"{staging}/{entry.path}"
                try:
                    set_attrs(
                        target, entry.uid, entry.gid, entry.mode, entry.mtime_ns, self.as_root
                    )
                except OSError as exc:
                    raise os_error(exc, "setting attributes of", target, DATA) from exc

    def _set_root(self, path: Path, root: dict) -> None:
        try:
            if self.as_root and "uid" in root:
                os.chown(path, root["uid"], root["gid"])
            if "mode" in root:
                os.chmod(path, root["mode"])
        except OSError as exc:
            raise os_error(exc, "setting attributes of", path, DATA) from exc

    def _swap(self, staging: Path, exists: bool, on_mount: bool) -> Path | None:
        data_dir = self.data_dir
        try:
            if not exists:
                os.rename(staging, data_dir)
                fsync_dir(data_dir.parent)
                return None
            if on_mount:
                return self._swap_entries(staging)
            old = data_dir.parent / f".{data_dir.name}.before-restore-{self.token}"
            moved = _move(data_dir, staging, self.exclude)  # caches are carried over
            try:
                os.rename(data_dir, old)
            except OSError:
                _move(staging, data_dir, moved)
                raise
            try:
                os.rename(staging, data_dir)
            except OSError:
                os.rename(old, data_dir)
                _move(staging, data_dir, moved)
                raise
            fsync_dir(data_dir.parent)
            return old
        except OSError as exc:
            _discard(staging)
            raise os_error(exc, "swapping the restored tree into", data_dir, DATA) from exc

    def _swap_entries(self, staging: Path) -> Path:
        """A mount point cannot be renamed: move its entries one by one (NOT atomic)."""
        data_dir = self.data_dir
        old = data_dir / f".a4c-before-restore-{self.token}"
        root = os.stat(data_dir)
        os.mkdir(old, 0o700)
        for name in sorted(os.listdir(data_dir)):
            if name not in (old.name, staging.name) and name not in self.exclude:
                os.rename(data_dir / name, old / name)
        for name in sorted(os.listdir(staging)):
            os.rename(staging / name, data_dir / name)
        os.rmdir(staging)
        # the kept tree carries the data dir's own attributes, for undo_restore
        mode = stat.S_IMODE(root.st_mode)
        set_attrs(old, root.st_uid, root.st_gid, mode, root.st_mtime_ns, self.as_root)
        return old


def _discard(staging: Path) -> None:
    """Removes a failed staging tree; a failure here must not hide the reason it failed."""
    try:
        rmtree(staging)
    except OSError:
        pass


def _unchanged(existing: os.stat_result, entry: Entry) -> bool:
    return stat.S_ISREG(existing.st_mode) and (existing.st_size, existing.st_mtime_ns) == (
        entry.size,
        entry.mtime_ns,
    )


def undo_restore(data_dir: Path, old_tree: Path, exclude) -> None:
    if not old_tree.is_dir():
        raise StorageError(
            f"the tree kept before the restore ({show(old_tree)}) is gone: cannot undo; "
            "restore a backup instead"
        )
    as_root = os.geteuid() == 0
    try:
        if old_tree.parent == data_dir:  # a mount point: entries were swapped one by one
            for name in sorted(os.listdir(data_dir)):
                if name != old_tree.name and name not in exclude:
                    rmtree(data_dir / name)
            for name in sorted(os.listdir(old_tree)):
                os.rename(old_tree / name, data_dir / name)
            root = os.stat(old_tree)
            os.rmdir(old_tree)
            mode = stat.S_IMODE(root.st_mode)
            set_attrs(data_dir, root.st_uid, root.st_gid, mode, root.st_mtime_ns, as_root)
            return
        trash = data_dir.parent / f".{data_dir.name}.undone-{secrets.token_hex(4)}"
        if os.path.lexists(data_dir):
            _move(data_dir, old_tree, exclude)  # the caches go back with the old tree
            os.rename(data_dir, trash)
        os.rename(old_tree, data_dir)
        fsync_dir(data_dir.parent)
        rmtree(trash)
    except OSError as exc:
        raise os_error(exc, "putting the old tree back into", data_dir, DATA) from exc
