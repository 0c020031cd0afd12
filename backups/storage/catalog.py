"""The catalog the backup storage carries about itself, so that it outlives the console.

Each succeeded backup set writes, beside its manifest:

    records/<name>.json            what a listing and a restore need (BackupRecord)
    records/<name>.history.jsonl.gz  the audit events and policies up to its time

Both are written to a temp name, fsynced and renamed: a record is whole or absent, and the
record is renamed last, so a record always has its history. Records carry a format version.
A catalog given the installation's signing key signs every record it writes
(backups/signing.py), and the record holds its history's SHA-256, so that a signed record
vouches for the history beside it too. This module writes records and hands back their bytes:
what is read is untrusted input (the storage is shared), its signature checked and its fields
parsed by operations/record_schema.py, never here. Like the rest of backups/storage/, this
module takes plain values and must not import Django.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from backups.errors import BackupError, DamagedBackup, InvalidInput, NotFound
from backups.signing import SIGNATURE_FIELD, Keyring, SigningKey, canonical
from backups.storage.fileio import check_name, fsync_dir, os_error, show

RECORD_FORMAT = "a4c-backup-record"
HISTORY_FORMAT = "a4c-backup-history"
RECORD_VERSION = 1
RECORD_MAX_BYTES = 4 * 1024 * 1024  # a record lists indices: thousands fit in far less
HISTORY_LINE_MAX = 1024 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class NewerFormat(InvalidInput):
    """Written by a newer a4c-backup: this one must not guess what the new fields mean."""


@dataclass(frozen=True)
class IndexCount:
    """One index as a backup recorded it: its count and size; since restore drills, also its
    mapping's fingerprint and its aliases (empty when the backup predates them)."""

    docs: int | None
    size: int
    mapping: str = ""
    aliases: tuple[str, ...] = ()

    @classmethod
    def of(cls, recorded: dict) -> IndexCount:
        """From a Backup row's or a record's JSON entry for one index."""
        return cls(
            docs=recorded.get("docs"),
            size=int(recorded.get("size") or 0),
            mapping=str(recorded.get("mapping") or ""),
            aliases=tuple(recorded.get("aliases") or ()),
        )

    def as_json(self) -> dict:
        """The Backup row's JSON entry: what of(), given it, reads back the same."""
        found: dict = {"docs": self.docs, "size": self.size}
        if self.mapping:
            found.update(mapping=self.mapping, aliases=list(self.aliases))
        return found


@dataclass(frozen=True)
class BackupRecord:
    """One backup set as the storage describes it: enough to list, restore and verify it."""

    set_id: str
    name: str
    created_at: datetime
    finished_at: datetime | None
    actor: str
    source: str
    trigger: str
    include_elasticsearch: bool
    include_files: bool
    description: str = ""
    started_at: datetime | None = None
    index_patterns: list[str] = field(default_factory=list)
    indices: dict[str, IndexCount] = field(default_factory=dict)
    snapshot_name: str = ""
    repository: str = ""
    repository_location: str = ""
    es_cluster_name: str = ""
    es_cluster_uuid: str = ""
    es_version: str = ""
    manifest_sha256: str = ""
    file_count: int = 0
    file_bytes: int = 0
    safety: bool = False
    pinned: bool = False
    policy: str = ""
    warnings: list[str] = field(default_factory=list)
    written_by: str = ""  # the console that took it (host and database)
    imported_from: str = ""  # an archive or a storage it was carried in from
    # Not vouched for by a key trusted where it was imported (operations/signing.py), and the
    # key whose signature was checked there, or claimed when foreign ("" when taken there).
    foreign: bool = False
    signed_by: str = ""
    history_sha256: str = ""  # of records/<name>.history.jsonl.gz as written ("": unknown)
    # Evidence of its last restore drill (at, outcome, measured restore seconds, problems).
    last_drill: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        for key in ("created_at", "started_at", "finished_at"):
            value = getattr(self, key)
            data[key] = value.isoformat() if value else None
        return {"format": RECORD_FORMAT, "version": RECORD_VERSION, "record": data}


@dataclass(frozen=True)
class HistoryEvent:
    """An audit event as the console that wrote it hashed it (its ids are that console's)."""

    at: str
    actor: str
    source: str
    action: str
    target: str
    parameters: dict
    outcome: str
    message: str
    ip: str | None
    user_agent: str
    backup: int | None
    restore: int | None
    prev_hash: str
    hash: str
    imported_from: str = ""
    imported_hash: str = ""


@dataclass(frozen=True)
class PolicyRecord:
    name: str
    settings: dict


