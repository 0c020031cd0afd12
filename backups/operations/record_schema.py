"""A record read from the backup storage or an archive, parsed as untrusted input.

The backup storage is shared (other hosts write it) and archives are encrypted to a public key,
so a record may be planted. ``parse_record`` is the one way from a record's bytes to a
BackupRecord: every field is checked for its type, its range, its length and its form (names
by the rules of local backups, operations/names.py; times not later than now plus
A4C_RECORD_CLOCK_SKEW_SECONDS; enums among the known values), and every problem is named in
one RecordRefused. ``parse_signed_record`` is the seam ``sync`` and ``import`` (and off-site
pulls) read records through: it checks the record's signature over its bytes first (a record
signed by a trusted key and changed since is refused: ForgedSignature), then the schema, and
hands back the record with what its signature says (operations/signing.py judges what that
makes the set here: a record's own ``foreign`` and ``signed_by`` are never taken as trust).
``parse_history_item`` does the same for the audit events and policies a record carries.

It only reads values: what a record may then change (a repository's registration, a policy's
retention) is decided where that happens (operations/records.py).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from backups.errors import DamagedBackup, InvalidInput
from backups.formatting import printable, unsafe_character
from backups.models import Backup, Source
from backups.operations.names import index_name_problem, validate_backup_name
from backups.operations.signing import keyring
from backups.signing import SIGNATURE_FIELD, Verdict, canonical
from backups.storage import (
    RECORD_FORMAT,
    RECORD_MAX_BYTES,
    RECORD_VERSION,
    BackupRecord,
    HistoryEvent,
    IndexCount,
    NewerFormat,
    PolicyRecord,
)

INT_MAX = 2**63 - 1  # Elasticsearch's long, the database's bigint
FILE_COUNT_MAX = 2**31 - 1  # Backup.file_count is an integer column
TEXT_MAX = 1000
DESCRIPTION_MAX = 100_000
LIST_MAX = 10_000

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
DRILL_OUTCOMES = ["passed", "failed", "error", "cancelled"]  # selectors.drill_outcome
_SET_ID = re.compile(r"^[0-9a-f]{32}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+\-]*$")  # repository names
_CLUSTER_UUID = re.compile(r"^[A-Za-z0-9_\-]+$")  # base64url
_ES_VERSION = re.compile(r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}[A-Za-z0-9.\-]{0,30}$")
_KEY_ID = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")  # a key's fingerprint (backups/signing.py)


class RecordRefused(DamagedBackup):
    """A record that is not a well-formed a4c-backup record; ``problems`` says each fault."""

    def __init__(self, where: str, problems: list[str]):
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" * (len(problems) > 5))
        super().__init__(f"{where} was refused: {shown}")
        self.problems = problems


def clock_skew() -> timedelta:
    return timedelta(seconds=settings.A4C_RECORD_CLOCK_SKEW_SECONDS)


@dataclass(frozen=True)
class SignedRecord:
    """A record read through the seam: checked whole, with what its signature says (checked
    over its bytes: ``verdict.trusted`` only when a key trusted here made it)."""

    record: BackupRecord
    verdict: Verdict


def parse_signed_record(
    raw: bytes, where: str, *, what: str = "", now: datetime | None = None
) -> SignedRecord:
    """The record in ``raw``, its signature checked first, then its fields.

    Raises ForgedSignature (signed by a key trusted here, and changed since), RecordRefused
    (not a well-formed record) or NewerFormat. ``what`` names the record in what the signature
    says (``where`` by default).
    """
    document = _document(raw, where)
    verdict = keyring().check(canonical(document), document.get(SIGNATURE_FIELD), what or where)
    return SignedRecord(_record(document, where, now), verdict)


def parse_record(raw: bytes, where: str, *, now: datetime | None = None) -> BackupRecord:
    """The record in ``raw`` (a records/NAME.json's bytes), checked whole; RecordRefused if not.
    Its signature is not looked at: ``parse_signed_record`` reads records from outside.

    ``where`` names the file for messages (already fit to show).
    """
    return _record(_document(raw, where), where, now)


def _document(raw: bytes, where: str) -> dict:
    """The record file's JSON document, its format and version checked."""
    if not isinstance(raw, bytes | bytearray):
        raise RecordRefused(where, ["it is not a file's bytes"])
    if len(raw) > RECORD_MAX_BYTES:
        raise RecordRefused(
            where, [f"it is {len(raw)} bytes; a record is at most {RECORD_MAX_BYTES}"]
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise RecordRefused(where, ["it is not JSON"]) from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise RecordRefused(where, ["it is not an a4c-backup record"])
    version = data.get("version")
    if type(version) is not int or version < 1:
        raise RecordRefused(
            where, [f"its format version {printable(repr(version))} is not a number"]
        )
    if version > RECORD_VERSION:
        raise NewerFormat(
            f"{where} was written by a newer a4c-backup (record format {version}; this one "
            f"reads {RECORD_VERSION}): upgrade a4c-backup on this machine to use it"
        )
    return data


def _record(data: dict, where: str, now: datetime | None) -> BackupRecord:
    body = data.get("record")
    if not isinstance(body, dict):
        raise RecordRefused(where, ["it holds no record"])
    fields = _Fields(body, now or timezone.now())
    record = BackupRecord(
        set_id=fields.matching("set_id", _SET_ID, "32 lowercase hex digits", required=True),
        name=fields.backup_name("name"),
        created_at=fields.time("created_at", required=True),
        started_at=fields.time("started_at"),
        finished_at=fields.time("finished_at"),
        actor=fields.text("actor", 150),
        source=fields.choice("source", Source.values),
        trigger=fields.choice("trigger", Backup.Trigger.values),
        include_elasticsearch=fields.boolean("include_elasticsearch"),
        include_files=fields.boolean("include_files"),
        description=fields.text("description", DESCRIPTION_MAX, lines=True),
        index_patterns=fields.index_names("index_patterns", pattern=True),
        indices=fields.indices("indices"),
        snapshot_name=fields.backup_name("snapshot_name", required=False),
        repository=fields.matching("repository", _TOKEN, "a repository name", limit=255),
        repository_location=fields.location("repository_location"),
        es_cluster_name=fields.text("es_cluster_name", 255),
        es_cluster_uuid=fields.matching(
            "es_cluster_uuid", _CLUSTER_UUID, "a cluster uuid", limit=64
        ),
        es_version=fields.matching("es_version", _ES_VERSION, "a version such as 8.19.8"),
        manifest_sha256=fields.matching("manifest_sha256", _HEX64, "64 lowercase hex digits"),
        file_count=fields.integer("file_count", FILE_COUNT_MAX),
        file_bytes=fields.integer("file_bytes", INT_MAX),
        safety=fields.boolean("safety"),
        pinned=fields.boolean("pinned"),
        policy=fields.text("policy", 100),
        warnings=fields.texts("warnings"),
        written_by=fields.text("written_by", TEXT_MAX),
        imported_from=fields.text("imported_from", TEXT_MAX),
        # What the writer said; trust comes from the signature's judgement, not from these.
        foreign=fields.boolean("foreign", optional=True),
        signed_by=fields.matching("signed_by", _KEY_ID, "a key id (SHA256:...)"),
        history_sha256=fields.matching("history_sha256", _HEX64, "64 lowercase hex digits"),
        last_drill=fields.drill_evidence("last_drill"),
    )
    known = {f.name for f in dataclasses.fields(BackupRecord)}
    unknown = sorted(printable(repr(k)) for k in body if k not in known)
    if unknown:
        fields.problems.append("unknown fields " + ", ".join(unknown[:5]))
    if record.finished_at and record.created_at and record.finished_at < record.created_at:
        fields.problems.append("it finished before it was created")
    if fields.problems:
        raise RecordRefused(where, fields.problems)
    return record


def parse_history_item(item: object, where: str, *, now: datetime | None = None):
    """One line of a record's history: a HistoryEvent or a PolicyRecord, checked."""
    if isinstance(item, dict) and set(item) == {"policy"} and isinstance(item["policy"], dict):
        fields = _Fields(item["policy"], now or timezone.now())
        name = fields.text("name", 100, required=True)
        values = item["policy"].get("settings")
        if not isinstance(values, dict):
            fields.problems.append("settings: not an object")
        if fields.problems:
            raise RecordRefused(where, fields.problems)
        return PolicyRecord(name, values)
    if not (isinstance(item, dict) and set(item) == {"event"} and isinstance(item["event"], dict)):
        raise RecordRefused(where, ["a line is neither an audit event nor a policy"])
    body = item["event"]
    fields = _Fields(body, now or timezone.now())
    at = fields.time("at", required=True)
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        fields.problems.append("parameters: not an object")
    # The hash covers these texts as written, so they are taken as they are (but for NUL, which
    # no database column holds) and escaped wherever they are shown.
    event = HistoryEvent(
        at=at.isoformat(timespec="microseconds") if at else "",
        actor=fields.text("actor", 150, any_text=True),
        source=fields.choice("source", Source.values),
        action=fields.text("action", 40, required=True, any_text=True),
        target=fields.text("target", 300, any_text=True),
        parameters=parameters if isinstance(parameters, dict) else {},
        outcome=fields.text("outcome", 12, any_text=True),
        message=fields.text("message", DESCRIPTION_MAX, any_text=True),
        ip=fields.address("ip"),
        user_agent=fields.text("user_agent", 300, any_text=True),
        backup=fields.integer("backup", INT_MAX, optional=True),
        restore=fields.integer("restore", INT_MAX, optional=True),
        prev_hash=fields.matching("prev_hash", _HEX64, "64 lowercase hex digits", required=True),
        hash=fields.matching("hash", _HEX64, "64 lowercase hex digits", required=True),
        imported_from=fields.text("imported_from", TEXT_MAX, any_text=True),
        imported_hash=fields.matching("imported_hash", _HEX64, "64 lowercase hex digits"),
    )
    if at is not None and event.at != body["at"]:
        event = dataclasses.replace(event, at=body["at"])  # hashed as written
    known = {f.name for f in dataclasses.fields(HistoryEvent)}
    unknown = sorted(printable(repr(k)) for k in body if k not in known)
    if unknown:
        fields.problems.append("unknown fields " + ", ".join(unknown[:5]))
    if fields.problems:
        raise RecordRefused(where, fields.problems)
    return event


class _Fields:
    """Reads one field at a time from an untrusted object, noting what is wrong with each."""

    def __init__(self, body: dict, now: datetime):
        self.body = body
        self.latest = now + clock_skew()
        self.problems: list[str] = []

    def _get(self, key: str, kind: type | tuple, default, required: bool):
        if key not in self.body or (self.body[key] is None and not required):
            if required:
                self.problems.append(f"{key}: missing")
            return default
        value = self.body[key]
        # bool is an int in Python; a record's counts and flags are not interchangeable
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(f"{key}: {_type_of(value)} where {_name_of(kind)} belongs")
            return default
        return value

    def text(self, key: str, limit: int, *, required=False, lines=False, any_text=False) -> str:
        value = self._get(key, str, "", required)
        if required and value == "" and key in self.body:
            self.problems.append(f"{key}: empty")
        return self._clean_text(key, value, limit, lines, any_text)

    def _clean_text(self, key, value: str, limit: int, lines=False, any_text=False) -> str:
        if len(value) > limit:
            self.problems.append(f"{key}: {len(value)} characters; at most {limit}")
            return ""
        if any_text:
            if "\0" in value:
                self.problems.append(f"{key}: holds a NUL character")
                return ""
            return value
        allowed = "\r\n\t" if lines else ""  # a web form's text area sends CR LF
        if any(unsafe_character(c) and c not in allowed for c in value):
            self.problems.append(f"{key}: holds control characters ({printable(value[:60])!s})")
            return ""
        return value

    def texts(self, key: str) -> list[str]:
        values = self._get(key, list, [], False)
        if len(values) > 100:
            self.problems.append(f"{key}: {len(values)} items; at most 100")
            return []
        out = []
        for n, value in enumerate(values):
            if not isinstance(value, str):
                self.problems.append(f"{key}[{n}]: {_type_of(value)} where text belongs")
            else:
                out.append(self._clean_text(f"{key}[{n}]", value, TEXT_MAX, lines=True))
        return out

    def boolean(self, key: str, *, optional=False) -> bool:
        return self._get(key, bool, False, not optional)

    def integer(self, key: str, limit: int, *, optional=False) -> int | None:
        value = self._get(key, int, None if optional else 0, not optional)
        if value is not None and not 0 <= value <= limit:
            shown = str(value) if len(str(value)) < 30 else f"a {len(str(value))}-digit number"
            self.problems.append(f"{key}: {shown} is out of range (0 to {limit})")
            return 0
        return value

    def choice(self, key: str, known: list[str]) -> str:
        value = self._get(key, str, known[0], True)
        if value not in known:
            self.problems.append(
                f"{key}: {printable(repr(value[:40]))} is not one of {', '.join(known)}"
            )
            return known[0]
        return value

    def matching(self, key, pattern, what, *, limit=100, required=False) -> str:
        value = self._get(key, str, "", required)
        if (value or required) and (len(value) > limit or not pattern.match(value)):
            self.problems.append(f"{key}: {printable(repr(value[:70]))} is not {what}")
            return ""
        return value

    def backup_name(self, key: str, *, required=True) -> str:
        value = self._get(key, str, "", required)
        if not value and not required:
            return ""
        try:
            return validate_backup_name(value)
        except InvalidInput as exc:
            self.problems.append(f"{key}: {printable(repr(value[:70]))}: {exc}")
            return ""

    def address(self, key: str) -> str | None:
        value = self._get(key, str, "", False)
        if not value:
            return None
        try:
            ipaddress.ip_address(value)
            return value  # as written: the event's hash covers it
        except ValueError:
            self.problems.append(f"{key}: {printable(repr(value[:50]))} is not an IP address")
            return None

    def location(self, key: str) -> str:
        value = self.text(key, 1000)
        parts = value.split("/")
        if value and (not value.startswith("/") or ".." in parts or "\0" in value):
            self.problems.append(f"{key}: {printable(repr(value[:70]))} is not an absolute path")
            return ""
        return value

    def time(self, key: str, *, required=False) -> datetime | None:
        value = self._get(key, str, None, required)
        if value is None:
            return None
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            self.problems.append(f"{key}: {printable(repr(value[:40]))} is not a date and time")
            return None
        if when.tzinfo is None:
            self.problems.append(f"{key}: {value} has no time zone")
            return None
        if when > self.latest:
            self.problems.append(
                f"{key}: {value} is in the future (this machine's clock says "
                f"{self.latest - clock_skew():%Y-%m-%d %H:%M:%S %Z})"
            )
            return None
        return when

    def index_names(self, key: str, *, pattern: bool) -> list[str]:
        values = self._get(key, list, [], False)
        if len(values) > LIST_MAX:
            self.problems.append(f"{key}: {len(values)} items; at most {LIST_MAX}")
            return []
        for value in values:
            why = (
                index_name_problem(value, pattern=pattern) if isinstance(value, str) else "not text"
            )
            if why:
                self.problems.append(f"{key}: {printable(repr(str(value)[:70]))}: {why}")
                return []
        return list(values)

    def seconds(self, key: str) -> float | None:
        value = self.body.get(key)
        if value is None:
            return None
        if type(value) not in (int, float) or not 0 <= value <= INT_MAX:
            self.problems.append(f"{key}: {_type_of(value)} is not a number of seconds")
            return None
        return value

    def drill_evidence(self, key: str) -> dict:
        """The last restore drill a record carries (records.drill_evidence writes it)."""
        value = self._get(key, dict, {}, False)
        if not value:
            return {}
        inner = _Fields(value, self.latest - clock_skew())
        shape = {
            "at": inner.time("at"),
            "outcome": inner.choice("outcome", DRILL_OUTCOMES),
            "restore_seconds": inner.seconds("restore_seconds"),
            "elasticsearch_seconds": inner.seconds("elasticsearch_seconds"),
            "files_seconds": inner.seconds("files_seconds"),
            "problems": inner.texts("problems"),
            "by": inner.text("by", 150),
        }
        unknown = sorted(printable(repr(k)) for k in value if k not in shape)
        if unknown:
            inner.problems.append("unknown fields " + ", ".join(unknown[:5]))
        if inner.problems:
            self.problems += [f"{key}.{p}" for p in inner.problems]
            return {}
        return {**value}  # as written: the signature covers it

    def indices(self, key: str) -> dict[str, IndexCount]:
        values = self._get(key, dict, {}, False)
        if len(values) > LIST_MAX:
            self.problems.append(f"{key}: {len(values)} indices; at most {LIST_MAX}")
            return {}
        out = {}
        for name, counts in values.items():
            why = index_name_problem(name)
            shape = {"docs", "size", "mapping", "aliases"}
            if why or not isinstance(counts, dict) or set(counts) - shape:
                self.problems.append(
                    f"{key}: {printable(repr(name[:70]))}: "
                    f"{why or 'not {docs, size[, mapping, aliases]}'}"
                )
                return {}
            inner = _Fields(counts, self.latest - clock_skew())
            count = IndexCount(
                docs=inner.integer("docs", INT_MAX, optional=True),
                size=inner.integer("size", INT_MAX) if "size" in counts else 0,
                mapping=inner.matching("mapping", _HEX64, "64 lowercase hex digits"),
                aliases=tuple(inner.index_names("aliases", pattern=False)),
            )
            if inner.problems:
                self.problems += [f"{key}[{printable(repr(name))}].{p}" for p in inner.problems]
                return {}
            out[name] = count
        return out


def _type_of(value) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list"}
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"text {printable(repr(value[:30]))}"
    return names.get(type(value), "an object")


def _name_of(kind) -> str:
    return {bool: "true or false", int: "a whole number", str: "text", list: "a list"}.get(
        kind, "an object"
    )
