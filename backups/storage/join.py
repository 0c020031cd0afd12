"""A backup's manifest beside a walk of the live tree, most lines paired by their bytes.

A restore over a data dir, its plan and its check afterwards each pair every manifest entry
with the live node at its path (walk.outer_join). Parsing each line into an Entry and checking
its path cost more than the rest of that work, and over a data dir that is mostly what the
backup holds, most lines need neither: a line whose bytes are those Entry.line() writes for the
live node's lstat (manifest.says_lstat: a dir's attributes; a file's too, and, for a backup
made here, its inode and change time) is paired unparsed, as bytes. Its path is the walk's, so
it needs no check but its place in the order (WalkOrder.follows). Every other line is parsed
and checked as checked_entries() does, and the whole manifest is hashed as entries() hashes
it: a damaged one raises DamagedBackup, after the last pair (read everything before trusting
any of it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from backups.storage.fileio import FS_ENCODING, FS_ERRORS
from backups.storage.manifest import (
    Entry,
    Manifests,
    WalkOrder,
    line_path,
    path_prefix,
    says_lstat,
)
from backups.storage.ownership import OwnerMap, owned_entries
from backups.storage.walk import Node, outer_join, walk


def tree_join(
    manifests: Manifests,
    name: str,
    exclude,
    found: Iterator[Node],
    *,
    local: bool,
    owners: OwnerMap | None = None,
) -> Iterator[tuple[Entry | bytes | None, Node | None]]:
    """outer_join(owned_entries(...), found), where a line that says exactly what the live node
    says comes as its bytes (see unparsed()): nothing to do there. ``local``: the backup was
    made on this install. With ``owners`` (a set from elsewhere, its owners and modes mapped),
    every line is parsed."""
    if owners is not None:
        yield from outer_join(owned_entries(manifests, name, exclude, owners), found)
        return
    order = WalkOrder(manifests, name, exclude)
    lines = manifests.lines(name)
    item, have = next(lines, None), next(found, None)
    want = None  # the line of item, once parsed
    while item is not None or have is not None:
        if want is None and item is not None:
            lineno, line = item
            if have is not None:
                start = len(prefix := path_prefix(have[0]))
                if line.startswith(prefix) and says_lstat(line, start, have[3], have[4], local):
                    order.follows(have[1], have[4] == "dir", have[0])
                    yield line, have
                    item, have = next(lines, None), next(found, None)
                    continue
            want = manifests.parse(name, lineno, line)
            if not order.entry(want):  # under an excluded name
                want, item = None, next(lines, None)
                continue
            want_key = want.key
        if have is None or (want is not None and want_key < have[1]):
            yield want, None
            want, item = None, next(lines, None)
        elif want is None or have[1] < want_key:
            yield None, have
            have = next(found, None)
        else:
            yield want, have
            want, item, have = None, next(lines, None), next(found, None)


def unparsed(want) -> bool:
    """Whether tree_join paired this line by its bytes: the live node is what it says."""
    return want.__class__ is bytes


def parsed(manifests: Manifests, name: str, want: Entry | bytes) -> Entry:
    """The Entry of a line tree_join gave, parsed if it came as bytes."""
    return manifests.parse(name, 0, want) if unparsed(want) else want


def changed_since(
    manifests: Manifests,
    name: str,
    exclude,
    data_dir,
    skip,
    since: int,
    owners: OwnerMap | None = None,
) -> Iterator[tuple[Entry | None, Node | None]]:
    """The pairs (entry, node) that can differ from what a whole look at the data dir begun
    at ``since`` (a change time, in ns) found, in walk order: each node changed since (its
    change time no older) and each entry of a dir whose names changed since (an entry added,
    removed or renamed in it moves the dir's change time), beside its manifest line (None
    where there is none). One walk and one read of the manifest side by side: only those
    lines are parsed, and memory holds the names of the dirs changed. ``skip``: the top-level
    names the walk leaves out (``exclude`` and more)."""
    renamed = {""} if os.lstat(data_dir).st_ctime_ns >= since else set()

    def changed_nodes() -> Iterator[Node]:
        for node in walk(data_dir, skip):
            rel, _, _, st, kind = node
            if st.st_ctime_ns >= since:
                if kind == "dir":
                    renamed.add(rel)
            elif rel.rpartition("/")[0] not in renamed:
                continue  # as the look found it, in a dir of the names it found
            yield node

    nodes = changed_nodes()
    have = next(nodes, None)
    for lineno, line in manifests.lines(name):  # its hash checked again, at its end
        entry, path = None, line_path(line)
        if path is None:
            entry = manifests.parse(name, lineno, line)
            path = entry.path
        if path.partition("/")[0] in exclude:
            continue
        order = path.encode(FS_ENCODING, FS_ERRORS).replace(b"/", b"\0")  # walk order
        while have is not None and b"\0".join(have[1]) < order:
            yield None, have  # changed, and not in the backup
            have = next(nodes, None)
        # the walk went past this path: its dir is in renamed if its names changed
        here = have is not None and have[0] == path
        if here or path.rpartition("/")[0] in renamed:
            entry = entry or manifests.parse(name, lineno, line)
            yield (entry if owners is None else owners.entry(entry)), (have if here else None)
            if here:
                have = next(nodes, None)
    while have is not None:
        yield None, have
        have = next(nodes, None)
