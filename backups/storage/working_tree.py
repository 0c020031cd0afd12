"""The Alien4Cloud data dir as a restore changes it: what a restore would change, the new tree
staged beside it and swapped in, the kept old tree put back (undo) or dropped, and the staging
trees an interrupted restore left behind.

It reads the backup storage only through a ``Store`` (backups/storage/store.py), never writes
it, and must not import Django. The work lives in backups/storage/restore.py.
"""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from backups.errors import InvalidInput
from backups.storage.fileio import DATA, os_error, rmtree, show
from backups.storage.findings import Findings, take
from backups.storage.in_place import InPlaceStaged
from backups.storage.ownership import RECORDED, OwnerMap, root_attributes
from backups.storage.pipeline import Meter
from backups.storage.restore import (
    FileRestore,
    StagedRestore,
    file_changes,
    tree_differences,
    undo_restore,
)
from backups.storage.results import FilePlan, RestoreResult
from backups.storage.store import DEFAULT_EXCLUDES, CheckFn, CopyOptions, ProgressFn, Store
from backups.storage.walk import count_files

DEFAULT_COPY = CopyOptions()


def _check_mode(mode: str) -> None:
    if mode not in ("mirror", "merge"):
        raise InvalidInput(f"restore mode {mode!r} is neither 'mirror' nor 'merge'")


