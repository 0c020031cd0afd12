"""Restoring a backup's files: plan, stage beside the data dir, swap in, undo.

Used by backups.storage.working_tree.WorkingTree; see there for the contract. Nothing here
writes outside the staging dir until the manifest has been checked whole, and the data dir is
only touched by the renames of the swap. A restore over a data dir that exists changes only
what differs: backups/storage/in_place.py.
"""

import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from backups.errors import Cancelled, DamagedBackup, StorageError
from backups.storage.fileio import (
    DATA,
    PageCache,
    buffer,
    current_umask,
    fill,
    fsync_dir,
    hash_file,
    os_error,
    rmtree,
    set_attrs,
    show,
    sync_filesystem,
    write_all,
)
from backups.storage.findings import Findings
from backups.storage.in_place import InPlaceRestore, InPlaceStaged, is_undo_dir, undo_in_place
from backups.storage.join import tree_join, unparsed
from backups.storage.manifest import Entry, read_by_this_backup
from backups.storage.ownership import OwnerMap, owned_entries, root_attributes
from backups.storage.pipeline import LATER, Meter, Pipeline
from backups.storage.results import RestoreResult
from backups.storage.walk import Node, outer_join, walk


def _same(want: Entry, have: Node, local: bool) -> bool:
    """Whether a walked node holds what the entry says: a file of the entry's size is hashed,
    unless the backup was made here and it is the very file that backup read (local)."""
    _, _, path, st, kind = have
    if kind != want.type:
        return False
    if kind == "symlink":
        return os.readlink(path) == want.target
    if kind == "dir":
        return True
    if st.st_size != want.size:
        return False
    return (local and read_by_this_backup(want, st)) or hash_file(path) == want.sha256


def file_changes(
    store,
    name: str,
    data_dir: Path,
    exclude,
    mode: str,
    local: bool = False,
    findings: Findings | None = None,
    owners: OwnerMap | None = None,
) -> Iterator[tuple]:
    """Every path a restore would touch, in path order, as (kind, shown path, size, node):
    kind is added, changed, removed (mirror mode only) or unchanged; node is file, dir or
    symlink (what the backup holds there, else what the data dir does). Streamed: the
    complete list of a million files never sits in memory. local: the backup was made on
    this install (its manifest's inodes and change times are this machine's; _same).
    findings: gets every pair the staging must look at again (storage/findings.py), each
    entry as the staging writes it (owners: OwnerMap, None for as recorded)."""
    found = walk(data_dir, exclude) if data_dir.is_dir() else iter(())
    joined = tree_join(store.manifests, name, exclude, found, local=local, owners=owners)
    for want, have in joined:
        if unparsed(want):
            size = have[3].st_size if have[4] == "file" else 0
            if findings is not None and have[4] == "file":
                findings.same_files += 1
                findings.same_bytes += size
            yield "unchanged", show(have[0]), size, have[4]
            continue
        same = want is not None and have is not None and _same(want, have, local)
        if findings is not None:
            findings.add(want, have, same)
        if have is None:
            yield "added", show(want.path), want.size, want.type
        elif want is None:
            if mode == "mirror":
                size = have[3].st_size if have[4] == "file" else 0
                yield "removed", show(have[0]), size, have[4]
        elif same:
            yield "unchanged", show(want.path), want.size, want.type
        else:
            yield "changed", show(want.path), want.size, want.type


