"""Reading an off-site archive (backups/storage/archive.py) into staging, and committing it.

Everything is unpacked into staging directories and every hash checked against the archive's
SHA256SUMS before ``commit_import`` moves anything into the storage or the new repository
directory; a wrong key, a truncated or tampered archive, a newer format or a name taken here
is refused with nothing written where it counts. No Django here.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pyrage

from backups.errors import BackupError, DamagedBackup, InvalidInput, StorageError
from backups.formatting import printable
from backups.storage.archive import (
    AGE_MAGIC,
    ARCHIVE_FORMAT,
    ARCHIVE_VERSION,
    CHUNK,
    GZIP_MAGIC,
    HEADER,
    SUMS,
    SUMS_SIGNATURE,
    AgePipe,
    ArchiveHeader,
    ArchiveMeter,
    ProgressFn,
)
from backups.storage.catalog import BackupRecord, Catalog, NewerFormat
from backups.storage.fileio import fsync_dir, os_error, rmtree, safe_relpath, show, write_all
from backups.storage.import_limits import (
    HEADER_CAP,
    RECORD_CAP,
    Budget,
    CappedTarInfo,
    OversizedHeader,
    Place,
    check_declared,
    read_capped,
    space_error,
    sums_cap,
)
from backups.storage.store import Store


@dataclasses.dataclass
class Unpacked:
    """A checked archive in staging, ready for commit_import."""

    header: ArchiveHeader
    record: BackupRecord
    staging: Path
    repository_staging: Path | None
    blobs: list[tuple[str, int]]
    # SHA256SUMS as read, and the signature of it that the archive carries (None: unsigned)
    sums: bytes = b""
    signature: dict | None = None


# --- reading -------------------------------------------------------------------------------


def is_encrypted(path: Path) -> bool:
    with open(path, "rb") as f:
        start = f.read(len(AGE_MAGIC))
    if start == AGE_MAGIC:
        return True
    if not start.startswith(GZIP_MAGIC):
        raise InvalidInput(f"{show(path)} is not an a4c-backup archive (neither age nor gzip)")
    return False


def read_archive(
    path: Path,
    staging: Path,
    repository_staging: Path,
    *,
    identities: list | None,
    parse: Callable[[bytes, str], BackupRecord],
    check: Callable[[ArchiveHeader, BackupRecord], None],
    authenticate: Callable[[Unpacked], None] | None = None,
    progress: ProgressFn = None,
) -> Unpacked:
    """Unpacks and checks the archive file into the staging dirs (made here, removed on
    failure); see ``read_archive_stream``."""
    path = Path(path)
    encrypted = is_encrypted(path)
    if encrypted and not identities:
        raise InvalidInput(
            f"{show(path)} is encrypted: give the key that opens it (--identity KEYFILE)"
        )
    with open(path, "rb") as source:
        return read_archive_stream(
            source,
            path,
            path.stat().st_size,
            staging,
            repository_staging,
            identities=identities if encrypted else None,
            parse=parse,
            check=check,
            authenticate=authenticate,
            progress=progress,
        )


def read_archive_stream(
    source: BinaryIO,
    where: Path | str,
    size: int,
    staging: Path,
    repository_staging: Path,
    *,
    identities: list | None,
    parse: Callable[[bytes, str], BackupRecord],
    check: Callable[[ArchiveHeader, BackupRecord], None],
    authenticate: Callable[[Unpacked], None] | None = None,
    progress: ProgressFn = None,
) -> Unpacked:
    """Unpacks and checks the archive read from ``source`` (``where`` names it in messages,
    ``size`` its bytes for the progress; ``identities`` given: it is age-encrypted) into the
    staging dirs (made here, removed on failure).

    ``parse`` turns the record's bytes into a checked BackupRecord (the archive is untrusted
    input: operations/record_schema.py). ``check`` sees the header and the record before
    anything is written, and raises to refuse (a name taken, a set imported already);
    ``authenticate`` sees the whole archive, its sums checked, and raises to refuse it (its
    signature: operations/signing.py; an off-site copy's end checked against its marker).
    An error ``source`` raises while it is read refuses the archive as it is.
    """
    path = where
    meter = ArchiveMeter(size, progress)
    counted = _Counting(source, meter)
    piped = None
    if identities:
        piped = AgePipe(lambda sink: pyrage.decrypt_io(counted, sink, identities), "r")
        stream = piped.ours
    else:
        stream = counted
    made: list[Path] = []
    try:
        unpacked = _unpack(stream, staging, repository_staging, parse, check, made, meter, path)
        if authenticate is not None:
            authenticate(unpacked)
    except BaseException as exc:
        error = piped.close() if piped else None
        _remove(made)
        if isinstance(exc, StorageError) or not isinstance(exc, Exception):
            raise  # no space, or a stop: the archive is not to blame
        if error is not None and not isinstance(error, BrokenPipeError):
            raise _damaged(path, error) from None
        if isinstance(exc, tarfile.TarError | EOFError | OSError | zlib.error):
            raise _damaged(path, exc) from exc
        raise
    finally:
        if piped:
            piped.close()
    meter.add(0, SUMS, force=True)
    return unpacked


def _wrong_key(error: BaseException) -> bool:
    return isinstance(error, pyrage.DecryptError)


def _damaged(path: Path, error: BaseException) -> BackupError:
    if _wrong_key(error):
        return InvalidInput(
            f"the key given does not open {show(path)} ({error}): it was encrypted to other "
            "recipients; use the key file that matches one of A4C_EXPORT_RECIPIENTS. "
            "Nothing was imported."
        )
    if isinstance(error, DamagedBackup | InvalidInput):
        return error
    if isinstance(error, OversizedHeader):
        return DamagedBackup(
            f"{show(path)} {error}: it was not written by a4c-backup export, or was tampered "
            "with; nothing was imported"
        )
    return DamagedBackup(
        f"{show(path)} is truncated or damaged ({error}): nothing was imported; "
        "copy the archive again from where it is kept"
    )


class _Counting(io.RawIOBase):
    def __init__(self, source: BinaryIO, meter: ArchiveMeter):
        self.source, self.meter = source, meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        got = self.source.readinto(buffer)
        self.meter.add(got or 0, "archive")
        return got


MEMBER = re.compile(
    r"^(?:record/(?P<record>[^/]+)\.json|record/(?P<history>[^/]+)\.history\.jsonl\.gz"
    r"|manifest/(?P<manifest>[^/]+)\.manifest|blobs/(?P<blob>[0-9a-f]{64})"
    r"|repository/(?P<repository>.+))$"
)


def _unpack(stream, staging, repository_staging, parse, check, made, meter, path) -> Unpacked:
    gz = gzip.GzipFile(fileobj=stream, mode="rb")
    tar = tarfile.open(fileobj=gz, mode="r|", tarinfo=CappedTarInfo)
    members = iter(tar)
    first = next(members, None)
    if first is None or first.name != HEADER or not first.isfile():
        raise InvalidInput(f"{show(path)} is not an a4c-backup archive (no {HEADER} first)")
    header = _header(read_capped(tar, first, HEADER_CAP, path), path)
    places = {
        "storage": Place(staging.parent, "the backup storage (A4C_BACKUP_DIR)"),
        "repository": Place(repository_staging.parent, "the snapshot repository's directory"),
    }
    budget = Budget(path, header, places)
    budget.check_declared_space()  # before anything is written
    seen: dict[str, tuple[str, int]] = {}
    record: BackupRecord | None = None
    blobs: list[tuple[str, int]] = []
    sums = None
    signature = None
    for info in members:
        tar.members.clear()  # tarfile keeps every member it read: two million weigh a gigabyte
        if sums is not None and info.name == SUMS_SIGNATURE and signature is None:
            signature = _signature(tar, info, path)
            continue
        if sums is not None:
            raise DamagedBackup(f"{show(path)} holds members after {SUMS}: it was tampered with")
        if info.name == SUMS and info.isfile():
            sums = read_capped(tar, info, sums_cap(header.blobs + header.repository_files), path)
            continue
        match = MEMBER.match(info.name)
        if not match or not info.isfile() or not safe_relpath(info.name):
            raise DamagedBackup(f"{show(path)} holds an unexpected member {info.name!r}")
        if match["record"]:
            if record is not None:
                raise DamagedBackup(f"{show(path)} holds a second record {info.name!r}")
            data = read_capped(tar, info, RECORD_CAP, path)
            seen[info.name] = (hashlib.sha256(data).hexdigest(), len(data))
            record = parse(data, f"the record in {show(path)}")
            if record.name != header.name or record.set_id != header.set_id:
                raise DamagedBackup(f"the record in {show(path)} does not match its header")
            check(header, record)  # before anything is written
            budget.admit(info.name, len(data), "record", "storage")
            for directory in (staging, repository_staging):
                directory.mkdir(parents=True)
                made.append(directory)
            _write(io.BytesIO(data), staging / "record.json", places["storage"], path)
            continue
        if record is None:
            raise DamagedBackup(f"{show(path)} does not start with its record")
        place, kind = "storage", "other"
        if (match["history"] or match["manifest"] or record.name) != record.name:
            raise DamagedBackup(f"{show(path)} holds {info.name!r}, not of its set {record.name}")
        if match["history"]:
            target = staging / "history.jsonl.gz"
        elif match["manifest"]:
            target = staging / "manifest"
        elif match["blob"]:
            target = staging / "blobs" / match["blob"]
            blobs.append((match["blob"], info.size))
            kind = "blob"
        else:
            relpath = match["repository"]
            if not safe_relpath(relpath):
                raise DamagedBackup(f"{show(path)} holds an unsafe path {info.name!r}")
            target = repository_staging / relpath
            place = kind = "repository"
        if info.name in seen:
            raise budget.damaged(f"holds {info.name} twice")
        budget.admit(info.name, info.size, kind, place)
        seen[info.name] = _write(tar.extractfile(info), target, places[place], path)
        meter.add(0, info.name)
    if sums is None or record is None:
        raise DamagedBackup(f"{show(path)} ends before its {SUMS}: it is truncated")
    budget.check_complete()
    while gz.read(CHUNK):  # to the end of the stream: gzip checks its CRC there
        pass
    _check_sums(sums, seen, path)
    if (
        record.include_elasticsearch
        and record.indices
        and not any(member.startswith("repository/") for member in seen)
    ):
        # Its snapshot would otherwise be looked for in whatever repository the record names.
        raise DamagedBackup(
            f"the record in {show(path)} lists {len(record.indices)} indices but the archive "
            "carries no snapshot files: it was not written by `export`; nothing was imported"
        )
    for sha, size in blobs:
        if seen[f"blobs/{sha}"] != (sha, size):
            raise DamagedBackup(f"blob {sha[:12]}.. in {show(path)} does not hash to its name")
    return Unpacked(header, record, staging, repository_staging, blobs, sums, signature)


def _signature(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path) -> dict:
    if not info.isfile() or info.size > 4096:
        raise DamagedBackup(f"{show(path)} holds a {SUMS_SIGNATURE} that is not a signature")
    try:
        found = json.loads(tar.extractfile(info).read())
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise DamagedBackup(f"{show(path)} holds a {SUMS_SIGNATURE} that is not a signature")
    return found


def _header(data: bytes, path: Path) -> ArchiveHeader:
    try:
        raw = json.loads(data)
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or raw.get("format") != ARCHIVE_FORMAT:
        raise InvalidInput(f"{show(path)} is not an a4c-backup archive")
    if not isinstance(raw.get("version"), int) or raw["version"] > ARCHIVE_VERSION:
        raise NewerFormat(
            f"{show(path)} was written by a newer a4c-backup (archive format {raw.get('version')};"
            f" this one reads {ARCHIVE_VERSION}): upgrade a4c-backup on this machine"
        )
    check_declared(raw, path)
    known = {f.name for f in dataclasses.fields(ArchiveHeader)}
    try:
        return ArchiveHeader(**{k: v for k, v in raw.items() if k in known})
    except TypeError as exc:
        raise DamagedBackup(f"the header of {show(path)} is damaged: {exc}") from None


def _write(source: BinaryIO, target: Path, place: Place, path: Path) -> tuple[str, int]:
    """A member into its staging file: a read error is the archive's, a write error the
    place's (no space said as space)."""
    digest, size = hashlib.sha256(), 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise DamagedBackup(
            f"{show(path)} writes {show(target.name)} twice: it was tampered with"
        ) from None
    except OSError as exc:
        raise space_error(exc, path, target, place) from exc
    try:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            try:
                write_all(out, chunk)
            except OSError as exc:
                raise space_error(exc, path, target, place) from exc
    finally:
        os.close(out)
    return digest.hexdigest(), size


def _check_sums(sums: bytes, seen: dict[str, tuple[str, int]], path: Path) -> None:
    listed = {}
    for number, line in enumerate(sums.decode(errors="replace").splitlines(), start=1):
        parts = line.split("  ", 2)
        if len(parts) != 3 or not SUMS_SHA.match(parts[0]) or not parts[1].isdigit():
            raise DamagedBackup(
                f"the {SUMS} of {show(path)} is malformed at its line {number} "
                f"({printable(repr(line[:80]))}): it was damaged or tampered with; nothing was "
                "imported"
            )
        sha, size, member = parts
        if member in listed:
            raise DamagedBackup(f"the {SUMS} of {show(path)} lists {printable(repr(member))} twice")
        listed[member] = (sha, int(size))
    listed.pop(HEADER, None)  # checked by parsing it; its hash is listed for other tools
    if listed != seen:
        wrong = sorted(set(listed.items()) ^ set(seen.items()))
        raise DamagedBackup(
            f"{show(path)} does not match its {SUMS} (first difference: {wrong[0][0]}): "
            "it was tampered with or damaged; nothing was imported"
        )


SUMS_SHA = re.compile(r"^[0-9a-f]{64}$")


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            rmtree(path)
        else:
            path.unlink(missing_ok=True)


# --- committing ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CommittedImport:
    """What ``commit_import`` placed, so that a failure after it can take the set back whole."""

    paths: tuple[Path, ...]  # in the order they were placed: the record last

    def undo(self) -> None:
        """Removes the record first (no sync sees a half set), then the rest. Blobs stay for
        garbage collection: a backup taken meanwhile may share them."""
        _remove(list(reversed(self.paths)))


def commit_import(
    unpacked: Unpacked, store: Store, catalog: Catalog, record: BackupRecord, location: Path
) -> CommittedImport:
    """Moves a checked archive into the storage and the new repository directory.

    The record is written last: until then no sync sees the set. On failure what was moved
    is taken back (blobs stay for garbage collection: others may share them); after success,
    the answer's ``undo`` takes it back.
    """
    name = record.name
    moved: list[Path] = []
    try:
        for sha, _size in unpacked.blobs:
            if not store.blob_ok(sha, _size):
                final = Path(store.blob_path(sha))
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(unpacked.staging / "blobs" / sha, final)
        if record.include_files:
            store.manifests.directory.mkdir(parents=True, exist_ok=True)
            final = store.manifests.path(name)
            os.link(unpacked.staging / "manifest", final)  # fails if one appeared meanwhile
            moved.append(final)
            fsync_dir(store.manifests.directory)
        if unpacked.repository_staging and any(unpacked.repository_staging.iterdir()):
            os.rename(unpacked.repository_staging, location)
            moved.append(location)
            os.chmod(location, 0o755)
        catalog.dir.mkdir(parents=True, exist_ok=True)
        history = unpacked.staging / "history.jsonl.gz"
        if history.exists():
            final = catalog.history_path(name)
            os.replace(history, final)
            moved.append(final)
        moved.append(catalog.rewrite(record))
    except OSError as exc:
        _remove(moved)
        raise os_error(exc, "importing into", store.root) from exc
    except BaseException:
        _remove(moved)
        raise
    finally:
        _remove([unpacked.staging])
        if unpacked.repository_staging and unpacked.repository_staging.exists():
            _remove([unpacked.repository_staging])
    return CommittedImport(tuple(moved))
