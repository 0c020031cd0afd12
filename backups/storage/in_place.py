"""Restoring a backup's files over a data dir that exists: only what differs is written.

Staging walks the data dir beside the manifest. A live file of the right size is hashed (its
mtime is not trusted), unless the backup was made on this install and the file is the very one
it read (same inode, ctime, mtime and size: manifest.read_by_this_backup); when its bytes are
the backup's it stays where it is, its attributes set in place if they differ; anything else
that differs is written from its blob into a staging dir beside the data dir (re-hashed on the
way), and what the backup lacks is marked to go (mirror mode). Nothing in the data dir changes
until swap().

swap() first writes a journal of every change into the undo dir and syncs it, then applies
the changes by renames: each displaced entry into the undo dir, each staged one into its
place; then it sets the changed dirs' attributes and checks the result against the manifest:
a stat walk finds what changed since the last whole look at the data dir (by the restore or
not: a change time no older), and that is compared with its manifest lines, a file hashed again
(_verify).
undo() replays the journal backwards, from any point: a crash midway is undone too. Files
that were already right are neither copied, renamed nor touched: their inodes and ctimes stay.

Used by backups.storage.restore.FileRestore; no Django here.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from backups.errors import BackupError, StorageError
from backups.storage.fileio import (
    DATA,
    fsync_dir,
    hash_file,
    os_error,
    rmtree,
    set_attrs,
    show,
)
from backups.storage.fileio import sync_filesystem as sync_fs
from backups.storage.join import changed_since, parsed, tree_join, unparsed
from backups.storage.manifest import Entry, line_path, read_by_this_backup
from backups.storage.pipeline import LATER, Pipeline
from backups.storage.results import RestoreResult
from backups.storage.walk import walk

JOURNAL = "journal"
CHANGES = "changes"  # in the staging dir, beside the staged files (named by numbers)
SAME = object()  # a compare's answer: the live file holds the backup's bytes
ADD, REPLACE, REMOVE, ATTRS, CHECK = "add", "replace", "remove", "attrs", "check"


def _attrs(st: os.stat_result) -> list[int]:
    return [stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns]


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


class InPlaceRestore:
    """One restore over an existing data dir: stage() what differs, then swap() it in."""

    def __init__(self, run, merge: bool, on_mount: bool, root: dict | None, findings=None):
        self.run, self.merge, self.root = run, merge, root  # root: None keeps the data dir's
        self.findings = findings  # what the plan just found to differ: only those are looked at
        data_dir, token = run.data_dir, run.token
        if on_mount:  # nothing can be renamed beside a mount point: both live inside it
            self.staging = data_dir / f".a4c-restore-{token}"
            self.undo_dir = data_dir / f".a4c-undo-{token}"
        else:
            self.staging = data_dir.parent / f".{data_dir.name}.restore-{token}"
            self.undo_dir = data_dir.parent / f".{data_dir.name}.undo-{token}"
        self.skip = run.exclude | {self.staging.name, self.undo_dir.name}
        # the changes, in path order, one JSON line each in the staging dir: memory stays flat
        # however many there are
        self.changes = self.staging / CHANGES
        self.record = None  # the changes file while staging
        self.dirs: dict[str, Entry] = {}  # dirs whose attributes are set after the changes
        self.since = 0  # ctime of the staging dir: a file changed after it is hashed again
        self.count = 0

    # -- staging --------------------------------------------------------------------------

    def stage(self, workers: int) -> InPlaceStaged:
        run, data_dir = self.run, self.run.data_dir
        try:
            os.mkdir(self.staging, 0o700)
            self.since = os.lstat(self.staging).st_ctime_ns
            if self.findings is not None:  # the check afterwards covers the time since the plan
                self.since = min(self.since, self.findings.since_here(self.since))
        except OSError as exc:
            raise os_error(exc, "creating", self.staging, DATA) from exc
        try:
            with open(self.changes, "w", encoding="ascii") as self.record:
                with Pipeline(workers, run.meter) as pipe:
                    self._compare_tree(pipe)
                    self._take(pipe.finish())
            sync_fs(self.staging)
        except BaseException:
            _quietly_remove(self.staging)
            raise
        return InPlaceStaged(self, data_dir)

    def _compare_tree(self, pipe: Pipeline) -> None:
        run, meter = self.run, self.run.meter
        gone = None  # a live dir that goes whole: its entries go with it
        found = self.findings
        pairs = self._join() if found is None else found.nodes(str(run.data_dir))
        if found is not None:  # the plan found these as the backup has them
            meter.files_done += found.same_files
            meter.bytes_done += found.same_bytes
        for want, have in pairs:
            meter.beat()
            if unparsed(want):  # the live node is what the line says: nothing to do
                if have[4] == "file":
                    meter.files_done += 1
                    meter.bytes_done += have[3].st_size
                if gone is None or not have[0].startswith(gone):
                    continue
                want = parsed(run.store.manifests, run.name, want)
            if have is not None and gone is not None and have[0].startswith(gone):
                if want is None:
                    continue
                have = None
            item, work = self._decide(want, have, pipe)
            if item is None:
                continue
            if have is not None and have[4] == "dir" and item[0] in (REPLACE, REMOVE):
                gone = have[0] + "/"
            weight = want.size if want is not None else 0
            now = bool(work) and run.cache.serves(weight)
            self._take(pipe.add(item, *work, weight=weight, now=now))

    def _join(self):
        run = self.run
        found = walk(run.data_dir, self.skip)
        manifests, local, owners = run.store.manifests, run.local, run.owners
        return tree_join(manifests, run.name, run.exclude, found, local=local, owners=owners)

    def _decide(self, want: Entry | None, have, pipe: Pipeline) -> tuple:
        """What to do at one path: (item, work), item None for nothing at all."""
        if want is None:
            return ((REMOVE, have[0], None, None), ()) if not self.merge else (None, ())
        if have is None:
            return self._new(ADD, want, pipe)
        _, _, path, st, kind = have
        if kind != want.type:
            return self._new(REPLACE, want, pipe)
        if kind == "dir":
            if not self._same_attrs(want, st):
                self.dirs[want.path] = want
            return None, ()
        if kind == "symlink":
            if os.readlink(path) == want.target and self._same_attrs(want, st, link=True):
                return None, ()
            return self._new(REPLACE, want, pipe)
        if st.st_size != want.size:
            return self._new(REPLACE, want, pipe)
        if self.run.local and read_by_this_backup(want, st):  # its bytes are the backup's
            meter = self.run.meter
            meter.files_done += 1
            meter.bytes_done += want.size
            if not self._same_attrs(want, st):  # as owned_entries maps them
                self._note(ATTRS, want.path, want, None)
                self._dirty(want.path)
            return None, ()
        staged = self._name()
        work = (self._compare, (want, path, f"{self.staging}/{staged}", pipe.stop))
        return (CHECK, want.path, want, staged, st), work

    def _new(self, what: str, want: Entry, pipe: Pipeline) -> tuple:
        if want.type == "dir":
            return (what, want.path, want, None), ()
        staged = self._name()
        target = f"{self.staging}/{staged}"
        if want.type == "symlink":
            try:
                self.run._link(want, target)
            except OSError as exc:
                raise os_error(exc, "writing", target, DATA) from exc
            return (what, want.path, want, staged), ()
        return (what, want.path, want, staged), (self.run._write_file, (want, target, pipe.stop))

    def _name(self) -> str:
        self.count += 1
        return str(self.count)

    def _same_attrs(self, want: Entry, st: os.stat_result, link: bool = False) -> bool:
        if st.st_mtime_ns != want.mtime_ns:
            return False
        if not link and stat.S_IMODE(st.st_mode) != want.mode:
            return False
        return not self.run.as_root or (st.st_uid, st.st_gid) == (want.uid, want.gid)

    def _compare(self, want: Entry, path: str, target: str, stop, now: bool = False):
        """On a worker (or now, when the file is in memory): SAME, or the staged copy's size."""
        if now and not self.run.cache.memory:
            return LATER
        try:
            same = hash_file(path) == want.sha256
        except FileNotFoundError:
            same = False
        except OSError as exc:
            raise os_error(exc, "reading", path, DATA) from exc
        return SAME if same else self.run._write_file(want, target, stop)

    def _take(self, ready: list) -> None:
        meter = self.run.meter
        for item, result in ready:
            what, path, want = item[0], item[1], item[2]
            if what == CHECK:
                if result is SAME:
                    if not self._same_attrs(want, item[4]):
                        self._note(ATTRS, path, want, None)
                        self._dirty(path)
                    what = None
                else:
                    what = REPLACE
            if what is not None:
                self._note(what, path, want, item[3] if what != REMOVE else None)
                self._dirty(path)
                if want is not None and want.type == "dir":
                    self.dirs[path] = want
            if want is not None and want.type == "file":
                meter.files_done += 1
                meter.bytes_done += want.size
                if result is not None and result is not SAME:
                    self.run.files += 1
                    self.run.written += result
                meter.beat()  # shown as it goes, checked files too: most are left alone

    def _note(self, what: str, path: str, want: Entry | None, staged: str | None) -> None:
        attrs = None if want is None else [want.mode, want.uid, want.gid, want.mtime_ns]
        kind = None if want is None else want.type
        line = {"what": what, "path": path, "type": kind, "staged": staged, "attrs": attrs}
        self.record.write(json.dumps(line) + "\n")

    def _changes(self):
        """The changes noted while staging, in path order, read back one at a time."""
        with open(self.changes, encoding="ascii") as noted:
            for line in noted:
                yield json.loads(line)

    def _dirty(self, path: str) -> None:
        """A change inside a dir changes its mtime: the backup's is set again afterwards."""
        parent = _parent(path)
        if parent and parent not in self.dirs:
            self.dirs[parent] = None  # filled with the manifest's entry in _dir_entries

    # -- applying ---------------------------------------------------------------------------

    def apply(self) -> RestoreResult:
        data_dir, undo_dir = self.run.data_dir, self.undo_dir
        self._dir_entries()
        try:
            os.mkdir(undo_dir, 0o700)
            self._write_journal()
        except OSError as exc:
            _quietly_remove(undo_dir)
            _quietly_remove(self.staging)
            raise os_error(exc, "writing the undo journal in", undo_dir, DATA) from exc
        try:
            self._apply_changes()
            self._verify()
        except BaseException:
            try:
                undo_in_place(data_dir, undo_dir, self.run.exclude)
            except BackupError:
                pass  # the restore's rollback tries again, and says so if it fails
            raise
        return RestoreResult(self.run.files, self.run.written, undo_dir, self.staging)

    def _dir_entries(self) -> None:
        """The manifest's entry of each dir whose mtime the changes move: the manifest read
        once more (its hash checked again), parsing only the lines of those paths."""
        missing = {path for path, entry in self.dirs.items() if entry is None}
        if not missing:
            return
        run = self.run
        manifests = run.store.manifests
        for lineno, line in manifests.lines(run.name):
            path = line_path(line)
            if path is not None and path not in missing:
                continue
            entry = manifests.parse(run.name, lineno, line)
            if entry.type == "dir" and entry.path in missing:
                self.dirs[entry.path] = entry if run.owners is None else run.owners.entry(entry)

    def _write_journal(self) -> None:
        data_dir = self.run.data_dir
        # written whole, then renamed: a journal that exists is complete
        partial = self.undo_dir / f"{JOURNAL}.partial"
        with open(partial, "x", encoding="ascii", opener=_private) as journal:

            def add(line: dict) -> None:
                journal.write(json.dumps(line) + "\n")

            add({"staging": self.staging.name, "root": _attrs(os.lstat(data_dir))})
            for i, change in enumerate(self._changes()):
                what, path = change["what"], change["path"]
                line = {"what": what, "path": path, "old": f"o{i}"}
                if what == ATTRS:
                    line["before"] = _attrs(os.lstat(data_dir / path))
                add(line)
                if what in (REPLACE, REMOVE) and _is_dir(data_dir / path):
                    # its mode may be opened for the move: the undo sets it again
                    add({"dir": path, "before": _attrs(os.lstat(data_dir / path))})
            for path in self.dirs:
                if _is_dir(data_dir / path):
                    add({"dir": path, "before": _attrs(os.lstat(data_dir / path))})
            journal.flush()
            os.fsync(journal.fileno())
        os.rename(partial, self.undo_dir / JOURNAL)
        fsync_dir(self.undo_dir)

    def _apply_changes(self) -> None:
        run, data_dir = self.run, self.run.data_dir
        as_root = run.as_root
        for i, change in enumerate(self._changes()):
            what, path, kind = change["what"], change["path"], change["type"]
            target = data_dir / path
            try:
                if what == ATTRS:
                    mode, uid, gid, mtime = change["attrs"]
                    set_attrs(target, uid, gid, mode, mtime, as_root)
                    continue
                _let_me_write(target.parent)
                if what in (REPLACE, REMOVE) and os.path.lexists(target):
                    if not os.path.islink(target) and os.path.isdir(target):
                        _let_me_write(target)  # moving a dir rewrites its ".."
                    os.rename(target, self.undo_dir / f"o{i}")
                if what == REMOVE:
                    continue
                if kind == "dir":
                    os.mkdir(target, 0o700)
                else:
                    os.rename(self.staging / change["staged"], target)
            except OSError as exc:
                raise os_error(exc, "restoring", target, DATA) from exc
        # deepest first: setting a dir's attributes does not move its parent's mtime
        for path in sorted(self.dirs, key=lambda p: p.count("/"), reverse=True):
            entry = self.dirs[path]
            if entry is not None:
                run._set_dir(str(data_dir / path), entry)
        if self.root is not None and _root_differs(data_dir, self.root, as_root):
            run.set_root(data_dir, self.root)
        rmtree(self.staging)
        try:
            sync_fs(data_dir)
        except OSError as exc:
            raise os_error(exc, "writing", data_dir, DATA) from exc

    def _verify(self) -> None:
        """The data dir against the manifest after the changes.

        The last whole look at the data dir (the staging's walk, or the plan's whose findings
        the staging took) judged every entry, and the changes made right what it found to
        differ: only what changed since that look began (``since``) can differ now, and
        join.changed_since finds it (a change time no older). Those nodes and the entries of
        the dirs whose names changed are compared with their manifest lines: type, mode,
        owner, mtime and link target, a file's size, and its bytes hashed again.
        """
        problems, run = [], self.run
        manifests, name, exclude, owners = run.store.manifests, run.name, run.exclude, run.owners
        joined = changed_since(
            manifests, name, exclude, run.data_dir, self.skip, self.since, owners
        )
        for want, have in joined:
            if want is None:
                if not self.merge:
                    problems.append(f"{show(have[0])}: not in the backup")
                continue
            if have is None:
                problems.append(f"{show(want.path)}: missing")
                continue
            _, _, path, st, kind = have
            link = kind == "symlink"
            same = kind == want.type and self._same_attrs(want, st, link)
            if same and link:
                same = os.readlink(path) == want.target
            elif same and kind == "file":
                same = st.st_size == want.size
                if same and st.st_ctime_ns >= self.since:  # written here, or since the look
                    same = hash_file(path) == want.sha256
            if not same:
                problems.append(f"{show(want.path)}: differs from the backup")
        if problems:
            raise StorageError(
                "After the restore the data dir does not match the backup: "
                + "; ".join(problems[:5])
                + " (something wrote to it during the restore?): it was put back as it was."
            )