class WorkingTree:
    """One data dir, restored from the backups of one ``Store``.

    progress callbacks get a FileProgress at least every 0.5 s and at the end. check() is called
    at every entry (keep it cheap): if it raises (Cancelled, or anything), the work stops and
    its error propagates.
    """

    def __init__(self, store: Store, data_dir: Path):
        self.store = store
        self.data_dir = Path(data_dir)

    def _real(self) -> Path:
        return Path(os.path.realpath(self.data_dir))

    def count(
        self, exclude_dirs: Iterable[str] = DEFAULT_EXCLUDES, check: CheckFn = None
    ) -> tuple[int, int]:
        """Files and bytes a backup of the data dir would hold: a walk, nothing read."""
        return count_files(self.data_dir, frozenset(exclude_dirs), check or (lambda: None))

    def plan_restore(
        self,
        name: str,
        *,
        exclude_dirs: Iterable[str] = DEFAULT_EXCLUDES,
        mode: str = "mirror",
        owners: str = RECORDED,
        local: bool = False,
        at_once: bool = False,
    ) -> FilePlan:
        """What restore() would add, change and (in mirror mode) remove; and, when the data
        dir does not exist yet, the dirs it creates and the data dir's attributes. Refuses a
        data dir it could not write (check_writable). ``at_once``: the paths found to differ
        are kept for a stage() this process runs next (storage/findings.py)."""
        self.check_writable()
        plan = FilePlan(mode)
        excluded = frozenset(exclude_dirs)
        _check_mode(mode)
        found, owner_map, real = None, None, self._real()
        if at_once and real.is_dir():  # kept as the staging writes them: owned as it owns them
            found = Findings(self._key(name, excluded, mode, owners, local))
            owner_map = OwnerMap.of(owners, real)
        changes = file_changes(self.store, name, real, excluded, mode, local, found, owner_map)
        same = same_bytes = 0  # counted apart: most files, and no example is kept of them
        for kind, path, size, node in changes:
            if kind == "unchanged" and node == "file":
                same += 1
                same_bytes += size
            else:
                plan.count(kind, path, size, node)
        plan.unchanged += same
        plan.unchanged_bytes += same_bytes
        if found is not None:
            plan.findings = found.keep()
        missing = self.missing_dirs()
        if missing:
            recorded = self.store.manifests.header(name).get("root") or {}
            owner_map = OwnerMap.of(owners, self._real())
            plan.created_dirs = [show(str(p)) for p in missing]
            plan.created_root = root_attributes(recorded, self._real(), owner_map)
        return plan

    def _key(self, name: str, excluded: frozenset, mode: str, owners: str, local: bool) -> tuple:
        """The restore that findings were made for (Findings.restore)."""
        return name, str(self._real()), excluded, mode, owners, local

    def missing_dirs(self) -> list[Path]:
        """The data dir and those of its parents that do not exist, the data dir first."""
        missing, where = [], self.data_dir.absolute()
        while not os.path.lexists(where) and where != where.parent:
            missing.append(where)
            where = where.parent
        return missing

    def check_writable(self) -> None:
        """Refuses, naming the path, a data dir a restore could not write: one that exists but
        is not a directory, or that this user cannot write; or, before it exists, a nearest
        existing parent that is not a directory this user can create it in. Asked before
        anything is touched (the plan, and the restore's first step)."""
        user = f"uid {os.geteuid()}"
        path = self.data_dir
        if os.path.lexists(path):
            real = self._real()
            if not real.is_dir():
                raise InvalidInput(
                    f"The A4C data dir {show(str(path))} exists but is not a directory: move "
                    "it away (a restore creates the data dir), or set A4C_DATA_DIR to the "
                    "data dir, then restore again."
                )
            if not os.access(real, os.W_OK | os.X_OK):
                raise InvalidInput(
                    f"The A4C data dir {show(str(path))} is not writable by this user "
                    f"({user}): run the restore as its owner, or give that user write access."
                )
            # the new tree is staged beside the data dir and renamed into its place
            where = real if os.path.ismount(real) else real.parent
        else:
            missing = self.missing_dirs()
            where = missing[-1].parent
            if not where.is_dir():
                raise InvalidInput(
                    f"The A4C data dir {show(str(path))} cannot be created: {show(str(where))} "
                    "is not a directory. Set A4C_DATA_DIR to a path under a directory, or move "
                    f"{show(str(where))} away, then restore again."
                )
        if not os.access(where, os.W_OK | os.X_OK):
            raise InvalidInput(
                f"A restore of the A4C data dir {show(str(path))} writes in "
                f"{show(str(where))}, which this user ({user}) cannot write: run the restore "
                "as its owner, or give that user write access."
            )

    def file_changes(
        self, name: str, *, exclude_dirs: Iterable[str], mode: str, local: bool = False
    ) -> Iterator[tuple]:
        """plan_restore()'s complete list, streamed: (kind, shown path, size) per path."""
        _check_mode(mode)
        excluded = frozenset(exclude_dirs)
        return file_changes(self.store, name, self._real(), excluded, mode, local)

    def matches(self, name: str, *, exclude_dirs: Iterable[str] = DEFAULT_EXCLUDES) -> bool:
        """True if the data dir matches the manifest exactly (content, modes, links, empty
        dirs)."""
        return not self.differences(name, exclude_dirs=exclude_dirs)

    def differences(
        self, name: str, *, exclude_dirs: Iterable[str] = DEFAULT_EXCLUDES
    ) -> list[str]:
        """Every way the data dir differs from the manifest, one line each naming the path:
        each file re-hashed; type, mode, owner, times and link targets compared."""
        return tree_differences(self.store, name, self.data_dir, frozenset(exclude_dirs))

    def restore(
        self,
        name: str,
        *,
        options: CopyOptions = DEFAULT_COPY,
        mode: str = "mirror",
        progress: ProgressFn = None,
        check: CheckFn = None,
        owners: str = RECORDED,
        local: bool = False,
        findings: str = "",
    ) -> RestoreResult:
        """Makes the data dir the backup's ("mirror") or adds the backup's over it ("merge").

        The whole manifest is checked first (paths, order, hash, blobs present): nothing is
        written if it fails. Over a data dir that exists, only what differs is written: each
        live file of the backup's size is hashed (unless ``local``, the backup made on this
        install, and the file is the very one it read: same inode, ctime, mtime and size;
        manifest.read_by_this_backup), and one that holds the backup's bytes stays where it
        is (its mode and mtime set in place if they differ). What differs is staged from the
        blobs beside the data dir, each re-hashed on the way (a mismatch raises DamagedBackup
        and nothing is changed); then a journal of the changes is written and
        synced in old_tree, and the changes are made by renames, each displaced entry kept in
        old_tree, so that undo() puts the data dir back from any point, even after a crash
        midway. The result is checked against the manifest before restore() returns, and
        undone if it differs. (A data dir on a mount point keeps both dirs inside it.) A data
        dir that does not exist is built whole beside its place and renamed into it. Excluded
        cache dirs are never touched. ``options`` names the excluded dirs, the threads, and
        the cap on the bytes written per second (its bandwidth, 0 for none). ``owners`` is
        RECORDED (as the manifest says) or DATA_DIR (a set from elsewhere: the data dir's owner
        everywhere, no set-id or world-writable bits, the data dir's own owner and mode kept;
        storage/ownership.py). ``findings``: see stage().
        """
        staged = self.stage(
            name,
            options=options,
            mode=mode,
            progress=progress,
            check=check,
            owners=owners,
            local=local,
            findings=findings,
        )
        return staged.swap()

    def stage(
        self,
        name: str,
        *,
        options: CopyOptions = DEFAULT_COPY,
        mode: str = "mirror",
        progress: ProgressFn = None,
        check: CheckFn = None,
        owners: str = RECORDED,
        local: bool = False,
        findings: str = "",
    ) -> StagedRestore | InPlaceStaged:
        """restore() up to the swap: what differs is staged and checked beside the data dir;
        call swap() on the result to put it in place, or discard() to drop it. Its
        ``kept_tree``, known before the swap, is what undo() takes if the swap stops midway.
        ``findings``: the token of a plan_restore(at_once=True) of this very restore, made
        moments ago in this process (FilePlan.findings): only the paths it found to differ are
        looked at again (storage/findings.py)."""
        _check_mode(mode)
        self.check_writable()
        meter = Meter(progress, check, options.bandwidth)
        excluded = frozenset(options.exclude_dirs)
        owner_map = OwnerMap.of(owners, self._real())
        found = take(findings, self._key(name, excluded, mode, owners, local))
        run = FileRestore(self.store, name, self._real(), excluded, meter, owner_map, local)
        return run.stage(mode, options.workers, found)

    def undo(self, old_tree: Path, *, exclude_dirs: Iterable[str] = DEFAULT_EXCLUDES) -> None:
        """Puts the tree kept by restore() back as the data dir, removing the new one."""
        undo_restore(self._real(), Path(old_tree), frozenset(exclude_dirs))

    def discard_staging(self) -> list[str]:
        """Removes the staging trees that interrupted restores left beside the data dir (or
        inside it, on a mount point); returns their names. Only while no restore runs."""
        data_dir = self._real()
        found = list(data_dir.parent.glob(f".{glob.escape(data_dir.name)}.restore-*"))
        if data_dir.is_dir():
            found += data_dir.glob(".a4c-restore-*")
        for path in found:
            try:
                rmtree(path)
            except OSError as exc:
                raise os_error(exc, "deleting", path, "the data dir's parent") from exc
        return sorted(show(p.name) for p in found)

    def remove_created(self) -> None:
        """Undoes a restore that created the data dir (there was none before): it goes
        again, moved aside in one rename first so that no half-removed tree is left in its
        place."""
        data_dir = self._real()
        trash = data_dir.parent / f".{data_dir.name}.undone-{secrets.token_hex(4)}"
        try:
            if os.path.lexists(data_dir):
                os.rename(data_dir, trash)
            rmtree(trash)
        except OSError as exc:
            raise os_error(exc, "removing", data_dir, DATA) from exc

    def drop_old_tree(self, old_tree: Path) -> None:
        """Removes the previous data dir a restore kept, once the restore is final."""
        try:
            rmtree(old_tree)
        except OSError as exc:
            raise os_error(exc, "deleting", old_tree, "the data dir's parent") from exc


def compare_tree_to_manifest(
    store: Store, name: str, data_dir: Path, *, exclude_dirs: Iterable[str] = DEFAULT_EXCLUDES
) -> bool:
    """True if the data dir matches the manifest exactly (content, modes, links, empty dirs)."""
    return WorkingTree(store, data_dir).matches(name, exclude_dirs=exclude_dirs)
