"""The catalog the backup storage carries about itself, so that it outlives the console.

Each succeeded backup set writes, beside its manifest:

    records/<name>.json            what a listing and a restore need (BackupRecord)
    records/<name>.history.jsonl.gz  the audit events and policies up to its time

Both are written to a temp name, fsynced and renamed: a record is whole or absent, and the
record is renamed last, so a record always has its history. Records carry a format version; a
record from a newer a4c-backup is refused, never half read. Like the rest of backups/storage/,
this module takes plain values and must not import Django.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from backups.errors import DamagedBackup, InvalidInput, NotFound
from backups.storage.fileio import check_name, fsync_dir, os_error, show

RECORD_FORMAT = "a4c-backup-record"
HISTORY_FORMAT = "a4c-backup-history"
RECORD_VERSION = 1


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


@dataclass
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
    # Evidence of its last restore drill (at, outcome, measured restore seconds, problems).
    last_drill: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        for key in ("created_at", "started_at", "finished_at"):
            value = getattr(self, key)
            data[key] = value.isoformat() if value else None
        return {"format": RECORD_FORMAT, "version": RECORD_VERSION, "record": data}

    @classmethod
    def from_json(cls, data: dict, where: str) -> BackupRecord:
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            raise DamagedBackup(f"{where} is not an a4c-backup record")
        version = data.get("version")
        if not isinstance(version, int) or version > RECORD_VERSION:
            raise NewerFormat(
                f"{where} was written by a newer a4c-backup (record format {version}; this one "
                f"reads {RECORD_VERSION}): upgrade a4c-backup on this machine to use it"
            )
        body = dict(data.get("record") or {})
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            for key in ("created_at", "started_at", "finished_at"):
                body[key] = datetime.fromisoformat(body[key]) if body.get(key) else None
            body["indices"] = {
                name: IndexCount.of(i) for name, i in (body.get("indices") or {}).items()
            }
            record = cls(**{k: v for k, v in body.items() if k in known})
            check_name(record.name)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise DamagedBackup(f"{where} is damaged ({exc}): it cannot be used") from None
        return record


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

    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / "records"

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
            with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=6, mtime=0) as gz:
                gz.write(_line({"format": HISTORY_FORMAT, "version": RECORD_VERSION}))
                for policy in policies:
                    gz.write(_line({"policy": dataclasses.asdict(policy)}))
                for event in events:
                    gz.write(_line({"event": dataclasses.asdict(event)}))
        return self.rewrite(record)

    def rewrite(self, record: BackupRecord) -> Path:
        """Replaces the record only (a pin changed); its history stays."""
        path = self.record_path(record.name)
        with _AtomicFile(path) as f:
            f.write(json.dumps(record.to_json(), indent=1, sort_keys=True).encode() + b"\n")
        return path

    def delete(self, name: str) -> None:
        for path in (self.record_path(name), self.history_path(name)):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise os_error(exc, "deleting", path) from exc

    # -- reading --------------------------------------------------------------------------

    def read(self, name: str) -> BackupRecord:
        path = self.record_path(name)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise NotFound(f"backup {name} has no record in the backup storage") from None
        except ValueError:
            raise DamagedBackup(f"the record {show(path)} is damaged (not JSON)") from None
        except OSError as exc:
            raise os_error(exc, "reading", path) from exc
        record = BackupRecord.from_json(data, f"the record {show(path)}")
        if record.name != name:
            raise DamagedBackup(
                f"the record {show(path)} claims the name {record.name!r}: two sets claim one "
                "name; move the file whose name is wrong out of records/ and sync again"
            )
        return record

    def history(self, name: str) -> Iterator[HistoryEvent | PolicyRecord]:
        """The policies, then the audit events, in the order they were written."""
        path = self.history_path(name)
        try:
            with gzip.open(path, "rb") as f:
                header = json.loads(f.readline() or b"null")
                if not isinstance(header, dict) or header.get("format") != HISTORY_FORMAT:
                    raise DamagedBackup(f"{show(path)} is not an a4c-backup history")
                if header.get("version", 0) > RECORD_VERSION:
                    raise NewerFormat(
                        f"{show(path)} was written by a newer a4c-backup: upgrade this one"
                    )
                for line in f:
                    item = json.loads(line)
                    if "policy" in item:
                        yield PolicyRecord(**item["policy"])
                    else:
                        yield HistoryEvent(**item["event"])
        except FileNotFoundError:
            return
        except (OSError, EOFError, ValueError, TypeError) as exc:
            raise DamagedBackup(f"the history {show(path)} is damaged: {exc}") from None


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
