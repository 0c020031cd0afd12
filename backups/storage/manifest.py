"""The manifest format: one JSON line per entry, in walk order, between a header and an end
line carrying the entry count and the hash of every line before it.

    {"format": "a4c-backup-manifest", "version": 1, "name": ..., "created": ..., "root": ...}
    {"path": "csar/foo.zip", "type": "file", "size": ..., "sha256": ..., ...}
    {"end": true, "entries": N, "files": ..., "bytes": ..., "sha256": ...}

Entry is one line; ManifestWriter writes a manifest to a temp file and renames it into place;
Manifests reads the manifests/ dir of a store, checking what it reads.
"""

import dataclasses
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from json.encoder import encode_basestring_ascii as json_string
from pathlib import Path

from backups.errors import DamagedBackup, NotFound, StorageError
from backups.storage.fileio import (
    FS_ENCODING,
    FS_ERRORS,
    check_name,
    fsync_dir,
    os_error,
    safe_relpath,
    show,
    sync_filesystem,
    write_all,
)
from backups.storage.results import ManifestSummary

FORMAT = "a4c-backup-manifest"
VERSION = 1
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
INT_FIELDS = ("size", "mode", "mtime_ns", "uid", "gid")
_INT = rb"(0|-?[1-9][0-9]*)"
_STRING = rb'("(?:[^"\\]|\\.)*")'
# A line exactly as Entry.line() writes it: read without json.loads and a dict, which cost
# more than the rest of a restore's Python work per file. Anything else goes through json.
CANONICAL = re.compile(
    rb'\{"path":' + _STRING + rb',"type":"(file|dir|symlink)","size":' + _INT
    + rb',"mode":' + _INT + rb',"mtime_ns":' + _INT + rb',"uid":' + _INT + rb',"gid":' + _INT
    + rb'(?:,"sha256":"([0-9a-f]{64})")?(?:,"inode":' + _INT + rb',"ctime_ns":' + _INT
    + rb")?(?:,\"target\":" + _STRING + rb")?\}\n\Z"
)  # fmt: skip


@dataclasses.dataclass(slots=True)
class Entry:
    """One manifest line: a file, dir or symlink, by its path relative to the data dir."""

    path: str
    type: str  # "file", "dir" or "symlink"
    size: int = 0
    mode: int = 0
    mtime_ns: int = 0
    uid: int = 0
    gid: int = 0
    sha256: str | None = None
    inode: int | None = None
    ctime_ns: int | None = None
    target: str | None = None

    @property
    def key(self) -> tuple[bytes, ...]:
        """Sorts like the walk: by the path's components, as bytes."""
        return tuple(self.path.encode(FS_ENCODING, FS_ERRORS).split(b"/"))

    def line(self) -> bytes:
        """The JSON line, built by hand: json.dumps of a dict costs too much at 200k entries.

        Strings are escaped to ASCII, which also keeps the surrogates that stand for bytes
        that are not UTF-8 (os.fsdecode) as \\udcXX escapes that json.loads gives back.
        """
        text = (
            f'{{"path":{json_string(self.path)},"type":"{self.type}","size":{self.size:d},'
            f'"mode":{self.mode:d},"mtime_ns":{self.mtime_ns:d},"uid":{self.uid:d},'
            f'"gid":{self.gid:d}'
        )
        if self.sha256 is not None:
            text += f',"sha256":{json_string(self.sha256)}'
        if self.inode is not None:
            text += f',"inode":{self.inode:d},"ctime_ns":{self.ctime_ns:d}'
        if self.target is not None:
            text += f',"target":{json_string(self.target)}'
        return (text + "}\n").encode("ascii")

    @classmethod
    def from_json(cls, data: dict) -> "Entry":
        """Raises ValueError for anything that is not a well-formed entry."""
        path, kind = data.get("path"), data.get("type")
        if not isinstance(path, str) or kind not in ("file", "dir", "symlink"):
            raise ValueError("path or type")
        get = data.get
        values = (get("size", 0), get("mode", 0), get("mtime_ns", 0), get("uid", 0), get("gid", 0))
        for name, value in zip(INT_FIELDS, values, strict=True):
            if type(value) is not int:
                raise ValueError(name)
        entry = cls(path, kind, *values)
        if kind == "file":
            entry.sha256 = data.get("sha256")
            if not isinstance(entry.sha256, str) or not HEX64.match(entry.sha256):
                raise ValueError("sha256")
            entry.inode, entry.ctime_ns = data.get("inode"), data.get("ctime_ns")
        elif kind == "symlink":
            entry.target = data.get("target")
            if not isinstance(entry.target, str):
                raise ValueError("target")
        return entry

    @classmethod
    def from_line(cls, line: bytes) -> "Entry | None":
        """The entry of a canonical line (see CANONICAL); None for any other line."""
        match = CANONICAL.match(line)
        if match is None:
            return None
        path, kind, size, mode, mtime, uid, gid, sha, inode, ctime, target = match.groups()
        entry = cls(_string(path), kind.decode(), int(size), int(mode), int(mtime), int(uid))
        entry.gid = int(gid)
        if kind == b"file":
            if sha is None:
                return None  # json.loads and from_json say what is wrong
            entry.sha256 = sha.decode()
            if inode is not None:
                entry.inode, entry.ctime_ns = int(inode), int(ctime)
        elif kind == b"symlink":
            if target is None:
                return None
            entry.target = _string(target)
        return entry

    @classmethod
    def from_stat(cls, rel: str, kind: str, st: os.stat_result) -> "Entry":
        entry = cls(rel, kind, 0, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_uid, st.st_gid)
        if kind == "file":
            entry.size, entry.inode, entry.ctime_ns = st.st_size, st.st_ino, st.st_ctime_ns
        return entry


