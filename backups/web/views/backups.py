"""The backup pages: the list, a new backup, one backup (live while it runs), verify, a restore
drill, pin, cancel, delete, and its manifest."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from backups import operations, selectors, tasks
from backups.audit import Actor
from backups.errors import BackupError, InvalidInput
from backups.formatting import human_duration
from backups.models import Backup, RunKind
from backups.web import queries
from backups.web.banners import under_way
from backups.web.forms import (
    BackupFilterForm,
    BackupForm,
    check_new_name,
    error_text,
)
from backups.web.permissions import requires
from backups.web.queries import page_of
from backups.web.worker import hand_to_worker

log = logging.getLogger(__name__)


@requires("view_backup", "page.view")
@require_GET
def backup_list(request: HttpRequest) -> HttpResponse:
    filters = BackupFilterForm(request.GET or None)
    queryset = filters.filter(Backup.objects.order_by("-created_at", "-id"))
    page = page_of(request, queryset)
    copies = operations.latest_copies(b.pk for b in page.object_list)
    for backup in page.object_list:
        backup.took = human_duration(backup.duration)
        backup.offsite = copies.get(backup.pk)
    context = {
        "filters": filters,
        "page": page,
        # the column shows while copies are on, and while any set has one
        "offsite": bool(settings.A4C_OFFSITE_URL or copies),
    }
    return render(request, "backups/backup_list.html", context)


@requires("add_backup", "backup.create")
def backup_new(request: HttpRequest) -> HttpResponse:
    index_names, es_problem = queries.live_indices()
    if request.method == "POST":
        form = BackupForm(request.POST, index_names=index_names)
        if form.is_valid():
            actor = Actor.from_request(request)
            try:
                backup = operations.request_backup(form.cleaned_data["request"], actor)
            except BackupError as exc:
                form.add_error(None, error_text(exc))
            else:
                problem = hand_to_worker(RunKind.BACKUP, backup.pk, actor)
                if problem:
                    messages.error(request, problem)
                else:
                    under_way(request, f"Backup {backup.name} started.")
                return redirect("backups:backup_detail", pk=backup.pk)
    else:
        form = BackupForm(
            initial={"name": operations.default_backup_name()}, index_names=index_names
        )
    context = {
        "form": form,
        "indices": index_names,
        "es_problem": es_problem,
        "running": selectors.running_operation(),
    }
    return render(request, "backups/backup_new.html", context)


@requires("add_backup", "backup.create")
@require_GET
def backup_name_check(request: HttpRequest) -> HttpResponse:
    """The verdict on a name as it is typed: a one-line fragment."""
    name = request.GET.get("name", "").strip()
    if not name:
        return render(
            request,
            "backups/fragments/name_check.html",
            {"ok": True, "message": "A dated name will be used."},
        )
    try:
        check_new_name(name)
    except InvalidInput as exc:
        return render(
            request, "backups/fragments/name_check.html", {"ok": False, "message": exc.message}
        )
    return render(
        request, "backups/fragments/name_check.html", {"ok": True, "message": f"{name} is free."}
    )


def _backup_context(backup: Backup) -> dict:
    indices = sorted((backup.indices or {}).items())
    return {
        "backup": backup,
        "progress": queries.progress_of(backup),
        "took": human_duration(backup.duration),
        "indices": indices,
        "index_bytes": sum(i.get("size", 0) for _, i in indices),
        "restores": selectors.restores_protected_by(backup),
        "verification": selectors.latest_job(backup, RunKind.VERIFY),
        "drills": queries.drill_rows(backup),
        "drilling": selectors.active_drill(backup),
        "offsite": selectors.latest_job(backup, RunKind.OFFSITE),
    }


@requires("view_backup", "page.view")
@require_GET
def backup_detail(request: HttpRequest, pk: int) -> HttpResponse:
    backup = get_object_or_404(Backup, pk=pk)
    return render(request, "backups/backup_detail.html", _backup_context(backup))


@requires("view_backup", "page.view")
@require_GET
def backup_live(request: HttpRequest, pk: int) -> HttpResponse:
    backup = get_object_or_404(Backup, pk=pk)
    return render(request, "backups/fragments/backup_body.html", _backup_context(backup))


@requires("verify_backup", "backup.verify")
@require_POST
def backup_verify(request: HttpRequest, pk: int) -> HttpResponse:
    """Hands the verification to a worker: it re-reads every file, longer than a request."""
    backup = get_object_or_404(Backup, pk=pk)
    actor = Actor.from_request(request)
    try:
        job = operations.request_verify(backup.pk, actor)
        tasks.enqueue(RunKind.VERIFY, job.pk, actor)
    except BackupError as exc:
        messages.error(request, error_text(exc))
    else:
        under_way(
            request, f"Verifying backup {backup.name}: this page shows the result when it ends."
        )
    return redirect("backups:backup_detail", pk=backup.pk)


@requires("verify_backup", "drill.request")
@require_POST
def backup_drill(request: HttpRequest, pk: int) -> HttpResponse:
    """Hands a restore drill to a worker: operators may (a drill changes nothing Alien4Cloud
    reads), with the right that lets them verify."""
    backup = get_object_or_404(Backup, pk=pk)
    actor = Actor.from_request(request)
    try:
        job = operations.request_drill(backup.pk, actor)
        tasks.enqueue(RunKind.DRILL, job.pk, actor)
    except BackupError as exc:
        messages.error(request, error_text(exc))
    else:
        under_way(
            request,
            f"Restore drill of backup {backup.name} started: this page shows its outcome and "
            "measured restore time when it ends.",
        )
    return redirect("backups:backup_detail", pk=backup.pk)


@requires("cancel_operation", "drill.cancel")
@require_POST
def backup_drill_cancel(request: HttpRequest, pk: int, job: int) -> HttpResponse:
    backup = get_object_or_404(Backup, pk=pk)
    try:
        operations.cancel(RunKind.DRILL, job, Actor.from_request(request))
    except BackupError as exc:
        messages.error(request, error_text(exc))
    else:
        under_way(request, f"Cancel requested for restore drill #{job} of {backup.name}.")
    return redirect("backups:backup_detail", pk=backup.pk)


@requires("delete_backup", "backup.delete")
def backup_delete(request: HttpRequest, pk: int) -> HttpResponse:
    backup = get_object_or_404(Backup, pk=pk)
    if request.method == "POST":
        try:
            operations.delete_backup(backup.pk, Actor.from_request(request))
        except BackupError as exc:
            messages.error(request, error_text(exc))
            return redirect("backups:backup_detail", pk=backup.pk)
        messages.success(request, f"Backup {backup.name} deleted.")
        return redirect("backups:backup_list")
    return render(request, "backups/backup_delete.html", {"backup": backup})


@requires("delete_backup", "backup.pin")
@require_POST
def backup_pin(request: HttpRequest, pk: int) -> HttpResponse:
    """Pinned backups are kept by retention; quick, so no worker is involved."""
    backup = get_object_or_404(Backup, pk=pk)
    pinned = request.POST.get("pinned") == "1"
    operations.set_pinned(backup.pk, Actor.from_request(request), pinned)
    messages.success(request, f"Backup {backup.name} {'pinned' if pinned else 'unpinned'}.")
    return redirect("backups:backup_detail", pk=backup.pk)


@requires("cancel_operation", "backup.cancel")
@require_POST
def backup_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    backup = get_object_or_404(Backup, pk=pk)
    try:
        operations.cancel(RunKind.BACKUP, backup.pk, Actor.from_request(request))
    except BackupError as exc:
        messages.error(request, error_text(exc))
    else:
        under_way(request, f"Cancel requested for backup {backup.name}.")
    return redirect("backups:backup_detail", pk=backup.pk)


@requires("view_backup", "page.view")
@require_GET
def backup_manifest(request: HttpRequest, pk: int) -> HttpResponse:
    backup = get_object_or_404(Backup, pk=pk)
    if not backup.include_files or backup.status != Backup.Status.SUCCEEDED:
        messages.error(request, f"Backup {backup.name} has no file manifest to download.")
        return redirect("backups:backup_detail", pk=backup.pk)
    response = StreamingHttpResponse(
        queries.manifest_lines(backup), content_type="application/x-ndjson"
    )
    response["Content-Disposition"] = content_disposition_header(
        True, f"{backup.name}.manifest.jsonl"
    )
    return response