class Catalog:
    """The records/ directory of one backup storage root."""

    def __init__(self, root: Path, signer: SigningKey | None = None):
        self.root = Path(root)
        self.dir = self.root / "records"
        self.signer = signer

    def record_path(self, name: str) -> Path:
        check_name(name)
        return self.dir / f"{name}.json"

    def history_path(self, name: str) -> Path:
        check_name(name)
        return self.dir / f"{name}.history.jsonl.gz"

    def exists(self, name: str) -> bool:
        return self.record_path(name).is_file()

    def names(self) -> list[str]:
        try:
            with os.scandir(self.dir) as it:
                found = [e.name[:-5] for e in it if e.name.endswith(".json")]
        except FileNotFoundError:
            return []
        return sorted(n for n in found if n and n[0] != ".")

    # -- writing --------------------------------------------------------------------------

    def write(
        self,
        record: BackupRecord,
        events: Iterable[HistoryEvent] = (),
        policies: Iterable[PolicyRecord] = (),
    ) -> Path:
        """Writes the history, then the record: both whole, or the old ones left."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(exc, "creating", self.dir) from exc
        with _AtomicFile(self.history_path(record.name)) as f:
            hashing = _HashingWriter(f)
            with gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=6, mtime=0) as gz:
                gz.write(_line({"format": HISTORY_FORMAT, "version": RECORD_VERSION}))
                for policy in policies:
                    gz.write(_line({"policy": dataclasses.asdict(policy)}))
                for event in events:
                    gz.write(_line({"event": dataclasses.asdict(event)}))
        digest = hashing.digest.hexdigest()
        return self.rewrite(dataclasses.replace(record, history_sha256=digest))

    def rewrite(self, record: BackupRecord) -> Path:
        """Replaces the record only (a pin changed); its history stays, and so does the
        history's digest when this catalog signed the record it replaces."""
        path = self.record_path(record.name)
        data = self.document(record)
        with _AtomicFile(path) as f:
            f.write(data)
        return path

    def document(self, record: BackupRecord) -> bytes:
        """The record as this catalog writes it: signed, its history's digest kept."""
        if not record.history_sha256:
            record = dataclasses.replace(record, history_sha256=self._signed_history(record))
        document = record.to_json()
        if self.signer is not None:
            document[SIGNATURE_FIELD] = self.signer.sign(canonical(document))
        return json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"

    def _signed_history(self, record: BackupRecord) -> str:
        """The history digest of the set's present record, if this catalog's key signed it
        (what it signed itself is all it reads of the file: no record is parsed here)."""
        if self.signer is None or not self.record_path(record.name).is_file():
            return ""
        try:
            document = json.loads(self.read_bytes(record.name))
            if not isinstance(document, dict):
                return ""
            signature = document.get(SIGNATURE_FIELD)
            mine = Keyring(self.signer, []).check(canonical(document), signature, "")
        except (BackupError, ValueError, RecursionError):
            return ""
        body = document.get("record")
        if not mine.trusted or not isinstance(body, dict) or body.get("set_id") != record.set_id:
            return ""
        digest = body.get("history_sha256")
        return digest if isinstance(digest, str) and _HEX64.match(digest) else ""

    def delete(self, name: str) -> None:
        for path in (self.record_path(name), self.history_path(name)):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise os_error(exc, "deleting", path) from exc

    # -- reading --------------------------------------------------------------------------

    def read_bytes(self, name: str) -> bytes:
        """The record file's bytes, unparsed (operations/record_schema.py parses them)."""
        path = self.record_path(name)
        try:
            with open(path, "rb") as f:
                return f.read(RECORD_MAX_BYTES + 1)
        except FileNotFoundError:
            raise NotFound(f"backup {name} has no record in the backup storage") from None
        except OSError as exc:
            raise os_error(exc, "reading", path) from exc

    def history_items(self, name: str, sha256: str | None = None) -> Iterator[object]:
        """The history's lines as JSON values, unchecked: the policies, then the events; with
        ``sha256`` (from a signed record), only if the file is the one it names."""
        path = self.history_path(name)
        try:
            with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
                if sha256 is not None:
                    _check_digest(raw, sha256, path)
                header = json.loads(f.readline(HISTORY_LINE_MAX) or b"null")
                if not isinstance(header, dict) or header.get("format") != HISTORY_FORMAT:
                    raise DamagedBackup(f"{show(path)} is not an a4c-backup history")
                version = header.get("version", 0)
                if not isinstance(version, int) or version > RECORD_VERSION:
                    raise NewerFormat(
                        f"{show(path)} was written by a newer a4c-backup: upgrade this one"
                    )
                while line := f.readline(HISTORY_LINE_MAX + 1):
                    if len(line) > HISTORY_LINE_MAX:
                        raise DamagedBackup(
                            f"{show(path)} holds a line over {HISTORY_LINE_MAX} bytes"
                        )
                    yield json.loads(line)
        except FileNotFoundError:
            return
        except (OSError, EOFError, ValueError, RecursionError) as exc:
            raise DamagedBackup(f"the history {show(path)} is damaged: {exc}") from None


def _check_digest(raw, sha256: str, path: Path) -> None:
    digest = hashlib.sha256()
    while chunk := raw.read(1 << 20):
        digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise DamagedBackup(
            f"the history {show(path)} is not the one its signed record names: it was changed "
            "after it was written; nothing of it was imported"
        )
    raw.seek(0)


class _HashingWriter:
    """A file for gzip to write into, hashing what passes."""

    def __init__(self, file):
        self.file, self.digest = file, hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


class _AtomicFile:
    """A temp file beside ``final``: fsynced and renamed over it on success, removed if not."""

    def __init__(self, final: Path):
        self.final = final

    def __enter__(self):
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.final.name}.", dir=self.final.parent)
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                os.replace(self.tmp, self.final)
                fsync_dir(self.final.parent)
        except OSError as error:
            raise os_error(error, "writing", self.final) from error
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
        return False


def _line(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True, default=str).encode() + b"\n"
