"""The web console: server-rendered pages and the small fragments their scripts poll.

Views are thin: they check who asks (backups/web/permissions.py), turn form input into plain
values (backups/web/forms.py), call backups/operations.py and hand long work to the worker
(backups/tasks.py). Read-only questions live in backups/web/queries.py. Live parts of a page poll
a fragment every second or two and stop once the fragment says the run has ended.
"""

from __future__ import annotations

import csv
import logging

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from kombu.utils.url import maybe_sanitize_url

from backups import audit, operations, tasks
from backups.audit import Actor
from backups.doctor import checks as health
from backups.errors import BackupError, Busy, InvalidInput
from backups.models import AuditEvent, Backup, RestoreRun
from backups.web import queries
from backups.web.forms import (
    AuditFilterForm,
    BackupFilterForm,
    BackupForm,
    ConfirmRestoreForm,
    RestoreFilterForm,
    RestoreForm,
    check_new_name,
    error_text,
)
from backups.web.permissions import requires
from backups.web.views.policies import policies_panel_context

log = logging.getLogger(__name__)
PAGE_SIZE = 50


def _page(request: HttpRequest, queryset, size: int = PAGE_SIZE):
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def _dispatch(task, kind: str, run_id: int, actor: Actor) -> str:
    """Hands the run to a worker; if the broker cannot take it, cancels it so the lock is freed."""
    try:
        task.delay(run_id)
    except Exception as exc:  # noqa: BLE001 - kombu and redis raise many kinds when Redis is down
        log.exception("could not queue %s %s", kind, run_id)
        try:
            operations.cancel(kind, run_id, actor)
        except BackupError:
            pass
        return (
            f"The {kind} could not be handed to a worker: the queue at "
            f"{maybe_sanitize_url(settings.CELERY_BROKER_URL)} did not answer ({exc}). "
            "Nothing was changed; "
            "start Redis and try again."
        )
    return ""


# --- dashboard -----------------------------------------------------------------------------


@requires("view_backup", "page.view")
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "backups/dashboard.html", _live_context())


def _live_context() -> dict:
    running = queries.running_operation()
    return {
        "running": running,
        "running_progress": queries.progress_of(running.run) if running and running.run else None,
        "last_good": queries.last_good_backup(),
        "latest_backups": queries.latest_backups(),
        "latest_restores": queries.latest_restores(),
        **policies_panel_context(),
    }


@requires("view_backup", "page.view")
@require_GET
def dashboard_live(request: HttpRequest) -> HttpResponse:
    return render(request, "backups/fragments/dashboard_live.html", _live_context())


@requires("view_backup", "page.view")
@require_GET
def health_fragment(request: HttpRequest) -> HttpResponse:
    try:
        checks = health.run_checks()
    except Exception as exc:  # noqa: BLE001 - the panel must render even when a check breaks
        log.exception("health checks failed")
        checks = None
        failure = str(exc)
    else:
        failure = ""
    return render(request, "backups/fragments/health.html", {"checks": checks, "failure": failure})


# --- backups -------------------------------------------------------------------------------


@requires("view_backup", "page.view")
@require_GET
def backup_list(request: HttpRequest) -> HttpResponse:
    filters = BackupFilterForm(request.GET or None)
    queryset = filters.filter(Backup.objects.order_by("-created_at", "-id"))
    page = _page(request, queryset)
    for backup in page.object_list:
        backup.took = queries.human_duration(backup.duration)
    return render(request, "backups/backup_list.html", {"filters": filters, "page": page})


