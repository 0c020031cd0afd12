"""Downloading a backup set's off-site archive from the console (restorers only).

The console hands out encrypted archives only: Alien4Cloud's indices hold credentials, and a
browser download lands wherever the person's machine puts it. The archive is streamed through
a pipe from a thread that writes it (backups/storage/archive.py), so nothing is staged on disk
and memory stays flat.
"""

from __future__ import annotations

import logging
import os
import threading

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from backups import operations
from backups.audit import Actor
from backups.errors import BackupError
from backups.models import Backup
from backups.web.permissions import requires

log = logging.getLogger("backups.web")
CHUNK = 1 << 20


@requires("restore_backup", "backup.export")
@require_GET
def backup_archive(request: HttpRequest, pk: int) -> HttpResponse:
    backup = get_object_or_404(Backup, pk=pk)
    if not settings.A4C_EXPORT_RECIPIENTS:
        messages.error(
            request,
            "The console hands out encrypted archives only: set A4C_EXPORT_RECIPIENTS to the "
            "restorers' age public keys (`manage.py keygen KEYFILE` makes a pair).",
        )
        return redirect("backups:backup_detail", pk=backup.pk)
    try:
        job = operations.prepare_export(
            backup.pk,
            Actor.from_request(request),
            recipients=settings.A4C_EXPORT_RECIPIENTS,
            destination="download from the console",
        )
    except BackupError as exc:
        messages.error(request, exc.message)
        return redirect("backups:backup_detail", pk=backup.pk)
    read_fd, write_fd = os.pipe()

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as out:
            try:
                job.write(out)
            except (BackupError, OSError) as exc:  # the download ends short: import refuses it
                log.warning("the archive download of %s stopped: %s", job.name, exc)

    threading.Thread(target=produce, name=f"archive-{job.name}", daemon=True).start()

    def chunks():
        with os.fdopen(read_fd, "rb") as pipe:
            while data := pipe.read(CHUNK):
                yield data

    response = StreamingHttpResponse(chunks(), content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(True, f"{job.name}.a4c")
    return response
