"""What the backup storage hands back: progress, summaries, plans and reports, as dataclasses.

No behaviour beyond counting; no Django here.
"""

import dataclasses
from pathlib import Path

MAX_EXAMPLES = 200


@dataclasses.dataclass(frozen=True)
class FileProgress:
    """How far a file backup, restore or blob check is, in files and bytes."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    new_bytes: int = 0  # a backup's bytes newly written to the storage
    # False while the totals are only a floor: the data dir outgrew what was known of it and
    # its count, running ahead of the copy, has not reached the end
    total_known: bool = True


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
class BlobCheckReport:
    """One backup's manifest read whole and every blob it names re-hashed: what is wrong."""

    name: str
    files: int = 0
    bytes: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _counted(number: int, one: str, many: str) -> str:
    return f"{number:,} {one if number == 1 else many}"


@dataclasses.dataclass
class FilePlan:
    """What a restore does to the data dir's entries, by kind of change. ``added`` and the
    others count files (regular files: what a backup's file count counts); folders and
    symbolic links are counted apart (``added_dirs``, ``added_links``), so that the figures
    add up with the backup's."""

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
    added_dirs: int = 0
    changed_dirs: int = 0
    removed_dirs: int = 0
    unchanged_dirs: int = 0
    added_links: int = 0
    changed_links: int = 0
    removed_links: int = 0
    unchanged_links: int = 0
    # A data dir that does not exist yet (a new machine): the dirs the restore creates, the
    # data dir first, then its missing parents; and the data dir's attributes ("mode", "uid",
    # "gid") as it will be made. Empty when it exists.
    created_dirs: list[str] = dataclasses.field(default_factory=list)
    created_root: dict = dataclasses.field(default_factory=dict)
    # What the plan found to differ, kept in its process's memory for the staging of a restore
    # run there at once (storage/findings.py): a token, "" when nothing was kept.
    findings: str = ""

    @property
    def creates_data_dir(self) -> str:
        """The plan's sentence about a data dir the restore creates, or ""."""
        if not self.created_dirs:
            return ""
        root = self.created_root
        attrs = ", ".join(
            [f"mode {root['mode']:04o}"] * isinstance(root.get("mode"), int)
            + [f"owner {root['uid']}:{root['gid']}"] * ("uid" in root and "gid" in root)
        )
        text = f"The data dir {self.created_dirs[0]} does not exist: it will be created" + (
            f" ({attrs})" if attrs else ""
        )
        parents = self.created_dirs[1:]
        if parents:
            text += f", with its missing parents {', '.join(parents)} (as mkdir -p makes them)"
        return text + "."

    def count(self, kind: str, shown_path: str, size: int, node: str = "file") -> None:
        """One entry of the change ``kind`` (added, changed, removed, unchanged); ``node``
        is what it is: file, dir or symlink. A folder's example path ends in a slash."""
        counter = {"dir": f"{kind}_dirs", "symlink": f"{kind}_links"}.get(node, kind)
        setattr(self, counter, getattr(self, counter) + 1)
        if node == "file":
            setattr(self, f"{kind}_bytes", getattr(self, f"{kind}_bytes") + size)
        examples = getattr(self, f"{kind}_paths", None)
        if examples is not None and len(examples) < MAX_EXAMPLES:
            examples.append(shown_path + "/" if node == "dir" else shown_path)

    def entries(self, kind: str) -> int:
        """Every entry of the change ``kind``: files, folders and links."""
        return sum(getattr(self, f"{kind}{s}") for s in ("", "_dirs", "_links"))

    def described(self, kind: str) -> str:
        """'30,004 files and 302 folders': what a change ``kind`` touches, each counted apart
        (links only when there are some)."""
        parts = [
            _counted(getattr(self, kind), "file", "files"),
            _counted(getattr(self, f"{kind}_dirs"), "folder", "folders"),
        ]
        links = getattr(self, f"{kind}_links")
        if links:
            parts.append(_counted(links, "symbolic link", "symbolic links"))
        return ", ".join(parts[:-1]) + " and " + parts[-1]

    @property
    def added_text(self) -> str:
        return self.described("added")

    @property
    def changed_text(self) -> str:
        return self.described("changed")

    @property
    def removed_text(self) -> str:
        return self.described("removed")

    @property
    def unchanged_text(self) -> str:
        return self.described("unchanged")

    @property
    def listed(self) -> int:
        """The paths the complete list of changes holds (all but the unchanged)."""
        return sum(self.entries(kind) for kind in ("added", "changed", "removed"))

    # How many of each kind the examples leave out: a page says "and N more".
    @property
    def added_more(self) -> int:
        return self.entries("added") - len(self.added_paths)

    @property
    def changed_more(self) -> int:
        return self.entries("changed") - len(self.changed_paths)

    @property
    def removed_more(self) -> int:
        return self.entries("removed") - len(self.removed_paths)


@dataclasses.dataclass
class RestoreResult:
    files: int  # files written from blobs
    bytes: int
    old_tree: Path | None  # the kept previous tree: WorkingTree.undo() or drop_old_tree() it
    staging: Path


@dataclasses.dataclass
class GcSummary:
    blobs_removed: int = 0
    bytes_freed: int = 0
    blobs_kept: int = 0
    tmp_removed: int = 0
    # Why no blob was removed: the live leases of runs elsewhere (backups/storage/leases.py)
    held_by: list[str] = dataclasses.field(default_factory=list)
    # Leases it did not honour: expired ones, and files that are not leases (each with why)
    ignored: list[str] = dataclasses.field(default_factory=list)

    def notes(self) -> list[str]:
        """What a person should be told about this collection, one sentence each."""
        said = [
            f"Kept every blob: a run sharing the storage holds a lease: {h}." for h in self.held_by
        ]
        return said + [f"Ignored a lease: {i}." for i in self.ignored]