@requires("add_backup", "backup.create")
def backup_new(request: HttpRequest) -> HttpResponse:
    index_names, es_problem = queries.live_indices()
    if request.method == "POST":
        form = BackupForm(request.POST, index_names=index_names)
        if form.is_valid():
            actor = Actor.from_request(request)
            data = form.cleaned_data
            try:
                backup = operations.request_backup(
                    actor,
                    name=data["name"] or None,
                    description=data["description"],
                    include_elasticsearch=data["include_elasticsearch"],
                    include_files=data["include_files"],
                    indices=data["indices"],
                )
            except BackupError as exc:
                form.add_error(None, error_text(exc))
            else:
                problem = _dispatch(tasks.run_backup, "backup", backup.pk, actor)
                if problem:
                    messages.error(request, problem)
                else:
                    messages.success(request, f"Backup {backup.name} started.")
                return redirect("backups:backup_detail", pk=backup.pk)
    else:
        form = BackupForm(
            initial={"name": operations.default_backup_name()}, index_names=index_names
        )
    context = {
        "form": form,
        "indices": index_names,
        "es_problem": es_problem,
        "running": queries.running_operation(),
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
        "took": queries.human_duration(backup.duration),
        "indices": indices,
        "index_bytes": sum(i.get("size", 0) for _, i in indices),
        "restores": queries.restores_protected_by(backup),
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
    try:
        operations.request_verify(backup.pk, Actor.from_request(request))
        tasks.run_verify.delay(backup.pk)
    except BackupError as exc:
        messages.error(request, error_text(exc))
    except Exception as exc:  # noqa: BLE001 - kombu and redis raise many kinds when Redis is down
        log.exception("could not queue the verification of %s", backup.name)
        message = (
            f"The verification could not be handed to a worker: the queue at "
            f"{maybe_sanitize_url(settings.CELERY_BROKER_URL)} did not answer ({exc}). "
            "Start Redis and try again."
        )
        operations.verify_not_started(backup.pk, Actor.from_request(request), message)
        messages.error(request, message)
    else:
        messages.info(
            request, f"Verifying backup {backup.name}: this page shows the result when it ends."
        )
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
        operations.cancel("backup", backup.pk, Actor.from_request(request))
    except BackupError as exc:
        messages.error(request, error_text(exc))
    else:
        messages.info(request, f"Cancel requested for backup {backup.name}.")
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
    response["Content-Disposition"] = f'attachment; filename="{backup.name}.manifest.jsonl"'
    return response


# --- restores ------------------------------------------------------------------------------


@requires("restore_backup", "restore.request")
def restore_new(request: HttpRequest) -> HttpResponse:
    """Choose, see the plan, type the name, start: one page, bound from GET then POST."""
    source = request.POST if request.method == "POST" else request.GET
    chosen = None
    if source.get("backup", "").isdigit():
        chosen = Backup.objects.filter(pk=int(source["backup"])).first()
    bound = request.method == "POST" or "scope" in request.GET
    backups = queries.restorable_backups()
    if chosen is None and not bound and backups:
        chosen = backups[0]
    form = RestoreForm(
        source if bound else None,
        backups=backups,
        chosen=chosen,
        initial={"backup": chosen.pk if chosen else None},
    )
    confirm = ConfirmRestoreForm(request.POST if request.method == "POST" else None)
    context = {
        "form": form,
        "confirm_form": confirm,
        "chosen": chosen,
        "plan": None,
        "plan_error": "",
        "start_error": "",
        "running": queries.running_operation(),
    }
    if not bound or not form.is_valid():
        return render(request, "backups/restore_new.html", context)
    arguments = form.plan_arguments()
    if request.method == "POST":
        actor = Actor.from_request(request)
        try:
            run = operations.request_restore(
                form.cleaned_data["backup"],
                actor,
                confirm=request.POST.get("confirm", "").strip(),
                safety_backup=form.cleaned_data["safety_backup"],
                **arguments,
            )
        except BackupError as exc:
            context["start_error"] = error_text(exc)
            status = 409 if isinstance(exc, Busy) else 200
        else:
            problem = _dispatch(tasks.run_restore, "restore", run.pk, actor)
            if problem:
                messages.error(request, problem)
            else:
                messages.success(request, f"Restore of {run.backup.name} started.")
            return redirect("backups:restore_detail", pk=run.pk)
    else:
        status = 200
    try:
        context["plan"] = operations.plan_restore(form.cleaned_data["backup"], **arguments)
    except BackupError as exc:
        context["plan_error"] = error_text(exc)
    else:
        context["counts"] = _plan_counts(context["plan"])
    return render(request, "backups/restore_new.html", context, status=status)


def _plan_counts(plan: dict) -> dict:
    rows = plan.get("indices") or []
    return {a: sum(1 for r in rows if r["action"] == a) for a in ("replace", "create", "remove")}


@requires("view_backup", "page.view")
@require_GET
def restore_list(request: HttpRequest) -> HttpResponse:
    filters = RestoreFilterForm(request.GET or None)
    queryset = filters.filter(
        RestoreRun.objects.select_related("backup", "safety_backup").order_by("-created_at", "-id")
    )
    page = _page(request, queryset)
    for run in page.object_list:
        run.took = queries.human_duration(run.duration)
    return render(request, "backups/restore_list.html", {"filters": filters, "page": page})


def _restore_context(run: RestoreRun) -> dict:
    plan = run.plan or {}
    return {
        "run": run,
        "progress": queries.progress_of(run),
        "took": queries.human_duration(run.duration),
        "plan": plan,
        "counts": _plan_counts(plan),
        "rollbacks": list(run.rollbacks.order_by("-created_at")[:5]),
        "can_roll_back": (
            not run.is_active
            and not run.rolled_back
            and run.safety_backup is not None
            and run.safety_backup.is_restorable
        ),
    }


def _get_restore(pk: int) -> RestoreRun:
    return get_object_or_404(
        RestoreRun.objects.select_related("backup", "safety_backup", "rollback_of__backup"), pk=pk
    )


@requires("view_backup", "page.view")
@require_GET
def restore_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "backups/restore_detail.html", _restore_context(_get_restore(pk)))


