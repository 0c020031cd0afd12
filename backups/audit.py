"""The audit history: who did what, appended to a hash chain.

Every event stores the hash of the one before it; ``verify_chain`` walks the history and names
the first event whose stored hash or link does not match, so an edit made behind the
application's back (raw SQL, a restored database file) is detectable. The hashes are HMACs keyed
with settings.A4C_AUDIT_KEY (kept outside the database), so write access to the database alone
is not enough to forge a consistent chain.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from backups.models import AuditAction, AuditChainHead, AuditEvent, Source

Outcome = AuditEvent.Outcome

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who asks for an operation, and through which door."""

    name: str
    source: str = Source.WEB
    user: AbstractBaseUser | None = None
    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def command_line(cls) -> Actor:
        return cls(name=_os_user(), source=Source.CLI)

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(name=name, source=Source.SYSTEM)

    @classmethod
    def schedule(cls, name: str = "scheduler") -> Actor:
        return cls(name=name, source=Source.SCHEDULE)

    @classmethod
    def from_request(cls, request) -> Actor:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        ip = forwarded.split(",")[0].strip() or request.META.get("REMOTE_ADDR") or None
        user = request.user if request.user.is_authenticated else None
        return cls(
            name=user.get_username() if user else "anonymous",
            source=Source.WEB,
            user=user,
            ip=ip,
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        )

    @property
    def user_id(self):
        return self.user.pk if self.user is not None else None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def record(
    actor: Actor,
    action: str,
    *,
    target: str = "",
    outcome: str = AuditEvent.Outcome.INFO,
    message: str = "",
    parameters: dict | None = None,
    backup=None,
    restore=None,
) -> AuditEvent:
    """Appends one event to the chain; concurrent callers are serialised on the chain head.
    ``action`` is one of AuditAction's: a new one is declared there, so that the console's
    filter lists it too."""
    if action not in AuditAction.values:
        raise ValueError(f"{action!r} is not an audit action: declare it in AuditAction")
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            actor=actor.name,
            source=actor.source,
            action=action,
            target=target[:300],
            outcome=outcome,
            message=message,
            parameters=parameters or {},
            ip=actor.ip,
            user_agent=actor.user_agent,
            backup=backup,
            restore=restore,
            prev_hash=head.last_hash,
        )
        event.hash = event.compute_hash()
        event.save()
        AuditChainHead.objects.filter(pk=1).update(last_hash=event.hash, count=head.count + 1)
    return event


def append_imported(*, at, imported_from: str, imported_hash: str, **fields) -> AuditEvent:
    """Links an event another console wrote into this chain, keeping its time and its hash
    there (``imported_hash``), so that importing it again is recognised and skipped."""
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            at=at,
            imported_from=imported_from[:1000],
            imported_hash=imported_hash,
            prev_hash=head.last_hash,
            **fields,
        )
        event.hash = event.compute_hash()
        event.save()
        AuditChainHead.objects.filter(pk=1).update(last_hash=event.hash, count=head.count + 1)
    return event


@dataclass
class ChainReport:
    ok: bool
    checked: int
    problem: str = ""
    event_id: int | None = None


def verify_chain(batch: int = 2000) -> ChainReport:
    """Re-computes every hash in order; reads the history in batches so memory stays flat."""
    prev = GENESIS
    checked = 0
    last_id = 0
    while True:
        events = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch])
        if not events:
            break
        for event in events:
            if event.prev_hash != prev:
                return ChainReport(
                    False,
                    checked,
                    f"event #{event.id} does not follow the event before it: "
                    "an event was removed or inserted",
                    event.id,
                )
            if event.compute_hash() != event.hash:
                # A wrong key makes the very first event look forged; say so rather than
                # accuse the history.
                hint = (
                    " (or A4C_AUDIT_KEY is not the key the history was written with)"
                    if checked == 0
                    else ""
                )
                return ChainReport(
                    False,
                    checked,
                    f"event #{event.id} ({event.action} by {event.actor}) "
                    f"was changed after it was written{hint}",
                    event.id,
                )
            prev = event.hash
            checked += 1
        last_id = events[-1].id
    head = AuditChainHead.objects.filter(pk=1).first()
    if head and head.last_hash != prev:
        return ChainReport(
            False,
            checked,
            "the newest events were removed: the chain ends before its recorded head",
        )
    return ChainReport(True, checked)


# --- export ----------------------------------------------------------------------------------

# Every field the hash covers, as it covers them, plus the ids: an export can be re-verified
# offline, and the console's CSV and `manage.py audit --csv/--json` are one format.
EXPORT_COLUMNS = (
    "id",
    "at",
    "actor",
    "source",
    "action",
    "target",
    "outcome",
    "message",
    "parameters",
    "ip",
    "user_agent",
    "backup",
    "restore",
    "prev_hash",
    "hash",
)


def export_row(event: AuditEvent) -> dict:
    return {
        "id": event.pk,
        "at": event.at.isoformat(timespec="microseconds"),
        "actor": event.actor,
        "source": event.source,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "message": event.message,
        "parameters": event.parameters,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "backup": event.backup_id,
        "restore": event.restore_id,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


# A cell a spreadsheet would read as a formula (OWASP's CSV injection rule): names, messages
# and parameters can come from other hosts' records, carried by sync and import. A cell that
# starts with a quote gets one more too, so that reading one leading quote off every cell that
# has one gives back the exact text, and the export still re-hashes offline.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_safe(value):
    """The value, behind a quote when a spreadsheet would take it for a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def from_spreadsheet_safe(cell: str) -> str:
    """The text spreadsheet_safe wrote, back."""
    return cell[1:] if cell.startswith("'") else cell


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    """The header, then one CSV line per event; parameters as compact, key-sorted JSON; a
    text cell that a spreadsheet would run as a formula starts with a quote."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(values) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(EXPORT_COLUMNS)
    for event in events:
        row = export_row(event)
        row["parameters"] = json.dumps(row["parameters"], sort_keys=True, separators=(",", ":"))
        yield line(["" if row[c] is None else spreadsheet_safe(row[c]) for c in EXPORT_COLUMNS])
