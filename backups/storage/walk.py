"""Walking a tree in manifest order, counting it, and copying it (a merge restore's start).

The walk's order equals sorting paths by their components as bytes, so a walk and a
manifest merge in one streaming pass and memory follows the tree's depth, not its size.
"""

import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from backups.errors import StorageError
from backups.storage.fileio import (
    DATA,
    FS_ENCODING,
    FS_ERRORS,
    copy_file,
    os_error,
    set_attrs,
    show,
)

Node = tuple[str, tuple[bytes, ...], str, os.stat_result, str]  # rel, key, path, lstat, kind


def walk(root, exclude=frozenset(), warn: Callable[[str], None] | None = None) -> Iterator[Node]:
    """Depth-first, parent before children, children sorted by name bytes; links not followed.

    Top-level names in exclude are left out. Nodes that vanish, and nodes that are not files,
    dirs or symlinks, are skipped with a warning.
    """
    return _walk_dir(os.fspath(root), exclude, warn or _ignore)


def outer_join(wanted: Iterator, found: Iterator[Node]) -> Iterator[tuple]:
    """Pairs manifest entries (Entry) with walked nodes by path; both come in walk order."""
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


class Tally:
    """A count of files and bytes as it goes: read by another thread while it runs (its
    figures only rise), ``finished`` once the whole tree was counted."""

    def __init__(self) -> None:
        self.files = self.bytes = 0
        self.finished = False


def count_files(
    root, exclude, beat: Callable[[], None], tally: Tally | None = None
) -> tuple[int, int]:
    """Files and bytes under root for progress totals: scandir and lstat, nothing read.

    Depth first with the listings open, so memory follows the depth, not the tree's width.
    ``tally``, when given, holds the count so far (a count running ahead of a copy).
    """
    tally = tally if tally is not None else Tally()

    def visit(path: str, top: bool) -> None:
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
                            tally.bytes += entry.stat(follow_symlinks=False).st_size
                            tally.files += 1
                        except OSError:
                            pass  # vanished: the walk that follows says so
        except OSError:
            return

    visit(os.fspath(root), True)
    tally.finished = True
    return tally.files, tally.bytes


class CountAhead:
    """Counts a tree on a thread of its own, ahead of a copy that walks it: the totals of a
    data dir that outgrew what was known of it. stop() ends the count early."""

    def __init__(self, root, exclude):
        self.tally = Tally()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._count, args=(root, exclude), name="count-ahead", daemon=True
        )
        self._thread.start()

    def _count(self, root, exclude) -> None:
        try:
            count_files(root, exclude, self._beat, self.tally)
        except _Stopped:
            pass

    def _beat(self) -> None:
        if self._stop.is_set():
            raise _Stopped

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class _Stopped(Exception):
    pass


def _ignore(_message: str) -> None:
    pass


def _walk_dir(root: str, exclude, warn) -> Iterator[Node]:
    """The walk, a stack of open listings rather than nested generators: each node is yielded
    once, not handed up through one generator per level."""
    top = _listing(root, "", warn)
    stack = [(iter(top), root if root.endswith("/") else root + "/", "", ())]
    while stack:
        names, prefix, rel, key = stack[-1]
        for name_bytes in names:
            name = name_bytes.decode(FS_ENCODING, FS_ERRORS)
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
                children = _listing(child_path, child_rel, warn)
                stack.append((iter(children), child_path + "/", child_rel, child_key))
                break  # into the dir; this listing goes on after it
        else:
            stack.pop()


def _listing(path: str, rel: str, warn) -> list[bytes]:
    """A dir's names as bytes, sorted, and nothing else: a dir of 100k entries is held until
    its walk ends, at ~80 bytes an entry (DirEntry objects caching their stat: ~1 KB)."""
    try:
        return sorted(os.listdir(path.encode(FS_ENCODING, FS_ERRORS)))
    except FileNotFoundError:
        if not rel:
            raise StorageError(f"data dir {show(path)} does not exist") from None
        warn(f"{show(rel)} vanished during the walk and was skipped")
        return []
    except OSError as exc:
        raise os_error(exc, "listing", path, DATA) from exc


def copy_tree(src: Path, dst: Path, exclude, beat: Callable[[], None], as_root: bool) -> None:
    """Copies src's contents into the existing dir dst; dir attributes are left to copy_dirs."""
    for rel, _, path, st, kind in walk(src, exclude):
        beat()
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