def tree_differences(store, name: str, data_dir: Path, exclude) -> list[str]:
    """Every way the data dir differs from the manifest: content, mode, mtime, owner, links."""
    problems = []
    wanted = store.manifests.checked_entries(name, exclude)
    for want, have in outer_join(wanted, walk(data_dir, exclude)):
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
    """One restore of a backup's files: stage the tree from the blobs, then swap it in.

    The manifest is read once, while staging: its checks (paths, order, hash) and each blob's
    hash are verified as the staging tree is built, and any failure discards the staging
    tree before the data dir is touched.
    """

    def __init__(
        self, store, name: str, data_dir: Path, exclude, meter: Meter, owners=None, local=False
    ):
        self.store, self.name, self.data_dir = store, name, data_dir
        self.local = local  # made on this install: a live file it read is not read again
        self.exclude, self.meter = exclude, meter
        self.owners: OwnerMap | None = owners  # None: as the manifest records
        self.as_root = os.geteuid() == 0
        self.owner = (os.geteuid(), os.getegid())
        self.umask = current_umask()
        self.token = secrets.token_hex(4)
        self.files = self.written = 0  # written from blobs (a merge keeps unchanged files)
        self.open_dirs: list[tuple[str, str, Entry]] = []  # staged dirs not yet full
        self.cache = PageCache(store.blobs)  # which blobs can be read without waiting

    def stage(
        self, mode: str, workers: int, findings: Findings | None = None
    ) -> "StagedRestore | InPlaceStaged":
        """Builds what the data dir lacks beside it, every blob re-hashed as it is copied;
        the data dir is not touched. Any failure removes what was staged.

        Over a data dir that exists, only what differs is staged (backups/storage/in_place.py);
        a data dir that does not exist yet is built whole and renamed into its place.
        ``findings``: what the plan just found to differ (storage/findings.py)."""
        totals = self.store.manifests.summary(self.name)  # estimates: the excluded dirs are counted
        self.meter.files_total, self.meter.bytes_total = totals.files, totals.bytes
        self.meter.report()
        data_dir = self.data_dir
        recorded = self.store.manifests.header(self.name).get("root") or {}
        root = root_attributes(recorded, data_dir, self.owners)
        if os.path.lexists(data_dir):
            merge, on_mount = mode == "merge", os.path.ismount(data_dir)
            in_place = InPlaceRestore(self, merge, on_mount, None if merge else root, findings)
            return in_place.stage(workers)
        staging = data_dir.parent / f".{data_dir.name}.restore-{self.token}"
        try:
            try:
                data_dir.parent.mkdir(parents=True, exist_ok=True)
                os.mkdir(staging, 0o700)
            except OSError as exc:
                raise os_error(exc, "creating", staging, DATA) from exc
            self._build(staging, workers)
            self.set_root(staging, root)
            try:
                sync_filesystem(staging)  # the new tree is on disk before it is renamed in
            except OSError as exc:
                raise os_error(exc, "writing", staging, DATA) from exc
        except BaseException:
            _discard(staging)
            raise
        return StagedRestore(self, staging)

    def _build(self, staging: Path, workers: int) -> tuple[int, int]:
        meter = self.meter
        with Pipeline(workers, meter) as pipe:
            for entry in owned_entries(self.store.manifests, self.name, self.exclude, self.owners):
                meter.beat()
                target = f"{staging}/{entry.path}"
                work = ()
                try:
                    if entry.type == "dir":
                        os.mkdir(target, 0o700)  # its own mode is set once it is filled
                    elif entry.type == "file":
                        work = (self._write_file, (entry, target, pipe.stop))
                    else:
                        self._link(entry, target)
                except OSError as exc:
                    raise os_error(exc, "writing", target, DATA) from exc
                now = bool(work) and self.cache.serves(entry.size)
                ready = pipe.add((entry, target), *work, weight=entry.size, now=now)
                self._tally(ready)
            self._tally(pipe.finish())
        self._close_dirs("")
        return self.files, self.written

    def _link(self, entry: Entry, target: str) -> None:
        os.symlink(entry.target, target)
        set_attrs(target, entry.uid, entry.gid, None, entry.mtime_ns, self.as_root)

    def _tally(self, ready: list) -> None:
        meter = self.meter
        for (entry, target), size in ready:
            # Everything before this entry is written: the dirs it is not inside are full.
            self._close_dirs(entry.path)
            if entry.type == "dir":
                self.open_dirs.append((entry.path + "/", target, entry))
            if entry.type == "file":
                meter.files_done += 1
                meter.bytes_done += entry.size
                if size is not None:
                    self.files += 1
                    self.written += size

    def _close_dirs(self, path: str) -> None:
        """Sets the attributes of the open dirs that do not hold path (all, for "").

        Only once a dir is full: creating an entry changes its dir's mtime.
        """
        open_dirs = self.open_dirs
        while open_dirs and not path.startswith(open_dirs[-1][0]):
            _, target, entry = open_dirs.pop()
            self._set_dir(target, entry)

    def _set_dir(self, target: str, entry: Entry) -> None:
        try:
            set_attrs(target, entry.uid, entry.gid, entry.mode, entry.mtime_ns, self.as_root)
        except OSError as exc:
            raise os_error(exc, "setting attributes of", target, DATA) from exc

    def set_root(self, path: Path, root: dict) -> None:
        try:
            if self.as_root and "uid" in root:
                os.chown(path, root["uid"], root["gid"])
            if "mode" in root:
                os.chmod(path, root["mode"])
        except OSError as exc:
            raise os_error(exc, "setting attributes of", path, DATA) from exc

    def swap_in(self, staging: Path) -> None:
        """Renames the staged tree into the place of the data dir, which did not exist."""
        data_dir = self.data_dir
        try:
            os.rename(staging, data_dir)
            fsync_dir(data_dir.parent)
        except OSError as exc:
            _discard(staging)
            raise os_error(exc, "renaming the restored tree into", data_dir, DATA) from exc

    # The methods below run on the worker threads, or on the walk's when the blob is in memory.

    def _write_file(self, entry: Entry, target: str, stop, now: bool = False):
        """Copies a blob to its place in the staging tree, hashing the bytes it writes.

        A file that fits the buffer is read and written with one call each. It is created with
        its mode where the umask lets it and chowned only when its owner is not ours. With now,
        the answer is LATER, and nothing is written, when reading the blob would wait.
        """
        if stop.is_set():
            raise Cancelled("restore stopped")
        blob = self.store.blob_path(entry.sha256)
        try:
            source = os.open(blob, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise DamagedBackup(
                f"blob {entry.sha256[:12]}.. for {show(entry.path)} is missing: "
                "nothing was restored; run verify on this backup for the full list"
            ) from None
        except OSError as exc:
            raise os_error(exc, "reading", blob) from exc
        mode = entry.mode
        try:
            view = buffer()
            try:
                if now:
                    got = self.cache.read(source, view, entry.size)
                    if got is None:
                        return LATER
                elif entry.size < len(view):  # a short read is the blob's end
                    got = os.readv(source, [view[: entry.size + 1]])
                else:
                    got = fill(source, view)
            except OSError as exc:
                raise os_error(exc, "reading", blob) from exc
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            out = os.open(target, flags, mode & 0o777)
            try:
                size, digest = self._copy(source, out, view, got, blob, stop)
                if digest != entry.sha256 or size != entry.size:
                    raise DamagedBackup(
                        f"blob {entry.sha256[:12]}.. for {show(entry.path)} is corrupt "
                        f"(hash {digest[:12]}.., {size} bytes): nothing was restored"
                    )
                owned = (entry.uid, entry.gid) != self.owner
                if self.as_root and owned:
                    os.fchown(out, entry.uid, entry.gid)  # clears set-id bits: chmod after
                if mode & self.umask or mode & 0o7000:
                    os.fchmod(out, mode)
                os.utime(out, ns=(entry.mtime_ns, entry.mtime_ns))
            finally:
                os.close(out)
        except OSError as exc:
            raise os_error(exc, "writing", target, DATA) from exc
        finally:
            os.close(source)
        return size

    def _copy(self, source: int, out: int, view, got: int, blob: str, stop) -> tuple[int, str]:
        """Writes the bytes read first (got of them in view), then the rest of the blob."""
        throttle = self.meter.throttle
        throttle.take(got, stop)
        if got < len(view):  # the whole blob
            write_all(out, view[:got])
            return got, hashlib.sha256(view[:got]).hexdigest()
        digest, size = hashlib.sha256(), 0
        while got:
            if stop.is_set():
                raise Cancelled("restore stopped")
            digest.update(view[:got])
            write_all(out, view[:got])
            size += got
            got = _read(fill, source, view, blob)
            throttle.take(got, stop)
        return size, digest.hexdigest()


class StagedRestore:
    """A restore's new tree, built and checked beside the data dir, not yet swapped in.

    Its owner calls swap() or discard(); a restore of indices and files stages the files
    first, so that a damaged blob stops it before Elasticsearch is changed, without reading
    every blob twice. This one is a whole tree for a data dir that does not exist yet; over
    one that exists, FileRestore.stage() answers an InPlaceStaged (storage/in_place.py).
    """

    exists = False
    kept_tree = None  # nothing is kept: there was no data dir

    def __init__(self, run: FileRestore, staging: Path):
        self.run, self.staging = run, staging
        self.files, self.bytes = run.files, run.written

    def swap(self) -> RestoreResult:
        """Puts the new tree in the data dir's place."""
        run = self.run
        try:
            run.meter.beat()  # the last chance to cancel: the swap is not interrupted
        except BaseException:
            self.discard()
            raise
        run.swap_in(self.staging)
        run.meter.report()
        return RestoreResult(self.files, self.bytes, None, self.staging)

    def discard(self) -> None:
        _discard(self.staging)


def _discard(staging: Path) -> None:
    """Removes a failed staging tree; a failure here must not hide the reason it failed."""
    try:
        rmtree(staging)
    except OSError:
        pass


def undo_restore(data_dir: Path, old_tree: Path, exclude) -> None:
    """Puts back the data dir as it was before a restore: from the undo journal of one that
    changed it in place, or (a restore by an earlier version) from the whole old tree kept."""
    if is_undo_dir(old_tree):
        undo_in_place(data_dir, old_tree, exclude)
        return
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


def _read(read, fd: int, into, blob: str) -> int:
    try:
        return read(fd, into)
    except OSError as exc:
        raise os_error(exc, "reading", blob) from exc