@requires("view_backup", "page.view")
@require_GET
def restore_live(request: HttpRequest, pk: int) -> HttpResponse:
    return render(
        request, "backups/fragments/restore_body.html", _restore_context(_get_restore(pk))
    )


@requires("cancel_operation", "restore.cancel")
@require_POST
def restore_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_restore(pk)
    try:
        operations.cancel("restore", run.pk, Actor.from_request(request))
    except BackupError as exc:
        messages.error(request, error_text(exc))
    else:
        messages.info(request, "Cancel requested: the restore stops and puts back what it changed.")
    return redirect("backups:restore_detail", pk=run.pk)


@requires("rollback_restore", "restore.rollback")
@require_POST
def restore_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_restore(pk)
    actor = Actor.from_request(request)
    try:
        rollback = operations.request_rollback(run.pk, actor)
    except BackupError as exc:
        messages.error(request, error_text(exc))
        return redirect("backups:restore_detail", pk=run.pk)
    problem = _dispatch(tasks.run_restore, "restore", rollback.pk, actor)
    if problem:
        messages.error(request, problem)
    else:
        messages.success(request, f"Rolling back restore #{run.pk}.")
    return redirect("backups:restore_detail", pk=rollback.pk)


# --- audit ---------------------------------------------------------------------------------


def _audit_queryset(request: HttpRequest) -> tuple[AuditFilterForm, object]:
    filters = AuditFilterForm(request.GET or None)
    return filters, filters.filter(AuditEvent.objects.order_by("-id"))


@requires("view_auditevent", "page.view")
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    filters, queryset = _audit_queryset(request)
    context = {
        "filters": filters,
        "page": _page(request, queryset),
        "actions": queries.AUDIT_ACTIONS,
    }
    return render(request, "backups/audit_list.html", context)


@requires("view_auditevent", "page.view")
@require_GET
def audit_chain(request: HttpRequest) -> HttpResponse:
    """The hash chain walked end to end; its own request, as it reads every event."""
    report = audit.verify_chain()
    return render(request, "backups/fragments/audit_chain.html", {"report": report})


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_COLUMNS = [
    "id",
    "at",
    "actor",
    "source",
    "ip",
    "action",
    "target",
    "outcome",
    "message",
    "backup_id",
    "restore_id",
    "parameters",
    "hash",
]


@requires("view_auditevent", "page.view")
@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered history as CSV, streamed so that a year of events never sits in memory."""
    _, queryset = _audit_queryset(request)
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for event in queryset.iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    event.id,
                    event.at.isoformat(),
                    event.actor,
                    event.source,
                    event.ip or "",
                    event.action,
                    event.target,
                    event.outcome,
                    event.message,
                    event.backup_id or "",
                    event.restore_id or "",
                    event.parameters,
                    event.hash,
                ]
            )

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="a4c-backup-audit-{stamp}.csv"'
    return response
