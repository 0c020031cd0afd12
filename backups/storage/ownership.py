"""Who owns what a restore writes: the owners and modes the manifest records, or the data dir's.

A set this installation took is restored as recorded. A set from elsewhere (an imported
archive, a record sync found in a shared storage) carries owners and modes that another
installation chose, or anyone who can write to the storage: restored as recorded, a planted
manifest makes a set-uid root program, a file anyone may write, a data dir owned by a stranger.
For such a set every entry is given the data dir's owner, loses its set-id and world-writable
bits, and the data dir keeps its own owner and mode (``OwnerMap``). No Django here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from backups.errors import InvalidInput
from backups.storage.manifest import Entry

# A data dir that does not exist yet (a new machine) is made by the restore: for a set of this
# installation, with the owner and mode the manifest records for it (root_attributes); for a
# set from elsewhere, with the owner of the nearest dir that exists (the dir it is made in)
# and the recorded mode made safe (OwnerMap.root). Its missing parents are made as `mkdir -p`
# makes them: the restoring user's, the mode its umask gives.

RECORDED = "recorded"  # as the manifest says
DATA_DIR = "data dir"  # the data dir's owner, no set-id or world-writable bits
OWNERS = (RECORDED, DATA_DIR)
UNSAFE_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH


@dataclass(frozen=True)
class OwnerMap:
    """Everything restored belongs to ``uid``:``gid``; modes lose UNSAFE_BITS."""

    uid: int
    gid: int

    @classmethod
    def of(cls, owners: str, data_dir: Path) -> OwnerMap | None:
        """The map for ``owners`` (None: as recorded): the data dir's owner, or, before the
        data dir exists, the owner of the dir it will be made in."""
        if owners not in OWNERS:
            raise InvalidInput(f"file owners {owners!r} are neither {RECORDED!r} nor {DATA_DIR!r}")
        if owners == RECORDED:
            return None
        where = Path(data_dir)
        while not os.path.lexists(where) and where != where.parent:
            where = where.parent  # a data dir not made yet: the dir it will be made in
        st = os.stat(where)
        return cls(st.st_uid, st.st_gid)

    def entry(self, entry: Entry) -> Entry:
        entry.uid, entry.gid = self.uid, self.gid
        entry.mode &= ~UNSAFE_BITS
        return entry

    def root(self, data_dir: Path, recorded: dict) -> dict:
        """The data dir's own attributes, kept; the recorded mode made safe when it is new."""
        if os.path.lexists(data_dir):
            now = os.stat(data_dir)
            return {"mode": stat.S_IMODE(now.st_mode), "uid": now.st_uid, "gid": now.st_gid}
        mode = recorded.get("mode", 0o755) if isinstance(recorded.get("mode"), int) else 0o755
        return {"mode": mode & ~UNSAFE_BITS & 0o7777, "uid": self.uid, "gid": self.gid}


def root_attributes(recorded: dict, data_dir: Path, owners: OwnerMap | None) -> dict:
    """The data dir's own attributes after a restore (``recorded``: the manifest's "root")."""
    return owners.root(data_dir, recorded) if owners else recorded


def owned_entries(manifests, name: str, exclude, owners: OwnerMap | None) -> Iterator[Entry]:
    """The manifest's entries (checked as they are read) as the restore writes them."""
    entries = manifests.checked_entries(name, exclude)
    return entries if owners is None else map(owners.entry, entries)
