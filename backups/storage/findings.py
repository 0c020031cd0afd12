"""What a restore's plan found to differ, kept for the staging of the restore its own process
runs at once (`manage.py restore` after its plan): the staging then looks at those paths only
instead of walking the data dir and reading the manifest again.

The plan pairs every manifest line with the live node at its path (join.tree_join); a pair
that is not matched by its bytes (the live node is not provably what the line says) is a
finding, kept as the line Entry.line() writes and the live path, and, for a file the plan
hashed and found to hold the entry's bytes, the inode, change time, mtime and size it saw:
if they are still those, and older than the plan, the staging does not hash it again.
Before walking, the plan
reads the kernel's coarse clock, the one that stamps change times: ``since``. Anything changed
after it, by anyone, has a change time no older, so the check after the restore (in_place
._verify, which hashes every file changed since ``since``) catches what changed between the
plan and the staging; a change there makes the restore fail and undo itself, as a write
during the restore always did. A data dir whose filesystem keeps another clock (NFS: the
server's) has ``since`` moved back by as much as that clock is behind (since_here).

Kept in this process's memory only, for one restore, a few seconds: a plan made elsewhere (the
console's; the worker runs it later) keeps nothing, one older than FRESH_NS is not used, and
one of more than MAX_FINDINGS differing paths is not kept (a restore that rewrites most of the
tree walks it again; memory stays flat).
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from backups.storage.fileio import FS_ENCODING, FS_ERRORS
from backups.storage.manifest import Entry
from backups.storage.walk import Node

MAX_FINDINGS = 20_000
FRESH_NS = 60 * 10**9
_CLOCK = getattr(time, "CLOCK_REALTIME_COARSE", 5)  # Linux's clock of inode times
_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink"}


def coarse_now() -> int:
    """The kernel's coarse real-time clock, which stamps change times: a change made after
    this call has a change time no older than its answer."""
    return time.clock_gettime_ns(_CLOCK)


@dataclass
class Findings:
    """The pairs a plan found to differ, for one restore."""

    restore: tuple  # (backup name, data dir, excluded names, mode, owners, local)
    since: int = field(default_factory=lambda: coarse_now())  # read when made, not bound here
    # (line or None, live path or None, the lstat's identity of a file found the same or None)
    pairs: list[tuple[bytes | None, str | None, tuple | None]] = field(default_factory=list)
    whole: bool = True  # False once more than MAX_FINDINGS were found: not kept
    same_files: int = 0  # the files found to be what the backup holds, and their bytes
    same_bytes: int = 0

    def add(self, want: Entry | None, have: Node | None, same: bool = False) -> None:
        """One pair that differs, or (``same``) a file whose bytes the plan found to be the
        entry's though its line is not the one its lstat would write (hashed, or its mode or
        owner changed): the lstat the plan saw is kept with it."""
        if not self.whole:
            return
        if len(self.pairs) == MAX_FINDINGS:
            self.whole, self.pairs = False, []
            return
        seen = _identity(have[3]) if same and have[4] == "file" else None
        self.pairs.append((want.line() if want is not None else None, have and have[0], seen))

    def since_here(self, stamped: int) -> int:
        """``since`` on the clock of the filesystem that stamped ``stamped`` a moment ago (the
        staging dir's change time): one whose clock is behind this machine's (an NFS server's)
        moves it back by as much, so that nothing changed after the plan looks older."""
        return self.since - max(0, coarse_now() - stamped)

    def keep(self) -> str:
        """Keeps these findings (if whole) for take(); the token naming them, or ""."""
        _kept.clear()  # one restore at a time: a plan not run is forgotten by the next
        if not self.whole:
            return ""
        token = secrets.token_hex(8)
        _kept[token] = self
        return token

    def nodes(self, data_dir: str) -> Iterator[tuple[Entry | bytes | None, Node | None]]:
        """The pairs again, each live path looked at anew (None if it is gone or is neither a
        file, a dir nor a symlink, as the walk skips it). A file the plan found to hold the
        entry's bytes, unchanged since (the same inode, change time, mtime and size, changed
        last before the plan began) and with the entry's mode, owner and mtime, comes as its
        line's bytes, as join.tree_join gives a line that says what the lstat says: nothing
        to do there."""
        for line, rel, seen in self.pairs:
            want = None if line is None else Entry.from_line(line)  # as line() wrote it
            have = None if rel is None else _node(data_dir, rel)
            if seen is not None and have is not None and self._still(want, have[3], seen):
                yield line, have
            else:
                yield want, have

    def _still(self, want: Entry, st: os.stat_result, seen: tuple) -> bool:
        return (
            _identity(st) == seen
            and st.st_ctime_ns < self.since
            and (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns)
            == (want.mode, want.uid, want.gid, want.mtime_ns)
        )


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size


_kept: dict[str, Findings] = {}


def take(token: str, restore: tuple) -> Findings | None:
    """The findings kept under token for this very restore, if fresh; each is taken once."""
    found = _kept.pop(token, None) if token else None
    if found is None or found.restore != restore or coarse_now() - found.since > FRESH_NS:
        return None
    return found


def _node(data_dir: str, rel: str) -> Node | None:
    path = f"{data_dir}/{rel}"
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    kind = _KINDS.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    return rel, tuple(rel.encode(FS_ENCODING, FS_ERRORS).split(b"/")), path, st, kind
