"""The restore pages: a new restore (plan first, then a typed confirmation), the list, one
restore (live while it runs), cancel and roll back."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from backups import operations, selectors
from backups.audit import Actor
from backups.errors import BackupError, Busy
from backups.formatting import human_duration
from backups.models import Backup, RestoreRun, RunKind
from backups.operations.plan import Plan, PlanOutdated
from backups.operations.requests import RestoreRequest
from backups.web import queries
from backups.web.banners import under_way
from backups.web.forms import (
    ConfirmRestoreForm,
    RestoreFilterForm,
    RestoreForm,
    error_text,
    sign_plan,
)
from backups.web.permissions import requires
from backups.web.queries import page_of
from backups.web.worker import hand_to_worker, tell_queued, worker_missing

log = logging.getLogger(__name__)


@requires("restore_backup", "restore.request")
def restore_new(request: HttpRequest) -> HttpResponse:
    """Choose, see the plan, type the name, start: one page, bound from GET then POST."""
    source = request.POST if request.method == "POST" else request.GET
    chosen = None
    asked = source.get("backup", "").strip()
    if asked:
        # A link naming a backup that is not there must say so, not preselect another one.
        chosen = Backup.objects.filter(pk=int(asked)).first() if asked.isdigit() else None
        if chosen is None and request.method == "GET":
            raise Http404(f"There is no backup number {asked!r}: choose one on the Backups page.")
    bound = request.method == "POST" or "scope" in request.GET
    backups = selectors.restorable_backups()
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
        "running": selectors.running_operation(),
        "worker_missing": worker_missing(),
        "es_problem": queries.elasticsearch_problem(),
    }
    if not bound or not form.is_valid():
        return render(request, "backups/restore_new.html", context)
    wanted = form.cleaned_data["request"]
    status, plan = 200, None
    if request.method == "POST":
        actor = Actor.from_request(request)
        try:
            plan = confirm.confirmed_plan(wanted)
            run = operations.request_restore(
                wanted, actor, plan=plan, confirm=request.POST.get("confirm", "").strip()
            )
        except BackupError as exc:
            context["start_error"] = error_text(exc)
            status = 409 if isinstance(exc, Busy) else 200
            if isinstance(exc, Busy):
                context["running"] = None  # the refusal says it, once, beside the field
            plan = None if isinstance(exc, PlanOutdated) else plan  # shown anew, made anew
        else:
            problem = hand_to_worker(RunKind.RESTORE, run.pk, actor)
            if problem:
                messages.error(request, problem)
            else:
                tell_queued(
                    request,
                    f"Restore of {run.backup.name} started.",
                    f"Restore of {run.backup.name}",
                )
            return redirect("backups:restore_detail", pk=run.pk)
    _show_plan(context, wanted, plan)
    return render(request, "backups/restore_new.html", context, status=status)


def _show_plan(context: dict, wanted: RestoreRequest, plan: Plan | None) -> None:
    """The plan on the page (made now unless the one confirmed still stands), signed into the
    confirmation so that the restore starts from this very plan."""
    try:
        plan = plan or operations.plan_restore(wanted)
    except BackupError as exc:
        context["plan_error"] = error_text(exc)
        return
    context["plan"] = plan
    context["plan_token"] = sign_plan(wanted, plan)
    context["counts"] = plan.counts()
    if plan.files:
        context["download_url"] = (
            reverse("backups:restore_plan_paths")
            + "?"
            + urlencode({"backup": wanted.backup_id, "file_mode": wanted.file_mode})
        )


@requires("view_backup", "page.view")
@require_GET
def restore_list(request: HttpRequest) -> HttpResponse:
    filters = RestoreFilterForm(request.GET or None)
    queryset = filters.filter(
        RestoreRun.objects.select_related("backup", "safety_backup").order_by("-created_at", "-id")
    )
    page = page_of(request, queryset)
    for run in page.object_list:
        run.took = human_duration(run.duration)
    return render(request, "backups/restore_list.html", {"filters": filters, "page": page})


@requires("restore_backup", "restore.request")
@require_GET
def restore_plan_paths(request: HttpRequest) -> HttpResponse:
    """The plan's complete file list, as a download: every path the restore would add,
    overwrite or delete, one per line (kind, size, path), before anyone types the name."""
    asked = request.GET.get("backup", "")
    backup = Backup.objects.filter(pk=int(asked)).first() if asked.isdigit() else None
    if backup is None:
        raise Http404(f"There is no backup number {asked!r}: choose one on the Backups page.")
    mode = request.GET.get("file_mode", RestoreRun.FileMode.MIRROR)
    try:
        changes = operations.file_changes(backup.pk, mode)
    except BackupError as exc:
        messages.error(request, error_text(exc))
        return redirect(f"{reverse('backups:restore_new')}?backup={backup.pk}")
    lines = (f"{kind}\t{size}\t{path}\n" for kind, path, size in changes)
    response = StreamingHttpResponse(lines, content_type="text/plain; charset=utf-8")
    filename = f"restore-{backup.name}-{mode}-files.txt"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


def _restore_context(run: RestoreRun) -> dict:
    plan = Plan.from_json(run.plan) if run.plan else None
    return {
        "run": run,
        "progress": queries.progress_of(run),
        "took": human_duration(run.duration),
        "plan": plan,
        "counts": plan.counts() if plan else {},
        "rollbacks": list(run.rollbacks.order_by("-created_at")[:5]),
        "newer_restores": selectors.restores_after(run),
        "worker_missing": worker_missing() if run.status == RestoreRun.Status.PENDING else "",
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
        operations.cancel(RunKind.RESTORE, run.pk, Actor.from_request(request))
    except BackupError as exc:
        messages.error(request, error_text(exc))
    else:
        under_way(request, "Cancel requested: the restore stops and puts back what it changed.")
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
    problem = hand_to_worker(RunKind.RESTORE, rollback.pk, actor)
    if problem:
        messages.error(request, problem)
    else:
        tell_queued(request, f"Rolling back restore #{run.pk}.", f"Rollback of restore #{run.pk}")
    return redirect("backups:restore_detail", pk=rollback.pk)