class InPlaceStaged:
    """What stage() found and wrote; swap() applies it, discard() drops it."""

    exists = True

    def __init__(self, restore: InPlaceRestore, data_dir: Path):
        self.restore, self.staging = restore, restore.staging
        self.files, self.bytes = restore.run.files, restore.run.written
        self.kept_tree = restore.undo_dir  # known before the swap: a crash midway is undone

    def swap(self) -> RestoreResult:
        run = self.restore.run
        try:
            run.meter.beat()  # the last chance to cancel: the changes are not interrupted
        except BaseException:
            self.discard()
            raise
        result = self.restore.apply()
        run.meter.report()
        return result

    def discard(self) -> None:
        _quietly_remove(self.staging)


def is_undo_dir(path: Path) -> bool:
    return path.name.startswith(".a4c-undo-") or ".undo-" in path.name


def undo_in_place(data_dir: Path, undo_dir: Path, exclude) -> None:
    """Puts the data dir back as the journal says it was; from any point of the changes, and
    again after an undo that stopped midway. No undo dir: nothing was changed."""
    journal = undo_dir / JOURNAL
    try:
        if not journal.exists():
            rmtree(undo_dir)
            return
        lines = [json.loads(line) for line in journal.read_text("ascii").splitlines()]
    except (OSError, ValueError) as exc:
        raise StorageError(
            f"the undo journal {show(journal)} cannot be read ({exc}): restore the safety "
            "backup instead"
        ) from exc
    as_root = os.geteuid() == 0
    head, lines = lines[0], lines[1:]
    try:
        for line in reversed([line for line in lines if "what" in line]):
            target = data_dir / line["path"]
            kept = undo_dir / line["old"]
            if line["what"] == ATTRS:
                mode, uid, gid, mtime = line["before"]
                set_attrs(target, uid, gid, mode, mtime, as_root)
            elif os.path.lexists(kept):
                _let_me_write(target.parent)
                rmtree(target)
                if not os.path.islink(kept) and os.path.isdir(kept):
                    _let_me_write(kept)  # its mode comes back with the dirs' below
                os.rename(kept, target)
            elif line["what"] == ADD:
                _let_me_write(target.parent)
                rmtree(target)
        dirs = [line for line in lines if "dir" in line]
        for line in sorted(dirs, key=lambda line: line["dir"].count("/"), reverse=True):
            if os.path.isdir(data_dir / line["dir"]):
                mode, uid, gid, mtime = line["before"]
                set_attrs(data_dir / line["dir"], uid, gid, mode, mtime, as_root)
        mode, uid, gid, mtime = head["root"]
        set_attrs(data_dir, uid, gid, mode, mtime, as_root)
        rmtree(undo_dir.parent / head["staging"])
        sync_fs(data_dir)
        rmtree(undo_dir)
    except OSError as exc:
        raise os_error(exc, "putting back the data dir's old entries into", data_dir, DATA) from exc


def _let_me_write(path: Path) -> None:
    """Opens a read-only dir of the tree to this user (not needed as root): the journal holds
    its attributes, set again once the changes are made or undone."""
    if not os.access(path, os.W_OK | os.X_OK):
        os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | stat.S_IRWXU)


def _root_differs(data_dir: Path, root: dict, as_root: bool) -> bool:
    """Whether the data dir's own mode (or owner, as root) is not the one wanted: a chmod to
    the same mode would still change its ctime."""
    now = os.stat(data_dir)
    if "mode" in root and stat.S_IMODE(now.st_mode) != root["mode"]:
        return True
    return as_root and "uid" in root and (now.st_uid, now.st_gid) != (root["uid"], root["gid"])


def _private(path, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _is_dir(path: Path) -> bool:
    return not os.path.islink(path) and os.path.isdir(path)


def _quietly_remove(path: Path) -> None:
    """A failure here must not hide the reason the restore stopped."""
    try:
        rmtree(path)
    except OSError:
        pass