def file_tail(st: os.stat_result, sha256: str) -> bytes:
    """The rest of the line Entry.line() writes for a file of this lstat and hash: all that
    follows path_prefix(). Built without an Entry, for the unchanged files of a backup."""
    return _file_head(st) + sha256.encode("ascii") + _file_end(st)


def _file_head(st: os.stat_result) -> bytes:
    return (
        f'"type":"file","size":{st.st_size:d},"mode":{st.st_mode & 0o7777:d},'
        f'"mtime_ns":{st.st_mtime_ns:d},"uid":{st.st_uid:d},"gid":{st.st_gid:d},"sha256":"'
    ).encode("ascii")


def _file_end(st: os.stat_result) -> bytes:
    return f'","inode":{st.st_ino:d},"ctime_ns":{st.st_ctime_ns:d}}}\n'.encode("ascii")


def _dir_tail(st: os.stat_result) -> bytes:
    return (
        f'"type":"dir","size":0,"mode":{st.st_mode & 0o7777:d},"mtime_ns":{st.st_mtime_ns:d},'
        f'"uid":{st.st_uid:d},"gid":{st.st_gid:d}}}\n'
    ).encode("ascii")


def says_lstat(line: bytes, start: int, st: os.stat_result, kind: str, local: bool) -> bool:
    """Whether a manifest line, its path matched up to ``start`` (path_prefix()), is the line
    Entry.line() writes for a node of this lstat: a dir of this mode, mtime and owner; with
    ``local``, a file of these too and of this inode, change time and size, so the very file
    this install's backup read (read_by_this_backup), its hash whatever the line says. Read
    by its bytes, without parsing it; a symlink's line never matches (its target is not in
    an lstat), nor a file's when not ``local``."""
    if kind == "dir":
        tail = _dir_tail(st)
        return len(line) == start + len(tail) and line.endswith(tail)
    if kind != "file" or not local:
        return False
    end = _file_end(st)
    if not line.endswith(end):
        return False
    head = _file_head(st)
    return len(line) == start + len(head) + 64 + len(end) and line.startswith(head, start)


def read_by_this_backup(entry: Entry, st: os.stat_result) -> bool:
    """Whether a live file is, provably, the one this install's backup hashed for the entry:
    same inode, change time, mtime and size. The change time moves on every write, chmod,
    chown, rename and utime, and no program can set it back (only a clock set back can), so
    the bytes are the entry's without reading them: the rule a backup uses to reuse the blob
    of an unchanged file. Only for a manifest written here (an imported one's inodes and
    times are another machine's, or a stranger's): the caller says which."""
    return (
        entry.inode == st.st_ino
        and entry.ctime_ns == st.st_ctime_ns
        and entry.mtime_ns == st.st_mtime_ns
        and entry.size == st.st_size
    )


def line_path(line: bytes) -> str | None:
    """The path of a line as Entry.line() writes it, read without parsing the rest; None for
    a line written otherwise. (Inside a JSON string every quote is escaped, so the first
    '","type":"' ends the path.)"""
    if not line.startswith(b'{"path":"'):
        return None
    end = line.find(b'","type":"', 9)
    return _string(line[8 : end + 1]) if end > 0 else None


def _string(quoted: bytes) -> str:
    if b"\\" in quoted or not quoted.isascii():
        return json.loads(quoted)
    return quoted[1:-1].decode("ascii")


def path_prefix(rel: str) -> bytes:
    """How the manifest line of a path starts."""
    return b'{"path":' + json_string(rel).encode("ascii") + b","


