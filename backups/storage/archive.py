"""Off-site archives: one backup set in one portable, compressed, optionally encrypted file.

An archive is a tar stream, gzip-compressed, and encrypted with age (through pyrage) when
recipients are given. Its members, in order:

    a4c-archive.json                    format, version and what it holds (ArchiveHeader)
    record/<name>.json, record/<name>.history.jsonl.gz   the set's record and history
    manifest/<name>.manifest            the file manifest
    repository/<path>                   the snapshot's files from the repository (only its own)
    blobs/<sha256>                      every blob the manifest names, once
    SHA256SUMS                          the hash and size of every member above
    SHA256SUMS.sig                      the exporting installation's signature of SHA256SUMS
                                        (JSON, backups/signing.py): so it vouches for them all

Writing (here) and reading (archive_import.py) stream through an OS pipe between tar and
age: memory stays flat whatever the set's size. No Django here.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pyrage

from backups.errors import ConfigError, DamagedBackup, InvalidInput, StorageError
from backups.signing import SigningKey
from backups.storage.catalog import BackupRecord, Catalog
from backups.storage.fileio import os_error, show
from backups.storage.store import Store

ARCHIVE_FORMAT = "a4c-backup-archive"
# 2: SHA256SUMS.sig follows SHA256SUMS (a version 1 reader would call it tampering; this one
# still reads version 1 archives, which are unsigned).
ARCHIVE_VERSION = 2
HEADER = "a4c-archive.json"
SUMS = "SHA256SUMS"
SUMS_SIGNATURE = "SHA256SUMS.sig"
AGE_MAGIC = b"age-encryption.org/v1\n"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
COMPRESS_LEVEL = 3  # snapshot segments hardly compress: speed matters more than ratio
PROGRESS_EVERY = 0.5


@dataclasses.dataclass(frozen=True)
class ArchiveHeader:
    name: str
    set_id: str
    created: str
    repository_files: int
    blobs: int
    bytes: int
    format: str = ARCHIVE_FORMAT
    version: int = ARCHIVE_VERSION


@dataclasses.dataclass(frozen=True)
class RepositoryFile:
    """A file of the snapshot repository, relative to it: read from ``path``, or ``data``."""

    relpath: str
    path: Path | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else os.stat(self.path).st_size


@dataclasses.dataclass(frozen=True)
class ArchiveProgress:
    bytes_done: int
    bytes_total: int
    member: str


ProgressFn = Callable[[ArchiveProgress], None] | None


def parse_recipients(keys: list[str]) -> list:
    found = []
    for key in keys:
        try:
            found.append(pyrage.x25519.Recipient.from_str(key.strip()))
        except pyrage.RecipientError:
            raise ConfigError(
                f"A4C_EXPORT_RECIPIENTS: {key!r} is not an age public key (age1...); "
                "`manage.py keygen KEYFILE` makes a key pair and prints its public key"
            ) from None
    return found


def read_identities(path: Path) -> list:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read the key file {show(path)}: {exc.strerror}") from None
    found = []
    for line in lines:
        if line.strip() and not line.startswith("#"):
            try:
                found.append(pyrage.x25519.Identity.from_str(line.strip()))
            except pyrage.IdentityError:
                raise InvalidInput(
                    f"{show(path)} holds a line that is not an age secret key (AGE-SECRET-KEY-1...)"
                ) from None
    if not found:
        raise InvalidInput(f"{show(path)} holds no age secret key (AGE-SECRET-KEY-1...)")
    return found


class ArchiveMeter:
    def __init__(self, total: int, progress: ProgressFn):
        self.done, self.total, self.progress, self.last = 0, total, progress, 0.0

    def add(self, count: int, member: str, force: bool = False) -> None:
        self.done += count
        now = time.monotonic()
        if self.progress and (force or now - self.last >= PROGRESS_EVERY):
            self.last = now
            self.progress(ArchiveProgress(self.done, self.total, member))


class _Hashing(io.RawIOBase):
    """Reads a file for tar, hashing and counting on the way."""

    def __init__(self, source: BinaryIO, meter: ArchiveMeter, member: str):
        self.source, self.meter, self.member = source, meter, member
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size if size and size > 0 else CHUNK)
        self.digest.update(data)
        self.meter.add(len(data), self.member)
        return data


class AgePipe:
    """Runs age (encrypting or decrypting) in a thread on one end of an OS pipe."""

    def __init__(self, work: Callable[[BinaryIO], None], mode: str):
        read_fd, write_fd = os.pipe()
        self.reader = os.fdopen(read_fd, "rb", buffering=CHUNK)
        self.writer = os.fdopen(write_fd, "wb", buffering=CHUNK)
        self.error: BaseException | None = None
        theirs = self.reader if mode == "w" else self.writer
        self.ours = self.writer if mode == "w" else self.reader

        def run():
            try:
                work(theirs)
            except BaseException as exc:  # noqa: BLE001 - handed to the other thread
                self.error = exc
            finally:
                theirs.close()  # the other side sees EOF, or a broken pipe

        self.thread = threading.Thread(target=run, name="age", daemon=True)
        self.thread.start()

    def close(self) -> BaseException | None:
        if not self.ours.closed:
            try:
                self.ours.close()
            except OSError:
                pass
        self.thread.join(timeout=60)
        return self.error


# --- writing -------------------------------------------------------------------------------


def write_archive(
    out: BinaryIO,
    store: Store,
    catalog: Catalog,
    record: BackupRecord,
    repository: list[RepositoryFile],
    *,
    recipients: list | None = None,
    signer: SigningKey | None = None,
    progress: ProgressFn = None,
    created: str | None = None,
) -> ArchiveHeader:
    """Streams the set's archive into ``out``; encrypted to ``recipients`` when given, its
    SHA256SUMS signed by ``signer`` when given. ``created`` (the header's time, now when not
    given) fixed, the same set writes the same plain bytes again: an off-site push resumes so.

    ``record`` is what the archive says of the set, carried as ``catalog`` writes it (signed):
    the exporting console builds it from its own row, never from the storage's file.
    """
    name = record.name
    described = catalog.document(record)
    blobs = _blobs_of(store, name) if record.include_files else {}
    extra = [catalog.history_path(name)]
    if record.include_files:
        extra.append(store.manifests.path(name))
    total = len(described) + sum(f.size for f in repository) + sum(blobs.values())
    total += sum(p.stat().st_size for p in extra if p.exists())
    header = ArchiveHeader(
        name=name,
        set_id=record.set_id,
        created=created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        repository_files=len(repository),
        blobs=len(blobs),
        bytes=total,
    )
    meter = ArchiveMeter(total, progress)
    piped = None
    if recipients:
        piped = AgePipe(lambda source: pyrage.encrypt_io(source, out, recipients), "w")
        target = piped.ours
    else:
        target = out
    try:
        with gzip.GzipFile(fileobj=target, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                sums: list[str] = []
                _add_bytes(tar, HEADER, _json(dataclasses.asdict(header)), sums)
                _add_bytes(tar, f"record/{name}.json", described, sums)
                meter.add(len(described), f"record/{name}.json")
                if extra[0].exists():
                    _add_path(tar, f"record/{name}.history.jsonl.gz", extra[0], meter, sums)
                if record.include_files:
                    _add_path(tar, f"manifest/{name}.manifest", extra[1], meter, sums)
                for item in repository:
                    member = f"repository/{item.relpath}"
                    if item.data is not None:
                        _add_bytes(tar, member, item.data, sums)
                        meter.add(len(item.data), member)
                    else:
                        _add_path(tar, member, item.path, meter, sums)
                for sha in blobs:
                    _add_path(tar, f"blobs/{sha}", Path(store.blob_path(sha)), meter, sums)
                listed = "".join(sums).encode()
                _add_bytes(tar, SUMS, listed, [])
                if signer is not None:
                    _add_bytes(tar, SUMS_SIGNATURE, _json(signer.sign(listed)), [])
    except BrokenPipeError:
        pass  # the encryption thread stopped: its error is the one to report
    finally:
        error = piped.close() if piped else None
    if error is not None:
        raise StorageError(f"encrypting the archive failed: {error}") from error
    meter.add(0, SUMS, force=True)
    return header


def _blobs_of(store: Store, name: str) -> dict[str, int]:
    blobs: dict[str, int] = {}
    for entry in store.manifests.checked_entries(name):
        if entry.type == "file" and entry.sha256 not in blobs:
            if not store.blob_ok(entry.sha256, entry.size):
                raise DamagedBackup(
                    f"blob {entry.sha256[:12]}.. of backup {name} is missing or of the wrong "
                    "size: verify the backup; this one cannot be exported whole"
                )
            blobs[entry.sha256] = entry.size
    return blobs


def _json(data: dict) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"


def _add_bytes(tar: tarfile.TarFile, member: str, data: bytes, sums: list[str]) -> None:
    info = tarfile.TarInfo(member)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))
    sums.append(f"{hashlib.sha256(data).hexdigest()}  {len(data)}  {member}\n")


def _add_path(tar, member: str, path: Path, meter: ArchiveMeter, sums: list[str]) -> None:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            info = tarfile.TarInfo(member)
            info.size, info.mtime, info.mode = size, 0, 0o644
            reader = _Hashing(f, meter, member)
            tar.addfile(info, reader)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise os_error(exc, "reading", path) from exc
    sums.append(f"{reader.digest.hexdigest()}  {size}  {member}\n")
