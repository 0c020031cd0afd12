"""Disaster recovery in the console: "Sync now" brings the list of backups in line with the
backup storage, as `manage.py sync` does (operations/sync.py), for restorers.

The sync runs inline, in the request: it reads the storage's small records and checks that
manifests and snapshots exist, without hashing, so it takes a moment; and it must work when
no worker runs, which is when a new machine needs it most. Its report is kept in the session
for the one page that follows (post, redirect, get), so a reload never syncs again.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from backups import operations
from backups.audit import Actor
from backups.errors import BackupError
from backups.web import sync_report
from backups.web.permissions import requires


@requires("restore_backup", "catalog.sync")
@require_POST
def catalog_sync(request: HttpRequest) -> HttpResponse:
    try:
        report = operations.sync_catalog(Actor.from_request(request))
    except BackupError as exc:
        return _did_not_run(request, exc.message)
    except OSError as exc:  # the storage's records could not be listed
        return _did_not_run(
            request, f"the backup storage could not be read ({exc.strerror}: {exc.filename})"
        )
    sync_report.keep(request, report)
    return redirect("backups:backup_list")


def _did_not_run(request: HttpRequest, why: str) -> HttpResponse:
    messages.error(
        request,
        f"The sync did not run to its end: {why}. Run it again once that is fixed (a sync "
        "never does twice what it did); `manage.py doctor` checks the backup storage.",
    )
    return redirect("backups:backup_list")
