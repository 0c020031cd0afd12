"""The limits an import holds an archive to: it is untrusted input until its sums are checked.

The small members (header, record, SHA256SUMS) are read into memory only up to a cap, judged
by the size their tar header declares before a byte is read; so are tar's own extended headers
(``CappedTarInfo``). The header's declared counts and
bytes are checked against the free space and inodes of the filesystems the import writes to
before anything is written, and every member against what is still free before it is written;
members are counted as they stream, and one more blob, repository file or byte than declared
stops the import at once. No Django here.
"""

from __future__ import annotations

import errno
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from backups.errors import DamagedBackup, StorageError
from backups.sizes import format_size
from backups.storage.fileio import os_error, show

HEADER_CAP = 64 << 10  # a4c-archive.json: a dozen fields
RECORD_CAP = 16 << 20  # record/NAME.json: the set's indices and warnings
SUMS_LINE_CAP = 1200  # "<sha256>  <size>  <member>\n" with a long repository path
MAX_MEMBERS = 100_000_000
EXTENDED_CAP = 1 << 20  # a pax header or GNU long name: a long path at most
EXTENDED_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
BLOCK = 4096  # what a file costs a filesystem at least, beyond its bytes


def read_capped(tar: tarfile.TarFile, info: tarfile.TarInfo, cap: int, archive: Path) -> bytes:
    """A small member's bytes; refused from its tar header when it is larger than ``cap``."""
    if info.size > cap:
        raise DamagedBackup(
            f"{show(archive)} holds {info.name} of {format_size(info.size)}, more than the "
            f"{format_size(cap)} one can be: it was not written by a4c-backup export, or was "
            "tampered with; nothing was imported"
        )
    return tar.extractfile(info).read(cap + 1)[: cap + 1]


class OversizedHeader(tarfile.HeaderError):
    """A tar extended header (pax, GNU long name) larger than any export writes."""


class CappedTarInfo(tarfile.TarInfo):
    """tarfile reads an extended header whole, into memory, before the member it describes:
    one that claims more than EXTENDED_CAP is refused from its size, not read."""

    def _proc_member(self, tarfile_):
        if self.type in EXTENDED_TYPES and self.size > EXTENDED_CAP:
            raise OversizedHeader(
                f"holds an extended tar header of {format_size(self.size)}, more than the "
                f"{format_size(EXTENDED_CAP)} one can be"
            )
        return super()._proc_member(tarfile_)


def sums_cap(declared_members: int) -> int:
    return HEADER_CAP + declared_members * SUMS_LINE_CAP


def check_declared(raw: dict, archive: Path) -> None:
    """The header's counts and size are plain numbers in range (anything else is damage)."""
    for key in ("repository_files", "blobs", "bytes"):
        value = raw.get(key)
        if type(value) is not int or not 0 <= value <= (1 << 62):
            raise DamagedBackup(
                f"the header of {show(archive)} is damaged: {key} is {value!r}, not a count"
            )
    if raw["repository_files"] + raw["blobs"] > MAX_MEMBERS:
        raise DamagedBackup(
            f"the header of {show(archive)} declares {raw['repository_files'] + raw['blobs']:,} "
            f"members, more than an archive holds ({MAX_MEMBERS:,}): nothing was imported"
        )
    for key in ("name", "set_id", "created"):
        if not isinstance(raw.get(key), str) or len(raw[key]) > 1000:
            raise DamagedBackup(f"the header of {show(archive)} is damaged: {key} is not a name")


@dataclass
class Place:
    """A filesystem the import writes to: one of its staging dirs, and what is left there."""

    directory: Path  # the staging dir's parent (the staging dir itself is made later)
    described: str
    free: int = 0
    inodes: int = 0

    def measure(self) -> None:
        try:
            st = os.statvfs(self.directory)
        except OSError as exc:
            raise os_error(exc, "reading the free space of", self.directory) from exc
        self.free, self.inodes = st.f_bavail * st.f_frsize, st.f_favail


