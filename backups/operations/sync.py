"""Rebuilding the console's catalog from the backup storage and the snapshot repository.

The database is a cache of what the storage holds: ``sync_catalog`` imports the sets it does
not list (from records written by this console before a reinstall, or by another console
sharing the storage), flags rows whose set has gone, carries the audit history and the
policies of the newest set in, and says what it did. It never duplicates and changes nothing
when run twice.

Records are untrusted input (the storage is shared): each is read through
records.read_signed_record, its signature checked over its bytes, then its fields; one that is
refused (malformed, or signed by a trusted key and changed since) is reported by name with what
is wrong, and skipped; the others are imported all the same.

Then each record is judged by its signature (operations/signing.py): a record no trusted
key signed is refused, or taken in as foreign when asked (``foreign``, A4C_SYNC_FOREIGN). A
record of a set this console has a row for, unsigned (written before records were signed) or
not signed by a key trusted here, is never read into the row; when the set is this console's
own it is signed again from the row, when it came from elsewhere it is left to its writer.
Only records a trusted key vouches for carry history and policies in, and only a history file
whose SHA-256 the record names.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError as DbIntegrityError
from django.db import transaction
from django.utils import timezone

from backups import audit
from backups.audit import Actor, Outcome
from backups.elastic import repository as repository_files
from backups.errors import BackupError, DamagedBackup, InvalidInput
from backups.formatting import printable
from backups.models import AuditEvent, Backup, Policy, Source, SystemState
from backups.operations import records, signing
from backups.operations.drill_schedule import validate_drill_every
from backups.operations.places import store
from backups.operations.record_schema import SignedRecord
from backups.operations.running import ProgressCallback
from backups.signing import ForgedSignature
from backups.storage import BackupRecord, HistoryEvent, PolicyRecord

STATE_KEY = "catalog-sync"


@dataclasses.dataclass
class SyncReport:
    at: datetime
    storage: str
    imported: list[str] = dataclasses.field(default_factory=list)
    vanished: list[str] = dataclasses.field(default_factory=list)
    returned: list[str] = dataclasses.field(default_factory=list)
    refreshed: list[str] = dataclasses.field(default_factory=list)
    resigned: list[str] = dataclasses.field(default_factory=list)
    foreign: list[str] = dataclasses.field(default_factory=list)
    refused: list[str] = dataclasses.field(default_factory=list)  # records not well-formed
    unchanged: list[str] = dataclasses.field(default_factory=list)  # listed, and nothing to do
    problems: list[str] = dataclasses.field(default_factory=list)
    events_imported: int = 0
    policies_imported: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.imported
            or self.vanished
            or self.returned
            or self.refreshed
            or self.resigned
            or self.events_imported
            or self.policies_imported
        )

    def as_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["at"] = self.at.isoformat()
        return data


def last_sync() -> dict | None:
    """What the last sync said: {"at", "imported", "vanished", "refused", "problems"}; None if
    never."""
    state = SystemState.objects.filter(key=STATE_KEY).first()
    return state.value if state else None


def set_problems(record: BackupRecord) -> list[str]:
    """What of the set is missing from the storage or the repository (cheap: no hashing)."""
    problems = []
    if record.include_files and not store().manifests.exists(record.name):
        problems.append(f"its file manifest is missing from the backup storage {store().root}")
    if record.include_elasticsearch and record.indices and record.repository_location:
        found = repository_files.has_snapshot(
            Path(record.repository_location), record.snapshot_name or record.name
        )
        if found is False:
            problems.append(
                f"its snapshot {record.snapshot_name or record.name} is missing from the "
                f"repository at {record.repository_location}"
            )
    return problems


def sync_catalog(
    actor: Actor, progress: ProgressCallback = None, *, foreign: bool | None = None
) -> SyncReport:
    """Brings the catalog in line with the storage; see the module's docstring. ``foreign``:
    take records no trusted key signed in as foreign sets (A4C_SYNC_FOREIGN by default).
    A sync that cannot run to its end (the storage's records cannot be listed) is audited as
    failed, then raises."""
    try:
        return _sync(actor, progress, foreign)
    except (BackupError, OSError) as exc:
        audit.record(
            actor,
            "catalog.sync",
            target=str(settings.A4C_BACKUP_DIR),
            outcome=Outcome.FAILED,
            message=f"the sync did not run to its end: {printable(exc)}",
        )
        raise


def _sync(actor: Actor, progress: ProgressCallback, foreign: bool | None) -> SyncReport:
    allow_foreign = settings.A4C_SYNC_FOREIGN if foreign is None else foreign
    catalog = records.catalog()
    report = SyncReport(at=timezone.now(), storage=str(catalog.root))
    found: dict[str, BackupRecord] = {}
    vouched: list[BackupRecord] = []
    names = catalog.names()
    for done, name in enumerate(names, start=1):
        if progress:
            progress(f"record {done}/{len(names)}: {printable(name)}")
        try:
            signed = records.read_signed_record(name)
        except ForgedSignature as exc:
            report.refused.append(name)
            _forged(name, exc, report)
            continue
        except BackupError as exc:
            report.refused.append(name)
            report.problems.append(f"{printable(name)}: {exc}")
            continue
        found[name] = signed.record
        problems_before = len(report.problems)
        try:
            if _sync_one(signed, report, allow_foreign):
                vouched.append(signed.record)
        except BackupError as exc:
            report.problems.append(f"{printable(name)}: {exc}")
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
            # What the record points at (a repository location) is as untrusted as the record.
            report.problems.append(
                f"{printable(name)} was not imported: what its record points at could not be "
                f"read ({type(exc).__name__}: {printable(exc)})"
            )
        if len(report.problems) == problems_before and not _touched(report, name):
            report.unchanged.append(name)
    for row in Backup.objects.filter(status=Backup.Status.SUCCEEDED, vanished_at=None).exclude(
        set_id=""
    ):
        if row.name not in found and row.name not in report.refused:
            _vanish(row, "its record is gone from the backup storage", report)
    # Only a history a trusted key vouches for (its digest in a signed record) comes in.
    newest = max(
        (r for r in vouched if r.finished_at and r.history_sha256),
        key=lambda r: r.finished_at,
        default=None,
    )
    if newest is not None:
        try:
            history = records.read_history(newest.name, sha256=newest.history_sha256)
            _import_history(history, newest, report)
        except BackupError as exc:
            report.problems.append(f"the history carried by {newest.name}: {exc}")
    SystemState.objects.update_or_create(
        key=STATE_KEY,
        defaults={
            "value": {
                "at": report.at.isoformat(),
                "imported": len(report.imported),
                "foreign": len(report.foreign),
                "vanished": len(report.vanished),
                "refused": len(report.refused),
                "problems": report.problems[:20],
            }
        },
    )
    # A person's sync is always recorded (who looked, and what was found); the worker's
    # periodic one only when it changed something or found a problem.
    if report.changed or report.problems or actor.source in (Source.WEB, Source.CLI):
        audit.record(
            actor,
            "catalog.sync",
            target=str(catalog.root),
            outcome=Outcome.FAILED if report.problems else Outcome.SUCCEEDED,
            message="; ".join(report.problems[:5]),
            parameters={
                "imported": report.imported,
                "foreign": report.foreign,
                "resigned": report.resigned,
                "vanished": report.vanished,
                "refused": [printable(n) for n in report.refused],
                "returned": report.returned,
                "unchanged": len(report.unchanged),
                "events": report.events_imported,
                "policies": report.policies_imported,
            },
        )
    return report


def _touched(report: SyncReport, name: str) -> bool:
    return any(
        name in names
        for names in (
            report.imported,
            report.vanished,
            report.returned,
            report.refreshed,
            report.resigned,
        )
    )


def _sync_one(signed: SignedRecord, report: SyncReport, allow_foreign: bool) -> bool:
    """Imports or refreshes one set; True when a trusted key vouches for its record."""
    record = signed.record
    row = Backup.objects.filter(name=record.name).first()
    if row is None:
        return _import_one(signed, report, allow_foreign)
    if row.set_id and row.set_id != record.set_id:
        if row.status != Backup.Status.DELETED:
            report.problems.append(
                f"two sets claim the name {record.name}: this console's (set {row.set_id}) and "
                f"the storage's record (set {record.set_id}, taken by {record.written_by}); "
                "delete one of them"
            )
        return False
    if not row.set_id:  # a row older than records: its own set, now described
        Backup.objects.filter(pk=row.pk).update(set_id=record.set_id)
        row.set_id = record.set_id
    if row.status != Backup.Status.SUCCEEDED:
        return False
    vouched = _vouched_for(signed, row, report)
    if not vouched:  # the row is the truth: what the record says is not read
        record = records.record_of(row)
    problems = set_problems(record)
    if problems:
        _vanish(row, "; ".join(problems), report)
        return False
    if row.vanished_at:
        Backup.objects.filter(pk=row.pk).update(vanished_at=None)
        report.returned.append(row.name)
    if row.pinned != record.pinned:
        Backup.objects.filter(pk=row.pk).update(pinned=record.pinned)
        report.refreshed.append(row.name)
    return vouched and not row.foreign


def _import_one(signed: SignedRecord, report: SyncReport, allow_foreign: bool) -> bool:
    """A set this console has no row for: judged by its signature, then checked and made."""
    record = signed.record
    try:
        trust = signing.judge(
            signed.verdict,
            record,
            allow_foreign=allow_foreign,
            option="`sync --foreign` (or A4C_SYNC_FOREIGN=true)",
        )
    except BackupError as exc:
        report.problems.append(f"{printable(record.name)}: {exc}")
        return False
    record = dataclasses.replace(record, foreign=trust.foreign, signed_by=trust.signed_by)
    problems = set_problems(record)
    if problems:
        report.problems.append(f"{record.name} was not imported: " + "; ".join(problems))
        return False
    origin = record.imported_from or f"backup storage {records.catalog().root}"
    if record.written_by and record.written_by != records.this_console():
        origin += f", taken by {record.written_by}"
    if trust.foreign:
        origin += f"; foreign: {trust.why}"
    try:
        with transaction.atomic():
            Backup.objects.create(**records.row_fields(record, origin))
    except DbIntegrityError:  # a backup of that name was requested meanwhile
        report.problems.append(f"{record.name}: a backup of that name appeared meanwhile")
        return False
    report.imported.append(record.name)
    if trust.foreign:
        report.foreign.append(record.name)
    return not trust.foreign


def _vouched_for(signed: SignedRecord, row: Backup, report: SyncReport) -> bool:
    """Whether a trusted key signed the record of a set this console has a row for; if not
    (written before records were signed, or replaced by someone), the row signs it again when
    the set is this console's own, and is left alone (not read) when it came from elsewhere:
    another console's record is that console's to write."""
    if signed.verdict.trusted:
        return True
    if _own_set(row, signed.record):
        _sign_again(row, report)
    return False


def _forged(name: str, error: ForgedSignature, report: SyncReport) -> None:
    """A record signed by a trusted key and changed since: refused; when the set is this
    console's own, its record is written again from the row."""
    row = Backup.objects.filter(name=name, status=Backup.Status.SUCCEEDED).first()
    own = row is not None and _own_set(row, None)
    report.problems.append(
        f"{printable(name)}: {error}"
        + ("; it was written again from this console's row" if own else "")
    )
    if own:
        _sign_again(row, report)


def _sign_again(row: Backup, report: SyncReport) -> None:
    if not row.signed_by:  # a row from before signing: this installation vouches for its own
        row.signed_by = signing.installation_key().key_id
        Backup.objects.filter(pk=row.pk).update(signed_by=row.signed_by)
    records.catalog().rewrite(records.record_of(row))
    report.resigned.append(row.name)


def _own_set(row: Backup, record: BackupRecord | None) -> bool:
    """A set this installation vouches for itself: its key signed it in, or, a row from before
    records were signed, the record says this console wrote it (then what is written is the
    row's, which this console holds either way); without a record to ask (a forged one), a
    row that came from nowhere else."""
    if row.foreign:
        return False
    if row.signed_by:
        return row.signed_by == signing.installation_key().key_id
    if record is None:
        return not row.imported_from
    return record.written_by == records.this_console()


def _vanish(row: Backup, why: str, report: SyncReport) -> None:
    if row.vanished_at is None:
        Backup.objects.filter(pk=row.pk).update(
            vanished_at=timezone.now(), error_message=f"Gone from the backup storage: {why}."
        )
        report.vanished.append(row.name)


def _what_happened(event: HistoryEvent) -> dict:
    """The fields of a carried event that say what happened, as AuditEvent names them."""
    return {
        "at": datetime.fromisoformat(event.at),
        "actor": event.actor,
        "source": event.source,
        "action": event.action,
        "target": event.target,
        "parameters": event.parameters,
        "outcome": event.outcome,
        "message": event.message,
        "ip": event.ip,
        "user_agent": event.user_agent,
    }


def _hashes_as_written(event: HistoryEvent) -> bool:
    """The carried event hashes, under this console's A4C_AUDIT_KEY, as its console hashed it."""
    copy = AuditEvent(
        **_what_happened(event),
        backup_id=event.backup,
        restore_id=event.restore,
        prev_hash=event.prev_hash,
        imported_from=event.imported_from,
        imported_hash=event.imported_hash,
    )
    return copy.compute_hash() == event.hash


def _import_history(items, record: BackupRecord, report: SyncReport) -> None:
    """Appends the events this console lacks, checked first, in their order; then policies.

    Every event must follow the one before it. Their hashes are HMACs under the writing
    console's A4C_AUDIT_KEY: when this console has the same key (the key file was kept, or
    another console shares it) every hash is checked too; when none matches, the key differs
    (the host and its var/ were lost), and the events come in marked so.
    """
    where = f"the record of {record.name}"
    events: list[HistoryEvent] = []
    policies: list[PolicyRecord] = []
    for item in items:
        (policies if isinstance(item, PolicyRecord) else events).append(item)
    # One event that hashes right under this key means it is the same key: then all must.
    checked = [_hashes_as_written(event) for event in events]
    same_key = any(checked)
    prev = audit.GENESIS
    for event, hashes in zip(events, checked, strict=True):
        if event.prev_hash != prev or (same_key and not hashes):
            raise DamagedBackup(
                f"the audit history in {where} is broken at its event {event.hash[:12]}.. "
                f"({event.action} by {event.actor}): it was changed after it was written; "
                "nothing of it was imported"
            )
        prev = event.hash
    known = set(AuditEvent.objects.values_list("hash", flat=True))
    known |= set(
        AuditEvent.objects.exclude(imported_hash="").values_list("imported_hash", flat=True)
    )
    origin = record.written_by or "another console"
    if events and not same_key:
        origin += " (written under another A4C_AUDIT_KEY: its own hashes not checked here)"
    for event in events:
        identity = event.imported_hash or event.hash
        if identity in known:
            continue
        audit.append_imported(
            **_what_happened(event),
            imported_from=event.imported_from or origin,
            imported_hash=identity,
        )
        known.add(identity)
        report.events_imported += 1
    for policy in policies:
        if Policy.objects.filter(name=policy.name).exists():
            continue
        fields = {k: v for k, v in policy.settings.items() if k in records.POLICY_FIELDS}
        # Paused: a new machine must not start taking backups before someone says so.
        row = Policy(name=policy.name, **{**fields, "paused": True})
        try:
            row.drill_every = validate_drill_every(row.drill_every)
            row.full_clean()
        except (ValidationError, InvalidInput) as exc:
            found = getattr(exc, "message_dict", None) or {"drill_every": [str(exc)]}
            wrong = "; ".join(f"{k}: {' '.join(v)}" for k, v in found.items())
            report.problems.append(
                f"the policy {printable(repr(policy.name))} carried by {where} was refused: "
                f"{printable(wrong)}"
            )
            continue
        row.save()
        report.policies_imported.append(policy.name)
