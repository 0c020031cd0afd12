"""What the Backups page shows after "Sync now": the sync's report, carried in the session
from the POST to the page that follows it, with the imported sets read back from their rows
(where each came from, who signed it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.http import HttpRequest
from django.utils.dateparse import parse_datetime

from backups.models import Backup
from backups.operations import SyncReport

SESSION_KEY = "a4c-sync-report"
# A storage full of planted records must not fill the session: the rest is counted.
MOST_SHOWN = 50


@dataclass(frozen=True)
class ShownSync:
    at: datetime | None
    storage: str
    imported: list[Backup]  # the rows made, in the report's order: imported_from, signed_by
    refused: list[str]  # why each record was refused or not imported, as the sync said it
    refused_more: int  # beyond the ones shown
    unchanged: int
    vanished: list[str]
    returned: list[str]
    resigned: list[str]
    refreshed: list[str]
    policies: list[str]
    events: int

    @property
    def changed(self) -> bool:
        return bool(
            self.imported
            or self.vanished
            or self.returned
            or self.resigned
            or self.refreshed
            or self.policies
            or self.events
        )


def keep(request: HttpRequest, report: SyncReport) -> None:
    """Keeps what the page after the sync shows."""
    request.session[SESSION_KEY] = {
        "at": report.at.isoformat(),
        "storage": report.storage,
        "imported": report.imported[:MOST_SHOWN],
        "refused": report.problems[:MOST_SHOWN],
        "refused_more": max(0, len(report.problems) - MOST_SHOWN),
        "unchanged": len(report.unchanged),
        "vanished": report.vanished[:MOST_SHOWN],
        "returned": report.returned[:MOST_SHOWN],
        "resigned": report.resigned[:MOST_SHOWN],
        "refreshed": report.refreshed[:MOST_SHOWN],
        "policies": report.policies_imported[:MOST_SHOWN],
        "events": report.events_imported,
    }


def take(request: HttpRequest) -> ShownSync | None:
    """The report kept by the last sync, once: a reload shows the page without it."""
    kept = request.session.pop(SESSION_KEY, None)
    if not isinstance(kept, dict):
        return None
    rows = {b.name: b for b in Backup.objects.filter(name__in=kept.get("imported") or [])}
    return ShownSync(
        at=parse_datetime(kept.get("at") or ""),
        storage=kept.get("storage", ""),
        imported=[rows[name] for name in kept.get("imported") or [] if name in rows],
        refused=list(kept.get("refused") or []),
        refused_more=int(kept.get("refused_more") or 0),
        unchanged=int(kept.get("unchanged") or 0),
        vanished=list(kept.get("vanished") or []),
        returned=list(kept.get("returned") or []),
        resigned=list(kept.get("resigned") or []),
        refreshed=list(kept.get("refreshed") or []),
        policies=list(kept.get("policies") or []),
        events=int(kept.get("events") or 0),
    )