class ManifestWriter:
    """Writes manifest lines to a temp file, hashing them, then renames it into place."""

    def __init__(self, path: Path, header: dict):
        self.path, self.count = path, -1  # the header is not an entry
        self.digest = hashlib.sha256()
        self.pending = bytearray()
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise os_error(exc, "writing to", path) from exc
        self.add((json.dumps(header, separators=(",", ":")) + "\n").encode("ascii"))

    def add(self, line: bytes) -> None:
        self.pending += line
        self.count += 1
        if len(self.pending) >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        self.digest.update(self.pending)
        try:
            write_all(self.fd, self.pending)
        except OSError as exc:
            raise os_error(exc, "writing to", self.path) from exc
        self.pending.clear()

    def finish(self, trailer: dict) -> str:
        self.flush()
        sha = self.digest.hexdigest()
        self.pending += (json.dumps({**trailer, "sha256": sha}) + "\n").encode("ascii")
        self.flush()
        return sha

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def commit(self, final: Path, blobs: Path) -> None:
        """The blobs reach the disk first (one sync of their filesystem for all, rather than
        an fsync per blob), then the manifest naming them."""
        try:
            sync_filesystem(blobs)
            os.fsync(self.fd)
            self.close()
            os.replace(self.path, final)
            fsync_dir(final.parent)
        except OSError as exc:
            raise os_error(exc, "writing to", final) from exc


class Manifests:
    """The manifests/ dir of a store: <name>.manifest files, read with every check."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        check_name(name)
        return self.directory / f"{name}.manifest"

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def names(self) -> list[str]:
        """Names of all backups with a manifest, sorted."""
        try:
            with os.scandir(self.directory) as it:
                found = [e.name[: -len(".manifest")] for e in it if e.name.endswith(".manifest")]
        except FileNotFoundError:
            return []
        return sorted(name for name in found if name and name[0] != ".")

    def delete(self, name: str) -> None:
        path = self.path(name)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise os_error(exc, "deleting", path) from exc

    def open(self, name: str):
        path = self.path(name)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise NotFound(f"backup {name} has no manifest ({show(path)})") from None
        except OSError as exc:
            raise os_error(exc, "reading", path) from exc

    def corrupt(self, name: str, why: str) -> DamagedBackup:
        return DamagedBackup(
            f"manifest {show(self.path(name))} is {why}: "
            "this backup cannot be trusted; delete it and take a new one"
        )

    def parse_header(self, name: str, line: bytes) -> dict:
        try:
            header = json.loads(line)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise self.corrupt(name, "not an a4c-backup manifest (bad first line)")
        if header.get("version") != VERSION:
            raise self.corrupt(name, f"of unknown version {header.get('version')!r}")
        return header

    def header(self, name: str) -> dict:
        with self.open(name) as f:
            return self.parse_header(name, f.readline())

    def entries(self, name: str) -> Iterator[Entry]:
        """Streams the entries; raises DamagedBackup at the end if the trailer is wrong."""
        for lineno, line in self.lines(name):
            yield self.parse(name, lineno, line)

    def lines(self, name: str) -> Iterator[tuple[int, bytes]]:
        """The entry lines as they are, each with its line number, unparsed (parse() reads
        one); raises DamagedBackup at the end if they are not those the end line counts and
        hashes."""
        with self.open(name) as f:
            first = f.readline()
            self.parse_header(name, first)
            digest, count = hashlib.sha256(first), 0
            read = []  # hashed a thousand lines at a time: one call a line costs more
            for lineno, line in enumerate(f, start=2):
                if not line.endswith(b"\n"):
                    raise self.corrupt(name, "truncated")
                if not line.startswith(b'{"path":'):
                    try:
                        data = json.loads(line)
                    except ValueError:
                        raise self.corrupt(name, f"corrupt at line {lineno}") from None
                    if isinstance(data, dict) and data.get("end") is True:
                        trailer = data
                        break
                read.append(line)
                if len(read) == 1000:
                    digest.update(b"".join(read))
                    read.clear()
                count += 1
                yield lineno, line
            else:
                raise self.corrupt(name, "truncated (no end line)")
            if f.read(1):
                raise self.corrupt(name, "corrupt (data after the end line)")
        digest.update(b"".join(read))
        if trailer.get("sha256") != digest.hexdigest() or trailer.get("entries") != count:
            raise self.corrupt(name, "corrupt (its hash does not match its end line)")

    def parse(self, name: str, lineno: int, line: bytes) -> Entry:
        """The entry of one line of lines(); DamagedBackup for a line that is none."""
        try:
            entry = Entry.from_line(line)
            return entry if entry is not None else Entry.from_json(json.loads(line))
        except (ValueError, AttributeError):
            raise self.corrupt(name, f"corrupt at line {lineno}") from None

    def trailer(self, name: str) -> tuple[int, dict]:
        """Where the end line starts, and what it says, without reading the whole file."""
        with self.open(name) as f:
            size = f.seek(0, os.SEEK_END)
            tail_size = min(size, 64 * 1024)
            f.seek(size - tail_size)
            tail = f.read(tail_size)
        start = tail.rfind(b"\n", 0, len(tail) - 1) + 1
        try:
            trailer = json.loads(tail[start:]) if tail.endswith(b"\n") and start else None
        except ValueError:
            trailer = None
        if not isinstance(trailer, dict) or trailer.get("end") is not True:
            raise self.corrupt(name, "truncated (no end line)")
        return size - tail_size + start, trailer

    def summary(self, name: str) -> ManifestSummary:
        """Counts from the first and last lines: cheap, the hash is not checked."""
        header = self.header(name)
        _, trailer = self.trailer(name)
        return ManifestSummary(
            name,
            header.get("created", ""),
            header.get("source", ""),
            trailer.get("entries", 0),
            trailer.get("files", 0),
            trailer.get("bytes", 0),
            trailer.get("sha256", ""),
        )

    def check_hash(self, name: str) -> None:
        """The end line's hash over the raw bytes, without parsing the lines."""
        end, trailer = self.trailer(name)
        digest = hashlib.sha256()
        with self.open(name) as f:
            while end > 0 and (chunk := f.read(min(end, 1 << 20))):
                digest.update(chunk)
                end -= len(chunk)
        if trailer.get("sha256") != digest.hexdigest():
            raise self.corrupt(name, "corrupt (its hash does not match its end line)")

    def checked_entries(self, name: str, exclude: Iterable[str] = ()) -> Iterator[Entry]:
        """entries(), refusing any path that could lead outside the data dir (WalkOrder);
        entries under the top-level names in exclude are skipped."""
        order = WalkOrder(self, name, exclude)
        for entry in self.entries(name):
            if order.entry(entry):
                yield entry

    def previous_lines(self, previous: str | None, warn: Callable) -> Iterator[bytes]:
        """The entry lines, unparsed, of the backup used for change detection, if it is whole.

        Its header and hash are checked first; the backup parses only the lines it cannot
        match by their bytes (backup.Cursor).
        """
        if previous is None or not self.exists(previous):
            return iter(())
        try:
            self.header(previous)
            self.check_hash(previous)
            f = self.open(previous)
        except (DamagedBackup, StorageError) as exc:
            warn(f"previous backup {previous} not used to skip unchanged files: {exc}")
            return iter(())
        return _entry_lines(f)