def no_space(archive: Path, need: int, place: Place) -> StorageError:
    return StorageError(
        f"not enough space to import {show(archive)}: it needs {format_size(need)} in "
        f"{place.described} ({show(place.directory)}), which has free {format_size(place.free)}; "
        "free space there, or import where there is room. Nothing was imported."
    )


class Budget:
    """What the archive declared, and what it has used so far, against the free space."""

    def __init__(self, archive: Path, header, places: dict[str, Place]):
        self.archive, self.header, self.places = archive, header, places
        self.blobs = self.repository_files = self.bytes = 0

    def check_declared_space(self) -> None:
        """Before anything is written: the declared bytes and members fit where they go."""
        for place in self.places.values():
            place.measure()
        header = self.header
        members = header.blobs + header.repository_files + 3
        devices: dict[int, list[Place]] = {}
        for place in self.places.values():
            devices.setdefault(os.stat(place.directory).st_dev, []).append(place)
        if len(devices) == 1:
            place = next(iter(self.places.values()))
            need = header.bytes + members * BLOCK
            if need > place.free:
                raise no_space(self.archive, need, place)
            if place.inodes and members > place.inodes:
                raise self._no_inodes(members, place)
            return
        # Two filesystems, and the header does not say how the bytes split between them.
        free = sum(p.free for p in self.places.values())
        if header.bytes > free:
            both = Place(self.places["storage"].directory, "the places an import writes to")
            both.free = free
            raise no_space(self.archive, header.bytes, both)
        for kind, count in (("storage", header.blobs + 3), ("repository", header.repository_files)):
            place = self.places[kind]
            if place.inodes and count > place.inodes:
                raise self._no_inodes(count, place)

    def _no_inodes(self, count: int, place: Place) -> StorageError:
        return StorageError(
            f"not enough free inodes to import {show(self.archive)}: it holds {count:,} files "
            f"for {place.described} ({show(place.directory)}), which has {place.inodes:,} free; "
            "free some there, or import where there is room. Nothing was imported."
        )

    def admit(self, name: str, size: int, kind: str, place: str) -> None:
        """One member about to be written: counted, and checked against what is still free."""
        header = self.header
        if kind == "blob":
            self.blobs += 1
            if self.blobs > header.blobs:
                raise self.damaged(f"holds more blobs than the {header.blobs} its header declares")
        elif kind == "repository":
            self.repository_files += 1
            if self.repository_files > header.repository_files:
                raise self.damaged(
                    f"holds more repository files than the {header.repository_files} its header "
                    "declares"
                )
        room = self.places[place]
        cost = -(-size // BLOCK) * BLOCK + BLOCK
        if cost > room.free:
            room.measure()  # others may have freed some; the figure read first was an estimate
            if cost > room.free:
                raise no_space(self.archive, size, room)
        self.bytes += size
        if self.bytes > header.bytes:
            raise self.damaged(
                f"holds more than the {format_size(header.bytes)} its header declares "
                f"(at {name}, {format_size(self.bytes)})"
            )
        room.free -= cost

    def check_complete(self) -> None:
        header = self.header
        if (self.blobs, self.repository_files) != (header.blobs, header.repository_files):
            raise self.damaged(
                f"holds {self.blobs} blobs and {self.repository_files} repository files, its "
                f"header declares {header.blobs} and {header.repository_files}"
            )

    def damaged(self, what: str) -> DamagedBackup:
        return DamagedBackup(
            f"{show(self.archive)} {what}: it was tampered with or damaged; nothing was imported"
        )


def space_error(exc: OSError, archive: Path, target: Path, place: Place) -> Exception:
    """An OSError while writing a member: no space said as space, anything else as is."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        place.measure()
        return StorageError(
            f"no space left while importing {show(archive)}, writing {show(target)} in "
            f"{place.described} ({show(place.directory)}, free {format_size(place.free)} now): "
            "free space there, or import where there is room. Nothing was imported.",
            detail=f"{type(exc).__name__}: {exc}",
        )
    return os_error(exc, "writing", target, place.described)