class WalkOrder:
    """The checks of a manifest's paths, one entry at a time, as they are read.

    Each entry must follow the previous one in walk order and have a dir entry as its parent,
    so a symlink in the manifest can never be a path to write through; and no path may lead
    outside the data dir.
    """

    def __init__(self, manifests: Manifests, name: str, exclude: Iterable[str] = ()):
        self.manifests, self.name = manifests, name
        self.excluded = {os.fsencode(n) for n in exclude}
        self.ancestors: list[tuple[bytes, ...]] = []
        self.last: tuple[bytes, ...] = ()

    def entry(self, entry: Entry) -> bool:
        """Checks a parsed entry; False for one under an excluded top-level name."""
        if not safe_relpath(entry.path):
            raise DamagedBackup(
                f"manifest entry {show(entry.path)!r} of backup {self.name} points outside the "
                "data dir: this backup cannot be restored; delete it"
            )
        key = entry.key
        self.follows(key, entry.type == "dir", entry.path)
        return key[0] not in self.excluded

    def follows(self, key: tuple[bytes, ...], is_dir: bool, path: str) -> None:
        """Checks the entry of ``key`` comes next (its path known safe: a walk's)."""
        ancestors = self.ancestors
        while ancestors and key[: len(ancestors[-1])] != ancestors[-1]:
            ancestors.pop()
        parent = key[:-1]
        if key <= self.last or (parent and (not ancestors or ancestors[-1] != parent)):
            raise self.manifests.corrupt(self.name, f"out of order at {show(path)!r}")
        self.last = key
        if is_dir:
            ancestors.append(key)


def _entry_lines(f) -> Iterator[bytes]:
    with f:
        f.readline()
        for line in f:
            if not line.startswith(b'{"path":'):
                return  # the end line
            yield line
